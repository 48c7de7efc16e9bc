"""A stage's transactional producers (one per partition number) and the transaction of each
handled batch: its outputs, its changelog records and its consumed offsets, all or nothing.

Zombie fencing follows Kafka Streams' first exactly-once design: the transactional id is
derived from the stage and the partition number, so a worker that takes a partition over
fences, when its producer starts, the one that had it (and aborts its open transaction).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from streams.errors import StreamsError
from streams.kafka import KafkaSettings, new_producer, transaction, translated
from streams.partition import Handled, ProducerRecord, Stats
from streams.partitioner import CachingPartitioner

BATCH_BYTES = 512 * 1024
"""The largest batch a stage's producer sends (under the broker's default limit of 1 MiB)."""


class Transactions:
    """Starts a stage's producers and commits its batches, counting in ``stats``."""

    def __init__(self, settings: KafkaSettings, group_id: str, stats: Stats) -> None:
        self.settings = settings
        self.group_id = group_id
        self.stats = stats
        self.partitioner = CachingPartitioner()
        self._topic_partitions: dict[str, list[int]] = {}  # learnt once per process

    async def start_producer(self, p: int, topics: Sequence[str]) -> Any:
        """The transactional producer of partition ``p``, started: any earlier producer of
        that partition is fenced. It learns ``topics`` (where it will send) at once: its
        first send to a topic it has no metadata for would wait ~100 ms per topic, in the
        first transaction after every assignment."""
        producer = new_producer(
            self.settings,
            transactional_id=f"{self.group_id}-{p}",
            partitioner=self.partitioner,
            linger_ms=5,
            # A transaction sends ~1 MB of changelog to a partition; the sender has one
            # batch per partition in flight, so 16 KB batches (the default) cost a round
            # trip each: ~60 per transaction.
            max_batch_size=BATCH_BYTES,
        )
        with translated(self.settings, f"start transactional producer for {p}"):
            await producer.start()  # init_transactions: fences a zombie, aborts its txn
            try:
                await producer.client.set_topics(list(topics))  # one metadata request
                for topic in topics:
                    self._topic_partitions[topic] = sorted(await producer.partitions_for(topic))
            except BaseException:
                await producer.stop()
                raise
        return producer

    async def commit(self, p: int, producer: Any, handled: Handled) -> None:
        """One transaction: a handled batch's records, and its offsets."""
        started = time.perf_counter()
        operation = f"transaction of {self.group_id} partition {p}"
        # A failed transaction leaves in-memory state that was never committed: the error
        # stops the runner, and the partition's next owner restores from the changelog.
        async with transaction(self.settings, producer, operation):
            sent = await self._send_batches(producer, handled.records)
            if handled.offsets:
                await producer.send_offsets_to_transaction(handled.offsets, self.group_id)
        with translated(self.settings, operation):
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
                partition = self.partitioner(key, known, known)
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
