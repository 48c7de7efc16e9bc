"""The lane: one system and entity, every read of it and every write to it, in one sequence.

Because one loop owns all I/O with the system, the order of its observations is the order of
what happened there (DESIGN.md, "Data flow"). The loop, round after round:

1. **polls** for records changed since its cursor (every page), reports each record whose
   mapped values it has not reported before, and advances the cursor only with the commit
   of what it reported;
2. reads the records that **webhooks** named;
3. finds **deletes**: from the API's delete feed, or by a periodic sweep over all records
   that confirms each missing one with a read (a record that merely fell out of a filter
   still answers, so it is not a delete);
4. **executes intents** for its system — unless the last contact with the system failed:
   then intents wait in Kafka until the system answers again, so a system that is down
   never loses or stalls anything but itself.

Writing never overwrites an edit the hub has not seen: the lane reads the record, compares
each field with the intent's expected and intended values — a field holding the intended
value is done (a retried intent), one holding anything else makes the write ``stale`` and
nothing is written; the read is reported first, so the edit reaches the fold — and writes
conditionally on the version it read where the API allows (a 412 means: read and decide
again). A create first looks the record up by its match key, so a crash between a create and
its commit never makes a duplicate.

Everything the lane reports is committed with its state in one Kafka transaction
(:class:`streams.lanelog.LaneLog`).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from conflict.state import Json
from conflict.values import same
from daemon.connector.rest import BadRecord, ConnectorError, RemoteRecord, RestEntity
from daemon.errors import DaemonError
from daemon.http import HttpError, MalformedResponse, PreconditionFailed
from daemon.metrics import Metrics
from streams import codec
from streams.errors import DecodeError
from streams.events import (
    DeadLetter,
    Event,
    Observed,
    WriteFailed,
    WriteIntent,
    WriteStale,
    Written,
)
from streams.kafka import ConsumedRecord
from streams.lanelog import LaneLog
from streams.links import LinksView

log = logging.getLogger(__name__)

PRECONDITION_ROUNDS = 3
"""How often a write that lost a race (412) is read and decided again before it is failed."""

RETRIABLE_ROUNDS = 3
"""How many rounds an intent may fail with a retriable error while the system otherwise
answers, before it is reported failed (a record the system cannot take, not an outage)."""


class Reading(Protocol):
    """A system's record in canonical fields (see :mod:`daemon.mapping`)."""

    @property
    def values(self) -> dict[str, Json]: ...

    @property
    def problems(self) -> dict[str, str]: ...


class FieldMapping(Protocol):
    """Translates one entity's records between a system's shape and canonical fields."""

    def to_canonical(self, record: Mapping[str, Any]) -> Reading: ...

    def to_system(self, values: Mapping[str, Json]) -> dict[str, Any]: ...


Resolve = Callable[[str, str, str], Awaitable[str | None]]
"""``resolve(entity, system, external_id)``: the canonical id a record not linked yet will get
(read from the system and derived like the hub derives it), or ``None`` if it does not exist."""


