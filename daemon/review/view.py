"""The conflicts view: every conflict as it stands now, and the records they belong to.

Built from events, with no I/O (:mod:`daemon.review.source` reads the topics): the latest
:class:`~streams.events.ConflictEvent` per conflict id from the ``conflicts`` topic, the
latest :class:`~streams.events.RecordEvent` per canonical id from ``records``, and, where the
records table's changelog has it, each record's state with its bounded history of changes.
The wall clock is an argument (``now``) wherever an age is computed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

import conflict
from conflict.state import Json
from daemon.review.errors import NotFound
from streams import (
    CandidateModel,
    ConflictEvent,
    RecordEvent,
)

Status = Literal["open", "auto_resolved", "resolved", "superseded"]
STATUSES: tuple[Status, ...] = ("open", "auto_resolved", "resolved", "superseded")
"""Every status a conflict can have, in the order a report shows them."""


def raised_at(event: ConflictEvent) -> float:
    """When the conflict arose: the source time of the later of its two writes."""
    return max(event.current.source_ts, event.incoming.source_ts)


def age(event: ConflictEvent, now: float) -> float:
    """Seconds since the conflict arose (never negative: clocks of systems drift)."""
    return max(0.0, now - raised_at(event))


def candidates(event: ConflictEvent) -> tuple[tuple[str, CandidateModel], ...]:
    """``(role, candidate)`` for both sides: ``current`` first, then ``incoming``."""
    return (("current", event.current), ("incoming", event.incoming))


def outcome(event: ConflictEvent, role: str) -> str:
    """How one side fared: ``won``, ``lost``, ``merged``, ``open`` or ``superseded``.

    A person's resolution that gave a value of its own (neither candidate's) makes both
    sides ``lost``.
    """
    if event.status == "open":
        return "open"
    if event.status == "superseded":
        return "superseded"
    if event.decision == "merged":
        return "merged"
    if event.decision in ("current", "incoming"):
        return "won" if event.decision == role else "lost"
    candidate = event.current if role == "current" else event.incoming
    other = event.incoming if role == "current" else event.current
    chosen = (candidate.deleted == event.deleted
              and (event.deleted or candidate.value == event.value))
    if chosen and other.deleted == candidate.deleted and other.value == candidate.value:
        return "won"  # both sides held the same thing: whichever was taken, both are right
    return "won" if chosen else "lost"


def candidate_of(event: ConflictEvent, system: str) -> CandidateModel | None:
    """The candidate that ``system`` wrote, if it wrote one."""
    for _, candidate in candidates(event):
        if candidate.system == system:
            return candidate
    return None


@dataclass(frozen=True, slots=True)
class ConflictFilter:
    """Which conflicts to show. Every criterion given must hold."""

    status: Status | None = None
    entity: str | None = None
    system: str | None = None  # either candidate written by this system
    field: str | None = None
    since: float | None = None  # raised at or after this time (Unix seconds)

    def matches(self, event: ConflictEvent) -> bool:
        """Whether ``event`` passes every criterion."""
        return ((self.status is None or event.status == self.status)
                and (self.entity is None or event.entity == self.entity)
                and (self.system is None or candidate_of(event, self.system) is not None)
                and (self.field is None or event.field == self.field)
                and (self.since is None or raised_at(event) >= self.since))


@dataclass(frozen=True, slots=True)
class Summary:
    """Counts for the top of a report."""

    total: int
    by_status: Mapping[str, int]
    open_by_entity: Mapping[str, int]
    oldest_open: ConflictEvent | None
    oldest_open_age: float | None


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """One line of a record's history: a write of a field and how it fared.

    ``outcome`` is ``set`` (an edit, or the field's first value), ``won`` / ``lost`` (a side
    of a conflict), ``merged``, ``chosen`` (a person's resolution), ``open`` (the incoming
    side of a conflict held for review), ``deleted`` or ``restored``.
    """

    at: float
    field: str
    value: Json
    system: str
    dot: str
    outcome: str
    conflict_id: str | None = None
    by: str | None = None  # who resolved, for ``chosen``


_CHANGE_OUTCOME = {
    conflict.Change.EDIT: "set",
    conflict.Change.FIRST: "set",
    conflict.Change.CONFLICT_WON: "won",
    conflict.Change.MERGED: "merged",
    conflict.Change.RESOLVED: "chosen",
    conflict.Change.DELETED: "deleted",
    conflict.Change.RESTORED: "restored",
}


def _sort_key(event: ConflictEvent) -> tuple[float, str]:
    return (raised_at(event), event.conflict_id)


@dataclass(frozen=True)
class ReviewView:
    """Every conflict, record and record state known: the latest event of each id.

    Build it with :meth:`build` from events in topic order.
    """

    conflicts: Mapping[str, ConflictEvent] = field(default_factory=dict)
    records: Mapping[str, RecordEvent] = field(default_factory=dict)
    states: Mapping[str, conflict.RecordState] = field(default_factory=dict)
    unreadable: int = 0  # events on the topics that could not be decoded

    @classmethod
    def build(cls, conflicts: Iterable[ConflictEvent], records: Iterable[RecordEvent] = (),
              states: Mapping[str, conflict.RecordState] | None = None,
              unreadable: int = 0) -> ReviewView:
        """The view of events in topic order: a later event of an id replaces an earlier."""
        return cls({c.conflict_id: c for c in conflicts},
                   {r.canonical_id: r for r in records}, dict(states or {}), unreadable)

    # -- conflicts ----------------------------------------------------------------------------
    def select(self, where: ConflictFilter | None = None) -> list[ConflictEvent]:
        """The conflicts that match, open ones first, each group oldest first."""
        where = where or ConflictFilter()
        found = [c for c in self.conflicts.values() if where.matches(c)]
        return sorted(found, key=lambda c: (c.status != "open", *_sort_key(c)))

    def by_status(self, status: Status) -> list[ConflictEvent]:
        """The conflicts with ``status``, oldest first."""
        return sorted((c for c in self.conflicts.values() if c.status == status),
                      key=_sort_key)

    def auto_resolved_by_policy(self) -> dict[str, list[ConflictEvent]]:
        """The conflicts a policy decided, grouped by policy name (sorted), oldest first."""
        groups: dict[str, list[ConflictEvent]] = {}
        for event in self.by_status("auto_resolved"):
            groups.setdefault(event.policy, []).append(event)
        return dict(sorted(groups.items()))

    def find(self, ref: str) -> ConflictEvent:
        """The conflict with id ``ref``, or the only one whose id starts with it.

        Raises:
            NotFound: no conflict has that id, or the prefix names several.
        """
        exact = self.conflicts.get(ref)
        if exact is not None:
            return exact
        matches = [c for cid, c in self.conflicts.items() if ref and cid.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            shown = ", ".join(sorted(c.conflict_id for c in matches)[:3])
            raise NotFound(f"conflict id {ref!r} is ambiguous: {len(matches)} conflicts start "
                           f"with it ({shown}, ...)")
        raise NotFound(f"no conflict {ref!r} (see `syncline conflicts list`)")

    def summary(self, now: float) -> Summary:
        """Counts by status and entity, and the oldest open conflict with its age."""
        by_status = Counter(c.status for c in self.conflicts.values())
        open_ = self.by_status("open")
        oldest = open_[0] if open_ else None
        return Summary(
            total=len(self.conflicts),
            by_status={s: by_status.get(s, 0) for s in STATUSES},
            open_by_entity=dict(sorted(Counter(c.entity for c in open_).items())),
            oldest_open=oldest,
            oldest_open_age=None if oldest is None else age(oldest, now))

    # -- records ------------------------------------------------------------------------------
    def record_id(self, ref: str) -> str:
        """The canonical id that ``ref`` names: a canonical id, or ``system/external id``.

        Raises:
            NotFound: no record is known by that reference.
        """
        if ref in self.records or ref in self.states:
            return ref
        system, slash, external_id = ref.partition("/")
        if slash:
            for cid, record in self.records.items():
                if record.links.get(system) == external_id:
                    return cid
        if any(c.canonical_id == ref for c in self.conflicts.values()):
            return ref
        raise NotFound(f"no record {ref!r}: give a canonical id, or SYSTEM/EXTERNAL_ID "
                       "(e.g. crm/42)")

    def conflicts_of(self, canonical_id: str) -> list[ConflictEvent]:
        """The conflicts of one record, oldest first."""
        return sorted((c for c in self.conflicts.values() if c.canonical_id == canonical_id),
                      key=_sort_key)

    def history(self, canonical_id: str) -> list[HistoryRow]:
        """Which system set each field, when, and whether it won or lost a conflict.

        The record state's history (bounded: the most recent changes) gives every write that
        changed the canonical record; the record's conflicts add the writes that did not
        (the losing side of a conflict, the incoming side of an open one). Where the state is
        not known, the record event's provenance gives the write behind each current value.
        Oldest first.
        """
        conflicts = self.conflicts_of(canonical_id)
        rows: list[HistoryRow] = []
        state = self.states.get(canonical_id)
        record = self.records.get(canonical_id)
        if state is not None:
            for entry in state.history:
                rows.append(HistoryRow(entry.source_ts, entry.field, entry.value,
                                       entry.dot.actor, str(entry.dot),
                                       _CHANGE_OUTCOME[entry.change], entry.conflict_id))
        elif record is not None:
            for name, why in sorted(record.provenance.items()):
                rows.append(HistoryRow(why.source_ts, name, record.fields.get(name),
                                       why.system, why.dot, "set", why.conflict_id))
        by_conflict = {c.conflict_id: c for c in conflicts}
        for i, row in enumerate(rows):
            event = by_conflict.get(row.conflict_id or "")
            if row.outcome == "chosen" and event is not None and event.resolution is not None:
                rows[i] = replace(row, by=event.resolution.by)
        seen = {(row.field, row.dot): i for i, row in enumerate(rows)}
        for event in conflicts:
            for role, candidate in candidates(event):
                how = outcome(event, role)
                if how in ("superseded", "merged"):
                    continue
                if how == "open" and role == "current":
                    continue  # the canonical value stays while the conflict is open
                at = seen.get((event.field, candidate.dot))
                if at is not None:
                    if how in ("lost", "open"):
                        rows[at] = replace(rows[at], outcome=how,
                                            conflict_id=event.conflict_id)
                    continue
                if how in ("lost", "open"):
                    rows.append(HistoryRow(candidate.source_ts, event.field, candidate.value,
                                           candidate.system, candidate.dot, how,
                                           event.conflict_id))
        return sorted(rows, key=lambda r: (r.at, r.field, r.dot))

