"""The writing side of a lane: executing the hub's intents for its system.

Writing never overwrites an edit the hub has not seen (but one an API without conditional
writes takes between the lane's read and its write, docs/RELIABILITY.md). An update or a
delete first reads the record and lets :mod:`daemon.lane.decide` say what may be written: a
field already holding the intended value is done (a retried intent), one holding anything
else than the expected value makes the write ``stale`` and nothing is written; the read is
reported first, so the edit reaches the fold. The write is conditional on the version read
where the API allows (a 412 means: read and decide again); where it does not, it is sent
only while the read is fresh (``FRESH_READ_SECONDS``; ``ReadTooOld`` means the same: read
and decide again). A create first looks the record up by its match key, and one without an
idempotency key is journalled before its request and its outcome committed at once; one that
may have landed before (a crash between the request and its outcome, a lost answer) looks
for its copy (:mod:`daemon.lane.copies`): a create never makes a duplicate.

Intents wait (in the journal, not in memory) while the system does not answer: the lane
rewinds to the first intent that could not run, and runs it again once the system answers.
The intents after it that ran are kept in the journal (``ran``, committed with their
outcomes), so they are skipped when handed out again, by this process or the next.
An intent that may have landed although its answer was lost is never reported failed: a
create with an idempotency key is sent again with it; a delete is settled by a read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from conflict.policy import same
from conflict.state import Json
from daemon.connector.rest import ConnectorError, RemoteRecord
from daemon.errors import DaemonError
from daemon.http import HttpError, MalformedResponse, PreconditionFailed, ReadTooOld
from daemon.lane.copies import Copies, Entry
from daemon.lane.decide import Done, Stale, decide_delete, decide_found, decide_update
from daemon.lane.ports import Connector, Delivered, Journal
from daemon.lane.references import Parked, References, WaitForLink
from daemon.lane.report import Health, Reporter, Round
from daemon.lane.verify import not_taken
from streams import DecodeError, WriteIntent, WriteStale, Written, codec

log = logging.getLogger(__name__)

PRECONDITION_ROUNDS = 3
"""How often a write that lost a race (412) is read and decided again before it is failed."""

RETRIABLE_ROUNDS = 3
"""How many rounds an intent may fail with a retriable error while the system otherwise
answers, before it is reported failed (a record the system cannot take, not an outage)."""

DONE_REMEMBERED = 10_000
"""How many committed intent ids a lane remembers, so as not to run one twice in-process
(what must survive a crash is the journal's ``ran``)."""


class Outage(Exception):
    """The system stopped answering in the middle of a round; intents wait for it."""


def edited_after(before: RemoteRecord, answer: RemoteRecord, reread: RemoteRecord) -> bool:
    """Whether ``reread``, the read right after a write, shows a change made after that
    write: the write's answer moved the record on from ``before`` (the read the write was
    decided on), and the re-read moved on again, past both.

    Versions are compared when all three have one (an ETag is opaque: only equality counts),
    else updated-at times (a time is ordered). An API that makes up its answer's version or
    time and stores nothing shows, in the re-read, the version or the time of ``before``:
    not a later change, so the re-read is verified and the write is found not taken.
    """
    if before.version is not None and answer.version is not None \
            and reread.version is not None:
        return answer.version != before.version \
            and reread.version not in (before.version, answer.version)
    if before.updated is not None and answer.updated is not None \
            and reread.updated is not None:
        return before.updated < answer.updated < reread.updated
    return False


def record_of(delivered: Delivered) -> str:
    """The canonical id an intent is for (its own offset when it cannot be read)."""
    try:
        return codec.decode(delivered.value, (WriteIntent,)).canonical_id
    except DecodeError:
        return f"@{delivered.offset}"


class Writer:
    """Executes one lane's intents."""

    def __init__(self, connector: Connector, journal: Journal, reporter: Reporter,
                 health: Health, references: References, parked: Parked) -> None:
        self.connector = connector
        self.journal = journal
        self.reporter = reporter
        self.health = health
        self.references = references
        self.parked = parked
        self.system = connector.system
        self.entity = connector.entity
        self.name = reporter.name
        self.concurrency = connector.config.concurrency
        self._failures: dict[str, int] = {}  # intent id -> rounds failed while the system answered
        # Intents executed and committed by this process, so that one read again after an
        # outage's rewind is not run twice (insertion-ordered, the oldest forgotten first).
        self._done: dict[str, None] = {}
        self._attempted: set[str] = set()  # intents started that wait for the system
        self._unsent: set[str] = set()  # creates journalled by this process, not sent yet
        self.copies = Copies(connector, journal, references)
        self.waits = 0  # batches stopped because the system did not answer
        self.expired_settled = 0  # creates settled without their intent (it expired)
        self._first_seen: dict[str, float] = {}  # entries without a time -> first seen
        self.unanswered: HttpError | None = None  # the last error that stopped a batch

    def unsettled_creates(self) -> list[str]:
        """The creates sent that may have landed without their outcome (a crash, an answer
        lost): until each has run again, a record the lane reads may be one of their
        copies, not a person's new record."""
        return [intent_id for intent_id, raw in self.journal.creating.items()
                if Entry.decode(raw).made is None and intent_id not in self.journal.parked]

    def unsettled_since(self) -> float | None:
        """When the oldest create that may have landed unseen was journalled (``None``: none
        is). An entry written before entries kept the time counts from when this process
        first saw it."""
        times = []
        for intent_id in self.unsettled_creates():
            at = Entry.decode(self.journal.creating[intent_id]).at
            times.append(at if at is not None
                         else self._first_seen.setdefault(intent_id, self.reporter.clock()))
        return min(times, default=None)

    async def settle_expired(self) -> int:
        """Settle the creates that may have landed unseen whose intent the journal no longer
        holds (the ``intents`` retention passed while the lane was down): their intent never
        comes again, so without this the lane would read nothing, for ever.

        The entry carries its intent, so the create is settled as its re-run would be, by
        the search alone: a copy found (by the match key, the canonical id or the content)
        is reported as the create's, and linked; none found, the create is reported failed,
        and the hub plans it again from the canonical record (never a copy made from values
        a week old, which the record may have left behind). Returns how many were settled.
        """
        unsettled = self.unsettled_creates()
        if not unsettled:
            return 0
        start = await self.journal.intents_start()
        work = Round()
        for intent_id in unsettled:
            entry = Entry.decode(self.journal.creating[intent_id])
            if entry.intent is None or entry.offset is None or entry.offset >= start:
                continue  # its intent is still held: it runs again (or a parked one does)
            try:
                intent = codec.decode(entry.intent, (WriteIntent,))
            except DecodeError as exc:  # it was read when journalled; kept, not dropped
                self.reporter.letter(work, self.name, type(exc).__name__,
                                     f"the create entry {intent_id}: {exc}", None)
                work.creating[intent_id] = None
                continue
            outcome = Round(creating={intent_id: None})
            try:
                body: dict[str, Any] | None = self.copies.body(
                    intent, self.references.to_system(intent.values))
            except (WaitForLink, DaemonError, ValueError):
                body = None  # no body to look up by; the search below still runs
            found = None if body is None else await self._look_up(body)
            if found is not None:
                await self._adopt(outcome, intent, found)
            elif (copy := await self.copies.find(intent, entry.since)) is not None:
                self.copies.claimed.add(copy.id)
                await self.reporter.written(outcome, intent, copy, copy.id)
                self.reporter.count_write(intent, "written")
            else:
                outcome.events.append(self.reporter.failed(
                    intent, f"the intent expired from the intents topic (offset "
                    f"{entry.offset}, the first held is {start}) before the create could be "
                    f"settled, and {self.system} holds no copy of it: the hub plans it again",
                    outcome))
            log.warning("lane %s: settled create %s of %s without its intent (expired): %s",
                        self.name, intent_id, intent.canonical_id,
                        type(outcome.events[-1]).__name__ if outcome.events else "nothing",
                        extra={"correlation_id": intent.correlation_id,
                               "intent_id": intent_id})
            work.merge(outcome)
            self.expired_settled += 1
        if work:
            await self.reporter.commit(work)
        return len(work.creating)

    # -- a batch of intents --------------------------------------------------------------
    async def execute_intents(self, timeout_ms: int = 0, max_records: int = 50) -> int:
        """Execute the intents waiting for this lane; how many were executed.

        Up to ``concurrency`` records are written at once (an API's latency, not syncline,
        is what a lane waits for); the intents of one record run in their order. When the
        system stops answering, the lane goes back to the first intent not executed: those
        after it that ran are run again later, and find their values written (done).
        """
        return await self.execute_delivered(
            await self.journal.intents(timeout_ms, max_records))

    async def execute_delivered(self, delivered: Sequence[Delivered]) -> int:
        """Execute intents the journal handed out (:meth:`execute_intents`, which fetched
        them); how many were executed."""
        if not delivered:
            return 0
        groups: dict[str, list[Delivered]] = {}
        for one in delivered:
            groups.setdefault(record_of(one), []).append(one)
        await self._journal_creates(delivered)
        gate = asyncio.Semaphore(self.concurrency)
        outcomes: dict[int, Round] = {}
        stopped: list[int] = []

        async def run(group: list[Delivered]) -> None:
            for one in group:
                outcome = Round()
                try:
                    async with gate:
                        await self._intent(outcome, one)
                except Outage as outage:
                    stopped.append(one.offset)
                    if isinstance(outage.__cause__, HttpError):
                        self.unanswered = outage.__cause__
                    return
                outcomes[one.offset] = outcome

        await asyncio.gather(*(run(group) for group in groups.values()))
        next_offset = min(stopped) if stopped else delivered[-1].offset + 1
        work = Round()
        for one in delivered:
            if one.offset in outcomes:
                work.merge(outcomes[one.offset])
                if one.offset >= next_offset:
                    # Its outcome (or its parking: the parked intents run it) commits while
                    # the offset stays before it (an earlier intent waits): it is handed out
                    # again, by this process or, after a kill, by the next, and must not run
                    # again (a create would undo a person's delete of its copy, or make two).
                    outcome = outcomes[one.offset]
                    parked = [i for i, raw in outcome.parked.items() if raw is not None]
                    work.ran.update(dict.fromkeys([*outcome.done, *parked],
                                                  str(one.offset).encode()))
        for intent_id, offset in self.journal.ran.items():
            if int(offset) < next_offset:  # the offset moves past it: never handed out again
                work.ran[intent_id] = None
        # One record's events are in their order; all of them in sequence-number order.
        work.events.sort(key=lambda event: getattr(event, "seq", 0))
        if stopped:
            self.journal.rewind_intents(next_offset)
            self.waits += 1
        self.journal.head.intents_offset = next_offset
        for intent_id in work.done:  # the offset moves past them: their entries are done
            if intent_id in self.journal.creating:
                work.creating[intent_id] = None
        await self.reporter.commit(work)
        for intent_id in work.done:
            self._done[intent_id] = None
        while len(self._done) > DONE_REMEMBERED:
            del self._done[next(iter(self._done))]
        return len(outcomes)

    async def _journal_creates(self, delivered: Sequence[Delivered]) -> None:
        """The journal entries of the batch's creates that were never sent, in one commit
        before any of them is (see :mod:`daemon.lane.copies`)."""
        if self.connector.idempotent_creates:
            return
        entries: dict[str, bytes | None] = {}
        for one in delivered:
            try:
                intent = codec.decode(one.value, (WriteIntent,))
            except DecodeError:
                continue
            if (intent.op == "create" and intent.system == self.system
                    and intent.entity == self.entity and intent.intent_id not in self._done
                    and intent.intent_id not in self.journal.ran
                    and intent.intent_id not in self.journal.creating):
                entries[intent.intent_id] = Entry(
                    self.journal.head.cursor, intent=one.value, offset=one.offset,
                    at=self.reporter.clock()).encode()
        if entries:
            await self.reporter.commit(Round(creating=entries))
            self._unsent.update(entries)

    async def _intent(self, work: Round, delivered: Delivered) -> None:
        try:
            intent = codec.decode(delivered.value, (WriteIntent,))
        except DecodeError as exc:
            # Any bytes may be the key of a hostile record: the letter keeps them as they were.
            key = delivered.key.decode("utf-8", "replace") if delivered.key else self.name
            self.reporter.letter(work, key,
                                 type(exc).__name__, str(exc), None, delivered)
            return
        if intent.system != self.system or intent.entity != self.entity:
            return  # another lane's intent in the same partition
        if intent.intent_id in self._done or intent.intent_id in self.journal.ran:
            return  # ran and committed before an outage rewound the intents (or a restart)
        # Run before (by an earlier process, or by this one before an outage) and maybe done.
        rerun = (delivered.offset < self.journal.resumed_below
                 or intent.intent_id in self._attempted)
        self._attempted.add(intent.intent_id)
        try:
            outcome = await self.execute(intent, rerun=rerun)
        except WaitForLink as wait:
            log.info("lane %s: %s waits: %s", self.name, intent.intent_id, wait,
                     extra={"correlation_id": intent.correlation_id,
                            "intent_id": intent.intent_id})
            assert delivered.value is not None
            self.parked.park(intent.intent_id, delivered.value)
            work.parked[intent.intent_id] = delivered.value
            self._attempted.discard(intent.intent_id)
            return
        except HttpError as exc:
            outcome = await self._after_error(intent, exc, work, delivered)
        except (DaemonError, ValueError) as exc:
            outcome = Round([self.reporter.failed(intent, str(exc), work, delivered)])
        self._failures.pop(intent.intent_id, None)
        self._attempted.discard(intent.intent_id)
        outcome.done.append(intent.intent_id)
        work.merge(outcome)
        for event in outcome.events:
            if isinstance(event, Written):
                self.reporter.count_write(intent, "written")
            elif isinstance(event, WriteStale):
                self.reporter.count_write(intent, "stale")

    async def _after_error(self, intent: WriteIntent, exc: HttpError, work: Round,
                           delivered: Delivered) -> Round:
        """The system did not answer an intent usefully: wait (:class:`Outage`), or its outcome.
        """
        unknown = exc.retriable or isinstance(exc, MalformedResponse)
        if unknown and intent.op == "create" and self.connector.idempotent_creates:
            # The create may have happened; only the API's answer to the same key can say,
            # and a create that landed is never reported failed (the fold would take the
            # copy for a person's): it waits like in an outage, and is sent again with its key.
            self.health.failed(exc)
            raise Outage from exc
        if exc.retriable and self._failures.get(intent.intent_id, 0) < RETRIABLE_ROUNDS:
            self._failures[intent.intent_id] = self._failures.get(intent.intent_id, 0) + 1
            self.health.failed(exc)
            raise Outage from exc
        # A retriable error or a garbled answer may hide a delete that happened.
        if intent.op == "delete" and unknown:
            return await self._settle_delete(intent, exc, work, delivered)
        return Round([self.reporter.failed(intent, str(exc), work, delivered)])

    async def _settle_delete(self, intent: WriteIntent, exc: HttpError, work: Round,
                             delivered: Delivered) -> Round:
        """A delete that kept failing may still have landed: only a read can say.

        The lane never reports a delete failed when it landed (the fold could not tell its
        echo from a person's delete): the copy is read once more, and while that read fails
        too the intent waits like in an outage.
        """
        assert intent.external_id is not None
        try:
            still = await self.connector.fetch(intent.external_id)
        except HttpError as again:
            self.health.failed(again)
            raise Outage from again
        outcome = Round()
        if still is None:
            await self.reporter.written(outcome, intent, None, intent.external_id)
        else:
            outcome.events.append(self.reporter.failed(intent, str(exc), work, delivered))
        return outcome

    # -- one intent ----------------------------------------------------------------------
    async def execute(self, intent: WriteIntent, *, rerun: bool = False) -> Round:
        """Carry out one intent; the observations that say what happened, to commit.

        ``rerun``: it may have run before without its outcome being committed: an earlier
        process had it when it died, or this one before the system stopped answering.
        Raises :class:`~daemon.http.HttpError` when the system did not answer usefully.
        """
        work = Round()
        if intent.op == "create":
            await self._create(work, intent, rerun=rerun)
            return work
        external_id = intent.external_id
        if external_id is None:
            raise ConnectorError(f"an {intent.op} intent without an external id")
        too_old: ReadTooOld | None = None
        for _ in range(PRECONDITION_ROUNDS):
            current = await self.connector.fetch(external_id)
            if current is None:
                if intent.op == "delete":
                    await self.reporter.written(work, intent, None, external_id)
                else:
                    self.reporter.observe_deleted(work, external_id, None)
                    self.reporter.stale(work, intent, [])
                return work
            held = (await self.references.read(current)).values
            try:
                if intent.op == "delete":
                    verdict = decide_delete(held, intent.expected)
                    if isinstance(verdict, Stale):
                        await self.reporter.stale_after_read(work, intent, current,
                                                             verdict.changed)
                        return work
                    await self.connector.delete(external_id, current.precondition)
                    await self.reporter.written(work, intent, None, external_id)
                    return work
                decision = decide_update(held, intent.values, intent.expected)
                if isinstance(decision, Stale):
                    await self.reporter.stale_after_read(work, intent, current,
                                                         decision.changed)
                    return work
                if isinstance(decision, Done):
                    await self.reporter.written(work, intent, current, current.id)
                    return work
                stopped = self.reporter.breaker.is_open(external_id)
                if stopped is not None:
                    work.events.append(self.reporter.failed(intent, stopped, work))
                    return work
                answer = await self.connector.update(
                    external_id, self.references.to_system(decision.values),
                    current.precondition, read_at=current.read_at, read_id=current.read_id)
                # An answer proves nothing of what was kept: an API answering 200 to
                # everything echoes the body, at the old version or with a new one it made
                # up. What a read right after shows is verified instead (the connector made
                # that read already where the answer holds no record: answer: id|none),
                # unless that read shows a change made after the write: then it holds a
                # person's edit, which the next read reports, and the answer is verified.
                after = answer
                if self.connector.config.update.answer == "record":
                    reread = await self.connector.fetch(external_id)
                    if answer is None or reread is None or not (
                            edited_after(current, answer, reread)
                            or await self._third_value(intent, held, answer, reread)):
                        after = reread
            except ReadTooOld as exc:
                # Not sent: the read is too old by now to write over unconditionally.
                log.info("lane %s: the write of %s was not sent, its read too old by then; "
                         "reading again", self.name, external_id,
                         extra={"correlation_id": intent.correlation_id,
                                "intent_id": intent.intent_id, "external_id": external_id})
                too_old = exc
                continue
            except PreconditionFailed:
                too_old = None
                continue  # changed between our read and our write: read and decide again
            if after is None:
                self.reporter.observe_deleted(work, external_id, None)
                self.reporter.stale(work, intent, [])
            else:
                missed = await self.reporter.written(work, intent, after, after.id)
                self.reporter.loop_check(work, after.id, self.reporter.breaker.wrote(
                    after.id, decision.values, held=not missed))
            return work
        if too_old is not None:
            raise too_old  # retriable: the intent waits and runs again, reading first
        raise ConnectorError(f"{self.system} kept changing record {external_id} "
                             f"during {PRECONDITION_ROUNDS} conditional writes")

    async def _third_value(self, intent: WriteIntent, held: Mapping[str, Json],
                           answer: RemoteRecord, reread: RemoteRecord) -> bool:
        """Whether the read right after a write shows, in a field the write set, a value
        that is neither the write's nor the one held before it, while the answer shows the
        write kept: a change made after the write (a person's edit), for an API whose
        versions and times cannot order the three reads (none, or whole seconds).

        An answer that does not show the write proves nothing, and a re-read showing the
        value held before is what a write that did not take leaves (or an answer made up):
        both are verified on the re-read, as ever.
        """
        answered = (await self.reporter.read(answer)).values
        if not_taken(intent.values, answered, self.reporter.normalise):
            return False
        now = (await self.reporter.read(reread)).values
        moved = [name for name in intent.values
                 if name in now and not same(now[name], answered.get(name))]
        return bool(moved) and all(not same(now[name], held.get(name)) for name in moved)

    async def _create(self, work: Round, intent: WriteIntent, *, rerun: bool = False) -> None:
        """Create the record, unless the system holds it already: never two copies.

        A lookup by match key finds the record made by an earlier try (or by a person). An
        API with idempotent creates is sent the intent's id as the key, so a re-run gets the
        first create's answer, and a read of that copy tells whether it is still there (a
        person's delete of it is then reported after the create, like any delete). Without
        one, the create is journalled before its request and its outcome committed at once
        (:mod:`daemon.lane.copies`); a create whose entry says it may have landed (a crash
        between the request and the outcome, an answer lost or unreadable) first looks for
        its copy. A copy an earlier process made that a person deleted since is found by
        nothing: the create is made again, the one window where a person's delete can be
        undone (docs/DECISIONS.md).
        """
        entry = None if self.connector.idempotent_creates else self.copies.entry(intent)
        if entry is not None and entry.made is not None:
            return  # its outcome is committed: the batch that ran it did not get to commit
        body = self.copies.body(intent, self.references.to_system(intent.values))
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
                await self.reporter.written(work, intent, created, created.id)
                self.reporter.observe_deleted(work, created.id, None)
                return
            await self.reporter.written(work, intent, created, created.id)
            return
        if entry is None:  # not journalled with its batch (a parked intent, say)
            entry = Entry(self.journal.head.cursor, intent=codec.encode(intent),
                          at=self.reporter.clock())
            await self.reporter.commit(Round(creating={intent.intent_id: entry.encode()}))
        elif intent.intent_id not in self._unsent:
            # Sent before, by this process or an earlier one: it may have landed.
            copy = await self.copies.find(intent, entry.since)
            if copy is not None:
                await self._made(intent, copy)
                return
        self._unsent.discard(intent.intent_id)
        try:
            created = await self.connector.create(body)
        except HttpError as exc:
            # A timeout or a garbled answer may hide a create that happened; a duplicate-key
            # answer means the record exists. The copy, if any, tells.
            if exc.retriable or isinstance(exc, MalformedResponse) or exc.status in (409, 422):
                found = await self._look_up(body)
                if found is not None:
                    await self._adopt(work, intent, found)
                    return
                if exc.status not in (409, 422):
                    copy = await self.copies.find(intent, entry.since)
                    if copy is not None:
                        await self._made(intent, copy)
                        return
            raise
        if created is None:
            created = await self._look_up(body) or await self.copies.find(intent, entry.since)
            if created is None:
                raise ConnectorError(f"{self.system} answered a create without the record "
                                     "or its location, and no lookup finds it")
        await self._made(intent, created)

    async def _made(self, intent: WriteIntent, created: RemoteRecord) -> None:
        """The create made ``created``: its outcome committed at once, with its entry."""
        self.copies.claimed.add(created.id)
        outcome = Round(creating={intent.intent_id: Entry(None, created.id).encode()})
        await self.reporter.written(outcome, intent, created, created.id)
        await self.reporter.commit(outcome)
        self.reporter.count_write(intent, "written")

    async def _look_up(self, body: Mapping[str, Any]) -> RemoteRecord | None:
        lookup = self.connector.config.lookup
        if not self.connector.can_look_up or lookup is None:
            return None
        if not all(body.get(name) not in (None, "") for name in lookup.fields()):
            return None  # no match key to look up by
        found = await self.connector.lookup(body)
        return found[0] if found else None

    async def _adopt(self, work: Round, intent: WriteIntent, found: RemoteRecord) -> None:
        """A record with the intent's match key exists already: ours, or a person's."""
        held = (await self.references.read(found)).values
        verdict = decide_found(held, intent.values)
        if isinstance(verdict, Done):
            await self.reporter.written(work, intent, found, found.id)  # our own, made before
        else:
            await self.reporter.stale_after_read(work, intent, found, verdict.changed)

    # -- parked intents ------------------------------------------------------------------
    async def retry_parked(self) -> None:
        """Run the intents that waited for a link, now that links changed (or time is up)."""
        if not self.parked.due():
            return
        self.parked.clear_changed()
        work = Round()
        for intent_id, (raw, since) in sorted(self.parked.intents.items()):
            intent = codec.decode(raw, (WriteIntent,))
            try:
                outcome = await self.execute(intent)
            except WaitForLink as wait:
                if not self.parked.waited_out(since):
                    continue
                outcome = Round([self.reporter.failed(
                    intent, f"waited {self.parked.wait:.0f} s: {wait}", work)])
            except (DaemonError, ValueError) as exc:
                if isinstance(exc, HttpError) and exc.retriable:
                    raise
                outcome = Round([self.reporter.failed(intent, str(exc), work)])
            work.merge(outcome)
            work.parked[intent_id] = None
            if intent_id in self.journal.creating:
                work.creating[intent_id] = None
        if work:
            await self.reporter.commit(work)
            self.parked.release(i for i, raw in work.parked.items() if raw is None)
