"""The canonical record state that the fold turns over, and what it emits.

One :class:`RecordState` per canonical id (docs/ARCHITECTURE.md, "The merge")::

    clock:     {actor: n}                   join of every accepted dot
    fields:    {name: FieldState}           value, the dot that set it, its source timestamp
    peers:     {system: PeerState}          external id, knowledge, shadow, native version,
                                            last sequence number, the write in flight
    deleted:   Tombstone | None
    conflicts: open ones and the most recent closed ones
    history:   the most recent field changes, with why they happened

The fold treats every value here as immutable: it copies what it changes, so the state passed
in is never altered (a rejected input leaves no trace). :meth:`RecordState.to_dict` is the
stable serialised form; ``RecordState.from_dict(s.to_dict()) == s``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from conflict.clock import EMPTY, Dot, VClock

Json = Any
"""A JSON value: None, bool, int, float, str, list of Json, dict of str to Json."""


class FieldState(NamedTuple):
    """A canonical field: its value, the write that set it and that write's source time."""

    value: Json
    dot: Dot
    source_ts: float


class Tombstone(NamedTuple):
    """A delete accepted by the hub."""

    dot: Dot
    source_ts: float


class WriteOp(enum.Enum):
    """What an intent asks a lane to do."""

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


class WriteIntent(NamedTuple):
    """An instruction for one lane: make ``system`` hold ``values`` for this record.

    ``expected`` holds what the hub believes the system holds now for those fields; a lane
    that finds a field holding neither the expected nor the intended value writes nothing
    and reports the write as stale.
    """

    intent_id: str
    canonical_id: str
    entity: str
    system: str
    op: WriteOp
    external_id: str | None
    values: Mapping[str, Json]
    expected: Mapping[str, Json]
    native_version: str | None
    clock: VClock
    attempt: int

    def to_dict(self) -> dict[str, Json]:
        """Stable serialised form."""
        return {
            "intent_id": self.intent_id,
            "canonical_id": self.canonical_id,
            "entity": self.entity,
            "system": self.system,
            "op": self.op.value,
            "external_id": self.external_id,
            "values": dict(self.values),
            "expected": dict(self.expected),
            "native_version": self.native_version,
            "clock": self.clock.to_dict(),
            "attempt": self.attempt,
        }

    def to_compact(self) -> list[Json]:
        """:meth:`to_dict` without the names (see :meth:`RecordState.to_compact`)."""
        return [self.intent_id, self.canonical_id, self.entity, self.system, self.op.value,
                self.external_id, dict(self.values), dict(self.expected), self.native_version,
                self.clock.to_dict(), self.attempt]

    @classmethod
    def from_compact(cls, c: list[Json]) -> WriteIntent:
        """Inverse of :meth:`to_compact`."""
        return cls(c[0], c[1], c[2], c[3], WriteOp(c[4]), c[5], dict(c[6]), dict(c[7]), c[8],
                   VClock(c[9]), c[10])

    @classmethod
    def from_dict(cls, d: Mapping[str, Json]) -> WriteIntent:
        """Inverse of :meth:`to_dict`."""
        return cls(
            intent_id=d["intent_id"],
            canonical_id=d["canonical_id"],
            entity=d["entity"],
            system=d["system"],
            op=WriteOp(d["op"]),
            external_id=d["external_id"],
            values=dict(d["values"]),
            expected=dict(d["expected"]),
            native_version=d["native_version"],
            clock=VClock(d["clock"]),
            attempt=d["attempt"],
        )


def intent_number(intent_id: str) -> int:
    """The per-record, per-system counter at the end of an intent id."""
    _, _, n = intent_id.rpartition("#")
    return int(n) if n.isdigit() else -1


