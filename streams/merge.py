"""What the two stream stages do with one input, apart from Kafka: decoding, routing or
folding, and the dead letter of an input that cannot be processed.

The merge worker (:mod:`streams.worker`) runs two stages, each a consume → transform →
produce step whose state lives in a table backed by a changelog topic, exactly once
(:mod:`streams.runner`):

1. **route**, keyed like ``observations`` (``system/entity``, one lane's): finds the record's
   canonical id in the links table or derives it (:mod:`streams.identity`), links it, and
   forwards the observation keyed by canonical id to the ``merge`` topic; resolutions (already
   keyed by canonical id) go the same way. Per-record order is kept: one external id always
   maps to one canonical id, hence to one partition of the next topic.
2. **merge**, keyed by canonical id, reads only the ``merge`` topic: folds observations and
   resolutions into the record state (:func:`conflict.fold`) and emits the record event, the
   write intents and the conflicts. The ``merge`` topic is therefore the exact, ordered input
   of the fold: replaying it rebuilds the records table bit for bit (``streams.replay``).

Both stages here are plain classes over mutable mappings, so they are tested without Kafka,
and driven the same way by the stage runner (:meth:`Router.handle`, :meth:`Merger.handle`:
an input's bytes in, its outputs or its dead letter out) and by ``syncline replay``.
"""

from __future__ import annotations

import base64
import logging
from collections import Counter
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, NamedTuple
from uuid import UUID

import conflict
from conflict.errors import ConflictError
from streams import codec
from streams.errors import DecodeError, StreamsError
from streams.events import (
    AnyObservation,
    ConflictEvent,
    DeadLetter,
    Event,
    ObservationEvent,
    Observed,
    RecordEvent,
    Resolution,
    RoutedInput,
    WriteFailed,
    WriteIntent,
    WriteStale,
    Written,
)
from streams.identity import NAMESPACE, canonical_id

log = logging.getLogger(__name__)


class UnknownEntity(StreamsError):
    """An event for an entity this deployment does not sync."""


@dataclass(frozen=True, slots=True)
class EntityModel:
    """What the streams need to know about one entity: its fold spec and match keys."""

    spec: conflict.EntitySpec
    match_on: tuple[str, ...] = ()


Catalog = Mapping[str, EntityModel]
"""Entity name -> model."""


class RecordChange(NamedTuple):
    """A record event not built yet: the state after a change and the fields it changed.

    A transaction produces one record event per record (the ``records`` topic is compacted),
    so the event is built only for the last change of a batch, with the fields changed by
    every change it stands for (:meth:`then`).
    """

    state: conflict.RecordState
    changed: tuple[str, ...]

    def __call__(self) -> dict[str, Any]:
        return RecordEvent.payload(self.state, self.changed)

    def then(self, later: RecordChange) -> RecordChange:
        """This change followed by ``later``, as one event."""
        changed = self.changed
        extra = [name for name in later.changed if name not in changed]
        return RecordChange(later.state, changed + tuple(extra) if extra else changed)


class Output(NamedTuple):
    """One record to produce: the topic's role (see :class:`streams.topics.Topics`), key, event.

    ``event`` is a model, or its payload dict where the model was not worth building, or a
    :class:`RecordChange`, whose payload is built only if it is produced.
    """

    role: str
    key: str
    event: Event | dict[str, Any] | RecordChange

    def encoded(self) -> bytes:
        """The event's bytes; a record change's payload is built now."""
        event = self.event
        return codec.encode(event() if isinstance(event, RecordChange) else event)

    def then(self, later: Output) -> Output:
        """This output and a later one of the same key, to a compacted topic, as one: the
        later, or for record changes both (:meth:`RecordChange.then`)."""
        event, other = self.event, later.event
        if type(event) is RecordChange and type(other) is RecordChange:
            return Output(later.role, later.key, event.then(other))
        return later


MERGE_INPUT_TYPES: tuple[type[Event], ...] = (Observed, Written, WriteStale, WriteFailed,
                                               Resolution)
"""What the route and merge stages read: the observations, and people's resolutions."""


