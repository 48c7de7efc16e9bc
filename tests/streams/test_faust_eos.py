"""Why the merge stages do not use faust-streaming's exactly-once mode.

faust-streaming 0.15 (``processing_guarantee="exactly_once"``) chooses the transaction of a
send by the *destination* topic's partition, and a send to a topic the app does not consume
goes out with no transaction at all. The merge stage sends write intents, record events and
conflicts to topics it does not consume, so under Faust those outputs would not commit
together with the offsets and the table: a crash after the send and before the commit
replays the input and a ``read_committed`` consumer sees the output twice.

This test shows it on the real broker: an output sent by an exactly-once agent is visible to
a ``read_committed`` consumer while the input's offset is still uncommitted, which cannot
happen when the send is part of the input's transaction. If a future faust-streaming fixes
this, the test fails and the decision in ``streams/processor.py`` can be revisited.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiokafka
import faust
import pytest
from aiokafka import TopicPartition

from streams.kafka import Admin, KafkaSettings, Producer, TopicSpec
from tests.streams.kafka_helpers import read_topic, wait_for


async def committed_offset(settings: KafkaSettings, group: str, tp: TopicPartition) -> int | None:
    consumer = aiokafka.AIOKafkaConsumer(**settings.client_options(), group_id=group,
                                         enable_auto_commit=False)
    await consumer.start()
    try:
        offset: int | None = await consumer.committed(tp)
        return offset
    finally:
        await consumer.stop()


@pytest.mark.kafka
@pytest.mark.slow
async def test_faust_exactly_once_sends_outputs_outside_the_transaction(
        kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    suffix = uuid.uuid4().hex[:10]
    source_name, output_name = f"faust-in-{suffix}", f"faust-out-{suffix}"
    async with Admin(kafka_settings) as admin:
        await admin.ensure_topic(TopicSpec(source_name, partitions=1))
        await admin.ensure_topic(TopicSpec(output_name, partitions=1))
    app = faust.App(
        f"syncline-eos-{suffix}",
        broker=f"kafka://{kafka_settings.bootstrap}",
        processing_guarantee="exactly_once",
        store="memory://",
        datadir=tmp_path,
        web_enabled=False,
        topic_partitions=1,
        broker_commit_interval=3600.0,  # the input's offset stays uncommitted during the test
        broker_commit_every=1_000_000,
    )
    source = app.topic(source_name, key_serializer="raw", value_serializer="raw")
    output = app.topic(output_name, key_serializer="raw", value_serializer="raw")
    handled = asyncio.Event()

    @app.agent(source)
    async def forward(stream: AsyncIterator[bytes]) -> None:
        async for value in stream:
            await output.send(key=b"k", value=value)
            handled.set()

    await app.start()
    try:
        async with Producer(kafka_settings) as producer:
            await producer.send(source_name, b"k", b"event-1")
        async with asyncio.timeout(60):
            await handled.wait()

        async def output_visible() -> bool:
            return any(r.value == b"event-1" for r in await read_topic(kafka_settings,
                                                                       output_name))

        await wait_for(output_visible, 30, "the output to be visible to read_committed")
        # ... while the input's offset is still not committed for the app's group.
        assert await committed_offset(kafka_settings, app.conf.id,
                                      TopicPartition(source_name, 0)) in (None, 0)
    finally:
        await app.stop()
