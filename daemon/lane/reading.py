"""The reading side of a lane: polls, records webhooks named, and deletes.

- A **poll** lists the records changed since the cursor (every page), reports each record
  whose mapped values the lane has not reported before, and moves the cursor only with the
  commit of what it reported.
- A **webhook** names records to read soon; each is read and reported like a polled one.
- **Deletes** come from the API's delete feed, from tombstones in the listing, or else from
  a periodic **sweep** over all records that confirms each missing one with a read (a record
  that merely fell out of a filter still answers, so it is not a delete).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from daemon.connector.rest import ConnectorError, RemoteRecord
from daemon.errors import DaemonError
from daemon.lane.ports import Connector, Journal
from daemon.lane.report import Health, Reporter, Round
from daemon.metrics import Metrics

log = logging.getLogger(__name__)

WALKS = 3
"""How often a poll walks the changes again when records moved under the walk."""


class Reader:
    """Reads one system's entity and reports what changed there."""

    def __init__(self, connector: Connector, journal: Journal, reporter: Reporter,
                 health: Health, *, clock: Callable[[], float], metrics: Metrics | None
                 ) -> None:
        self.connector = connector
        self.journal = journal
        self.reporter = reporter
        self.health = health
        self.clock = clock
        self.metrics = metrics
        self.name = reporter.name
        self.sweep_every = connector.config.deletes.reconcile_every_seconds
        self.polls = 0  # complete polls, for status and tests
        self.triggers: dict[str, bool] = {}  # external id -> a webhook said it was deleted
        self.breaker: str | None = None  # why the last sweep held its deletes, while it does

    def request_read(self, external_id: str, deleted_hint: bool = False) -> None:
        """Read this record at the next round (a webhook named it)."""
        self.triggers[external_id] = self.triggers.get(external_id, False) or deleted_hint

    async def poll(self) -> int:
        """Report every record changed since the cursor; how many were reported.

        Each page is committed as it is read; the cursor moves once the walk is complete.
        A record seen twice in one walk moved while it was walked, which can shift a paged
        listing under the walk, so the walk is repeated (records already reported are not
        reported again).
        """
        started = time.monotonic()
        reported = 0
        head = self.journal.head
        for _ in range(WALKS):
            since = head.cursor
            newest = since
            seen: set[str] = set()
            moved = False
            async for page in self.connector.changes(since):
                work = Round()
                for record in page.records:
                    if not isinstance(record, RemoteRecord):
                        self.reporter.bad_record(work, record, page.url)
                        continue
                    moved = moved or record.id in seen
                    seen.add(record.id)
                    if record.updated is not None:
                        newest = record.updated if newest is None else max(newest, record.updated)
                    reported += await self.reporter.observe(work, record)
                if work:
                    await self.reporter.commit(work)
                self.health.answered()
            self.health.answered()
            if not moved:
                break
            log.info("lane %s: records moved during the walk; walking again", self.name)
        if newest != head.cursor:
            head.cursor = newest
            await self.reporter.commit(Round())
        self.polls += 1
        if self.metrics is not None:
            system, entity = self.connector.system, self.connector.entity
            self.metrics.lane_poll_seconds.labels(system, entity).observe(
                time.monotonic() - started)
            if newest is not None:
                self.metrics.lane_cursor_lag_seconds.labels(system, entity).set(
                    max(0.0, self.clock() - newest))
        return reported

    async def read_triggered(self) -> None:
        """Read the records webhooks named since the last round.

        Up to ``concurrency`` reads are in flight at once (one read after another, a lane
        behind 100 webhooks a second falls seconds behind on a round trip of 10 ms); what
        they found is reported in the records' id order, as before. A read the system did
        not answer (a retriable error) is tried again next round, its error raised once the
        rest is reported.
        """
        triggers, self.triggers = self.triggers, {}
        ids = sorted(triggers)
        gate = asyncio.Semaphore(self.connector.config.concurrency)

        async def read(external_id: str) -> RemoteRecord | None:
            async with gate:
                return await self.connector.fetch(external_id)

        answers = await asyncio.gather(*(read(i) for i in ids), return_exceptions=True)
        work = Round()
        unanswered: BaseException | None = None
        for external_id, answer in zip(ids, answers, strict=True):
            if isinstance(answer, ConnectorError):  # this record is broken; the others are not
                self.reporter.letter(work, f"{self.name}/{external_id}",
                                     type(answer).__name__, str(answer), None)
            elif isinstance(answer, BaseException):
                if isinstance(answer, DaemonError) and answer.retriable:
                    self.request_read(external_id, triggers[external_id])  # next round
                # (else, as a broken answer, it is left to the next poll: read again each
                # round, it would stop the lane's writes for good)
                unanswered = unanswered or answer
            elif answer is None:
                if external_id in self.journal.index or external_id in work.index:
                    self.reporter.observe_deleted(work, external_id, None)
            else:
                await self.reporter.observe(work, answer)
        if work:
            await self.reporter.commit(work)
        if unanswered is not None:
            raise unanswered

    async def deletes(self) -> None:
        """Find deletes the way the system allows: its feed, else (without tombstones) a sweep
        when one is due."""
        if self.connector.delete_feed:
            await self._read_delete_feed()
        elif self.connector.config.deletes.tombstone is None:
            swept = self.journal.head.swept_at
            if swept is None or self.clock() - swept >= self.sweep_every:
                await self.sweep()

    async def _read_delete_feed(self) -> None:
        head = self.journal.head
        newest = head.deletes_cursor
        async for page in self.connector.deletions(head.deletes_cursor):
            work = Round()
            for deletion in page:
                if deletion.at is not None:
                    newest = deletion.at if newest is None else max(newest, deletion.at)
                if deletion.id in self.journal.index:
                    self.reporter.observe_deleted(work, deletion.id, deletion.at)
            if work:
                await self.reporter.commit(work)
        if newest != head.deletes_cursor:
            head.deletes_cursor = newest
            await self.reporter.commit(Round())

    async def sweep(self) -> int:
        """Walk every record: report changes a poll missed and records that disappeared.

        A record the lane knows that is not in the listing is read once more: only a "not
        found" makes it a delete. When too many known records are missing (the circuit
        breaker, ``deletes.max_missing_share``), none is: the sweep holds until one finds
        them again. Returns how many deletes were found.
        """
        work = Round()
        present: set[str] = set()
        async for page in self.connector.changes(None):
            for record in page.records:
                if isinstance(record, RemoteRecord):
                    present.add(record.id)
                    await self.reporter.observe(work, record)
                elif record.id is not None:
                    present.add(record.id)  # unreadable, but there: not a delete
        deleted = 0
        missing = sorted(external_id for external_id in set(self.journal.index) - present
                         if work.index.get(external_id, "") is not None)
        if self._trip(len(missing), len(self.journal.index)):
            missing = []
        for external_id in missing:
            still = await self.connector.fetch(external_id)
            if still is None:
                self.reporter.observe_deleted(work, external_id, None)
                deleted += 1
            else:
                await self.reporter.observe(work, still)
        self.journal.head.swept_at = self.clock()
        await self.reporter.commit(work)
        return deleted

    def _trip(self, missing: int, known: int) -> bool:
        """Whether a sweep that misses ``missing`` of ``known`` records must hold its deletes.
        """
        deletes = self.connector.config.deletes
        opened = (missing > deletes.max_missing_records
                  and missing > deletes.max_missing_share * known)
        if opened:
            self.breaker = (f"delete breaker open: a sweep found {missing} of {known} known "
                            f"records missing (more than {deletes.max_missing_share:.0%}); "
                            "deleting none of them until a sweep finds them again")
            log.error("lane %s: %s", self.name, self.breaker)
        elif self.breaker is not None:
            log.warning("lane %s: delete breaker closed: a sweep found %d of %d known records "
                        "missing", self.name, missing, known)
            self.breaker = None
        if self.metrics is not None:
            self.metrics.delete_breaker_open.labels(
                self.connector.system, self.connector.entity).set(1 if opened else 0)
        return opened
