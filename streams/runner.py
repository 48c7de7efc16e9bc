"""The exactly-once stage runner: consume, handle, produce and commit, one transaction per
partition and batch.

A :class:`StageRunner` consumes its source topics in a consumer group, hands every record to
its stage's ``handle`` function together with the state of the record's partition
(:mod:`streams.stores`), and produces the outputs, the changed state (to a compacted
changelog topic) and the consumed offsets in **one Kafka transaction per partition and
batch** (:mod:`streams.transactions`). A crash at any point leaves either all of a batch's
effects or none: a new owner restores the state from the changelog
(:mod:`streams.restore`), consumption resumes at the committed offsets, and a
``read_committed`` consumer of the outputs never sees a duplicate.

Source topics of a stage are co-partitioned (same partition count, same key) and assigned
with the range assignor, so one worker owns partition ``p`` of every source topic, and of
the changelog, at once; one transactional producer per partition number fences a zombie.

**Checkpointed changelog.** A stage with one source topic may write its changelog only every
few seconds while it works through a backlog (``checkpoint_interval``); a batch that is not
full (no backlog) or a partition gone idle writes it at once. Outputs of compacted roles (the
record events) are held until then and produced with it. Every transaction of such a stage
also writes a marker (:mod:`streams.checkpoint`) with the source offset its changelog
reflects and the offset the transaction commits; a new owner folds the records in between
again. A record changed in every batch is then written once per checkpoint, not once per
batch (docs/BENCHMARKS.md).

Why not faust-streaming's ``processing_guarantee="exactly_once"``: its outputs to topics the
app does not consume are not part of the input's transaction, and an output to another
partition rides on that partition's transaction (``tests/streams/test_faust_eos.py``,
docs/DECISIONS.md). The fold is idempotent too (sequence numbers), a second line of defence
should a transaction ever be lost.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from typing import Any

from aiokafka import TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.coordinator.assignors.range import RangePartitionAssignor

from streams.checkpoint import CHECKPOINT_KEY, encode_checkpoint
from streams.errors import StreamsError
from streams.kafka import (
    KafkaSettings,
    new_group_consumer,
    new_reader,
    position_now,
    translated,
)
from streams.merge import Output
from streams.partition import Batch, Handled, Owned, ProducerRecord, Stats, hold
from streams.restore import Handler, Restored, restore
from streams.stores import AnyStore, Kept
from streams.transactions import Transactions

log = logging.getLogger(__name__)

LAG_EVERY = 1.0
"""Seconds between two measurements of the consumer's lag."""

SLICE = 50
"""Inputs handled between two turns of the event loop (~2 ms of the merge's work)."""

CHECKPOINT_IDLE = 0.25
"""Seconds without new input after which a stage whose changelog lags writes it (default)."""

NEVER = None
"""``checkpoint_idle=NEVER``: a lagging changelog waits for ``checkpoint_interval`` alone,
even when its stage has caught up (for tests of a changelog behind its offsets)."""

FETCH_MAX_WAIT_MS = 50
"""How long the broker may hold a fetch that finds nothing new (aiokafka's default: 500).

The consumer has one fetch in flight per broker. While a busy partition is paused (enough of
it is waiting to be handled), the fetch covers only the others; if they are quiet, the broker
holds it for this long, and the busy partition, resumed meanwhile, waits for it. With 500 ms
the route stage, whose input sits in one partition per lane, idled two thirds of the time
(13,800 observations/s, 2.3 s of CPU in 7.2 s; with 50 ms: 43,000/s, CPU-bound)."""


