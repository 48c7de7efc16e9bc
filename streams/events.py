"""The events on syncline's topics: frozen, versioned pydantic models.

Every payload carries ``schema``, a name and a version such as ``"syncline.observed/1"``.
Models are frozen and forbid unknown fields; :mod:`streams.codec` is the only place where
bytes become these models (and where older versions are upcast). Conversions to and from the
pure types of :mod:`conflict` live here, next to the models.

======================  ==========================  ===============================
topic                   key                         value
======================  ==========================  ===============================
``observations``        ``system/entity``           Observed, Written, WriteStale,
                                                    WriteFailed
``intents``             ``system/entity``           WriteIntent
``records``             canonical id                RecordEvent (compacted)
``conflicts``           canonical id                ConflictEvent
``resolutions``         canonical id                Resolution
``dlq``                 the original key            DeadLetter
======================  ==========================  ===============================
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

import conflict
from conflict.state import Json

Timestamp = float
"""Seconds since the epoch (UTC), as a float."""


class Event(BaseModel):
    """Base of every event: frozen, no unknown fields, a ``schema`` name and version."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    SCHEMA: ClassVar[str]
    schema_: str = Field(alias="schema")

    @classmethod
    def schema_name(cls) -> str:
        """``"syncline.observed"`` for ``"syncline.observed/1"``."""
        return cls.SCHEMA.partition("/")[0]

    @classmethod
    def schema_version(cls) -> int:
        """The version this model writes."""
        return int(cls.SCHEMA.partition("/")[2])


# -- observations (lane → merge) ----------------------------------------------------------
class ObservationEvent(Event):
    """What a lane saw or did; numbered by ``seq`` per system, never going backwards."""

    system: str
    entity: str
    seq: int = Field(ge=0)
    external_id: str | None = None
    canonical_id: str | None = None  # known for write outcomes; found by the router for reads
    observed_at: Timestamp
    correlation_id: str | None = Field(
        None, description="the change this event belongs to: a read's own id, a write "
        "outcome the id of the intent's cause (for log lines; null in events written before "
        "version 2 of observed, write_stale and write_failed and version 3 of written)")

    def key(self) -> str:
        """The ``observations`` key: ``system/entity``, the lane's.

        All of a lane's observations share a partition, so the route stage takes them in the
        lane's exact order. Keyed by external id, a create's outcome (no id yet, or a new one)
        could overtake the read of the same record on another partition, and the fold would
        then drop that read as a replay (its sequence number is older).
        """
        return f"{self.system}/{self.entity}"

    def link_key(self) -> str:
        """The links table's key of the copy: ``system/entity/external id``."""
        return f"{self.system}/{self.entity}/{self.external_id or ''}"


class Observed(ObservationEvent):
    """A record as read from a system (or seen deleted there).

    Version 2 adds ``correlation_id``; version 3 adds ``created_at`` (null before).
    """

    SCHEMA: ClassVar[str] = "syncline.observed/3"
    schema_: Literal["syncline.observed/3"] = Field("syncline.observed/3", alias="schema")
    fields: dict[str, Json] = Field(default_factory=dict)
    deleted: bool = False
    native_version: str | None = None
    source_ts: Timestamp
    # When the system made the record (its ``created`` field, where the config names one):
    # a record newer than the one its id was linked to is another record (a reused id).
    created_at: Timestamp | None = None

    def to_input(self) -> conflict.Observed:
        """The fold's input."""
        return conflict.Observed(self.system, self.seq, self.external_id, self.fields,
                                 self.deleted, self.native_version, self.source_ts)


class NotTaken(BaseModel):
    """A field a system answered a write for but did not keep."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    wrote: Json
    holds: Json


class Written(ObservationEvent):
    """A write a lane made for an intent; ``fields`` is the record as the API returned it
    (or as a read right after the write found it).

    Version 2 adds ``not_taken``: the fields the lane wrote that the system did not keep,
    with what it wrote and what the system holds (version 1 payloads have none). Version 3
    adds ``correlation_id``, as every observation event's next version does.
    """

    SCHEMA: ClassVar[str] = "syncline.written/3"
    schema_: Literal["syncline.written/3"] = Field("syncline.written/3", alias="schema")
    intent_id: str
    native_version: str | None = None
    source_ts: Timestamp
    fields: dict[str, Json] | None = None
    not_taken: dict[str, NotTaken] = Field(
        default_factory=dict,
        description="fields written but not kept by the system: field -> {wrote, holds}")

    def to_input(self) -> conflict.Written:
        """The fold's input."""
        return conflict.Written(self.system, self.seq, self.intent_id, self.external_id,
                                self.native_version, self.source_ts, self.fields,
                                {name: (n.wrote, n.holds) for name, n in self.not_taken.items()})


class WriteStale(ObservationEvent):
    """A write not made: the system held a value the hub had not seen."""

    SCHEMA: ClassVar[str] = "syncline.write_stale/2"
    schema_: Literal["syncline.write_stale/2"] = Field("syncline.write_stale/2",
                                                        alias="schema")
    intent_id: str
    fields_changed: list[str] = Field(default_factory=list)

    def to_input(self) -> conflict.WriteStale:
        """The fold's input."""
        return conflict.WriteStale(self.system, self.seq, self.intent_id)


