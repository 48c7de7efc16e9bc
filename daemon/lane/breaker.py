"""The loop breaker: a record a lane keeps writing without it holding is not written again.

Two systems that each keep another form of a value, an API that answers a write with the
body it was sent and keeps nothing: the hub and the systems would rewrite each other forever
while each write looks fine. A write found not kept when verified is no loop (the hub does
not send that value again), so the lane counts, per record, the writes that looked kept and
were undone by the next read of the record (a field the lane wrote holding something else),
since a person's edit there (a read that is not the echo of the lane's write and keeps what
it wrote). A write that held until the next write resets the count, so a record edited often
elsewhere is never stopped. Past the bound the breaker opens: the record's writes to this
system stop and are reported failed, with the reason in the lane's status, a metric and one
dead letter. A person's edit of the record in this system closes it again. The count lives
in the process (a restart closes every breaker, and at most another bound of writes opens it
again).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from conflict.policy import same
from conflict.state import Json

REMEMBERED = 100_000
"""How many records' last writes a lane remembers (the oldest forgotten first): a write
forgotten cannot be found undone, so at worst a loop takes longer to stop."""


@dataclass
class LoopBreaker:
    """The loop breakers of one lane (per record of its system)."""

    bound: int = 5
    strikes: dict[str, int] = field(default_factory=dict)
    opened: dict[str, str] = field(default_factory=dict)  # external id -> why
    _last: dict[str, dict[str, Json]] = field(default_factory=dict)  # what held, per record

    def is_open(self, external_id: str) -> str | None:
        """Why writes to this record are stopped, or None."""
        return self.opened.get(external_id)

    def wrote(self, external_id: str, values: Mapping[str, Json], held: bool) -> str | None:
        """A write to the record: ``held`` if verified kept; the reason when it opens now."""
        if external_id in self._last:
            self.strikes.pop(external_id, None)  # the previous write held until this one
        if held:
            self._last[external_id] = dict(values)
            while len(self._last) > REMEMBERED:
                del self._last[next(iter(self._last))]
            return None
        self._last.pop(external_id, None)  # not kept: the hub does not send it again
        return None

    def observed(self, external_id: str, values: Mapping[str, Json]) -> str | None:
        """A read of the record that is not the echo of the lane's write.

        It undoes the last write (a written field holds something else) — a strike, and the
        reason if the breaker opens now — or it is a person's edit, which clears the count
        and closes the breaker.
        """
        last = self._last.pop(external_id, None)
        if last is not None and any(name in values and not same(values[name], value)
                                    for name, value in last.items()):
            return self._strike(external_id)
        self.strikes.pop(external_id, None)
        self.opened.pop(external_id, None)
        return None

    def _strike(self, external_id: str) -> str | None:
        count = self.strikes.get(external_id, 0) + 1
        self.strikes[external_id] = count
        if count < self.bound or external_id in self.opened:
            return None
        why = (f"loop breaker open: {count} writes to record {external_id} were undone by "
               "the next read, without a person's edit in between; its writes are stopped")
        self.opened[external_id] = why
        return why