class ReplacedCopy(NamedTuple):
    """A system's copy that a create of the hub replaced in the link, as the hub knew it.

    The lane's lookup before creating found no copy (a user had just deleted it), so the hub
    made a new one; when the old copy's delete is then read, it is folded as that system's
    delete, as of what the old copy held.
    """

    external_id: str
    knowledge: VClock
    shadow: Mapping[str, Json]

    def to_dict(self) -> dict[str, Json]:
        """Stable serialised form."""
        return {"external_id": self.external_id, "knowledge": self.knowledge.to_dict(),
                "shadow": {k: self.shadow[k] for k in sorted(self.shadow)}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Json]) -> ReplacedCopy:
        """Inverse of :meth:`to_dict`."""
        return cls(d["external_id"], VClock(d["knowledge"]), dict(d["shadow"]))

    def to_compact(self) -> list[Json]:
        """:meth:`to_dict` without the names (see :meth:`RecordState.to_compact`)."""
        return [self.external_id, self.knowledge.to_dict(), dict(self.shadow)]

    @classmethod
    def from_compact(cls, c: list[Json]) -> ReplacedCopy:
        """Inverse of :meth:`to_compact`."""
        return cls(c[0], VClock(c[1]), dict(c[2]))


@dataclass(slots=True)
class PeerState:
    """What the hub knows about one system's copy of the record."""

    external_id: str | None = None
    exists: bool = False  # the system holds a live copy, as far as the hub knows
    knowledge: VClock = EMPTY  # the dots the system's copy reflects
    shadow: Mapping[str, Json] = field(default_factory=dict)  # the values it holds
    native_version: str | None = None
    last_seq: int = -1  # the newest of the system's observations applied to this record
    in_flight: WriteIntent | None = None
    intents_issued: int = 0
    failures: int = 0  # consecutive failed or stale writes
    # Per field, the values of writes reported failed that may have landed all the same (a
    # lane that crashed after writing, then failed on the re-run): not edits if a read shows
    # one of them. A read of the field settles it.
    landed: Mapping[str, tuple[Json, ...]] = field(default_factory=dict)
    replaced: ReplacedCopy | None = None
    # Per field, a write the system answered but did not keep: ``(wrote, holds)``. The hub
    # does not write that value there again (until the canonical value changes), and the
    # copy's shadow holds what the system kept, so reading it back is no edit.
    not_kept: Mapping[str, tuple[Json, Json]] = field(default_factory=dict)

    def copy(self) -> PeerState:
        """A shallow copy (the mappings inside are never mutated)."""
        return PeerState(self.external_id, self.exists, self.knowledge, self.shadow,
                         self.native_version, self.last_seq, self.in_flight,
                         self.intents_issued, self.failures, self.landed, self.replaced,
                         self.not_kept)

    def to_dict(self) -> dict[str, Json]:
        """Stable serialised form."""
        return {
            "external_id": self.external_id,
            "exists": self.exists,
            "knowledge": self.knowledge.to_dict(),
            "shadow": {k: self.shadow[k] for k in sorted(self.shadow)},
            "native_version": self.native_version,
            "last_seq": self.last_seq,
            "in_flight": None if self.in_flight is None else self.in_flight.to_dict(),
            "intents_issued": self.intents_issued,
            "failures": self.failures,
            "landed": {k: list(self.landed[k]) for k in sorted(self.landed)},
            "replaced": None if self.replaced is None else self.replaced.to_dict(),
            "not_kept": {k: list(self.not_kept[k]) for k in sorted(self.not_kept)},
        }

    def to_compact(self) -> list[Json]:
        """:meth:`to_dict` without the names (see :meth:`RecordState.to_compact`)."""
        return [
            self.external_id, self.exists, self.knowledge.entries(), dict(self.shadow),
            self.native_version, self.last_seq,
            None if self.in_flight is None else _compacted(self.in_flight),
            self.intents_issued, self.failures,
            {k: list(v) for k, v in self.landed.items()} if self.landed else {},
            None if self.replaced is None else _compacted(self.replaced),
            {k: list(v) for k, v in self.not_kept.items()} if self.not_kept else {},
        ]

    @classmethod
    def from_compact(cls, c: list[Json]) -> PeerState:
        """Inverse of :meth:`to_compact`."""
        return cls(c[0], c[1], VClock(c[2]), dict(c[3]), c[4], c[5],
                   None if c[6] is None else WriteIntent.from_compact(c[6]), c[7], c[8],
                   {k: tuple(v) for k, v in c[9].items()},
                   None if c[10] is None else ReplacedCopy.from_compact(c[10]),
                   {k: (v[0], v[1]) for k, v in c[11].items()} if len(c) > 11 else {})

    @classmethod
    def from_dict(cls, d: Mapping[str, Json]) -> PeerState:
        """Inverse of :meth:`to_dict`."""
        flight = d["in_flight"]
        return cls(
            external_id=d["external_id"],
            exists=d["exists"],
            knowledge=VClock(d["knowledge"]),
            shadow=dict(d["shadow"]),
            native_version=d["native_version"],
            last_seq=d["last_seq"],
            in_flight=None if flight is None else WriteIntent.from_dict(flight),
            intents_issued=d["intents_issued"],
            failures=d["failures"],
            landed={k: tuple(v) for k, v in d.get("landed", {}).items()},
            replaced=None if d.get("replaced") is None else ReplacedCopy.from_dict(
                d["replaced"]),
            not_kept={k: (v[0], v[1]) for k, v in d.get("not_kept", {}).items()},
        )