class StageRunner:
    """Runs one stage: consume, handle, produce and commit, exactly once."""

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        group_id: str,
        sources: list[str],
        changelog: str,
        store: AnyStore,
        handle: Handler,
        topic_of: Callable[[str], str],
        max_batch: int = 1000,
        compacted: frozenset[str] = frozenset(),
        output_roles: tuple[str, ...] = (),
        checkpoint_interval: float = 0.0,
        checkpoint_idle: float | None = CHECKPOINT_IDLE,
    ) -> None:
        if checkpoint_interval < 0:
            raise ValueError("checkpoint_interval must not be negative")
        if checkpoint_interval > 0 and len(sources) != 1:
            raise ValueError("a stage with several source topics writes its changelog in "
                             "every transaction: their records could not be folded again "
                             "in the order they were")
        self.settings = settings
        self.group_id = group_id
        self.sources = sources
        self.changelog = changelog
        self.store = store
        self.handle = handle
        # Called for every output: the names of a few roles, built once.
        self.topic_of = functools.cache(topic_of)
        self.max_batch = max_batch  # inputs per transaction, at most
        # Output roles whose topic is compacted: one output per key is produced, the last
        # (readers of a compacted topic want the latest anyway), with what the earlier ones
        # said that it does not (``Output.then``). A single-source stage holds them until
        # its changelog is written, in the same transaction: they are as of the checkpoint
        # (a quiet stream: every batch), and a new owner folding the inputs since the
        # checkpoint again rebuilds the ones not produced yet.
        self.compacted = compacted
        # The topics a new producer learns at once (the changelog's, and these roles'): its
        # first send to a topic it has no metadata for waits ~100 ms per topic, in the first
        # transaction after every assignment.
        self.output_roles = output_roles
        # With one source, the changelog may lag behind the committed offsets by up to this
        # many seconds of a partition's work; the checkpoint marker says by how much.
        self.checkpoint_interval = checkpoint_interval
        self.checkpoint_idle = checkpoint_idle  # and once a partition had no input this long
        self.marked = len(sources) == 1
        self.stats = Stats()
        self._consumer: Any = None
        self._owned: dict[int, Owned] = {}
        self._lock = asyncio.Lock()  # rebalances and shutdown, one at a time
        self._handling = asyncio.Lock()  # one partition's batch handled at a time
        self._transactions = Transactions(settings, group_id, self.stats)
        self._source_counts: dict[str, int] = {}  # partitions of each source topic
        self.ready = asyncio.Event()  # set once partitions are assigned and restored
        # A stop abandons a restore under way (see assigned): set once ``run`` winds down.
        self._stopping = False
        self._restoring: asyncio.Task[Restored] | None = None

    # -- lifecycle -----------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Process until ``stop`` is set; raises on a failure that needs a restart."""
        consumer = new_group_consumer(
            self.settings, self.group_id,
            partition_assignment_strategy=(RangePartitionAssignor,),
            max_poll_records=self.max_batch,
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        )
        self._consumer = consumer
        with translated(self.settings, f"start consumer group {self.group_id}"):
            await consumer.start()
        consumer.subscribe(self.sources, listener=_Listener(self))
        measured = 0.0
        try:
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=200, max_records=self.max_batch)
                if time.monotonic() - measured >= LAG_EVERY:
                    measured = time.monotonic()
                    self._measure_lag(consumer)
                for owned in self._owned.values():
                    error = owned.failure()
                    if error is not None:
                        raise error
                if batch:
                    async with self._lock:  # records may come while a rebalance restores
                        self._dispatch(batch)
        finally:
            self._abandon_restore()  # else the lock below waits for every partition's restore
            async with self._lock:
                await self._release(set(self._owned))
            await consumer.stop()
            self._consumer = None

    def _measure_lag(self, consumer: Any) -> None:
        """Records behind the end of every assigned source partition (for /metrics): the
        last stable offset (transactions' markers and open ones do not count) less the
        consumer's position, where both are known now."""
        lag = self.stats.lag
        assigned = consumer.assignment()
        for topic, p in [key for key in lag if TopicPartition(*key) not in assigned]:
            del lag[topic, p]
        for tp in assigned:
            end = consumer.last_stable_offset(tp)
            if end is None:
                end = consumer.highwater(tp)
            if end is None:
                continue
            position = position_now(consumer, tp)
            if position is not None:
                lag[tp.topic, tp.partition] = max(0, end - position)

    def _dispatch(self, batch: dict[TopicPartition, list[Any]]) -> None:
        """Hand consumed records to their partitions' tasks."""
        for tp, records in batch.items():
            owned = self._owned.get(tp.partition)
            if owned is None:
                continue  # revoked meanwhile

            owned.add(tp, records)
            if owned.count >= 2 * self.max_batch and not owned.paused:
                self._consumer.pause(*self._sources_of(tp.partition))
                owned.paused = True

    def _source_partitions(self, topic: str) -> int:
        """How many partitions a source topic has (0 if the consumer does not know yet)."""
        count = self._source_counts.get(topic)
        if count is None:
            known = self._consumer.partitions_for_topic(topic) if self._consumer else None
            if not known:
                return 0
            count = self._source_counts[topic] = len(known)
        return count

    def owned_partitions(self) -> list[int]:
        """The partition numbers this runner owns now (assigned and restored)."""
        return sorted(self._owned)

    def changelog_written(self) -> bool:
        """Whether every owned partition's changelog holds its state as of what it handled:
        nothing waits for a checkpoint or for a transaction."""
        return all(not owned.lagging and owned.handled.empty()
                   and (owned.committing is None or owned.committing.done())
                   for owned in self._owned.values())

    def _sources_of(self, p: int) -> list[TopicPartition]:
        return [TopicPartition(topic, p) for topic in self.sources
                if TopicPartition(topic, p) in self._consumer.assignment()]

    async def _drive(self, p: int, owned: Owned) -> None:
        """Handle partition ``p``'s records and commit them, batch after batch; write the
        changelog once nothing has arrived for ``checkpoint_idle`` seconds."""
        while True:
            if (owned.lagging and not owned.arrived.is_set()
                    and self.checkpoint_idle is not NEVER):
                try:
                    await asyncio.wait_for(owned.arrived.wait(), self.checkpoint_idle)
                except TimeoutError:
                    handled = self._checkpoint(p, owned)
                    owned.outstanding += 1
                    await owned.handled.put(handled)
                    continue
            else:
                await owned.arrived.wait()
            batch = owned.take(self.max_batch)
            if owned.paused and owned.count < self.max_batch and self._consumer is not None:
                self._consumer.resume(*self._sources_of(p))
                owned.paused = False
            async with self._handling:  # one batch at a time: see _handle
                handled = await self._handle(p, batch, owned)
            owned.outstanding += 1  # its changes are in the store (see _release)
            await owned.handled.put(handled)

    async def _commit_all(self, p: int, owned: Owned) -> None:
        """Commit partition ``p``'s handled batches, one transaction after the other."""
        while True:
            handled = await owned.handled.get()
            owned.committing = asyncio.create_task(self._commit(p, owned, handled))
            # Shielded: a revoke cancels this task, never a transaction half-way.
            await asyncio.shield(owned.committing)

    async def _commit(self, p: int, owned: Owned, handled: Handled) -> None:
        await self._transactions.commit(p, owned.producer, handled)
        owned.outstanding -= 1

    async def _handle(self, p: int, batch: Batch, owned: Owned) -> Handled:
        """Run the stage over a batch: the records to produce, the changelog, the offsets.

        Gives the event loop a turn every :data:`SLICE` records: a transaction takes dozens
        of turns (sending, acknowledgements, offsets, commit), and without them would not
        progress until the other partitions' batches, ~100 ms each, were all handled. Only
        one batch is handled at a time, so a turn costs one slice, not one per partition.
        """
        state = self.store.partition(p)
        offsets: dict[TopicPartition, int] = {}
        records: list[ProducerRecord] = []
        latest = owned.held if self.marked else {}  # compacted roles: last per key
        inputs = dead_letters = 0
        started, cpu = time.perf_counter(), time.thread_time()
        work = 0.0  # CPU seconds of this thread in this batch: the turns given away excluded
        remember = self._transactions.partitioner.remember
        for tp, consumed in batch:
            count = self._source_partitions(tp.topic)
            for i, record in enumerate(consumed, 1):
                if i % SLICE == 0:
                    self.stats.handling_seconds += time.perf_counter() - started
                    work += time.thread_time() - cpu
                    await asyncio.sleep(0)
                    started, cpu = time.perf_counter(), time.thread_time()
                if record.key is not None and count:
                    remember(record.key, count, p)
                for out in self.handle(record, state):
                    if out.role in self.compacted:
                        hold(latest, out)
                        continue
                    if out.role == "dlq":
                        dead_letters += 1
                    records.append((self.topic_of(out.role), out.key.encode(),
                                    out.encoded(), None))
            offsets[tp] = consumed[-1].offset + 1
            inputs += len(consumed)
        # The changelog is written in every transaction of a stage with several sources;
        # with one, at least every ``checkpoint_interval`` seconds of the partition's work
        # (CPU time, which is what a new owner redoes: wall time would write it more often
        # the more the worker shares its cores, for the same work to redo), whenever a batch
        # is not full (nothing more was waiting: no backlog), and once the partition is idle
        # (``_drive``).
        owned.work += work + time.thread_time() - cpu
        checkpoint = (not self.marked or owned.checkpoint is None
                      or owned.work >= self.checkpoint_interval
                      or (inputs < self.max_batch and self.checkpoint_idle is not NEVER))
        if checkpoint:
            self._write_held(latest, records)
            records.extend(self._changes(p))
        if self.marked and offsets:
            (owned.committed,) = offsets.values()
            if checkpoint:
                owned.checkpoint, owned.work = owned.committed, 0.0
            records.append(self._marker(p, owned))
        self.stats.consumed += inputs
        self.stats.handling_seconds += time.perf_counter() - started
        return Handled(records, offsets, inputs, dead_letters, checkpoint)

    def _checkpoint(self, p: int, owned: Owned) -> Handled:
        """A transaction of the changelog alone: what the batches since the last one
        changed, and a marker that it is caught up with the committed offset."""
        assert owned.lagging
        records: list[ProducerRecord] = []
        self._write_held(owned.held, records)
        records.extend(self._changes(p))
        owned.checkpoint, owned.work = owned.committed, 0.0
        records.append(self._marker(p, owned))
        return Handled(records, {}, 0, 0, True)

    def _changes(self, p: int) -> list[ProducerRecord]:
        """The changelog records of partition ``p``'s states changed since it was written."""
        return [(self.changelog, key.encode(), value, p) for key, value in self.store.changes(p)]

    def _marker(self, p: int, owned: Owned) -> ProducerRecord:
        """The checkpoint marker of partition ``p``: where its changelog and its commits are."""
        assert owned.checkpoint is not None
        return (self.changelog, CHECKPOINT_KEY.encode(),
                encode_checkpoint(owned.checkpoint, owned.committed), p)

    def _write_held(self, held: dict[tuple[str, str], Output],
                    records: list[ProducerRecord]) -> None:
        """Move the held outputs of compacted roles to ``records``."""
        for out in held.values():
            records.append((self.topic_of(out.role), out.key.encode(), out.encoded(), None))
        held.clear()

    # -- rebalancing ---------------------------------------------------------------------
    async def assigned(self, tps: set[TopicPartition]) -> None:
        """New partitions: fence their previous owner, restore their state.

        A stop while this restores abandons the restore (:meth:`_abandon_restore`): the
        ones not reached yet are not started, ``run`` releases the partition being restored
        with the others (its half-read store dropped), and nothing is committed; the next
        owner restores them from the changelog, as after any assignment (docs/DECISIONS.md).
        """
        self._source_counts.clear()  # a rebalance follows a change of partition count
        async with self._lock:
            for p in sorted({tp.partition for tp in tps} - set(self._owned)):
                producer = await self._transactions.start_producer(
                    p, [self.changelog, *map(self.topic_of, self.output_roles)])
                owned = self._owned[p] = Owned(producer)
                if self._stopping:  # before the lock, or while the producer started
                    return  # run's finally releases it
                self._restoring = asyncio.create_task(restore(
                    self.settings, self.changelog, self.store, p, self.stats,
                    source=self.sources[0] if self.marked else None, handle=self.handle,
                    compacted=self.compacted, held=owned.held))
                try:
                    owned.restored = await self._restoring
                except asyncio.CancelledError:
                    task = asyncio.current_task()
                    if task is not None and task.cancelling():
                        raise  # this callback itself is cancelled (the consumer stops)
                    log.info("%s: stopping; abandoned the restore of %s partition %d (the "
                             "next owner restores it from the changelog)",
                             self.group_id, self.changelog, p)
                    return  # run's finally releases it with the others, dropping its store
                finally:
                    self._restoring = None
                marker = owned.restored.marker
                if marker is not None and marker[0] < marker[1]:
                    # The states folded again are not in the changelog yet: written with
                    # the next batch, or once idle.
                    owned.checkpoint, owned.committed = marker
                owned.driver = asyncio.create_task(self._drive(p, owned))
                owned.committer = asyncio.create_task(self._commit_all(p, owned))
        self.ready.set()

    def _abandon_restore(self) -> None:
        """Stop restoring: a restore under way is cancelled, none is started after it.

        Restoring a partition reads its whole changelog (minutes at a million records), with
        the lock held that shutdown needs: without this, a stop waits for every assigned
        partition's restore, and a rolling update's SIGKILL comes first.
        """
        self._stopping = True
        if self._restoring is not None:
            self._restoring.cancel()

    async def revoked(self, tps: set[TopicPartition]) -> None:
        """Partitions taken away: finish their transactions, stop their producers and forget
        their state."""
        async with self._lock:
            await self._release({tp.partition for tp in tps})

    async def _release(self, partitions: set[int]) -> None:
        """Give up partitions: a transaction under way completes; records handled or pending
        but not committed are dropped with the state, to be consumed again by the next owner
        (from the committed offsets, with the state from the changelog). A store that keeps
        its files keeps those of a partition given up cleanly: restored, and every batch
        handled since committed (:class:`streams.stores.Kept`)."""
        clean: dict[int, Owned] = {}
        for p in sorted(partitions):
            for topic in self.sources:
                self.stats.lag.pop((topic, p), None)
            owned = self._owned.pop(p, None)
            if owned is None:
                self.store.drop(p)
                continue
            failed = False
            for task in (owned.driver, owned.committer, owned.committing):
                if task is None:
                    continue
                if task is not owned.committing:
                    task.cancel()
                await asyncio.wait([task])
                if not task.cancelled() and task.exception() is not None:
                    failed = True
                    log.warning("%s partition %d failed while released: %r",
                                self.group_id, p, task.exception())
            await owned.producer.stop()
            if (self.store.keeps and not failed and owned.restored is not None
                    and owned.outstanding == 0):
                clean[p] = owned
            else:
                self.store.drop(p)
        if clean:
            await self._keep(clean)

    async def _keep(self, clean: dict[int, Owned]) -> None:
        """Keep the files of partitions given up cleanly, with the changelog's end now (every
        transaction of theirs committed; the end may lag behind the last one's commit
        marker: an offset too low only means a few records read again)."""
        tps = [TopicPartition(self.changelog, p) for p in clean]
        try:
            reader = new_reader(self.settings)
            with translated(self.settings, f"the end of {self.changelog}"):
                await reader.start()
                try:
                    ends = await reader.end_offsets(tps)
                finally:
                    await reader.stop()
        except StreamsError as exc:
            log.warning("%s: not keeping the stores of partitions %s (%s): the next owner "
                        "restores them in full", self.group_id, sorted(clean), exc)
            for p in clean:
                self.store.drop(p)
            return
        for tp in tps:
            owned = clean[tp.partition]
            marker = (owned.checkpoint, owned.committed) if owned.lagging else None
            self.store.keep(tp.partition, Kept(self.changelog, owned.restored.partitions,
                                               ends[tp], marker))  # type: ignore[arg-type]

class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, runner: StageRunner) -> None:
        self.runner = runner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.runner.revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.runner.assigned(set(assigned))
