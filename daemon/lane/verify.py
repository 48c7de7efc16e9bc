"""Verifying a write: did the system keep what the lane wrote?

An API may answer 200 to a write and keep nothing, or not the field, or another form of the
value. After every write the lane compares, field by field, what the system holds now (the
answer's body when it has the record, else a read right after) with what it wrote. A field
that did not take is never reported written: the write outcome names it (``not_taken``), so
the fold takes what the system holds as its copy (not as a person's edit) and stops sending
that value there; the lane says so in its status and in one dead letter.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from conflict.policy import same
from conflict.state import Json
from daemon.errors import DaemonError

Normalise = Callable[[Mapping[str, Json]], Mapping[str, Json]]


def not_taken(wrote: Mapping[str, Json], holds: Mapping[str, Json],
              normalise: Normalise | None = None) -> dict[str, tuple[Json, Json]]:
    """The fields of ``wrote`` that ``holds`` does not hold: field -> ``(wrote, holds)``.

    Values are compared with the fold's one JSON equality, after the field's normalisation
    when the mapping has one (what writing a value and reading it back gives). A field
    ``holds`` does not have (the API does not return it) cannot be checked and counts as kept.
    """
    out: dict[str, tuple[Json, Json]] = {}
    for name, value in wrote.items():
        if name not in holds:
            continue
        now = holds[name]
        if same(now, value):
            continue
        if normalise is not None:
            try:
                normal = normalise({name: value}).get(name, value)
            except DaemonError:  # a value this system cannot hold: compare as written
                normal = value
            if same(now, normal):
                continue
        out[name] = (value, now)
    return out


@dataclass(frozen=True, slots=True)
class NotKept:
    """A field of a record a system did not keep."""

    external_id: str
    field: str
    wrote: Json
    holds: Json

    def reason(self, system: str, entity: str) -> str:
        return (f"system {system} does not keep field {self.field} of {entity} "
                f"{self.external_id} (wrote {self.wrote!r}, it holds {self.holds!r})")


@dataclass
class Kept:
    """What a lane found not kept, until a later write of the field takes (for status)."""

    fields: dict[tuple[str, str], NotKept] = field(default_factory=dict)
    _lettered: set[tuple[str, str, str]] = field(default_factory=set)

    def record(self, external_id: str, wrote: Mapping[str, Json],
               missed: Mapping[str, tuple[Json, Json]]) -> list[NotKept]:
        """Note a verified write; the fields newly found not kept (one dead letter each)."""
        for name in wrote:
            if name not in missed:
                self.fields.pop((external_id, name), None)
        new: list[NotKept] = []
        for name, (value, holds) in sorted(missed.items()):
            found = NotKept(external_id, name, value, holds)
            self.fields[(external_id, name)] = found
            key = (external_id, name, repr(value))
            if key not in self._lettered:
                self._lettered.add(key)
                new.append(found)
        return new

    def __len__(self) -> int:
        return len(self.fields)