class Candidate(NamedTuple):
    """One side of a conflict: a value (or a delete), who wrote it, its dot and time."""

    value: Json
    system: str
    dot: Dot
    source_ts: float
    deleted: bool = False

    def to_dict(self) -> dict[str, Json]:
        """Stable serialised form."""
        return {"value": self.value, "system": self.system, "dot": str(self.dot),
                "source_ts": self.source_ts, "deleted": self.deleted}

    @classmethod
    def from_dict(cls, d: Mapping[str, Json]) -> Candidate:
        """Inverse of :meth:`to_dict`."""
        return cls(d["value"], d["system"], Dot.parse(d["dot"]), d["source_ts"], d["deleted"])

    def to_compact(self) -> list[Json]:
        """:meth:`to_dict` without the names (see :meth:`RecordState.to_compact`)."""
        return [self.value, self.system, str(self.dot), self.source_ts, self.deleted]

    @classmethod
    def from_compact(cls, c: list[Json]) -> Candidate:
        """Inverse of :meth:`to_compact`."""
        return cls(c[0], c[1], Dot.parse(c[2]), c[3], c[4])


class ConflictStatus(enum.Enum):
    """Where a conflict stands."""

    AUTO_RESOLVED = "auto_resolved"  # a policy decided
    OPEN = "open"  # held for a person
    RESOLVED = "resolved"  # a person decided
    SUPERSEDED = "superseded"  # a later write that saw the canonical value replaced it


class Decision(enum.Enum):
    """Which way a conflict went."""

    CURRENT = "current"  # the canonical value stayed
    INCOMING = "incoming"  # the new write won
    MERGED = "merged"  # a value made from both
    OPEN = "open"  # nobody decided yet (canonical keeps its value)
    CHOSEN = "chosen"  # a person's resolution


class ResolutionInfo(NamedTuple):
    """Who resolved a conflict, when, how and why."""

    resolution_id: str
    by: str
    at: float
    value: Json
    deleted: bool
    note: str | None

    def to_dict(self) -> dict[str, Json]:
        """Stable serialised form."""
        return {"resolution_id": self.resolution_id, "by": self.by, "at": self.at,
                "value": self.value, "deleted": self.deleted, "note": self.note}

    @classmethod
    def from_dict(cls, d: Mapping[str, Json]) -> ResolutionInfo:
        """Inverse of :meth:`to_dict`."""
        return cls(d["resolution_id"], d["by"], d["at"], d["value"], d["deleted"], d["note"])

    def to_compact(self) -> list[Json]:
        """:meth:`to_dict` without the names (see :meth:`RecordState.to_compact`)."""
        return [self.resolution_id, self.by, self.at, self.value, self.deleted, self.note]

    @classmethod
    def from_compact(cls, c: list[Json]) -> ResolutionInfo:
        """Inverse of :meth:`to_compact`."""
        return cls(c[0], c[1], c[2], c[3], c[4], c[5])