class WriteFailed(ObservationEvent):
    """A write that failed after the lane's retry budget."""

    SCHEMA: ClassVar[str] = "syncline.write_failed/2"
    schema_: Literal["syncline.write_failed/2"] = Field("syncline.write_failed/2",
                                                         alias="schema")
    intent_id: str
    reason: str
    attempts: int = Field(ge=1)

    def to_input(self) -> conflict.WriteFailed:
        """The fold's input."""
        return conflict.WriteFailed(self.system, self.seq, self.intent_id, self.reason)


AnyObservation = Observed | Written | WriteStale | WriteFailed


class RoutedInput(NamedTuple):
    """A routed read or write outcome as the fold takes it, built without its model.

    What :func:`streams.codec.decode_routed` gives for the bulk of the merge topic; it
    answers ``canonical_id``, ``entity`` and ``to_input()`` like the event would.
    """

    canonical_id: str
    entity: str
    input: conflict.Observed | conflict.Written | conflict.WriteStale
    correlation_id: str | None = None

    def to_input(self) -> conflict.Observed | conflict.Written | conflict.WriteStale:
        """The fold's input."""
        return self.input


# -- merge → lanes --------------------------------------------------------------------------
class WriteIntent(Event):
    """An instruction for a lane: make ``system`` hold ``values`` for this record.

    Version 2 adds ``correlation_id``: the change that caused the intent (the correlation
    id of the folded read or write outcome, or the id of a person's resolution).
    """

    SCHEMA: ClassVar[str] = "syncline.intent/2"
    schema_: Literal["syncline.intent/2"] = Field("syncline.intent/2", alias="schema")
    intent_id: str
    canonical_id: str
    entity: str
    system: str
    op: Literal["create", "update", "delete"]
    external_id: str | None
    values: dict[str, Json]
    expected: dict[str, Json]
    native_version: str | None
    clock: dict[str, int]
    attempt: int = Field(ge=1)
    correlation_id: str | None = Field(
        None, description="the change that caused this intent (null before version 2)")

    def key(self) -> str:
        """The ``intents`` key: ``system/entity``."""
        return f"{self.system}/{self.entity}"

    @classmethod
    def of(cls, intent: conflict.WriteIntent, correlation_id: str | None = None
           ) -> WriteIntent:
        """The event for an intent of the fold, caused by the change ``correlation_id``."""
        return cls.model_validate(cls.payload(intent, correlation_id))

    @classmethod
    def payload(cls, intent: conflict.WriteIntent, correlation_id: str | None = None
                ) -> dict[str, Any]:
        """The JSON payload of :meth:`of`, built without validation (the merge's hot path)."""
        payload = intent.to_dict()
        payload["schema"] = cls.SCHEMA
        payload["correlation_id"] = correlation_id
        return payload

    def to_intent(self) -> conflict.WriteIntent:
        """The fold's intent."""
        return conflict.WriteIntent.from_dict(
            self.model_dump(exclude={"schema_", "correlation_id"}))


