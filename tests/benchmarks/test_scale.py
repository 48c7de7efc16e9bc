"""The scale benchmark's harness against the real broker: when both stages have caught up."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import aiokafka
import pytest

from benchmarks.scale import _caught_up
from streams.kafka import Admin, KafkaSettings, TopicSpec
from streams.topics import Topics

pytestmark = [pytest.mark.kafka]


async def _commit(settings: KafkaSettings, group: str, tp: aiokafka.TopicPartition,
                  offset: int) -> None:
    consumer = aiokafka.AIOKafkaConsumer(**settings.client_options(), group_id=group,
                                         enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.commit({tp: offset})
    finally:
        await consumer.stop()


async def _deployment(settings: KafkaSettings) -> Topics:
    """One-partition ``observations`` (one record, handled) and ``merge`` topics; the merge
    topic's tail is two transactions that ended together: data, data, marker, marker."""
    topics = Topics(f"testscale{uuid.uuid4().hex[:8]}")
    async with Admin(settings) as admin:
        for name in (topics.observations, topics.merge):
            await admin.ensure_topic(TopicSpec(name, partitions=1))
    producer = aiokafka.AIOKafkaProducer(**settings.client_options())
    await producer.start()
    try:
        await producer.send_and_wait(topics.observations, b"observed", key=b"crm/contact")
    finally:
        await producer.stop()
    await _commit(settings, f"{topics.prefix}.route",
                  aiokafka.TopicPartition(topics.observations, 0), 1)
    routes = [aiokafka.AIOKafkaProducer(**settings.client_options(),
                                        transactional_id=f"{topics.prefix}.route-{p}")
              for p in range(2)]
    for producer in routes:
        await producer.start()
    try:
        for producer in routes:  # both open, both write to merge partition 0
            await producer.begin_transaction()
            await producer.send_and_wait(topics.merge, b"routed", key=b"c", partition=0)
        for producer in routes:
            await producer.commit_transaction()
    finally:
        for producer in routes:
            await producer.stop()
    return topics


async def test_caught_up_past_two_commit_markers_in_a_row(kafka_settings: KafkaSettings
                                                         ) -> None:
    topics = await _deployment(kafka_settings)
    merge = aiokafka.TopicPartition(topics.merge, 0)
    # The merge group has handled both records: offsets 0 and 1; 2 and 3 are the markers.
    await _commit(kafka_settings, f"{topics.prefix}.merge", merge, 2)
    await _caught_up(kafka_settings, topics, partitions=1, within=15)


async def test_not_caught_up_while_a_record_is_not_handled(kafka_settings: KafkaSettings
                                                           ) -> None:
    topics = await _deployment(kafka_settings)
    merge = aiokafka.TopicPartition(topics.merge, 0)
    await _commit(kafka_settings, f"{topics.prefix}.merge", merge, 1)
    with pytest.raises(SystemExit, match="did not catch up within 3 s"):
        await _caught_up(kafka_settings, topics, partitions=1, within=3)


def test_a_worker_peak_rss_is_its_own_not_the_harness_it_was_started_from() -> None:
    """The harness holds every preloaded event; the worker process it starts does not."""
    held = bytearray(300 * 2**20)  # the harness's memory: resident, as the events are
    for i in range(0, len(held), 4096):
        held[i] = 1
    child = subprocess.run(
        [sys.executable, "-c", "from benchmarks.scale import _peak_rss_mib; "
                               "print(_peak_rss_mib())"],
        capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[2])
    assert len(held) == 300 * 2**20
    assert float(child.stdout) < 200, f"the child's peak RSS: {child.stdout} MiB"
