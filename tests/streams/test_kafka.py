"""The Kafka wrappers against the real broker: bytes in, the same bytes out."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest
from aiokafka import AIOKafkaProducer

from streams.errors import KafkaUnavailable, TopicMismatch
from streams.kafka import (
    Admin,
    ConsumedRecord,
    Consumer,
    Delivery,
    KafkaSettings,
    Producer,
    TopicShape,
    TopicSpec,
    probe,
)
from streams.topics import Topics, TopicSettings, compare_topics


async def _read(settings: KafkaSettings, topic: str, count: int) -> list[ConsumedRecord]:
    records: list[ConsumedRecord] = []
    async with asyncio.timeout(30), Consumer(settings, topic) as consumer:
        async for record in consumer:
            records.append(record)
            if len(records) == count:
                break
    return records


@pytest.mark.kafka
async def test_a_sent_record_is_read_back_byte_for_byte(
    kafka_settings: KafkaSettings, topic_name: str
) -> None:
    async with Admin(kafka_settings) as admin:
        assert await admin.ensure_topic(TopicSpec(topic_name))

    async with Producer(kafka_settings) as producer:
        first = await producer.send(topic_name, b"crm/contact/17", b'{"email":"a@example.com"}')
        second = await producer.send(topic_name, b"crm/contact/18", b"\x00\xffbinary")

    assert first == Delivery(partition=0, offset=0)
    assert second == Delivery(partition=0, offset=1)
    records = await _read(kafka_settings, topic_name, 2)
    assert [(r.topic, r.partition, r.offset, r.key, r.value) for r in records] == [
        (topic_name, 0, 0, b"crm/contact/17", b'{"email":"a@example.com"}'),
        (topic_name, 0, 1, b"crm/contact/18", b"\x00\xffbinary"),
    ]


@pytest.mark.kafka
async def test_the_consumer_never_returns_records_of_an_aborted_transaction(
    kafka_settings: KafkaSettings, topic_name: str
) -> None:
    async with Admin(kafka_settings) as admin:
        await admin.ensure_topic(TopicSpec(topic_name))
    transactional = AIOKafkaProducer(
        bootstrap_servers=kafka_settings.bootstrap, transactional_id=f"{topic_name}-tx"
    )
    await transactional.start()
    try:
        with pytest.raises(RuntimeError):
            async with transactional.transaction():
                await transactional.send_and_wait(topic_name, b"aborted", key=b"k")
                raise RuntimeError("abort the transaction")
        async with transactional.transaction():
            await transactional.send_and_wait(topic_name, b"committed", key=b"k")
    finally:
        await transactional.stop()

    records = await _read(kafka_settings, topic_name, 1)
    assert [r.value for r in records] == [b"committed"]


@pytest.mark.kafka
async def test_ensure_topic_creates_a_compacted_topic_once(
    kafka_settings: KafkaSettings, topic_name: str
) -> None:
    spec = TopicSpec(topic_name, config={"cleanup.policy": "compact", "retention.ms": "-1"})
    async with Admin(kafka_settings) as admin:
        assert await admin.ensure_topic(spec) is True
        assert await admin.ensure_topic(spec) is False
        config = await admin.topic_config(topic_name)

    assert config["cleanup.policy"] == "compact"
    assert config["retention.ms"] == "-1"


@pytest.mark.kafka
async def test_ensure_topic_refuses_an_existing_topic_with_other_settings(
    kafka_settings: KafkaSettings, topic_name: str
) -> None:
    async with Admin(kafka_settings) as admin:
        await admin.ensure_topic(TopicSpec(topic_name, config={"cleanup.policy": "delete"}))
        with pytest.raises(TopicMismatch) as caught:
            await admin.ensure_topic(TopicSpec(topic_name, config={"cleanup.policy": "compact"}))

    assert "cleanup.policy is 'delete', expected 'compact'" in str(caught.value)
    assert caught.value.retriable is False


@pytest.mark.kafka
async def test_probe_describes_the_cluster(kafka_bootstrap: str) -> None:
    cluster = await probe(kafka_bootstrap, timeout=10)

    assert cluster.bootstrap == kafka_bootstrap
    assert cluster.cluster_id
    assert len(cluster.brokers) == 1


@pytest.fixture
def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_probe_of_an_unused_port_names_the_address(unused_port: int) -> None:
    address = f"127.0.0.1:{unused_port}"

    with pytest.raises(KafkaUnavailable) as caught:
        await probe(address, timeout=5)

    assert caught.value.bootstrap == address
    assert str(caught.value) == f"cannot reach Kafka at {address}: no broker accepted a connection"
    assert caught.value.retriable is True


@pytest.fixture
def silent_listener() -> Iterator[str]:
    """An address that accepts connections but never answers a request."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"127.0.0.1:{sock.getsockname()[1]}"


async def test_probe_of_a_silent_listener_gives_up_at_the_deadline(silent_listener: str) -> None:
    with pytest.raises(KafkaUnavailable) as caught:
        await probe(silent_listener, timeout=0.5)

    assert str(caught.value) == f"cannot reach Kafka at {silent_listener}: no answer within 0.5s"


@pytest.mark.kafka
async def test_topic_settings_land_on_the_topics_and_a_later_change_is_named(
    kafka_settings: KafkaSettings, topic_name: str
) -> None:
    topics = Topics(topic_name)
    kept = TopicSettings(partitions=2, min_insync_replicas=1, retention_ms=3_600_000)
    async with Admin(kafka_settings) as admin:
        created = await topics.ensure(admin, kept)
        shapes = await admin.describe_topics([topics.observations, topics.records])
        observations = await admin.topic_config(topics.observations)
        report = await compare_topics(admin, topics, kept)
        with pytest.raises(TopicMismatch) as caught:
            await topics.ensure(admin, TopicSettings(partitions=2, retention_ms=-1))

    assert len(created) == 10
    assert shapes[topics.observations] == TopicShape(topics.observations, 2, 1)
    assert observations["retention.ms"] == "3600000"
    assert observations["min.insync.replicas"] == "1"
    assert (report.problems, report.missing, len(report.matching)) == ([], [], 10)
    assert str(caught.value) == (
        f"ensure topic {topics.observations} failed: TOPIC_MISMATCH: retention.ms is "
        "'3600000', expected '-1' (from kafka.topics: change the setting or the topic; "
        "`syncline check` lists every difference)")
