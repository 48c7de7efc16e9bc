"""SIGTERM while a worker restores its partitions' state: it stops at once, commits nothing,
and leaves no partially restored store behind; the next worker restores everything again.

A rolling update sends SIGTERM, then SIGKILL after the grace period. Restoring reads each
assigned partition's whole changelog (minutes at a million records); a worker that waits
for the end of its restore before it stops is always killed hard.
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import time
from pathlib import Path

import aiokafka
import pytest

from streams.kafka import KafkaSettings
from streams.topics import Topics
from tests.streams.test_merge_kafka import preload, start_worker, topics, workers

__all__ = ["topics", "workers"]  # fixtures, used by name

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

PARTITIONS = 3
LINKS = 3_000_000
"""Links in the route stage's changelog, over its partitions: a restore of several seconds
into RocksDB (batched writes without a WAL restore 1,000,000 links in about 4 s on a shared
2-core machine; 3,000,000 keeps the restore well past STOP_WITHIN)."""

STOP_WITHIN = 2.0
"""Seconds from SIGTERM to exit: the getmany wait, the cancel, leaving the group."""


async def fill_changelog(settings: KafkaSettings, topic: str, count: int,
                         partitions: int = PARTITIONS) -> dict[int, int]:
    """``count`` links on ``topic``, spread over its ``partitions``; its end offsets."""
    producer = aiokafka.AIOKafkaProducer(**settings.client_options(), linger_ms=20,
                                         max_batch_size=256 * 1024)
    await producer.start()
    try:
        sent = [await producer.send(topic, f"crm/contact/c-{i}".encode(),
                                    key=f"link-{i}".encode(), partition=i % partitions)
                for i in range(count)]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    return await end_offsets(settings, topic, partitions)


async def end_offsets(settings: KafkaSettings, topic: str, partitions: int = PARTITIONS
                      ) -> dict[int, int]:
    reader = aiokafka.AIOKafkaConsumer(**settings.client_options(), group_id=None)
    await reader.start()
    try:
        tps = [aiokafka.TopicPartition(topic, p) for p in range(partitions)]
        return {tp.partition: end for tp, end in (await reader.end_offsets(tps)).items()}
    finally:
        await reader.stop()


async def committed_offsets(settings: KafkaSettings, group: str, topics: list[str]
                            ) -> dict[tuple[str, int], int]:
    reader = aiokafka.AIOKafkaConsumer(**settings.client_options(), group_id=group,
                                       enable_auto_commit=False)
    await reader.start()
    try:
        found = {}
        for topic in topics:
            for p in range(PARTITIONS):
                offset = await reader.committed(aiokafka.TopicPartition(topic, p))
                if offset is not None:
                    found[topic, p] = offset
        return found
    finally:
        await reader.stop()


def tail(log: Path) -> str:
    return log.read_text()[-3000:]


async def log_shows(log: Path, pattern: str, within: float) -> re.Match[str]:
    """Poll ``log`` every 20 ms until ``pattern`` is in it."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = re.search(pattern, await asyncio.to_thread(log.read_text))
        if found:
            return found
        await asyncio.sleep(0.02)
    raise AssertionError(f"no {pattern!r} in {log} after {within}s:\n{tail(log)}")


async def test_sigterm_during_restore_stops_at_once_and_the_next_worker_restores_again(
        kafka_settings: KafkaSettings, topics: Topics, tmp_path: Path,
        workers: list[subprocess.Popen[bytes]]) -> None:
    await preload(kafka_settings, topics, [])
    changelog = topics.name("links_changelog")
    ends = await fill_changelog(kafka_settings, changelog, LINKS)
    assert sum(ends.values()) == LINKS
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"

    workers.append(start_worker(kafka_settings, topics, first_log, tmp_path / "first"))
    await log_shows(first_log, rf"restoring {changelog} partition 0", 60)
    await asyncio.sleep(0.5)  # well into it
    signalled = time.monotonic()
    workers[0].send_signal(signal.SIGTERM)
    code = await asyncio.to_thread(workers[0].wait, 120)
    stopped_after = time.monotonic() - signalled
    text = first_log.read_text()
    print(f"SIGTERM during restore: exited {code} after {stopped_after:.2f}s")

    assert code == 0, text[-3000:]
    assert stopped_after < STOP_WITHIN, f"stopped {stopped_after:.2f}s after SIGTERM"
    assert "Traceback" not in text, text[-3000:]
    assert f"abandoned the restore of {changelog}" in text, text[-3000:]
    # No partially restored store is left for anyone to trust.
    assert not any((tmp_path / "first" / "links").glob("partition-*")), text[-3000:]
    # Committed nothing: no changelog record, no consumer offset.
    assert await end_offsets(kafka_settings, changelog) == ends
    assert await committed_offsets(kafka_settings, f"{topics.prefix}.route",
                                   [topics.observations, topics.resolutions]) == {}

    # The next worker, in the same state directory (a restarted pod's volume), restores
    # every partition from the changelog again, whole.
    started = time.monotonic()
    workers.append(start_worker(kafka_settings, topics, second_log, tmp_path / "first"))
    restored = 0
    for p in range(PARTITIONS):
        found = await log_shows(second_log, rf"restored {changelog} partition {p}: (\d+) keys",
                                240)
        restored += int(found.group(1))
    restore_seconds = time.monotonic() - started
    print(f"a full restore took {restore_seconds:.2f}s (start to the last partition restored)")
    assert restored == LINKS
    # The test means something only if stopping at the end of the restore would be late.
    assert restore_seconds > 2 * STOP_WITHIN, "the restore is too short to tell"
