"""`syncline dlq list|redrive` against the real broker and a running merge worker."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from streams.dlq import letters
from streams.kafka import KafkaSettings
from streams.topics import Topics, TopicSettings
from streams.worker import MergeWorker
from tests.streams.catalog import CATALOG
from tests.streams.kafka_helpers import produce, read_topic, wait_for

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.kafka]


def syncline(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "daemon", *args], capture_output=True,
                          text=True, check=False, cwd=REPO, timeout=120)


async def test_dead_letters_are_listed_and_re_driven(kafka_settings: KafkaSettings,
                                                     tmp_path: Path) -> None:
    topics = Topics(f"d{uuid.uuid4().hex[:10]}")
    config = tmp_path / "syncline.yaml"
    config.write_text(f"kafka:\n  bootstrap: {kafka_settings.bootstrap}\n"
                      f"  topic_prefix: {topics.prefix}\n")
    worker = MergeWorker(kafka_settings, topics, CATALOG,
                         topic_settings=TopicSettings(partitions=1))
    await worker.ensure_topics()
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        await produce(kafka_settings, topics.observations, [(b"crm/contact/9", b"<html>oops")])

        async def dead(n: int) -> list[object] | None:
            found = await letters(kafka_settings, topics)
            return found if len(found) >= n else None

        await wait_for(lambda: dead(1), 60, "a dead letter")
        listed = await asyncio.to_thread(syncline, "dlq", "list", "--config", str(config))
        assert listed.returncode == 0, listed.stderr
        assert "0:0  route  " in listed.stdout and "Undecodable: not JSON" in listed.stdout
        assert listed.stdout.strip().endswith("1 dead letter")

        nothing = await asyncio.to_thread(syncline, "dlq", "redrive", "--config", str(config))
        assert nothing.returncode == 2 and "--id ID" in nothing.stderr
        unknown = await asyncio.to_thread(syncline, "dlq", "redrive", "--config", str(config),
                                          "--id", "0:99")
        assert unknown.returncode == 2 and "no dead letter 0:99" in unknown.stderr

        sent = await asyncio.to_thread(syncline, "dlq", "redrive", "--config", str(config),
                                       "--id", "0:0")
        assert sent.returncode == 0 and "re-drove 1 dead letter" in sent.stdout
        originals = [r.value for r in await read_topic(kafka_settings, topics.observations)]
        assert originals == [b"<html>oops", b"<html>oops"]  # the same bytes, sent back
        await wait_for(lambda: dead(2), 60, "the re-driven input to fail again")
    finally:
        stop.set()
        await task
