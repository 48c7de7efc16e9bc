"""The lane's loop: one system and entity, every read of it and every write to it, in order.

Because one loop owns all I/O with the system, the order of its observations is the order of
what happened there. Round after round it polls when a poll is due and looks for deletes,
reads the records webhooks named, and executes intents — unless the last contact with the
system failed: then intents wait in the journal until the system answers again, so a system
that is down never loses or stalls anything but itself.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from daemon.errors import DaemonError
from daemon.http import HttpError, RetryPolicy
from daemon.lane.ports import Connector, Delivered, FieldMapping, Journal, Links, Resolve
from daemon.lane.reading import Reader
from daemon.lane.references import Parked, References
from daemon.lane.report import Health, Reporter, Round
from daemon.lane.writing import Writer
from daemon.metrics import Metrics
from streams import WriteIntent

log = logging.getLogger(__name__)

UNSETTLED_CREATE_SECONDS = 600.0
"""A create that may have landed unseen for longer than this is a problem in the status: the
lane reads nothing while it is (the system down that long, or an entry that cannot settle)."""

SETTLE_WAIT_MS = 500
"""How long a restarted lane waits for the intents it found at its start to be delivered."""

BACKOFF = RetryPolicy(base_seconds=1.0, max_delay_seconds=30.0)
"""How long the loop waits after a round the system answered badly: the HTTP retries' own
jittered doubling (only its delays are used; the loop never gives up)."""


class Lane:
    """The loop of one system and entity.

    Args:
        connector: the entity's API.
        mapping: the entity's field mapping for this system.
        lane_log: the lane's journal (its intents in, its observations and state out).
        match_on: the entity's match keys (canonical names), for lookups before a create.
        max_write_attempts: the fold's budget per intent; a failure at the last attempt also
            goes to the dead-letter topic.
        metrics: where the lane's counts go.
        links: which record of each system each canonical record is (for references).
        resolve: the canonical id a referenced record not linked yet will get.
        ref_wait: seconds an intent waits for a referenced record to be linked.
        clock: seconds since the epoch.
    """

    def __init__(self, connector: Connector, mapping: FieldMapping, lane_log: Journal, *,
                 match_on: tuple[str, ...] = (), max_write_attempts: int = 5,
                 metrics: Metrics | None = None, links: Links | None = None,
                 resolve: Resolve | None = None, ref_wait: float = 600.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.connector = connector
        self.mapping = mapping
        self.log = lane_log
        self.system = connector.system
        self.entity = connector.entity
        self.name = f"{self.system}/{self.entity}"
        self.match_on = match_on
        self.clock = clock
        self.poll_every = connector.config.poll_every_seconds
        self.metrics = metrics
        self.references = References(self.system, mapping, links, resolve)
        self.parked = Parked(lane_log.parked, links, ref_wait, clock)
        self.health = Health(self.name)
        self.reporter = Reporter(self.system, self.entity, lane_log, self.references.read,
                                 clock=clock, metrics=metrics,
                                 max_write_attempts=max_write_attempts,
                                 normalise=getattr(mapping, "normalise", None),
                                 loop_bound=connector.config.loop_bound)
        self.reader = Reader(connector, lane_log, self.reporter, self.health, clock=clock,
                             metrics=metrics)
        self.writer = Writer(connector, lane_log, self.reporter, self.health, self.references,
                             self.parked)
        self._next_poll = 0.0
        self._wake = asyncio.Event()
        self._last_error: str | None = None  # the last error reported as a dead letter
        self._rng = random.Random()
        self._settled = False  # the intents this process found at its start are executed

    # -- what the rest of the worker sees ------------------------------------------------
    @property
    def healthy(self) -> bool:
        """Whether the system answered the lane's last request."""
        return self.health.healthy

    @property
    def polls(self) -> int:
        """Complete polls since start."""
        return self.reader.polls

    @property
    def behind(self) -> int:
        """Intents given up on since start (dead letters): records behind."""
        return self.reporter.behind

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
            "not_kept": [found.reason(self.system, self.entity)
                         for found in list(self.reporter.kept.fields.values())[:20]],
            "not_kept_count": len(self.reporter.kept),
            "loop_breakers": dict(sorted(self.reporter.breaker.opened.items())[:20]),
            "loop_breakers_open": len(self.reporter.breaker.opened),
            "dead_letters": self.reporter.dead_letters, "problems": self.problems(),
            "creates_unsettled": len(self.writer.unsettled_creates()),
            "oldest_unsettled_create_seconds": self._unsettled_age(),
            "creates_settled_without_intent": self.writer.expired_settled,
        }

    def _unsettled_age(self) -> float | None:
        """How long the oldest create that may have landed unseen has waited."""
        since = self.writer.unsettled_since()
        return None if since is None else round(self.clock() - since, 1)

    def problems(self) -> list[str]:
        """Why the lane is not fine although its system answers (empty when it is): each a
        sentence for ``syncline status``."""
        found = []
        if self.reader.breaker is not None:
            found.append(self.reader.breaker)
        age = self._unsettled_age()
        if age is not None and age > UNSETTLED_CREATE_SECONDS:
            count = len(self.writer.unsettled_creates())
            found.append(f"{count} create{'' if count == 1 else 's'} sent may have landed "
                         f"unseen for {age:.0f} s: the lane reads nothing from {self.system} until "
                         "each is settled by its intent running again (or, once the intent "
                         "expired, by a search for its copy)")
        return found

    def request_read(self, external_id: str, deleted_hint: bool = False) -> None:
        """Read this record soon (a webhook named it)."""
        self.reader.request_read(external_id, deleted_hint)
        self._wake.set()

    def poll_soon(self) -> None:
        """Poll at the next opportunity."""
        self._next_poll = 0.0
        self._wake.set()

    # -- the parts, for a caller that drives the lane by hand ----------------------------
    async def poll(self) -> int:
        """Report every record changed since the cursor; how many were reported."""
        return await self.reader.poll()

    async def sweep(self) -> int:
        """Walk every record for changes and deletes; how many deletes were found."""
        return await self.reader.sweep()

    async def execute_intents(self, timeout_ms: int = 0, max_records: int = 50) -> int:
        """Execute the intents waiting for this lane; how many were executed."""
        return await self.writer.execute_intents(timeout_ms, max_records)

    async def execute(self, intent: WriteIntent, *, rerun: bool = False) -> Round:
        """Carry out one intent without committing; the round that says what happened."""
        return await self.writer.execute(intent, rerun=rerun)

    # -- the loop ------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Run rounds until ``stop`` is set."""
        failed_rounds = 0
        while not stop.is_set():
            try:
                await self.round()
                failed_rounds = 0
                self._last_error = None
            except DaemonError as exc:
                # The system answered badly (down, an HTML page, a page too big): nothing
                # moved past what was observed; report it once, wait, and try again.
                if isinstance(exc, HttpError):
                    self.health.failed(exc)
                if not exc.retriable:
                    await self._report(exc)
                failed_rounds = min(failed_rounds + 1, 16)  # the ceiling is reached long before
                await self._sleep(stop, BACKOFF.backoff(failed_rounds, self._rng))
                continue
            wait = max(0.0, min(self._next_poll - time.monotonic(), 0.5))
            if self.reader.triggers:
                wait = 0.0
            await self._idle(stop, wait)

    async def round(self) -> None:
        """One round: poll if due, read triggered records, find deletes, execute intents.

        A restarted lane first executes the intents that were there when it started: a
        create among them may have landed before the crash, and its copy must be found by
        the create (and linked), not reported by a poll as a person's new record. For the
        same reason nothing is read while a create's journal entry says it was sent and
        its outcome is not known (a crash, an answer lost): the create runs first.
        """
        age = self._unsettled_age()  # (an entry without a time is timed from here on)
        if self.metrics is not None:
            self.metrics.lane_unsettled_create_seconds.labels(self.system, self.entity).set(
                0.0 if age is None else age)
        if not self._settled:
            await self._settle()
        if self.writer.unsettled_creates():
            # One whose intent expired (the retention passed while the lane was down) would
            # hold the reads for ever: it is settled by the search alone.
            await self.writer.settle_expired()
        if self.writer.unsettled_creates():
            # A create sent may have landed unseen: its copy must be found by the create
            # (and linked), never read first and reported as someone's new record.
            waited = self.writer.waits
            await self.writer.execute_intents(timeout_ms=SETTLE_WAIT_MS)
            if self.writer.unsettled_creates():
                if self.writer.waits != waited and self.writer.unanswered is not None:
                    raise self.writer.unanswered
                return
        if time.monotonic() >= self._next_poll:
            await self.reader.poll()
            await self.reader.deletes()
            self._next_poll = time.monotonic() + self.poll_every
        if self.reader.triggers:
            await self.reader.read_triggered()
        if self.health.healthy:
            await self.writer.retry_parked()
            await self.writer.execute_intents(timeout_ms=0)

    async def _settle(self) -> None:
        """Execute the intents there at the start (raises the system's error while they
        wait for it: the loop backs off, and nothing is polled)."""
        head = self.log.head
        while (head.intents_offset or 0) < self.log.resumed_below:
            before, waited = head.intents_offset, self.writer.waits
            await self.writer.execute_intents(timeout_ms=SETTLE_WAIT_MS)
            if self.writer.waits != waited and self.writer.unanswered is not None:
                raise self.writer.unanswered
            if head.intents_offset == before:
                break  # nothing more to read (the end was a transaction's marker)
        self._settled = True

    async def _idle(self, stop: asyncio.Event, wait: float) -> None:
        """Wait for intents (the usual thing to wait for), a trigger, or the next poll.

        A webhook's trigger ends the wait for intents at once: the record it names is read
        in the next round, not once the wait (up to half a second) is over. Nothing is lost
        by giving up the wait: the journal hands out intents only when its wait ends with
        them (:meth:`_intents_or_wake`).
        """
        if not self.health.healthy or wait <= 0:
            await self._sleep(stop, wait)
            return
        delivered = await self._intents_or_wake(wait)
        if delivered:
            await self.writer.execute_delivered(delivered)

    async def _intents_or_wake(self, wait: float) -> Sequence[Delivered]:
        """The next intents, waiting up to ``wait`` seconds for them unless woken first
        (then none)."""
        self._wake.clear()
        fetch = asyncio.ensure_future(self.log.intents(int(wait * 1000)))
        woken = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait([fetch, woken], return_when=asyncio.FIRST_COMPLETED)
        finally:
            woken.cancel()
            if not fetch.done():
                fetch.cancel()  # waiting, not handing out: no intent is taken and dropped
            await asyncio.wait([fetch, woken])
        return [] if fetch.cancelled() else fetch.result()

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
        work = Round()
        self.reporter.letter(work, self.name, type(exc).__name__, reason, None)
        await self.reporter.commit(work)
