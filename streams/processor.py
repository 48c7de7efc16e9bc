"""Exactly-once stream stages over aiokafka transactions.

A :class:`StageRunner` consumes its source topics in a consumer group, hands every record to
its stage's ``handle`` function together with the state of the record's partition, and
produces the outputs, the changed state (to a compacted changelog topic) and the consumed
offsets in **one Kafka transaction per partition and batch**. A crash at any point therefore
leaves either all of a batch's effects or none: after a restart the state is restored from the
changelog, consumption resumes at the committed offsets, and a ``read_committed`` consumer of
the outputs never sees a duplicate.

Zombie fencing follows Kafka Streams' first exactly-once design: one transactional producer
per partition number, with a transactional id derived from the stage and the partition, so
a worker that takes over a partition fences the one that had it. Source topics of a stage are
co-partitioned (same partition count, same key) and assigned with the range assignor, so one
worker owns partition ``p`` of every source topic, and of the changelog, at once.

**Checkpointed changelog.** A stage with one source topic may write its changelog only every
few seconds while it works through a backlog (``checkpoint_interval``); a batch that is not
full (no backlog) or a partition gone idle writes it at once. Outputs of compacted roles (the
record events) are held until then and produced with it. Every transaction of such a stage
also writes a marker (:data:`CHECKPOINT_KEY`) to the partition's changelog: the source offset
its changelog states reflect (the last checkpoint) and the offset this transaction commits.
A new owner restores the states, then folds the source records between the two again with
the stage's own handler, keeping the held outputs and discarding the others (committed
already): the handler is deterministic, so the state is the one the last owner committed. A
record changed in every batch is then written once per checkpoint, not once per batch
(docs/BENCHMARKS.md).

Why not faust-streaming's ``processing_guarantee="exactly_once"``: it picks the transaction
by the *destination* partition and sends to topics the app does not consume outside any
transaction, so outputs such as write intents escape the commit (see
``tests/streams/test_faust_eos.py``). The fold is idempotent too (sequence numbers), a second
line of defence should a transaction ever be lost.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, NamedTuple, TypeVar

import aiokafka
from aiokafka import TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.partitioner import DefaultPartitioner, murmur2

from streams.checkpoint import CHECKPOINT_KEY, decode_checkpoint, encode_checkpoint
from streams.errors import StreamsError
from streams.kafka import (
    KafkaSettings,
    new_group_consumer,
    new_producer,
    new_reader,
    read_partition,
    transaction,
    translated,
)
from streams.merge import Output

log = logging.getLogger(__name__)

V = TypeVar("V")

SLICE = 50
"""Inputs handled between two turns of the event loop (~2 ms of the merge's work)."""

DEPTH = 2
"""Handled batches a partition may have waiting for their transactions."""

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

BATCH_BYTES = 512 * 1024
"""The largest batch a stage's producer sends (under the broker's default limit of 1 MiB)."""


class _Tracked(MutableMapping[str, V]):
    """One partition of a store; remembers which keys changed since the last commit."""

    def __init__(self, data: dict[str, V], dirty: set[str]) -> None:
        self._data = data
        self._dirty = dirty

    def __getitem__(self, key: str) -> V:
        return self._data[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def __setitem__(self, key: str, value: V) -> None:
        self._data[key] = value
        self._dirty.add(key)

    def __delitem__(self, key: str) -> None:
        del self._data[key]
        self._dirty.add(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


@dataclass
class Store(Generic[V]):
    """A stage's state: one dict per partition, backed by a compacted changelog topic."""

    encode: Callable[[V], bytes]
    decode: Callable[[bytes], V]
    partitions: dict[int, dict[str, V]] = field(default_factory=dict)
    _dirty: dict[int, set[str]] = field(default_factory=dict)

    def partition(self, p: int) -> _Tracked[V]:
        """The mutable view of partition ``p``."""
        return _Tracked(self.partitions.setdefault(p, {}), self._dirty.setdefault(p, set()))

    def restore(self, p: int, key: str, value: bytes | None) -> None:
        """Apply one changelog record while restoring partition ``p``."""
        data = self.partitions.setdefault(p, {})
        if value is None:
            data.pop(key, None)
        else:
            data[key] = self.decode(value)

    def changes(self, p: int) -> list[tuple[str, bytes | None]]:
        """The changed entries of partition ``p`` since the last call, as changelog records."""
        dirty = self._dirty.get(p)
        if not dirty:
            return []
        data = self.partitions[p]
        out = [(key, self.encode(data[key]) if key in data else None) for key in sorted(dirty)]
        dirty.clear()
        return out

    def drop(self, p: int) -> None:
        """Forget partition ``p`` (revoked, or to be restored again)."""
        self.partitions.pop(p, None)
        self._dirty.pop(p, None)

    def size(self, p: int) -> int:
        """How many keys partition ``p`` holds."""
        return len(self.partitions.get(p, {}))


class _RocksView(MutableMapping[str, V]):
    """One partition of a :class:`RocksStore`: uncommitted values in memory, the rest on disk."""

    def __init__(self, store: RocksStore[V], p: int) -> None:
        self._store = store
        self._db = store.db(p)
        self._pending = store.pending.setdefault(p, {})

    def __getitem__(self, key: str) -> V:
        if key in self._pending:
            value = self._pending[key]
            if value is _ABSENT:
                raise KeyError(key)
            return value  # type: ignore[no-any-return]
        raw = self._db.get(key.encode())
        if raw is None:
            raise KeyError(key)
        return self._store.decode(raw)

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __setitem__(self, key: str, value: V) -> None:
        self._pending[key] = value

    def __delitem__(self, key: str) -> None:
        self._pending[key] = _ABSENT

    def __iter__(self) -> Iterator[str]:
        on_disk = self._db.keys()  # an Rdict itself is not iterable
        keys = {k.decode() for k in on_disk} | set(self._pending)
        return iter(sorted(k for k in keys if self._pending.get(k) is not _ABSENT))

    def __len__(self) -> int:
        return sum(1 for _ in self)


_ABSENT: Any = object()


class RocksStore(Generic[V]):
    """A stage's state in RocksDB (rocksdict), for more records than fit in memory.

    Values are decoded on every read and encoded once per commit (the changelog needs the
    bytes anyway). Changes stay in memory until :meth:`changes` takes them for the commit.
    A partition is wiped and restored from the changelog whenever it is assigned, as with
    the in-memory store, so the files never need to agree with a committed offset.
    """

    def __init__(self, directory: Path, encode: Callable[[V], bytes],
                 decode: Callable[[bytes], V]) -> None:
        from rocksdict import Rdict  # optional dependency: pip install 'syncline[rocksdb]'

        self._rdict = Rdict
        self.directory = directory
        self.encode = encode
        self.decode = decode
        self._dbs: dict[int, Any] = {}
        self.pending: dict[int, dict[str, Any]] = {}

    def db(self, p: int) -> Any:
        """The RocksDB of partition ``p``."""
        db = self._dbs.get(p)
        if db is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            db = self._dbs[p] = self._rdict(str(self.directory / f"partition-{p}"))
        return db

    def partition(self, p: int) -> _RocksView[V]:
        """The mutable view of partition ``p``."""
        return _RocksView(self, p)

    def restore(self, p: int, key: str, value: bytes | None) -> None:
        """Apply one changelog record while restoring partition ``p``."""
        db = self.db(p)
        if value is None:
            db.delete(key.encode())
        else:
            db[key.encode()] = value

    def changes(self, p: int) -> list[tuple[str, bytes | None]]:
        """The changed entries of partition ``p``, written to disk, as changelog records."""
        pending = self.pending.get(p)
        if not pending:
            return []
        db = self.db(p)
        out: list[tuple[str, bytes | None]] = []
        for key in sorted(pending):
            value = pending[key]
            if value is _ABSENT:
                db.delete(key.encode())
                out.append((key, None))
            else:
                raw = self.encode(value)
                db[key.encode()] = raw
                out.append((key, raw))
        pending.clear()
        return out

    def drop(self, p: int) -> None:
        """Forget partition ``p``: close and delete its files."""
        self.pending.pop(p, None)
        db = self._dbs.pop(p, None)
        path = str(self.directory / f"partition-{p}")
        if db is not None:
            db.close()
        if (self.directory / f"partition-{p}").exists():
            self._rdict.destroy(path)

    def size(self, p: int) -> int:
        """How many keys partition ``p`` holds."""
        on_disk = self.db(p).keys()  # an Rdict itself is not iterable
        return sum(1 for _ in on_disk)


AnyStore = Store[Any] | RocksStore[Any]


class CachingPartitioner:
    """aiokafka's default partitioner (Java's murmur2), remembering each key's partition.

    Keys repeat constantly here (canonical ids, ``system/entity``), and murmur2 in pure Python
    costs several microseconds a call; the result is the same as the default partitioner's.
    """

    def __init__(self, limit: int = 200_000) -> None:
        self._cache: dict[tuple[bytes, int], int] = {}
        self._limit = limit
        self._default = DefaultPartitioner()

    def remember(self, key: bytes, count: int, partition: int) -> None:
        """That ``key`` is in ``partition`` of a topic of ``count`` partitions: a consumed
        record's own (its producer partitioned it the same way), so that outputs with its
        key skip murmur2 even after the cache was last cleared."""
        if len(self._cache) >= self._limit:
            self._cache.clear()
        self._cache[(key, count)] = partition

    def __call__(self, key: bytes | None, all_partitions: list[int],
                 available: list[int]) -> int:
        if key is None:
            return int(self._default(key, all_partitions, available))
        slot = (key, len(all_partitions))
        partition = self._cache.get(slot)
        if partition is None:
            if len(self._cache) >= self._limit:
                self._cache.clear()
            partition = all_partitions[(murmur2(key) & 0x7FFFFFFF) % len(all_partitions)]
            self._cache[slot] = partition
        return partition


Handler = Callable[[aiokafka.ConsumerRecord, MutableMapping[str, Any]], list[Output]]
"""Process one consumed record with its partition's state; the outputs to produce."""


@dataclass
class Stats:
    """Counters a runner keeps (read by /metrics and the benchmarks)."""

    consumed: int = 0  # inputs handled (their transaction may still be committing)
    committed: int = 0  # inputs whose transaction committed
    produced: int = 0
    transactions: int = 0
    dead_letters: int = 0
    restored: int = 0
    refolded: int = 0  # source records folded again on restore (since the last checkpoint)
    checkpoints: int = 0  # transactions that wrote the changelog
    handling_seconds: float = 0.0  # in the stage's own code (decode, fold, encode)
    committing_seconds: float = 0.0  # sending and committing (overlaps handling)


Batch = list[tuple[TopicPartition, list[Any]]]
"""Consumed records of one partition number, by source topic partition, in offset order."""

ProducerRecord = tuple[str, bytes, bytes | None, int | None]
"""(topic, key, value, partition or None for the key's partition)."""


class _Handled(NamedTuple):
    """A batch handled in memory, waiting for its transaction."""

    records: list[ProducerRecord]  # outputs, then the changelog, in order
    offsets: dict[TopicPartition, int]
    inputs: int
    dead_letters: int
    checkpoint: bool  # the changelog is written


@dataclass(eq=False)
class _Owned:
    """A partition number this runner owns, and its two tasks: one handles batches, the
    other commits them.

    Batches N+1 and N+2 are handled while batch N's transaction commits (the broker's round
    trips, several milliseconds a transaction, would otherwise leave the core idle), but
    N+1's transaction starts only once N's committed: one transactional producer has one
    transaction open at a time, and every transaction still holds its batch's outputs,
    changelog and offsets together. Records that arrive meanwhile wait in ``pending``, so
    batches grow with the load, up to ``max_batch``.
    """

    producer: Any
    pending: deque[tuple[TopicPartition, list[Any]]] = field(default_factory=deque)
    count: int = 0  # records in ``pending``
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    paused: bool = False  # the consumer stopped fetching this partition: enough is pending
    handled: asyncio.Queue[_Handled] = field(
        default_factory=lambda: asyncio.Queue(maxsize=DEPTH))  # waiting for a transaction
    driver: asyncio.Task[None] | None = None  # handles
    committer: asyncio.Task[None] | None = None  # commits, one transaction after the other
    committing: asyncio.Task[None] | None = None  # the transaction under way
    held: dict[tuple[str, str], Output] = field(default_factory=dict)  # see StageRunner
    checkpoint: int | None = None  # the source offset of the last changelog written, if known
    committed: int = 0  # the source offset the last handled batch ends at
    written_at: float = 0.0  # when (time.monotonic) the changelog was last written

    def add(self, tp: TopicPartition, records: list[Any]) -> None:
        self.pending.append((tp, records))
        self.count += len(records)
        self.arrived.set()

    def take(self, limit: int) -> Batch:
        """Up to ``limit`` pending records, oldest first."""
        batch: Batch = []
        n = 0
        while self.pending and n < limit:
            tp, records = self.pending[0]
            room = limit - n
            if len(records) <= room:
                self.pending.popleft()
            else:
                self.pending[0] = (tp, records[room:])
                records = records[:room]
            batch.append((tp, records))
            n += len(records)
        self.count -= n
        if not self.pending:
            self.arrived.clear()
        return batch

    @property
    def lagging(self) -> bool:
        """Whether batches were handled since the changelog was last written."""
        return self.checkpoint is not None and self.checkpoint < self.committed

    def failure(self) -> BaseException | None:
        """The error that stopped this partition's handling or commit, if any."""
        for task in (self.driver, self.committer, self.committing):
            if task is not None and task.done() and not task.cancelled():
                error = task.exception()
                if error is not None:
                    return error
        return None


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
        self._owned: dict[int, _Owned] = {}
        self._lock = asyncio.Lock()  # rebalances and shutdown, one at a time
        self._handling = asyncio.Lock()  # one partition's batch handled at a time
        self._partitioner = CachingPartitioner()
        self._topic_partitions: dict[str, list[int]] = {}  # learnt once per process
        self._source_counts: dict[str, int] = {}  # partitions of each source topic
        self.ready = asyncio.Event()  # set once partitions are assigned and restored

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
        try:
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=200, max_records=self.max_batch)
                for owned in self._owned.values():
                    error = owned.failure()
                    if error is not None:
                        raise error
                if batch:
                    async with self._lock:  # records may come while a rebalance restores
                        self._dispatch(batch)
        finally:
            async with self._lock:
                await self._release(set(self._owned))
            await consumer.stop()
            self._consumer = None

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

    def changelog_written(self) -> bool:
        """Whether every owned partition's changelog holds its state as of what it handled:
        nothing waits for a checkpoint or for a transaction."""
        return all(not owned.lagging and owned.handled.empty()
                   and (owned.committing is None or owned.committing.done())
                   for owned in self._owned.values())

    def _sources_of(self, p: int) -> list[TopicPartition]:
        return [TopicPartition(topic, p) for topic in self.sources
                if TopicPartition(topic, p) in self._consumer.assignment()]

    async def _drive(self, p: int, owned: _Owned) -> None:
        """Handle partition ``p``'s records and commit them, batch after batch; write the
        changelog once nothing has arrived for ``checkpoint_idle`` seconds."""
        while True:
            if (owned.lagging and not owned.arrived.is_set()
                    and self.checkpoint_idle is not NEVER):
                try:
                    await asyncio.wait_for(owned.arrived.wait(), self.checkpoint_idle)
                except TimeoutError:
                    await owned.handled.put(self._checkpoint(p, owned))
                    continue
            else:
                await owned.arrived.wait()
            batch = owned.take(self.max_batch)
            if owned.paused and owned.count < self.max_batch and self._consumer is not None:
                self._consumer.resume(*self._sources_of(p))
                owned.paused = False
            async with self._handling:  # one batch at a time: see _handle
                handled = await self._handle(p, batch, owned)
            await owned.handled.put(handled)

    async def _commit_all(self, p: int, owned: _Owned) -> None:
        """Commit partition ``p``'s handled batches, one transaction after the other."""
        while True:
            handled = await owned.handled.get()
            owned.committing = asyncio.create_task(self._commit(p, owned.producer, handled))
            # Shielded: a revoke cancels this task, never a transaction half-way.
            await asyncio.shield(owned.committing)

    async def _handle(self, p: int, batch: Batch, owned: _Owned) -> _Handled:
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
        started = time.perf_counter()
        remember = self._partitioner.remember
        for tp, consumed in batch:
            count = self._source_partitions(tp.topic)
            for i, record in enumerate(consumed, 1):
                if i % SLICE == 0:
                    self.stats.handling_seconds += time.perf_counter() - started
                    await asyncio.sleep(0)
                    started = time.perf_counter()
                if record.key is not None and count:
                    remember(record.key, count, p)
                for out in self.handle(record, state):
                    if out.role in self.compacted:
                        _hold(latest, out)
                        continue
                    if out.role == "dlq":
                        dead_letters += 1
                    records.append((self.topic_of(out.role), out.key.encode(),
                                    out.encoded(), None))
            offsets[tp] = consumed[-1].offset + 1
            inputs += len(consumed)
        # The changelog is written in every transaction of a stage with several sources;
        # with one, at least every ``checkpoint_interval`` seconds, whenever a batch is not
        # full (nothing more was waiting: no backlog), and once the partition is idle
        # (``_drive``).
        now = time.monotonic()
        checkpoint = (not self.marked or owned.checkpoint is None
                      or now - owned.written_at >= self.checkpoint_interval
                      or (inputs < self.max_batch and self.checkpoint_idle is not NEVER))
        if checkpoint:
            self._write_held(latest, records)
            records.extend(self._changes(p))
        if self.marked and offsets:
            (owned.committed,) = offsets.values()
            if checkpoint:
                owned.checkpoint, owned.written_at = owned.committed, now
            records.append(self._marker(p, owned))
        self.stats.consumed += inputs
        self.stats.handling_seconds += time.perf_counter() - started
        return _Handled(records, offsets, inputs, dead_letters, checkpoint)

    def _checkpoint(self, p: int, owned: _Owned) -> _Handled:
        """A transaction of the changelog alone: what the batches since the last one
        changed, and a marker that it is caught up with the committed offset."""
        assert owned.lagging
        records: list[ProducerRecord] = []
        self._write_held(owned.held, records)
        records.extend(self._changes(p))
        owned.checkpoint, owned.written_at = owned.committed, time.monotonic()
        records.append(self._marker(p, owned))
        return _Handled(records, {}, 0, 0, True)

    def _changes(self, p: int) -> list[ProducerRecord]:
        """The changelog records of partition ``p``'s states changed since it was written."""
        return [(self.changelog, key.encode(), value, p) for key, value in self.store.changes(p)]

    def _marker(self, p: int, owned: _Owned) -> ProducerRecord:
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

    async def _commit(self, p: int, producer: Any, handled: _Handled) -> None:
        """One transaction: a handled batch's records, and its offsets."""
        started = time.perf_counter()
        # A failed transaction leaves in-memory state that was never committed: the error
        # stops the runner, and the partition's next owner restores from the changelog.
        async with transaction(self.settings, producer,
                               f"transaction of {self.group_id} partition {p}"):
            sent = await self._send_batches(producer, handled.records)
            if handled.offsets:
                await producer.send_offsets_to_transaction(handled.offsets, self.group_id)
        with translated(self.settings, f"transaction of {self.group_id} partition {p}"):
            await asyncio.gather(*sent)  # all done by now; surfaces any error
        self.stats.committing_seconds += time.perf_counter() - started
        self.stats.committed += handled.inputs
        self.stats.dead_letters += handled.dead_letters
        self.stats.produced += len(handled.records)
        self.stats.transactions += 1
        self.stats.checkpoints += handled.checkpoint

    async def _send_batches(self, producer: Any, records: list[ProducerRecord],
                            ) -> list[asyncio.Future[Any]]:
        """Send records grouped into one batch per topic partition (order kept within each).

        aiokafka's ``send`` costs ~25 µs a record (a future, the partitioner, the accumulator);
        appending to a batch builder costs a fraction of that.
        """
        groups: dict[tuple[str, int], list[tuple[bytes, bytes | None]]] = {}
        for topic, key, value, partition in records:
            if partition is None:
                known = self._topic_partitions.get(topic)
                if known is None:
                    known = self._topic_partitions[topic] = sorted(
                        await producer.partitions_for(topic))
                partition = self._partitioner(key, known, known)
            groups.setdefault((topic, partition), []).append((key, value))
        futures = []
        for (topic, partition), items in groups.items():
            batch = producer.create_batch()
            for key, value in items:
                if batch.append(key=key, value=value, timestamp=None) is None:
                    futures.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = producer.create_batch()
                    if batch.append(key=key, value=value, timestamp=None) is None:
                        raise StreamsError(f"a record for {topic} is larger than a batch")
            futures.append(await producer.send_batch(batch, topic, partition=partition))
        return futures

    # -- rebalancing ---------------------------------------------------------------------
    async def assigned(self, tps: set[TopicPartition]) -> None:
        """New partitions: fence their previous owner, restore their state."""
        self._source_counts.clear()  # a rebalance follows a change of partition count
        async with self._lock:
            for p in sorted({tp.partition for tp in tps} - set(self._owned)):
                producer = new_producer(
                    self.settings,
                    transactional_id=f"{self.group_id}-{p}",
                    partitioner=self._partitioner,
                    linger_ms=5,
                    # A transaction sends ~1 MB of changelog to a partition; the sender has
                    # one batch per partition in flight, so 16 KB batches (the default) cost
                    # a round trip each: ~60 per transaction.
                    max_batch_size=BATCH_BYTES,
                )
                with translated(self.settings, f"start transactional producer for {p}"):
                    await producer.start()  # init_transactions: fences a zombie, aborts its txn
                    topics = [self.changelog, *map(self.topic_of, self.output_roles)]
                    await producer.client.set_topics(topics)  # one metadata request
                    for topic in topics:
                        self._topic_partitions[topic] = sorted(
                            await producer.partitions_for(topic))
                owned = self._owned[p] = _Owned(producer)
                marker = await self._restore(p, owned.held)
                if marker is not None and marker[0] < marker[1]:
                    # The states folded again are not in the changelog yet: written with
                    # the next batch, or once idle.
                    owned.checkpoint, owned.committed = marker
                    owned.written_at = time.monotonic()
                owned.driver = asyncio.create_task(self._drive(p, owned))
                owned.committer = asyncio.create_task(self._commit_all(p, owned))
        self.ready.set()

    async def revoked(self, tps: set[TopicPartition]) -> None:
        """Partitions taken away: finish their transactions, stop their producers and forget
        their state."""
        async with self._lock:
            await self._release({tp.partition for tp in tps})

    async def _release(self, partitions: set[int]) -> None:
        """Give up partitions: a transaction under way completes; records handled or pending
        but not committed are dropped with the state, to be consumed again by the next owner
        (from the committed offsets, with the state from the changelog)."""
        for p in sorted(partitions):
            owned = self._owned.pop(p, None)
            if owned is not None:
                for task in (owned.driver, owned.committer, owned.committing):
                    if task is None:
                        continue
                    if task is not owned.committing:
                        task.cancel()
                    await asyncio.wait([task])
                    if not task.cancelled() and task.exception() is not None:
                        log.warning("%s partition %d failed while released: %r",
                                    self.group_id, p, task.exception())
                await owned.producer.stop()
            self.store.drop(p)

    async def _restore(self, p: int, held: dict[tuple[str, str], Output]
                       ) -> tuple[int, int] | None:
        """Read partition ``p`` of the changelog from its start to its end; then, for a stage
        whose changelog lags behind its committed offset (see :data:`CHECKPOINT_KEY`), fold
        the source records in between again. Returns the checkpoint marker, if any."""
        self.store.drop(p)
        tp = TopicPartition(self.changelog, p)
        reader = new_reader(self.settings)
        with translated(self.settings, f"restore {self.changelog} partition {p}"):
            await reader.start()
            try:
                started = time.monotonic()
                marker: bytes | None = None
                async for record in read_partition(reader, tp):
                    key = record.key.decode()
                    if key == CHECKPOINT_KEY:
                        marker = record.value
                        continue
                    self.store.restore(p, key, record.value)
                    self.stats.restored += 1
                refolded = 0
                offsets = None if marker is None else decode_checkpoint(marker)
                if offsets is not None:
                    refolded = await self._refold(reader, p, *offsets, held)
                log.info("restored %s partition %d: %d keys, %d inputs folded again since "
                         "the last checkpoint, in %.2fs", self.changelog, p,
                         self.store.size(p), refolded, time.monotonic() - started)
                return offsets
            finally:
                await reader.stop()

    async def _refold(self, reader: Any, p: int, start: int, end: int,
                      held: dict[tuple[str, str], Output]) -> int:
        """Hand the source records at offsets ``start`` to ``end`` (exclusive) of partition
        ``p`` to the stage again, keeping the state and the outputs of compacted roles,
        which are produced with the changelog (into ``held``), and dropping the others:
        their transactions committed them."""
        if start >= end:
            return 0
        (source,) = self.sources
        tp = TopicPartition(source, p)
        state = self.store.partition(p)
        count = 0
        async for record in read_partition(reader, tp, start, end):
            for out in self.handle(record, state):
                if out.role in self.compacted:
                    _hold(held, out)
            count += 1
        self.stats.refolded += count
        return count


def _hold(held: dict[tuple[str, str], Output], out: Output) -> None:
    """Keep ``out`` as the one output of its role and key (with what an earlier one said)."""
    slot = (out.role, out.key)
    earlier = held.get(slot)
    if earlier is not None:
        out = earlier.then(out)
    held[slot] = out


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, runner: StageRunner) -> None:
        self.runner = runner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.runner.revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.runner.assigned(set(assigned))
