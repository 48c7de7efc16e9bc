"""Reading and writing whole topics in tests, through aiokafka with read_committed."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import aiokafka

from streams.kafka import Admin, KafkaSettings, Producer, read_to_end
from streams.topics import Topics, TopicSettings


async def produce(settings: KafkaSettings, topic: str,
                  records: Iterable[tuple[bytes, bytes]]) -> None:
    """Send records in order, each acknowledged before the next."""
    async with Producer(settings) as producer:
        for key, value in records:
            await producer.send(topic, key, value)


async def made_topics(settings: KafkaSettings, prefix: str, partitions: int = 2) -> Topics:
    """The topics of a deployment under a new prefix (``prefix`` and a random part), made on
    the broker."""
    topics = Topics(f"{prefix}{uuid.uuid4().hex[:10]}")
    async with Admin(settings) as admin:
        await topics.ensure(admin, TopicSettings(partitions=partitions))
    return topics


async def read_topic(settings: KafkaSettings, topic: str) -> list[Any]:
    """Every committed record of ``topic`` now, partition by partition in offset order."""
    return list(await read_to_end(settings, topic))


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


async def topic_exists(settings: KafkaSettings, topic: str) -> bool:
    """Whether ``topic`` exists (without creating it, as asking for its metadata could)."""
    consumer = aiokafka.AIOKafkaConsumer(**settings.client_options(), group_id=None)
    await consumer.start()
    try:
        return topic in await consumer.topics()
    finally:
        await consumer.stop()
