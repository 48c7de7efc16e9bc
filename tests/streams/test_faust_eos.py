"""Why the merge stages do not use faust-streaming's exactly-once mode: what it does, shown.

faust-streaming (0.15, ``processing_guarantee="exactly_once"``) turns its transactions on only
inside a worker: ``App.in_transaction`` is ``in_worker and exactly_once``, and
``faust.Worker`` sets ``app.in_worker = True`` when it starts. An app started with
``app.start()`` alone runs at-least-once. These tests set the flag as the worker does and
assert that transactions are on; then they show the two defects that rule faust out:

1. An output to a topic the app does not consume is sent by the plain producer, outside
   every transaction (faust picks the transaction by the *destination* partition, and finds
   none for a topic it does not consume): a ``read_committed`` reader sees it while the
   input is not committed, and still sees it once the input's transaction aborted (the
   input is then processed again, and its output sent a second time).
2. An output to a partition of a consumed topic goes into the transaction of *that*
   partition, not the input's: the input's transaction commits (the input counts as done)
   while the output waits in another transaction; when that one aborts, the output is lost.

The merge stage's outputs (write intents, record events, conflicts) go to topics it does
not consume, keyed by record, to any partition. Should faust-streaming fix these, these
tests fail, and the decision (docs/DECISIONS.md) can be revisited.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiokafka
import faust
import pytest
from aiokafka import TopicPartition

from streams.kafka import Admin, KafkaSettings, Producer, TopicSpec, new_producer
from tests.streams.kafka_helpers import read_topic, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


async def committed_offset(settings: KafkaSettings, group: str, tp: TopicPartition) -> int | None:
    """The offset ``group`` committed for ``tp`` (None: nothing committed)."""
    consumer = aiokafka.AIOKafkaConsumer(**settings.client_options(), group_id=group,
                                         enable_auto_commit=False)
    await consumer.start()
    try:
        offset: int | None = await consumer.committed(tp)
        return offset
    finally:
        await consumer.stop()


async def values(settings: KafkaSettings, topic: str) -> list[bytes]:
    """The values a ``read_committed`` reader sees in ``topic`` now."""
    return [record.value for record in await read_topic(settings, topic)]


async def stable_end(settings: KafkaSettings, tp: TopicPartition) -> int:
    """Where ``read_committed`` readers of ``tp`` stop: before the first open transaction."""
    consumer = aiokafka.AIOKafkaConsumer(**settings.client_options(), group_id=None,
                                         isolation_level="read_committed")
    await consumer.start()
    try:
        return int((await consumer.end_offsets([tp]))[tp])
    finally:
        await consumer.stop()


async def written(settings: KafkaSettings, tp: TopicPartition) -> list[bytes]:
    """Every value written to ``tp``, committed or not (``read_uncommitted``)."""
    consumer = aiokafka.AIOKafkaConsumer(**settings.client_options(), group_id=None,
                                         isolation_level="read_uncommitted",
                                         auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        out: list[bytes] = []
        while await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=500)
            out.extend(r.value for r in batch.get(tp, []) if r.value is not None)
        return out
    finally:
        await consumer.stop()


@pytest.fixture
def names() -> Iterator[dict[str, str]]:
    suffix = uuid.uuid4().hex[:10]
    yield {"app": f"syncline-eos-{suffix}", "source": f"faust-in-{suffix}",
           "consumed": f"faust-mid-{suffix}", "output": f"faust-out-{suffix}"}


@asynccontextmanager
async def exactly_once_app(app: faust.App) -> AsyncIterator[faust.App]:
    """Start ``app`` as ``faust.Worker.on_start`` does: ``in_worker`` first, which is what
    turns exactly-once transactions on."""
    app.in_worker = True
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


def new_app(names: dict[str, str], settings: KafkaSettings, tmp_path: Path,
            **conf: Any) -> faust.App:
    return faust.App(names["app"], broker=f"kafka://{settings.bootstrap}",
                     processing_guarantee="exactly_once", store="memory://", datadir=tmp_path,
                     web_enabled=False, topic_partitions=1, **conf)


async def test_an_output_to_a_topic_the_app_does_not_consume_escapes_the_transaction(
        kafka_settings: KafkaSettings, tmp_path: Path, names: dict[str, str]) -> None:
    async with Admin(kafka_settings) as admin:
        await admin.ensure_topic(TopicSpec(names["source"], partitions=1))
        await admin.ensure_topic(TopicSpec(names["output"], partitions=1))
    # The input's offset is never committed while the test runs.
    app = new_app(names, kafka_settings, tmp_path, broker_commit_interval=3600.0,
                  broker_commit_every=1_000_000)
    source = app.topic(names["source"], key_serializer="raw", value_serializer="raw")
    output = app.topic(names["output"], key_serializer="raw", value_serializer="raw")
    handled = asyncio.Event()

    @app.agent(source)
    async def forward(stream: AsyncIterator[bytes]) -> None:
        async for value in stream:
            await output.send(key=b"k", value=value)
            handled.set()

    async with exactly_once_app(app):
        assert app.in_transaction  # exactly-once transactions are on
        async with Producer(kafka_settings) as producer:
            await producer.send(names["source"], b"k", b"event-1")
        async with asyncio.timeout(60):
            await handled.wait()

        async def output_visible() -> bool:
            return b"event-1" in await values(kafka_settings, names["output"])

        await wait_for(output_visible, 30, "the output to be visible to read_committed")
        input_tp = TopicPartition(names["source"], 0)
        assert await committed_offset(kafka_settings, app.conf.id, input_tp) in (None, 0)

        # The input's transaction aborts (a new owner of its partition fences this one, as
        # after a crash): the input will be processed again, its output is out already.
        tid = f"{app.conf.id}-{app.assignor.group_for_topic(names['source'])}-0"
        fencer = new_producer(kafka_settings, transactional_id=tid)
        await fencer.start()
        await fencer.stop()
        assert await committed_offset(kafka_settings, app.conf.id, input_tp) in (None, 0)
        assert await values(kafka_settings, names["output"]) == [b"event-1"]


async def test_an_output_to_another_partition_rides_on_that_partitions_transaction(
        kafka_settings: KafkaSettings, tmp_path: Path, names: dict[str, str]) -> None:
    async with Admin(kafka_settings) as admin:
        await admin.ensure_topic(TopicSpec(names["source"], partitions=1))
        await admin.ensure_topic(TopicSpec(names["consumed"], partitions=2))
    # Offsets are committed after every event.
    app = new_app(names, kafka_settings, tmp_path, broker_commit_interval=0.1,
                  broker_commit_every=1)
    source = app.topic(names["source"], key_serializer="raw", value_serializer="raw")
    consumed = app.topic(names["consumed"], key_serializer="raw", value_serializer="raw",
                         partitions=2)

    @app.agent(source)
    async def forward(stream: AsyncIterator[bytes]) -> None:
        async for value in stream:
            await consumed.send(key=b"k", value=value, partition=1)

    @app.agent(consumed)
    async def read(stream: AsyncIterator[bytes]) -> None:
        async for _value in stream:
            pass

    async with exactly_once_app(app):
        assert app.in_transaction
        async with Producer(kafka_settings) as producer:
            await producer.send(names["source"], b"k", b"event-1")
        input_tp = TopicPartition(names["source"], 0)
        output_tp = TopicPartition(names["consumed"], 1)

        async def input_committed() -> bool:
            return await committed_offset(kafka_settings, app.conf.id, input_tp) == 1

        async def output_written() -> bool:
            return b"event-1" in await written(kafka_settings, output_tp)

        # The input's transaction committed: the input counts as done ...
        await wait_for(input_committed, 60, "the input's offset to be committed")
        await wait_for(output_written, 30, "the output to be written (uncommitted)")
        # ... and its output is in partition 1's transaction, still open.
        assert b"event-1" not in await values(kafka_settings, names["consumed"])
        assert await stable_end(kafka_settings, output_tp) == 0

        # Partition 1's transaction aborts (fenced, as when another worker takes the
        # partition over): the output is gone for good, its input committed.
        tid = f"{app.conf.id}-{app.assignor.group_for_topic(names['consumed'])}-1"
        fencer = new_producer(kafka_settings, transactional_id=tid)
        await fencer.start()
        await fencer.stop()
        # The transaction is over (its abort marker is past the output), and without it.
        assert await stable_end(kafka_settings, output_tp) == 2
        assert await values(kafka_settings, names["consumed"]) == []
        assert await committed_offset(kafka_settings, app.conf.id, input_tp) == 1