DELETE_FIELD = "_deleted"
"""The ``field`` of a conflict between a delete and an update of the record."""


@dataclass(frozen=True, slots=True)
class ConflictRecord:
    """Two writes of one field (or a delete and an update) where neither saw the other."""

    conflict_id: str
    canonical_id: str
    entity: str
    field: str  # a field name, or DELETE_FIELD
    current: Candidate  # what the canonical record held
    incoming: Candidate  # the write that arrived
    policy: str
    decision: Decision
    value: Json  # the canonical value after the decision
    deleted: bool  # whether the record is deleted after the decision (delete conflicts)
    status: ConflictStatus
    resolution: ResolutionInfo | None = None
    superseded_by: Dot | None = None

    def with_status(self, status: ConflictStatus, **changes: Any) -> ConflictRecord:
        """A copy with a new status and other changed attributes."""
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data.update(changes, status=status)
        return ConflictRecord(**data)

    def to_dict(self) -> dict[str, Json]:
        """Stable serialised form."""
        return {
            "conflict_id": self.conflict_id,
            "canonical_id": self.canonical_id,
            "entity": self.entity,
            "field": self.field,
            "current": self.current.to_dict(),
            "incoming": self.incoming.to_dict(),
            "policy": self.policy,
            "decision": self.decision.value,
            "value": self.value,
            "deleted": self.deleted,
            "status": self.status.value,
            "resolution": None if self.resolution is None else self.resolution.to_dict(),
            "superseded_by": None if self.superseded_by is None else str(self.superseded_by),
        }

    def to_compact(self) -> list[Json]:
        """:meth:`to_dict` without the names (see :meth:`RecordState.to_compact`)."""
        return [self.conflict_id, self.canonical_id, self.entity, self.field,
                self.current.to_compact(), self.incoming.to_compact(), self.policy,
                self.decision.value, self.value, self.deleted, self.status.value,
                None if self.resolution is None else self.resolution.to_compact(),
                None if self.superseded_by is None else str(self.superseded_by)]

    @classmethod
    def from_compact(cls, c: list[Json]) -> ConflictRecord:
        """Inverse of :meth:`to_compact`."""
        return cls(c[0], c[1], c[2], c[3], Candidate.from_compact(c[4]),
                   Candidate.from_compact(c[5]), c[6], Decision(c[7]), c[8], c[9],
                   ConflictStatus(c[10]),
                   None if c[11] is None else ResolutionInfo.from_compact(c[11]),
                   None if c[12] is None else Dot.parse(c[12]))

    @classmethod
    def from_dict(cls, d: Mapping[str, Json]) -> ConflictRecord:
        """Inverse of :meth:`to_dict`."""
        return cls(
            conflict_id=d["conflict_id"],
            canonical_id=d["canonical_id"],
            entity=d["entity"],
            field=d["field"],
            current=Candidate.from_dict(d["current"]),
            incoming=Candidate.from_dict(d["incoming"]),
            policy=d["policy"],
            decision=Decision(d["decision"]),
            value=d["value"],
            deleted=d["deleted"],
            status=ConflictStatus(d["status"]),
            resolution=None if d["resolution"] is None else ResolutionInfo.from_dict(
                d["resolution"]),
            superseded_by=None if d["superseded_by"] is None else Dot.parse(d["superseded_by"]),
        )


