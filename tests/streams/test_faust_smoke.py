"""faust-streaming starts, processes and stops against the project's Kafka broker.

A compatibility smoke test of the pinned faust-streaming with this broker: an App with
exactly-once transactions on (started as ``faust.Worker`` starts it: ``in_worker`` first;
``app.start()`` alone leaves them off) creates its topic, processes one event in an agent,
and stops cleanly. What faust's transactions do with outputs, and why the merge stages do
not use them, is in ``tests/streams/test_faust_eos.py``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import faust
import pytest

from streams.kafka import KafkaSettings, Producer


@pytest.mark.kafka
async def test_an_exactly_once_faust_app_processes_an_event(
    kafka_settings: KafkaSettings, topic_name: str, tmp_path: Path
) -> None:
    app = faust.App(
        f"syncline-smoke-{uuid.uuid4().hex[:12]}",
        broker=f"kafka://{kafka_settings.bootstrap}",
        processing_guarantee="exactly_once",
        store="memory://",
        datadir=tmp_path,
        web_enabled=False,
        topic_partitions=1,
        topic_replication_factor=1,
    )
    # internal=True: faust creates the topic itself, as the merge topology's topics will be.
    source = app.topic(
        topic_name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        internal=True,
        partitions=1,
    )
    processed: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    @app.agent(source)
    async def process(stream: AsyncIterator[bytes]) -> None:
        async for value in stream:
            if not processed.done():
                processed.set_result(value)

    app.in_worker = True  # what faust.Worker.on_start does; it turns transactions on
    await app.start()
    try:
        assert app.in_transaction
        async with Producer(kafka_settings) as producer:
            await producer.send(topic_name, b"key", b"hello")
        async with asyncio.timeout(60):
            assert await processed == b"hello"
    finally:
        await app.stop()