def dead_letter(stage: str, topic: str, partition: int, offset: int, key: bytes | None,
                value: bytes | None, error: BaseException, at: float) -> Output:
    """The dead letter for an input that ``stage`` could not process."""
    letter = DeadLetter(
        stage=stage, topic=topic, partition=partition, offset=offset,
        key_b64=None if key is None else base64.b64encode(key).decode(),
        value_b64=None if value is None else base64.b64encode(value).decode(),
        error=type(error).__name__, reason=str(error),
        retriable=bool(getattr(error, "retriable", False)), at=at)
    return Output("dlq", key.decode("utf-8", "replace") if key else "", letter)


BORN = "#created"
"""The links table's key suffix for when the linked copy was made (its created-at time)."""


class Router:
    """Stage 1: give every observation its canonical id.

    A system may give a new record the id of a deleted one. Where the lane reads records'
    created-at times (``created``), the links table also remembers when each linked copy
    was made: a record under that id made later is another record, not the old one come
    back. It gets its own canonical id, and the old copy is seen deleted (whether or not its
    delete was observed: its id now names another record).
    """

    def __init__(self, catalog: Catalog, namespace: UUID = NAMESPACE) -> None:
        self.catalog = catalog
        self.namespace = namespace

    def route(self, event: ObservationEvent, links: MutableMapping[str, str]) -> Output:
        """The observation, with its canonical id, keyed for the merge stage."""
        model = self.catalog.get(event.entity)
        if model is None:
            raise UnknownEntity(f"entity {event.entity!r} is not configured "
                                f"(entities: {', '.join(sorted(self.catalog))})")
        link_key = event.link_key()
        # A write outcome names its record: the id it links may have named another record
        # before (a system that reuses the ids of deleted records).
        cid = event.canonical_id
        if cid is None and event.external_id is not None:
            cid = links.get(link_key)
        if cid is None:
            fields = event.fields if isinstance(event, Observed) else {}
            cid = canonical_id(event.entity, model.match_on, fields, event.system,
                               event.external_id, self.namespace)
        # A stale or failed write made no copy: it links nothing (its id may name another
        # record by now).
        if (event.external_id is not None and links.get(link_key) != cid
                and isinstance(event, Observed | Written)):
            links[link_key] = cid
        if event.canonical_id != cid:
            event = event.model_copy(update={"canonical_id": cid})
        return Output("merge", cid, event)

    def reused(self, event: ObservationEvent, links: MutableMapping[str, str]
               ) -> list[Output]:
        """Relink a reused id (see the class's docstring): the old copy's delete to fold,
        if ``event`` is a record made after the one its id is linked to."""
        born = event.created_at if isinstance(event, Observed) and not event.deleted else None
        if born is None or event.external_id is None:
            return []
        link_key = event.link_key()
        known, old = links.get(link_key + BORN), links.get(link_key)
        if known is None or old is None:
            links[link_key + BORN] = repr(born)  # the copy this id names from now on
            return []
        if born <= float(known):
            return []
        links[link_key + BORN] = repr(born)
        model = self.catalog.get(event.entity)
        if model is None:
            return []  # the route says why
        fields = event.fields if isinstance(event, Observed) else {}
        new = canonical_id(event.entity, model.match_on, fields, event.system,
                           f"{event.external_id}\x1e{born!r}", self.namespace)
        if new == old:
            return []  # the same match key: the same record, by the config's own rule
        links[link_key] = new
        gone = Observed(system=event.system, entity=event.entity, seq=event.seq,
                        external_id=event.external_id, canonical_id=old,
                        observed_at=event.observed_at, deleted=True, source_ts=born)
        return [Output("merge", old, gone)]

    def handle(self, record: Any, links: MutableMapping[str, str],
               clock: Callable[[], float]) -> list[Output]:
        """One consumed input (an observation or a resolution) decoded and routed; or, if
        it cannot be, its dead letter (stamped with ``clock()``)."""
        try:
            event = decode_route_input(record.value)
            if isinstance(event, Resolution):  # already keyed by canonical id
                return [Output("merge", event.canonical_id, event)]
            return [*self.reused(event, links), self.route(event, links)]
        except REJECTED as exc:
            return [dead_letter("route", record.topic, record.partition, record.offset,
                                record.key, record.value, exc, clock())]


