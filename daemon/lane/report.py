"""What a lane reports: the observations and dead letters of one round, and their commit.

The reading and the writing side both report through one :class:`Reporter`, so every event
of a lane gets its sequence number, its metrics and its place in the lane's index the same
way, and a round is committed as one unit of the journal.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from conflict.state import Json
from daemon.connector.rest import BadRecord, RemoteRecord
from daemon.http import HttpError
from daemon.lane.breaker import LoopBreaker
from daemon.lane.ports import Delivered, Journal, Reading
from daemon.lane.verify import Kept, Normalise, not_taken
from daemon.metrics import Metrics
from streams import (
    DeadLetter,
    Event,
    NotTaken,
    Observed,
    WriteFailed,
    WriteIntent,
    WriteStale,
    Written,
)

log = logging.getLogger(__name__)

LETTERS_REMEMBERED = 100_000
"""How many distinct errors read from a system a lane remembers having a dead letter for."""


def new_correlation_id() -> str:
    """A new change's correlation id: random, 32 hex digits."""
    return uuid.uuid4().hex


def fingerprint(values: Mapping[str, Json], version: str | None) -> str:
    """What the lane remembers of a record it reported: a hash of its values and version."""
    data = orjson.dumps([values, version], option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(data, digest_size=12).hexdigest()


@dataclass
class Round:
    """What one commit of the lane will publish."""

    events: list[Event] = field(default_factory=list)
    index: dict[str, str | None] = field(default_factory=dict)
    letters: list[DeadLetter] = field(default_factory=list)
    letter_keys: list[str] = field(default_factory=list)
    parked: dict[str, bytes | None] = field(default_factory=dict)  # intent id -> intent
    creating: dict[str, bytes | None] = field(default_factory=dict)  # intent id -> entry
    ran: dict[str, bytes | None] = field(default_factory=dict)  # intent id -> its offset
    done: list[str] = field(default_factory=list)  # intents executed, once this commits
    lettered: list[str] = field(default_factory=list)  # errors given a letter, once this commits

    def __bool__(self) -> bool:
        return bool(self.events or self.index or self.letters or self.parked
                    or self.creating or self.ran)

    def merge(self, other: Round) -> None:
        self.events.extend(other.events)
        self.index.update(other.index)
        self.letters.extend(other.letters)
        self.letter_keys.extend(other.letter_keys)
        self.parked.update(other.parked)
        self.creating.update(other.creating)
        self.ran.update(other.ran)
        self.done.extend(other.done)
        self.lettered.extend(other.lettered)


@dataclass
class Health:
    """Whether the system answered the lane's last request; intents wait while it does not."""

    name: str
    healthy: bool = False

    def answered(self) -> None:
        self.healthy = True

    def failed(self, exc: HttpError) -> None:
        if self.healthy or exc.retriable:
            log.warning("lane %s: the system is not answering: %s", self.name, exc)
        self.healthy = False


class Reporter:
    """Builds a lane's events into rounds and commits them to its journal.

    Args:
        system: the system's name.
        entity: the entity's name.
        journal: where rounds are committed (and sequence numbers come from).
        read: a record in canonical fields (references translated).
        clock: seconds since the epoch.
        metrics: where counts go, if anywhere.
        max_write_attempts: the fold's budget per intent; a failure at the last attempt is
            also a dead letter.
        normalise: the field mapping's normalisation, for verifying writes.
        loop_bound: the loop breaker's bound (see :mod:`daemon.lane.breaker`).
    """

    def __init__(self, system: str, entity: str, journal: Journal,
                 read: Callable[[RemoteRecord], Awaitable[Reading]], *,
                 clock: Callable[[], float], metrics: Metrics | None,
                 max_write_attempts: int, normalise: Normalise | None = None,
                 loop_bound: int = 5,
                 new_id: Callable[[], str] = new_correlation_id) -> None:
        self.system = system
        self.entity = entity
        self.name = f"{system}/{entity}"
        self.journal = journal
        self.read = read
        self.clock = clock
        self.metrics = metrics
        self.max_write_attempts = max_write_attempts
        self.behind = 0  # intents given up on since start (dead letters): records behind
        self.normalise = normalise
        self.kept = Kept()  # fields written and not kept, until a write of them takes
        self.breaker = LoopBreaker(loop_bound)
        self.new_id = new_id
        self.dead_letters = 0  # dead letters committed since start
        # The errors read from the system that have their dead letter (see :meth:`letter`).
        self._lettered: dict[str, None] = {}
        self._committing = asyncio.Lock()

    def known(self, work: Round, external_id: str) -> str | None:
        """The fingerprint last reported for a record (in this round or committed before)."""
        return work.index.get(external_id, self.journal.index.get(external_id))

    async def commit(self, work: Round) -> None:
        """Commit ``work`` to the journal (one commit at a time: a create commits its entry
        and its outcome while the other writes of its batch run)."""
        async with self._committing:
            await self.journal.commit(work.events, index=work.index,
                                      dead_letters=work.letters,
                                      dead_letter_keys=work.letter_keys, parked=work.parked,
                                      creating=work.creating, ran=work.ran)
        self.dead_letters += len(work.letters)
        for error in work.lettered:
            self._lettered[error] = None
        while len(self._lettered) > LETTERS_REMEMBERED:
            del self._lettered[next(iter(self._lettered))]

    # -- observations --------------------------------------------------------------------
    async def observe(self, work: Round, record: RemoteRecord, *, force: bool = False) -> int:
        """Report ``record`` unless the lane reported exactly this before; 1 if reported."""
        if record.deleted:  # a tombstone in a listing: a delete, if the lane knew the record
            if self.known(work, record.id) is None:
                return 0
            self.observe_deleted(work, record.id, record.updated)
            return 1
        reading = await self.read(record)
        print_ = fingerprint(reading.values, record.version)
        for name, problem in sorted(reading.problems.items()):
            self.letter(work, f"{self.name}/{record.id}", "BadValue",
                        f"{self.system} {self.entity} {record.id}: field {name}: {problem}",
                        record.data)
        if self.known(work, record.id) == print_ and not force:
            if self.metrics is not None:
                self.metrics.echoes_suppressed.labels(self.system, self.entity).inc()
            return 0
        self.loop_check(work, record.id, self.breaker.observed(record.id, reading.values))
        event = Observed(
            system=self.system, entity=self.entity, seq=self.journal.next_seq(),
            external_id=record.id, observed_at=self.clock(), fields=reading.values,
            native_version=record.version, created_at=record.created,
            source_ts=record.updated if record.updated is not None else self.clock(),
            correlation_id=self.new_id())
        work.events.append(event)
        work.index[record.id] = print_
        self._count("observed")
        log.info("lane %s read %s (seq %d)", self.name, record.id, event.seq,
                 extra={"correlation_id": event.correlation_id, "system": self.system,
                        "entity": self.entity, "external_id": record.id, "seq": event.seq,
                        "fields": reading.values})
        return 1

    def observe_deleted(self, work: Round, external_id: str, at: float | None) -> None:
        event = Observed(
            system=self.system, entity=self.entity, seq=self.journal.next_seq(),
            external_id=external_id, observed_at=self.clock(), deleted=True,
            source_ts=at if at is not None else self.clock(), correlation_id=self.new_id())
        work.events.append(event)
        work.index[external_id] = None
        self._count("deleted")
        log.info("lane %s read %s deleted (seq %d)", self.name, external_id, event.seq,
                 extra={"correlation_id": event.correlation_id, "system": self.system,
                        "entity": self.entity, "external_id": external_id, "seq": event.seq,
                        "deleted": True})

    # -- outcomes of intents -------------------------------------------------------------
    async def written(self, work: Round, intent: WriteIntent, record: RemoteRecord | None,
                      external_id: str) -> dict[str, tuple[Json, Json]]:
        """The intent is carried out; ``record`` as the system holds it now (None: deleted).

        The write is verified (:mod:`daemon.lane.verify`): the intent's fields ``record``
        does not hold are reported not taken, and returned.
        """
        fields: dict[str, Json] | None = None
        version = None
        source_ts = self.clock()
        missed: dict[str, tuple[Json, Json]] = {}
        if record is not None:
            reading = await self.read(record)
            fields = reading.values
            version = record.version
            source_ts = record.updated if record.updated is not None else source_ts
            work.index[external_id] = fingerprint(fields, version)
            if intent.op != "delete":
                missed = not_taken(intent.values, fields, self.normalise)
                self._not_kept(work, external_id, intent.values, missed, record.data)
        else:
            work.index[external_id] = None
        event = Written(
            system=self.system, entity=self.entity, seq=self.journal.next_seq(),
            external_id=external_id, canonical_id=intent.canonical_id,
            observed_at=self.clock(), intent_id=intent.intent_id,
            native_version=version, source_ts=source_ts, fields=fields,
            not_taken={name: NotTaken(wrote=wrote, holds=holds)
                       for name, (wrote, holds) in missed.items()},
            correlation_id=intent.correlation_id)
        work.events.append(event)
        log.info("lane %s wrote %s: %s of %s", self.name, external_id, intent.op,
                 intent.canonical_id,
                 extra={"correlation_id": intent.correlation_id, "system": self.system,
                        "entity": self.entity, "external_id": external_id, "op": intent.op,
                        "canonical_id": intent.canonical_id, "intent_id": intent.intent_id,
                        "seq": event.seq, "fields": intent.values,
                        "not_taken": sorted(missed)})
        return missed

    def _not_kept(self, work: Round, external_id: str, wrote: Mapping[str, Json],
                  missed: Mapping[str, tuple[Json, Json]], raw: Any) -> None:
        for found in self.kept.record(external_id, wrote, missed):
            self.letter(work, f"{self.name}/{external_id}", "NotTaken",
                        found.reason(self.system, self.entity), raw)
        if self.metrics is not None:
            for name in missed:
                self.metrics.writes_not_taken.labels(self.system, self.entity, name).inc()

    def loop_check(self, work: Round, external_id: str, why: str | None) -> None:
        """A loop breaker that just opened (``why``): a dead letter and the gauge."""
        if why is None:
            if self.metrics is not None:
                self.metrics.loop_breakers_open.labels(self.system, self.entity).set(
                    len(self.breaker.opened))
            return
        log.error("lane %s: %s", self.name, why)
        self.letter(work, f"{self.name}/{external_id}", "LoopBreakerOpen",
                    f"{self.system} {self.entity}: {why}", None)
        if self.metrics is not None:
            self.metrics.loop_breakers_open.labels(self.system, self.entity).set(
                len(self.breaker.opened))

    async def stale_after_read(self, work: Round, intent: WriteIntent, current: RemoteRecord,
                               changed: list[str]) -> None:
        """The record changed where the hub has not seen it: that edit first, then stale."""
        await self.observe(work, current, force=True)
        self.stale(work, intent, changed, current.id)

    def stale(self, work: Round, intent: WriteIntent, changed: list[str],
              external_id: str | None = None) -> None:
        event = WriteStale(
            system=self.system, entity=self.entity, seq=self.journal.next_seq(),
            external_id=external_id or intent.external_id, canonical_id=intent.canonical_id,
            observed_at=self.clock(), intent_id=intent.intent_id, fields_changed=changed,
            correlation_id=intent.correlation_id)
        work.events.append(event)
        log.info("lane %s did not write %s: %s changed there first (%s)", self.name,
                 event.external_id or intent.canonical_id, intent.op,
                 ", ".join(changed) or "deleted",
                 extra={"correlation_id": intent.correlation_id, "system": self.system,
                        "entity": self.entity, "external_id": event.external_id,
                        "op": intent.op, "canonical_id": intent.canonical_id,
                        "intent_id": intent.intent_id, "seq": event.seq, "outcome": "stale"})

    def failed(self, intent: WriteIntent, reason: str, work: Round,
               source: Delivered | None = None) -> WriteFailed:
        """The intent failed; at its last attempt it is a dead letter too (with ``source``)."""
        log.warning("lane %s: %s of %s failed (attempt %d of %d): %s", self.name, intent.op,
                    intent.external_id or intent.canonical_id, intent.attempt,
                    self.max_write_attempts, reason,
                    extra={"correlation_id": intent.correlation_id, "system": self.system,
                           "entity": self.entity, "op": intent.op,
                           "canonical_id": intent.canonical_id, "intent_id": intent.intent_id,
                           "outcome": "failed"})
        self.count_write(intent, "failed")
        if source is not None and intent.attempt >= self.max_write_attempts:
            key = source.key.decode("utf-8", "replace") if source.key else self.name
            self.letter(work, key, "WriteFailed",
                        f"{intent.op} of {intent.canonical_id} in {self.system} failed after "
                        f"{intent.attempt} attempts: {reason}", None, source,
                        attempts=intent.attempt)
            self.behind += 1
            if self.metrics is not None:
                self.metrics.lane_behind.labels(self.system, self.entity).inc()
        return WriteFailed(system=self.system, entity=self.entity, seq=self.journal.next_seq(),
                           external_id=intent.external_id, canonical_id=intent.canonical_id,
                           observed_at=self.clock(), intent_id=intent.intent_id,
                           reason=reason[:500], attempts=intent.attempt,
                           correlation_id=intent.correlation_id)

    # -- dead letters --------------------------------------------------------------------
    def bad_record(self, work: Round, record: BadRecord, url: str) -> None:
        log.warning("lane %s: skipped a record from %s: %s", self.name, url, record.reason)
        self.letter(work, f"{self.name}/{record.id or ''}", "BadRecord",
                    f"{self.system} {self.entity}: {record.reason} (from {url})", record.raw,
                    error_id=record.reason)

    def letter(self, work: Round, key: str, error: str, reason: str, raw: Any,
               source: Delivered | None = None, attempts: int = 1,
               error_id: str | None = None) -> None:
        """A dead letter: an input from ``source`` (re-drivable), or ``raw`` from the API.

        What is read from the API gets one letter per distinct error per record (``key``,
        ``error`` and ``error_id``, by default the reason), however many polls see it again:
        a record that stays bad is one letter, not one per poll.
        """
        if source is None:
            once = f"{key}\x00{error}\x00{error_id if error_id is not None else reason}"
            if once in self._lettered or once in work.lettered:
                log.debug("lane %s: dead letter already sent: %s", self.name, reason)
                return
            work.lettered.append(once)
        if source is not None:
            topic, partition, offset = source.topic, source.partition, source.offset
            value = source.value
            key_bytes = source.key
        else:
            # Read from the system's API, not from a topic: there is nothing to re-drive.
            topic, partition, offset = f"api:{self.system}", -1, -1
            value = orjson.dumps(raw, default=str) if raw is not None else None
            key_bytes = key.encode()
        log.warning("lane %s: dead letter: %s", self.name, reason)
        work.letters.append(DeadLetter(
            stage=f"lane:{self.system}", topic=topic, partition=partition, offset=offset,
            key_b64=base64.b64encode(key_bytes).decode() if key_bytes is not None else None,
            value_b64=base64.b64encode(value).decode() if value is not None else None,
            error=error, reason=reason, attempts=attempts, at=self.clock()))
        work.letter_keys.append(key)
        if self.metrics is not None:
            self.metrics.dead_letters.labels(f"lane:{self.system}").inc()

    # -- metrics -------------------------------------------------------------------------
    def _count(self, kind: str) -> None:
        if self.metrics is not None:
            self.metrics.observations.labels(self.system, self.entity, kind).inc()

    def count_write(self, intent: WriteIntent, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.writes.labels(self.system, self.entity, intent.op, outcome).inc()