# -- merge → everyone -----------------------------------------------------------------------
class FieldProvenance(BaseModel):
    """Which write set a canonical field, when, and why."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    system: str  # the actor of the dot: a system, or "review"
    dot: str
    source_ts: Timestamp
    change: str | None = None  # conflict.Change value of the latest change, when kept
    conflict_id: str | None = None


class RecordEvent(Event):
    """The canonical record after a change: the product other services consume.

    Version 2 adds ``not_kept``: per system, the fields it was written but does not keep.
    """

    SCHEMA: ClassVar[str] = "syncline.record/2"
    schema_: Literal["syncline.record/2"] = Field("syncline.record/2", alias="schema")
    canonical_id: str
    entity: str
    version: int = Field(ge=0, description="grows with every accepted write (sum of the clock)")
    deleted: bool
    fields: dict[str, Json]
    provenance: dict[str, FieldProvenance]
    clock: dict[str, int]
    links: dict[str, str] = Field(description="system -> external id")
    open_conflicts: int
    changed: list[str] = Field(description="fields changed by this event ('_deleted': deletion)")
    not_kept: dict[str, dict[str, NotTaken]] = Field(
        default_factory=dict,
        description="system -> field -> {wrote, holds}: written there but not kept")

    @classmethod
    def of(cls, state: conflict.RecordState, changed: tuple[str, ...] = ()) -> RecordEvent:
        """The event for a record state."""
        return cls.model_validate(cls.payload(state, changed))

    @classmethod
    def payload(cls, state: conflict.RecordState, changed: tuple[str, ...] = ()
                ) -> dict[str, Any]:
        """The JSON payload of :meth:`of`, built without validation (the merge's hot path).

        Its dicts are in no particular order: :func:`streams.codec.encode` sorts the keys.
        """
        latest = {entry.field: entry for entry in state.history}  # the newest per field
        provenance: dict[str, dict[str, Any]] = {}
        fields: dict[str, Json] = {}
        for name, fs in state.fields.items():
            fields[name] = fs.value
            dot = fs.dot
            why = latest.get(name)
            if why is None or why.dot != dot:
                # the history no longer holds the change that set this value
                change = conflict_id = None
            else:
                change, conflict_id = why.change.value, why.conflict_id
            provenance[name] = {
                "system": dot.actor, "dot": str(dot), "source_ts": float(fs.source_ts),
                "change": change, "conflict_id": conflict_id}
        clock = state.clock.to_dict()
        return {
            "schema": cls.SCHEMA,
            "canonical_id": state.canonical_id,
            "entity": state.entity,
            "version": sum(clock.values()),
            "deleted": state.deleted is not None,
            "fields": fields,
            "provenance": provenance,
            "clock": clock,
            "links": {s: p.external_id for s, p in state.peers.items()
                      if p.external_id is not None and p.exists},
            "open_conflicts": sum(1 for c in state.conflicts
                                  if c.status is conflict.ConflictStatus.OPEN),
            "changed": list(changed),
            "not_kept": {s: {n: {"wrote": w, "holds": h} for n, (w, h) in p.not_kept.items()}
                         for s, p in state.peers.items() if p.not_kept},
        }


class CandidateModel(BaseModel):
    """One side of a conflict."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    value: Json
    system: str
    dot: str
    source_ts: Timestamp
    deleted: bool = False


class ResolutionModel(BaseModel):
    """Who resolved a conflict, when, how and why."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    resolution_id: str
    by: str
    at: Timestamp
    value: Json
    deleted: bool
    note: str | None


class ConflictEvent(Event):
    """A conflict as it stands now: open, auto-resolved, resolved or superseded."""

    SCHEMA: ClassVar[str] = "syncline.conflict/1"
    schema_: Literal["syncline.conflict/1"] = Field("syncline.conflict/1", alias="schema")
    conflict_id: str
    canonical_id: str
    entity: str
    field: str = Field(description="a field name, or '_deleted' for delete-vs-update")
    current: CandidateModel
    incoming: CandidateModel
    policy: str
    decision: Literal["current", "incoming", "merged", "open", "chosen"]
    value: Json
    deleted: bool
    status: Literal["auto_resolved", "open", "resolved", "superseded"]
    resolution: ResolutionModel | None = None
    superseded_by: str | None = None

    @classmethod
    def of(cls, record: conflict.ConflictRecord) -> ConflictEvent:
        """The event for a conflict record of the fold."""
        return cls.model_validate(record.to_dict())

    def to_record(self) -> conflict.ConflictRecord:
        """The fold's conflict record."""
        return conflict.ConflictRecord.from_dict(self.model_dump(exclude={"schema_"}))


# -- people → merge -------------------------------------------------------------------------
class Resolution(Event):
    """A person's decision on a conflict (from the CLI or the review page)."""

    SCHEMA: ClassVar[str] = "syncline.resolution/1"
    schema_: Literal["syncline.resolution/1"] = Field("syncline.resolution/1", alias="schema")
    resolution_id: str
    canonical_id: str
    entity: str
    conflict_id: str
    by: str
    at: Timestamp
    via: str = Field(description="where the decision was made: 'cli', 'review-page', ...")
    take: str | None = None
    value: Json = None
    delete: bool = False
    note: str | None = None

    def to_input(self) -> conflict.Resolve:
        """The fold's input."""
        return conflict.Resolve(self.resolution_id, self.conflict_id, self.by, self.at,
                                self.take, self.value, self.delete, self.note)


# -- anything → dlq -------------------------------------------------------------------------
class DeadLetter(Event):
    """An input that could not be processed, kept whole with the reason."""

    SCHEMA: ClassVar[str] = "syncline.dead_letter/1"
    schema_: Literal["syncline.dead_letter/1"] = Field("syncline.dead_letter/1",
                                                        alias="schema")
    stage: str = Field(description="what was processing it: 'merge', 'router', 'lane:crm', ...")
    topic: str
    partition: int
    offset: int
    key_b64: str | None = Field(description="the original key bytes, base64")
    value_b64: str | None = Field(description="the original value bytes, base64")
    error: str = Field(description="the error's class name")
    reason: str
    retriable: bool = False
    attempts: int = 1
    at: Timestamp


EVENT_TYPES: tuple[type[Event], ...] = (
    Observed, Written, WriteStale, WriteFailed, WriteIntent, RecordEvent, ConflictEvent,
    Resolution, DeadLetter,
)


def json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema of every event, by schema name and version."""
    return {cls.SCHEMA: _schema_required(cls.model_json_schema(by_alias=True,
                                                               mode="serialization"))
            for cls in EVENT_TYPES}


def _schema_required(schema: dict[str, Any]) -> dict[str, Any]:
    # The ``schema`` field has a default in the model, so pydantic leaves it out of
    # ``required``; but the codec reads nothing without it, and the encoder always writes it.
    schema["required"] = ["schema", *(n for n in schema.get("required", ()) if n != "schema")]
    return schema