def fingerprint(values: Mapping[str, Json], version: str | None) -> str:
    """What the lane remembers of a record it reported: a hash of its values and version."""
    data = orjson.dumps([values, version], option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(data, digest_size=12).hexdigest()


#: How many committed intent ids a lane remembers, so as not to run one twice in-process.
DONE_REMEMBERED = 10_000


class _Outage(Exception):
    """The system stopped answering in the middle of a round; intents wait for it."""


@dataclass
class _Round:
    """What one transaction of the lane will publish."""

    events: list[Event] = field(default_factory=list)
    index: dict[str, str | None] = field(default_factory=dict)
    letters: list[DeadLetter] = field(default_factory=list)
    letter_keys: list[str] = field(default_factory=list)
    parked: dict[str, bytes | None] = field(default_factory=dict)  # intent id -> intent
    done: list[str] = field(default_factory=list)  # intents executed, once this commits

    def __bool__(self) -> bool:
        return bool(self.events or self.index or self.letters or self.parked)

    def merge(self, other: _Round) -> None:
        self.events.extend(other.events)
        self.index.update(other.index)
        self.letters.extend(other.letters)
        self.letter_keys.extend(other.letter_keys)
        self.parked.update(other.parked)
        self.done.extend(other.done)


@dataclass(frozen=True)
class _Reading:
    values: dict[str, Json]
    problems: dict[str, str]


def _record_of(record: ConsumedRecord) -> str:
    """The canonical id an intent is for (its own offset when it cannot be read)."""
    try:
        return codec.decode(record.value, (WriteIntent,)).canonical_id
    except DecodeError:
        return f"@{record.offset}"


class _WaitForLink(DaemonError):
    """A reference to a record not linked in the system yet: the write waits for it."""


class Lane:
    """The loop of one system and entity.

    Args:
        connector: the entity's API.
        mapping: the entity's field mapping for this system.
        log: the lane's Kafka side.
        match_on: the entity's match keys (canonical names), for lookups before a create.
        max_write_attempts: the fold's budget per intent; a failure at the last attempt also
            goes to the dead-letter topic.
        clock: seconds since the epoch.
    """

    def __init__(self, connector: RestEntity, mapping: FieldMapping, lane_log: LaneLog, *,
                 match_on: tuple[str, ...] = (), max_write_attempts: int = 5,
                 metrics: Metrics | None = None, links: LinksView | None = None,
                 resolve: Resolve | None = None, ref_wait: float = 600.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.connector = connector
        self.mapping = mapping
        self.log = lane_log
        self.system = connector.system
        self.entity = connector.entity
        self.name = f"{self.system}/{self.entity}"
        self.match_on = match_on
        self.max_write_attempts = max_write_attempts
        self.metrics = metrics
        self.links = links
        self.resolve = resolve
        self.ref_wait = ref_wait
        self.clock = clock
        # Intents waiting for a referenced record to be linked here: id -> (bytes, since).
        self.parked: dict[str, tuple[bytes, float]] = {
            intent_id: (raw, clock()) for intent_id, raw in lane_log.parked.items()}
        config = connector.config
        self.poll_every = config.poll_every_seconds
        self.concurrency = config.concurrency
        self.sweep_every = config.deletes.reconcile_every_seconds
        self.healthy = False
        self.polls = 0  # complete polls, for status and tests
        self._next_poll = 0.0
        self._triggers: dict[str, bool] = {}
        self._wake = asyncio.Event()
        self._failures: dict[str, int] = {}  # intent id -> rounds failed while the system answered
        self._last_error: str | None = None  # the last error reported as a dead letter
        self.behind = 0  # intents given up on since start (dead letters): records behind
        # Intents executed and committed by this process, so that one read again after an
        # outage's rewind is not run twice (insertion-ordered, the oldest forgotten first).
        self._done: dict[str, None] = {}
        self._attempted: set[str] = set()  # intents started that wait for the system

    def status(self) -> dict[str, Any]:
        """Where the lane is, for ``/status`` and ``syncline status``."""
        head = self.log.head
        return {
            "system": self.system, "entity": self.entity, "healthy": self.healthy,
            "polls": self.polls, "seq": head.seq, "cursor": head.cursor,
            "cursor_lag_seconds": (round(self.clock() - head.cursor, 1)
                                   if head.cursor is not None else None),
            "known_records": len(self.log.index), "waiting_for_links": len(self.parked),
            "behind": self.behind, "last_error": self._last_error,
        }

    # -- inputs from outside -------------------------------------------------------------
    def request_read(self, external_id: str, deleted_hint: bool = False) -> None:
        """Read this record soon (a webhook named it)."""
        self._triggers[external_id] = self._triggers.get(external_id, False) or deleted_hint
        self._wake.set()

    def poll_soon(self) -> None:
        """Poll at the next opportunity."""
        self._next_poll = 0.0
        self._wake.set()

    # -- the loop ------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Run rounds until ``stop`` is set."""
        backoff = 1.0
        while not stop.is_set():
            try:
                await self.round()
                backoff = 1.0
                self._last_error = None
            except DaemonError as exc:
                # The system answered badly (down, an HTML page, a page too big): nothing
                # moved past what was observed; report it once, wait, and try again.
                if isinstance(exc, HttpError):
                    self._unhealthy(exc)
                if not exc.retriable:
                    await self._report(exc)
                await self._sleep(stop, backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            wait = max(0.0, min(self._next_poll - time.monotonic(), 0.5))
            if self._triggers:
                wait = 0.0
            await self._idle(stop, wait)

    async def round(self) -> None:
        """One round: poll if due, read triggered records, find deletes, execute intents."""
        if time.monotonic() >= self._next_poll:
            await self.poll()
            await self._deletes()
            self._next_poll = time.monotonic() + self.poll_every
        if self._triggers:
            await self._read_triggered()
        if self.healthy:
            await self._retry_parked()
            await self.execute_intents(timeout_ms=0)

    async def _idle(self, stop: asyncio.Event, wait: float) -> None:
        """Wait for intents (the usual thing to wait for), a trigger, or the next poll."""
        if not self.healthy or wait <= 0:
            await self._sleep(stop, wait)
            return
        await self.execute_intents(timeout_ms=int(wait * 1000))

    async def _sleep(self, stop: asyncio.Event, seconds: float) -> None:
        if seconds <= 0:
            return
        self._wake.clear()
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def _report(self, exc: DaemonError) -> None:
        """A dead letter for an error that is not the system being away (once per error)."""
        reason = f"{self.system} {self.entity}: {exc}"
        if reason == self._last_error:
            return
        self._last_error = reason
        log.error("lane %s: %s", self.name, exc)
        work = _Round()
        self._letter(work, self.name, type(exc).__name__, reason, None)
        await self._commit(work)

    def _unhealthy(self, exc: HttpError) -> None:
        if self.healthy or exc.retriable:
            log.warning("lane %s: %s is not answering: %s", self.name, self.system, exc)
        self.healthy = False

    # -- reading -------------------------------------------------------------------------
    async def poll(self) -> int:
        """Report every record changed since the cursor; how many were reported.

        Each page is committed as it is read; the cursor moves once the walk is complete.
        A record seen twice in one walk moved while it was walked, which can shift a paged
        listing under the walk, so the walk is repeated (records already reported are not
        reported again).
        """
        started = time.monotonic()
        reported = 0
        for _ in range(3):
            since = self.log.head.cursor
            newest = since
            seen: set[str] = set()
            moved = False
            async for page in self.connector.changes(since):
                work = _Round()
                for record in page.records:
                    if isinstance(record, BadRecord):
                        self._bad_record(work, record, page.url)
                        continue
                    moved = moved or record.id in seen
                    seen.add(record.id)
                    if record.updated is not None:
                        newest = record.updated if newest is None else max(newest, record.updated)
                    reported += await self._observe(work, record)
                if work:
                    await self._commit(work)
                self.healthy = True
            self.healthy = True
            if not moved:
                break
            log.info("lane %s: records moved during the walk; walking again", self.name)
        if newest != self.log.head.cursor:
            self.log.head.cursor = newest
            await self._commit(_Round())
        self.polls += 1
        if self.metrics is not None:
            self.metrics.lane_poll_seconds.labels(self.system, self.entity).observe(
                time.monotonic() - started)
            if newest is not None:
                self.metrics.lane_cursor_lag_seconds.labels(self.system, self.entity).set(
                    max(0.0, self.clock() - newest))
        return reported

    async def _observe(self, work: _Round, record: RemoteRecord, *, force: bool = False
                       ) -> int:
        """Report ``record`` unless the lane reported exactly this before; 1 if reported."""
        if record.deleted:  # a tombstone in a listing: a delete, if the lane knew the record
            known_alive = work.index.get(record.id, self.log.index.get(record.id))
            if known_alive is None:
                return 0
            self._observe_deleted(work, record.id, record.updated)
            return 1
        reading = await self._read(record)
        print_ = fingerprint(reading.values, record.version)
        known = work.index.get(record.id, self.log.index.get(record.id))
        for name, problem in sorted(reading.problems.items()):
            self._letter(work, f"{self.name}/{record.id}", "BadValue",
                         f"{self.system} {self.entity} {record.id}: field {name}: {problem}",
                         record.data)
        if known == print_ and not force:
            if self.metrics is not None:
                self.metrics.echoes_suppressed.labels(self.system, self.entity).inc()
            return 0
        work.events.append(Observed(
            system=self.system, entity=self.entity, seq=self.log.next_seq(),
            external_id=record.id, observed_at=self.clock(), fields=reading.values,
            native_version=record.version,
            source_ts=record.updated if record.updated is not None else self.clock()))
        work.index[record.id] = print_
        self._count("observed")
        return 1

    def _observe_deleted(self, work: _Round, external_id: str, at: float | None) -> None:
        work.events.append(Observed(
            system=self.system, entity=self.entity, seq=self.log.next_seq(),
            external_id=external_id, observed_at=self.clock(), deleted=True,
            source_ts=at if at is not None else self.clock()))
        work.index[external_id] = None
        self._count("deleted")

    async def _read_triggered(self) -> None:
        triggers, self._triggers = self._triggers, {}
        work = _Round()
        for external_id in sorted(triggers):
            try:
                record = await self.connector.fetch(external_id)
            except ConnectorError as exc:  # this record is broken; the others are not
                self._letter(work, f"{self.name}/{external_id}", type(exc).__name__, str(exc),
                             None)
                continue
            if record is None:
                if external_id in self.log.index or external_id in work.index:
                    self._observe_deleted(work, external_id, None)
            else:
                await self._observe(work, record)
        if work:
            await self._commit(work)

    async def _deletes(self) -> None:
        if self.connector.delete_feed:
            await self._read_delete_feed()
        elif self.connector.config.deletes.tombstone is None:
            swept = self.log.head.swept_at
            if swept is None or self.clock() - swept >= self.sweep_every:
                await self.sweep()

    async def _read_delete_feed(self) -> None:
        head = self.log.head
        newest = head.deletes_cursor
        async for page in self.connector.deletions(head.deletes_cursor):
            work = _Round()
            for deletion in page:
                if deletion.at is not None:
                    newest = deletion.at if newest is None else max(newest, deletion.at)
                if deletion.id in self.log.index:
                    self._observe_deleted(work, deletion.id, deletion.at)
            if work:
                await self._commit(work)
        if newest != head.deletes_cursor:
            head.deletes_cursor = newest
            await self._commit(_Round())

    async def sweep(self) -> int:
        """Walk every record: report changes a poll missed and records that disappeared.

        A record the lane knows that is not in the listing is read once more: only a "not
        found" makes it a delete. Returns how many deletes were found.
        """
        work = _Round()
        present: set[str] = set()
        async for page in self.connector.changes(None):
            for record in page.records:
                if isinstance(record, RemoteRecord):
                    present.add(record.id)
                    await self._observe(work, record)
                elif record.id is not None:
                    present.add(record.id)  # unreadable, but there: not a delete
        deleted = 0
        for external_id in sorted(set(self.log.index) - present):
            if work.index.get(external_id, "") is None:
                continue
            still = await self.connector.fetch(external_id)
            if still is None:
                self._observe_deleted(work, external_id, None)
                deleted += 1
            else:
                await self._observe(work, still)
        self.log.head.swept_at = self.clock()
        await self._commit(work)
        return deleted

    # -- writing -------------------------------------------------------------------------
    async def execute_intents(self, timeout_ms: int = 0, max_records: int = 50) -> int:
        """Execute the intents waiting for this lane; how many were executed.

        Up to ``concurrency`` records are written at once (an API's latency, not syncline,
        is what a lane waits for); the intents of one record run in their order. When the
        system stops answering, the lane goes back to the first intent not executed: those
        after it that ran are run again later, and find their values written (done).
        """
        records = await self.log.intents(timeout_ms, max_records)
        if not records:
            return 0
        groups: dict[str, list[ConsumedRecord]] = {}
        for record in records:
            groups.setdefault(_record_of(record), []).append(record)
        gate = asyncio.Semaphore(self.concurrency)
        outcomes: dict[int, _Round] = {}
        stopped: list[int] = []

        async def run(group: list[ConsumedRecord]) -> None:
            for record in group:
                outcome = _Round()
                try:
                    async with gate:
                        await self._intent(outcome, record)
                except _Outage:
                    stopped.append(record.offset)
                    return
                outcomes[record.offset] = outcome

        await asyncio.gather(*(run(group) for group in groups.values()))
        work = _Round()
        for record in records:
            if record.offset in outcomes:
                work.merge(outcomes[record.offset])
        # One record's events are in their order; all of them in sequence-number order.
        work.events.sort(key=lambda event: getattr(event, "seq", 0))
        next_offset = min(stopped) if stopped else records[-1].offset + 1
        if stopped:
            self.log.rewind_intents(next_offset)
        self.log.head.intents_offset = next_offset
        await self._commit(work)
        for intent_id in work.done:
            self._done[intent_id] = None
        while len(self._done) > DONE_REMEMBERED:
            del self._done[next(iter(self._done))]
        return len(outcomes)

    async def _intent(self, work: _Round, record: ConsumedRecord) -> None:
        try:
            intent = codec.decode(record.value, (WriteIntent,))
        except DecodeError as exc:
            self._letter(work, record.key.decode() if record.key else self.name,
                         type(exc).__name__, str(exc), None, record)
            return
        if intent.system != self.system or intent.entity != self.entity:
            return  # another lane's intent in the same partition
        if intent.intent_id in self._done:
            return  # ran and committed before an outage rewound the intents
        # Run before (by an earlier process, or by this one before an outage) and maybe done.
        rerun = record.offset < self.log.resumed_below or intent.intent_id in self._attempted
        self._attempted.add(intent.intent_id)
        try:
            outcome = await self.execute(intent, rerun=rerun)
        except _WaitForLink as wait:
            log.info("lane %s: %s waits: %s", self.name, intent.intent_id, wait)
            assert record.value is not None
            self.parked[intent.intent_id] = (record.value, self.clock())
            work.parked[intent.intent_id] = record.value
            self._attempted.discard(intent.intent_id)
            return
        except HttpError as exc:
            unknown = exc.retriable or isinstance(exc, MalformedResponse)
            if unknown and intent.op == "create" and self.connector.idempotent_creates:
                # The create may have happened; only the API's answer to the same key can
                # say, and a create that landed is never reported failed (docs/DECISIONS.md):
                # it waits like in an outage, and is sent again with its key.
                self._unhealthy(exc)
                raise _Outage from exc
            if exc.retriable and self._failures.get(intent.intent_id, 0) < RETRIABLE_ROUNDS:
                self._failures[intent.intent_id] = self._failures.get(intent.intent_id, 0) + 1
                self._unhealthy(exc)
                raise _Outage from exc
            # A retriable error or a garbled answer may hide a delete that happened.
            if intent.op == "delete" and (exc.retriable or isinstance(exc, MalformedResponse)):
                outcome = await self._settle_delete(intent, exc, work, record)
            else:
                outcome = _Round([self._failed(intent, str(exc), work, record)])
        except (DaemonError, ValueError) as exc:
            outcome = _Round([self._failed(intent, str(exc), work, record)])
        self._failures.pop(intent.intent_id, None)
        self._attempted.discard(intent.intent_id)
        outcome.done.append(intent.intent_id)
        work.merge(outcome)
        for event in outcome.events:
            if isinstance(event, Written):
                self._count_write(intent, "written")
            elif isinstance(event, WriteStale):
                self._count_write(intent, "stale")

    async def _settle_delete(self, intent: WriteIntent, exc: HttpError, work: _Round,
                             record: ConsumedRecord) -> _Round:
        """A delete that kept failing may still have landed: only a read can say.

        The lane never reports a delete failed when it landed (the fold could not tell its
        echo from a person's delete, docs/DECISIONS.md): the copy is read once more, and
        while that read fails too the intent waits like in an outage.
        """
        assert intent.external_id is not None
        try:
            still = await self.connector.fetch(intent.external_id)
        except HttpError as again:
            self._unhealthy(again)
            raise _Outage from again
        outcome = _Round()
        if still is None:
            await self._written(outcome, intent, None, intent.external_id)
        else:
            outcome.events.append(self._failed(intent, str(exc), work, record))
        return outcome

    def _failed_plain(self, intent: WriteIntent, reason: str) -> WriteFailed:
        """A failure of a parked intent (no consumed record to dead-letter it with)."""
        log.warning("lane %s: %s of %s failed: %s", self.name, intent.op, intent.canonical_id,
                    reason)
        self._count_write(intent, "failed")
        return WriteFailed(system=self.system, entity=self.entity, seq=self.log.next_seq(),
                           external_id=intent.external_id, canonical_id=intent.canonical_id,
                           observed_at=self.clock(), intent_id=intent.intent_id,
                           reason=reason[:500], attempts=intent.attempt)

    def _failed(self, intent: WriteIntent, reason: str, work: _Round,
                record: ConsumedRecord) -> WriteFailed:
        log.warning("lane %s: %s of %s failed (attempt %d of %d): %s", self.name, intent.op,
                    intent.external_id or intent.canonical_id, intent.attempt,
                    self.max_write_attempts, reason)
        self._count_write(intent, "failed")
        if intent.attempt >= self.max_write_attempts:
            self._letter(work, record.key.decode() if record.key else self.name, "WriteFailed",
                         f"{intent.op} of {intent.canonical_id} in {self.system} failed after "
                         f"{intent.attempt} attempts: {reason}", None, record,
                         attempts=intent.attempt)
            self.behind += 1
            if self.metrics is not None:
                self.metrics.lane_behind.labels(self.system, self.entity).inc()
        return WriteFailed(system=self.system, entity=self.entity, seq=self.log.next_seq(),
                           external_id=intent.external_id, canonical_id=intent.canonical_id,
                           observed_at=self.clock(), intent_id=intent.intent_id,
                           reason=reason[:500], attempts=intent.attempt)

    async def execute(self, intent: WriteIntent, *, rerun: bool = False) -> _Round:
        """Carry out one intent; the observations that say what happened, to commit.

        ``rerun``: it may have run before without its outcome being committed: an earlier
        process had it when it died, or this one before the system stopped answering.
        Raises :class:`~daemon.http.HttpError` when the system did not answer usefully.
        """
        work = _Round()
        if intent.op == "create":
            await self._create(work, intent, rerun=rerun)
            return work
        if intent.external_id is None:
            raise ConnectorError(f"an {intent.op} intent without an external id")
        for _ in range(PRECONDITION_ROUNDS):
            current = await self.connector.fetch(intent.external_id)
            if current is None:
                if intent.op == "delete":
                    await self._written(work, intent, None, intent.external_id)
                else:
                    self._observe_deleted(work, intent.external_id, None)
                    self._stale(work, intent, [])
                return work
            reading = await self._read(current)
            try:
                if intent.op == "delete":
                    changed = sorted(f for f, v in intent.expected.items()
                                     if not same(reading.values.get(f), v))
                    if changed:
                        await self._stale_after_read(work, intent, current, changed)
                        return work
                    await self.connector.delete(intent.external_id, current.precondition)
                    await self._written(work, intent, None, intent.external_id)
                    return work
                todo: dict[str, Json] = {}
                changed = []
                for name, value in intent.values.items():
                    held = reading.values.get(name)
                    if same(held, value):
                        continue  # done already (a retried intent)
                    if same(held, intent.expected.get(name)):
                        todo[name] = value
                    else:
                        changed.append(name)
                if changed:
                    await self._stale_after_read(work, intent, current, sorted(changed))
                    return work
                if not todo:
                    await self._written(work, intent, current, current.id)
                    return work
                after = await self.connector.update(intent.external_id,
                                                    self._system_values(todo),
                                                    current.precondition)
            except PreconditionFailed:
                continue  # changed between our read and our write: read and decide again
            if after is None:
                self._observe_deleted(work, intent.external_id, None)
                self._stale(work, intent, [])
            else:
                await self._written(work, intent, after, after.id)
            return work
        raise ConnectorError(f"{self.system} kept changing record {intent.external_id} "
                             f"during {PRECONDITION_ROUNDS} conditional writes")

    async def _create(self, work: _Round, intent: WriteIntent, *, rerun: bool = False) -> None:
        """Create the record, unless a lookup finds it there already.

        A create an earlier process may have made before it died, whose copy a person then
        deleted, is found by no lookup. Only an API with idempotent creates can tell: the
        intent's id is the key, so the re-run gets the first create's answer, and a read
        of that copy tells whether it is still there (a person's delete of it is then
        reported after the create, like any delete). Without one, the create is made again:
        the one window where a person's delete can be undone (docs/DECISIONS.md).
        """
        body = self._system_values(intent.values)
        found = await self._look_up(body)
        if found is not None:
            await self._adopt(work, intent, found)
            return
        if self.connector.idempotent_creates:
            created = await self.connector.create(body, key=intent.intent_id)
            if created is None:
                raise ConnectorError(f"{self.system} answered a create without the record "
                                     "or its location")
            if rerun and await self.connector.fetch(created.id) is None:
                log.warning("lane %s: the copy %s created for %s before a restart was deleted "
                            "since; reporting the delete", self.name, created.id,
                            intent.canonical_id)
                await self._written(work, intent, created, created.id)
                self._observe_deleted(work, created.id, None)
                return
            await self._written(work, intent, created, created.id)
            return
        if rerun:
            log.info("lane %s: re-running create %s after a restart; without idempotent "
                     "creates a copy deleted since cannot be told from one never made",
                     self.name, intent.intent_id)
        try:
            created = await self.connector.create(body)
        except HttpError as exc:
            # A timeout may hide a create that happened; a duplicate-key answer means the
            # record exists. Either way a lookup tells.
            if self.connector.can_look_up and (exc.retriable or exc.status in (409, 422)):
                found = await self._look_up(body)
                if found is not None:
                    await self._adopt(work, intent, found)
                    return
            raise
        if created is None:
            found = await self._look_up(body)
            if found is None:
                raise ConnectorError(f"{self.system} answered a create without the record "
                                     "or its location, and no lookup finds it")
            created = found
        await self._written(work, intent, created, created.id)

    async def _look_up(self, body: Mapping[str, Any]) -> RemoteRecord | None:
        if not self.connector.can_look_up:
            return None
        lookup = self.connector.config.lookup
        assert lookup is not None
        if not all(body.get(name) not in (None, "") for name in lookup.fields()):
            return None  # no match key to look up by
        found = await self.connector.lookup(body)
        return found[0] if found else None

    async def _adopt(self, work: _Round, intent: WriteIntent, found: RemoteRecord) -> None:
        """A record with the intent's match key exists already: ours, or a person's."""
        reading = await self._read(found)
        changed = sorted(name for name, value in intent.values.items()
                         if not same(reading.values.get(name), value))
        if not changed:
            await self._written(work, intent, found, found.id)  # our own create, made before
        else:
            await self._stale_after_read(work, intent, found, changed)

    async def _stale_after_read(self, work: _Round, intent: WriteIntent,
                                current: RemoteRecord, changed: list[str]) -> None:
        await self._observe(work, current, force=True)  # the edit the hub has not seen, first
        self._stale(work, intent, changed, current.id)

    def _stale(self, work: _Round, intent: WriteIntent, changed: list[str],
               external_id: str | None = None) -> None:
        work.events.append(WriteStale(
            system=self.system, entity=self.entity, seq=self.log.next_seq(),
            external_id=external_id or intent.external_id, canonical_id=intent.canonical_id,
            observed_at=self.clock(), intent_id=intent.intent_id, fields_changed=changed))

    async def _written(self, work: _Round, intent: WriteIntent, record: RemoteRecord | None,
                       external_id: str) -> None:
        fields: dict[str, Json] | None = None
        version = None
        source_ts = self.clock()
        if record is not None:
            reading = await self._read(record)
            fields = reading.values
            version = record.version
            source_ts = record.updated if record.updated is not None else source_ts
            work.index[external_id] = fingerprint(fields, version)
        else:
            work.index[external_id] = None
        work.events.append(Written(
            system=self.system, entity=self.entity, seq=self.log.next_seq(),
            external_id=external_id, canonical_id=intent.canonical_id,
            observed_at=self.clock(), intent_id=intent.intent_id,
            native_version=version, source_ts=source_ts, fields=fields))

    # -- references ----------------------------------------------------------------------
    async def _read(self, record: RemoteRecord) -> Reading:
        """``record`` in canonical fields, its references as canonical ids.

        A reference is translated through the links view; one not linked yet is the id the
        hub will give that record (``resolve`` reads it here and derives it); one that
        cannot be translated is a problem of that field.
        """
        reading = self.mapping.to_canonical(record.data)
        refs = getattr(self.mapping, "refs", {})
        if not refs:
            return reading
        values, problems = dict(reading.values), dict(reading.problems)
        for name, entity in refs.items():
            external_id = values.get(name)
            if external_id is None:
                continue
            cid = self.links.canonical(entity, self.system, str(external_id)) if (
                self.links is not None) else None
            if cid is None and self.resolve is not None:
                cid = await self.resolve(entity, self.system, str(external_id))
            if cid is None:
                del values[name]
                problems[name] = (f"refers to {entity} {external_id}, which {self.system} "
                                  "does not have")
            else:
                values[name] = cid
        return _Reading(values, problems)

    def _system_values(self, values: Mapping[str, Json]) -> dict[str, Any]:
        """``values`` in the system's shape, references as the system's ids.

        Raises :class:`_WaitForLink` when a referenced record is not linked in the system.
        """
        refs = getattr(self.mapping, "refs", {})
        translated = dict(values)
        for name, entity in refs.items():
            cid = translated.get(name)
            if cid is None:
                continue
            external_id = self.links.external(str(cid), self.system) if (
                self.links is not None) else None
            if external_id is None:
                raise _WaitForLink(f"{name} refers to {entity} {cid}, not yet linked in "
                                   f"{self.system}")
            translated[name] = external_id
        return self.mapping.to_system(translated)

    async def _retry_parked(self) -> None:
        """Run the intents that waited for a link, now that links changed (or time is up)."""
        if not self.parked:
            return
        if self.links is not None and not self.links.changed.is_set() and all(
                self.clock() - since < self.ref_wait for _, since in self.parked.values()):
            return
        if self.links is not None:
            self.links.changed.clear()
        work = _Round()
        for intent_id, (raw, since) in sorted(self.parked.items()):
            intent = codec.decode(raw, (WriteIntent,))
            try:
                outcome = await self.execute(intent)
            except _WaitForLink as wait:
                if self.clock() - since < self.ref_wait:
                    continue
                outcome = _Round([self._failed_plain(intent, f"waited {self.ref_wait:.0f} s: "
                                                     f"{wait}")])
            except (DaemonError, ValueError) as exc:
                if isinstance(exc, HttpError) and exc.retriable:
                    raise
                outcome = _Round([self._failed_plain(intent, str(exc))])
            work.merge(outcome)
            work.parked[intent_id] = None
        if work:
            await self._commit(work)
            for intent_id, value in work.parked.items():
                if value is None:
                    self.parked.pop(intent_id, None)

    # -- bookkeeping ---------------------------------------------------------------------
    async def _commit(self, work: _Round) -> None:
        await self.log.commit(work.events, index=work.index, dead_letters=work.letters,
                              dead_letter_keys=work.letter_keys, parked=work.parked)

    def _bad_record(self, work: _Round, record: BadRecord, url: str) -> None:
        log.warning("lane %s: skipped a record from %s: %s", self.name, url, record.reason)
        self._letter(work, f"{self.name}/{record.id or ''}", "BadRecord",
                     f"{self.system} {self.entity}: {record.reason} (from {url})", record.raw)

    def _letter(self, work: _Round, key: str, error: str, reason: str, raw: Any,
                source: ConsumedRecord | None = None, attempts: int = 1) -> None:
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

    def _count(self, kind: str) -> None:
        if self.metrics is not None:
            self.metrics.observations.labels(self.system, self.entity, kind).inc()

    def _count_write(self, intent: WriteIntent, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.writes.labels(self.system, self.entity, intent.op, outcome).inc()