class Change(enum.Enum):
    """Why a canonical field took a value."""

    EDIT = "edit"  # a system's edit that had seen the previous value
    FIRST = "first"  # the field's first value
    CONFLICT_WON = "conflict_won"  # a concurrent edit that the policy chose
    MERGED = "merged"  # a policy made a value from both sides
    RESOLVED = "resolved"  # a person chose
    DELETED = "deleted"  # the record was deleted
    RESTORED = "restored"  # the record came back after a delete


class HistoryEntry(NamedTuple):
    """One change of the canonical record."""

    field: str
    value: Json
    dot: Dot
    source_ts: float
    change: Change
    conflict_id: str | None = None

    def to_dict(self) -> dict[str, Json]:
        """Stable serialised form."""
        return {"field": self.field, "value": self.value, "dot": str(self.dot),
                "source_ts": self.source_ts, "change": self.change.value,
                "conflict_id": self.conflict_id}

    @classmethod
    def from_dict(cls, d: Mapping[str, Json]) -> HistoryEntry:
        """Inverse of :meth:`to_dict`."""
        return cls(d["field"], d["value"], Dot.parse(d["dot"]), d["source_ts"],
                   Change(d["change"]), d["conflict_id"])

    def to_compact(self) -> list[Json]:
        """:meth:`to_dict` without the names (see :meth:`RecordState.to_compact`)."""
        return [self.field, self.value, str(self.dot), self.source_ts, self.change.value,
                self.conflict_id]

    @classmethod
    def from_compact(cls, c: list[Json]) -> HistoryEntry:
        """Inverse of :meth:`to_compact`."""
        return cls(c[0], c[1], Dot.parse(c[2]), c[3], Change(c[4]), c[5])


