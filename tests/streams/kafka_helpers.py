"""Reading and writing whole topics in tests, through aiokafka with read_committed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any

import aiokafka
from aiokafka import TopicPartition

from streams.kafka import KafkaSettings, Producer


async def produce(settings: KafkaSettings, topic: str,
                  records: Iterable[tuple[bytes, bytes]]) -> None:
    """Send records in order, each acknowledged before the next."""
    async with Producer(settings) as producer:
        for key, value in records:
            await producer.send(topic, key, value)


async def read_topic(settings: KafkaSettings, topic: str) -> list[Any]:
    """Every committed record of ``topic`` now, partition by partition in offset order."""
    consumer = aiokafka.AIOKafkaConsumer(
        **settings.client_options(), group_id=None, enable_auto_commit=False,
        isolation_level="read_committed", auto_offset_reset="earliest")
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[Any] = []
        for tp in tps:
            while await consumer.position(tp) < ends[tp]:
                batch = await consumer.getmany(tp, timeout_ms=500)
                out.extend(batch.get(tp, []))
        return out
    finally:
        await consumer.stop()


async def wait_for(check: Callable[[], Any], within: float, what: str,
                   interval: float = 0.25) -> Any:
    """Poll the async ``check`` until it returns something truthy, or fail naming ``what``."""
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {within}s waiting for {what} (last: {last!r:.300})")
