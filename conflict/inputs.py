"""What the fold consumes: observations from a system's lane, and a person's resolutions.

Every observation carries the lane's per-system sequence number ``seq``; the fold applies an
observation to a record only when its ``seq`` is newer than the last one it applied for that
record and system, so replaying any suffix of a lane's observations changes nothing.
Timestamps (``source_ts``, ``at``) are numbers chosen by the caller (seconds since the epoch
in syncline); the fold never reads a clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from conflict.state import Json


@dataclass(frozen=True, slots=True)
class Observed:
    """A record as a lane read it from ``system`` (or saw it deleted there)."""

    system: str
    seq: int
    external_id: str | None
    fields: Mapping[str, Json] = field(default_factory=dict)
    deleted: bool = False
    native_version: str | None = None
    source_ts: float = 0.0


@dataclass(frozen=True, slots=True)
class Written:
    """A write made by a lane for ``intent_id``.

    ``fields``, when the API returned the record after the write, holds what the system now
    holds; a value that differs from what was written (the system normalised it) is the
    system's own change and is folded like a read, unless the lane found it not kept:
    ``not_taken`` names those fields, each ``(wrote, holds)``. What such a system holds is
    not an edit there, and the hub stops writing that value to it.
    """

    system: str
    seq: int
    intent_id: str
    external_id: str | None = None
    native_version: str | None = None
    source_ts: float = 0.0
    fields: Mapping[str, Json] | None = None
    not_taken: Mapping[str, tuple[Json, Json]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class WriteStale:
    """A write not made because the system held a value the hub had not seen yet."""

    system: str
    seq: int
    intent_id: str


@dataclass(frozen=True, slots=True)
class WriteFailed:
    """A write that failed after the lane's retry budget."""

    system: str
    seq: int
    intent_id: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Resolve:
    """A person's decision on a conflict: take one system's candidate, or give a value.

    For a conflict between a delete and an update, ``take`` the system that deleted to delete
    the record, or the other one to keep it; ``delete=True`` deletes it outright.
    """

    resolution_id: str
    conflict_id: str
    by: str
    at: float
    take: str | None = None
    value: Json = None
    delete: bool = False
    note: str | None = None


Observation = Observed | Written | WriteStale | WriteFailed
Input = Observation | Resolve