class Merger:
    """Stage 2: fold one input into its record and say what to produce."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        # Conflict events emitted, by (entity, policy, status), for /metrics.
        self.conflicts: Counter[tuple[str, str, str]] = Counter()

    def apply(self, event: AnyObservation | Resolution | RoutedInput,
              records: MutableMapping[str, conflict.RecordState]) -> list[Output]:
        """Fold ``event`` into ``records[event.canonical_id]``; the outputs to produce.

        Raises :class:`~conflict.errors.ConflictError` or :class:`UnknownEntity` for an input
        the fold rejects; nothing is changed then.
        """
        cid = event.canonical_id
        if cid is None:
            raise UnknownEntity("an observation reached the merge without a canonical id")
        model = self.catalog.get(event.entity)
        if model is None:
            raise UnknownEntity(f"entity {event.entity!r} is not configured")
        state = records.get(cid)
        if state is None:
            state = conflict.RecordState(cid, event.entity)
        step = conflict.fold(model.spec, state, event.to_input())
        if step.state is state:
            return []
        records[cid] = step.state
        outputs: list[Output] = []
        if step.record_changed or step.conflicts or _links_changed(state, step.state):
            outputs.append(Output("records", cid, RecordChange(step.state, step.changed)))
        correlation = (event.resolution_id if isinstance(event, Resolution)
                       else event.correlation_id)
        for intent in step.intents:
            outputs.append(Output("intents", f"{intent.system}/{intent.entity}",
                                  WriteIntent.payload(intent, correlation)))
        for record in step.conflicts:
            outputs.append(Output("conflicts", cid, ConflictEvent.of(record)))
            self.conflicts[event.entity, record.policy, record.status.value] += 1
        if (step.intents or step.conflicts) and log.isEnabledFor(logging.INFO):
            # The fold's decision that leads to writes or a conflict, on the change's trail.
            log.info("fold %s: changed %s; writes to %s; conflicts %s", cid,
                     ", ".join(step.changed) or "nothing",
                     ", ".join(f"{i.system} ({i.op.value})" for i in step.intents) or "none",
                     ", ".join(f"{c.field} ({c.status.value})" for c in step.conflicts)
                     or "none",
                     extra={"correlation_id": correlation, "canonical_id": cid,
                            "entity": event.entity, "changed": list(step.changed),
                            "writes": [{"system": i.system, "op": i.op.value,
                                        "intent_id": i.intent_id} for i in step.intents]})
        return outputs

    def handle(self, record: Any, records: MutableMapping[str, conflict.RecordState],
               clock: Callable[[], float]) -> list[Output]:
        """One consumed input of the ``merge`` topic decoded and folded; or, if it cannot
        be, its dead letter (stamped with ``clock()``)."""
        try:
            return self.apply(decode_merge_input(record.value), records)
        except REJECTED as exc:
            return [dead_letter("merge", record.topic, record.partition, record.offset,
                                record.key, record.value, exc, clock())]


def _links_changed(before: conflict.RecordState, after: conflict.RecordState) -> bool:
    """Whether the live copies linked to the record (system -> external id) changed."""
    old, new = before.peers, after.peers
    if old is new:
        return False
    for system, peer in new.items():
        was = old.get(system)
        if was is peer:
            continue
        if _link(peer) != (_UNLINKED if was is None else _link(was)):
            return True
    return any(system not in new and peer.exists for system, peer in old.items())


_UNLINKED = (False, None)


def _link(peer: conflict.PeerState) -> tuple[bool, str | None]:
    return (True, peer.external_id) if peer.exists else _UNLINKED


REJECTED = (DecodeError, ConflictError, UnknownEntity)
"""Errors that make an input a dead letter (the stream goes on)."""


def decode_route_input(value: bytes | None) -> ObservationEvent | Resolution:
    """An input of the route stage: an observation, or a person's resolution."""
    return codec.decode(value, MERGE_INPUT_TYPES)  # type: ignore[return-value]


def decode_merge_input(value: bytes | None) -> AnyObservation | Resolution | RoutedInput:
    """An input of the merge stage: a routed observation or a resolution."""
    return codec.decode_routed(value, MERGE_INPUT_TYPES)  # type: ignore[return-value]