@dataclass(slots=True)
class RecordState:
    """The hub's state of one canonical record."""

    canonical_id: str
    entity: str
    clock: VClock = EMPTY
    fields: Mapping[str, FieldState] = field(default_factory=dict)
    peers: Mapping[str, PeerState] = field(default_factory=dict)
    deleted: Tombstone | None = None
    conflicts: tuple[ConflictRecord, ...] = ()
    history: tuple[HistoryEntry, ...] = ()

    def copy(self) -> RecordState:
        """A copy whose mappings may be replaced without touching this one."""
        return RecordState(self.canonical_id, self.entity, self.clock, self.fields,
                           self.peers, self.deleted, self.conflicts, self.history)

    @property
    def values(self) -> dict[str, Json]:
        """The canonical field values."""
        return {name: fs.value for name, fs in self.fields.items()}

    def open_conflicts(self) -> tuple[ConflictRecord, ...]:
        """The conflicts held for a person."""
        return tuple(c for c in self.conflicts if c.status is ConflictStatus.OPEN)

    def conflict(self, conflict_id: str) -> ConflictRecord | None:
        """The conflict with that id, if the record still keeps it."""
        for c in self.conflicts:
            if c.conflict_id == conflict_id:
                return c
        return None

    def to_dict(self) -> dict[str, Json]:
        """Stable serialised form: same state, same dict, whichever worker made it."""
        return {
            "canonical_id": self.canonical_id,
            "entity": self.entity,
            "clock": self.clock.to_dict(),
            "fields": {
                name: {"value": fs.value, "dot": str(fs.dot), "source_ts": fs.source_ts}
                for name, fs in sorted(self.fields.items())
            },
            "peers": {s: p.to_dict() for s, p in sorted(self.peers.items())},
            "deleted": None if self.deleted is None else {
                "dot": str(self.deleted.dot), "source_ts": self.deleted.source_ts},
            "conflicts": [_serialised(c) for c in self.conflicts],
            "history": [_serialised(h) for h in self.history],
        }

    def to_compact(self) -> list[Json]:
        """:meth:`to_dict` as nested lists in a fixed order, without the names: the form the
        merge writes to its changelog after every change (half the bytes, less work).

        Starts with its version, :data:`COMPACT_VERSION`; mappings whose order could vary
        are plain dicts (serialise with sorted keys), everything else is in a fixed order.
        ``RecordState.from_compact(s.to_compact()) == s``.
        """
        deleted = self.deleted
        return [
            COMPACT_VERSION, self.canonical_id, self.entity, self.clock.entries(),
            [[name, fs.value, f"{fs.dot.actor}:{fs.dot.counter}", fs.source_ts]  # str(dot)
             for name, fs in sorted(self.fields.items())],
            [[s, *p.to_compact()] for s, p in sorted(self.peers.items())],
            None if deleted is None else [str(deleted.dot), deleted.source_ts],
            [_compacted(c) for c in self.conflicts],
            [_compacted(h) for h in self.history],
        ]

    @classmethod
    def from_compact(cls, c: list[Json]) -> RecordState:
        """Inverse of :meth:`to_compact`; raises ``ValueError`` for another version."""
        if not c or c[0] != COMPACT_VERSION:
            raise ValueError(f"not a version {COMPACT_VERSION} compact record state")
        deleted = c[6]
        return cls(
            c[1], c[2], VClock(c[3]),
            {f[0]: FieldState(f[1], Dot.parse(f[2]), f[3]) for f in c[4]},
            {p[0]: PeerState.from_compact(p[1:]) for p in c[5]},
            None if deleted is None else Tombstone(Dot.parse(deleted[0]), deleted[1]),
            tuple(ConflictRecord.from_compact(x) for x in c[7]),
            tuple(HistoryEntry.from_compact(h) for h in c[8]),
        )

    @classmethod
    def from_dict(cls, d: Mapping[str, Json]) -> RecordState:
        """Inverse of :meth:`to_dict`."""
        deleted = d["deleted"]
        return cls(
            canonical_id=d["canonical_id"],
            entity=d["entity"],
            clock=VClock(d["clock"]),
            fields={
                name: FieldState(f["value"], Dot.parse(f["dot"]), f["source_ts"])
                for name, f in d["fields"].items()
            },
            peers={s: PeerState.from_dict(p) for s, p in d["peers"].items()},
            deleted=None if deleted is None else Tombstone(Dot.parse(deleted["dot"]),
                                                           deleted["source_ts"]),
            conflicts=tuple(ConflictRecord.from_dict(c) for c in d["conflicts"]),
            history=tuple(HistoryEntry.from_dict(h) for h in d["history"]),
        )


COMPACT_VERSION = 1
"""The first element of :meth:`RecordState.to_compact`."""

_SERIALISED: dict[int, tuple[Any, dict[str, Json]]] = {}
_COMPACTED: dict[int, tuple[Any, list[Json]]] = {}
_SERIALISED_LIMIT = 200_000


def _serialised(item: HistoryEntry | ConflictRecord) -> dict[str, Json]:
    """``item.to_dict()``, computed once per object.

    History entries and conflict records are immutable and shared by every later state of
    their record, so a state's serialised form (written to the changelog after every change)
    mostly repeats what was built before. The cache holds the object itself next to its id,
    so an id is never reused while its entry is cached. Callers must not mutate the result.
    """
    key = id(item)
    hit = _SERIALISED.get(key)
    if hit is not None and hit[0] is item:
        return hit[1]
    if len(_SERIALISED) >= _SERIALISED_LIMIT:
        _SERIALISED.clear()
    data = item.to_dict()
    _SERIALISED[key] = (item, data)
    return data


def _compacted(item: HistoryEntry | ConflictRecord | WriteIntent | ReplacedCopy) -> list[Json]:
    """``item.to_compact()``, computed once per (immutable) object, as :func:`_serialised`."""
    key = id(item)
    hit = _COMPACTED.get(key)
    if hit is not None and hit[0] is item:
        return hit[1]
    if len(_COMPACTED) >= _SERIALISED_LIMIT:
        _COMPACTED.clear()
    data = item.to_compact()
    _COMPACTED[key] = (item, data)
    return data
