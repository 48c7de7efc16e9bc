"""`syncline run` and `syncline replay` from a config file, as processes, on the real broker."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from streams import codec
from streams.events import Observed, RecordEvent
from streams.kafka import Admin, KafkaSettings
from streams.topics import Topics, TopicSettings
from tests.e2e.harness import free_port
from tests.streams.kafka_helpers import produce, read_topic, topic_exists, wait_for

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.kafka, pytest.mark.slow]

CONFIG = """\
kafka: {{bootstrap: '{bootstrap}', topic_prefix: {prefix}, topics: {{partitions: 3}}}}
systems: {{crm: {{base_url: 'http://127.0.0.1:9'}}, helpdesk: {{base_url: 'http://127.0.0.1:9'}}}}
entities:
  contact:
    match_on: [email]
    fields:
      email: {{crm: email, helpdesk: email_address, type: string}}
      name: {{crm: full_name, helpdesk: name, type: string}}
    policy: {{default: latest}}
"""


def observed(system: str, at: float, ext: str, **fields: object) -> Observed:
    return Observed(system=system, entity="contact", seq=1, external_id=ext,
                    observed_at=at, source_ts=at, fields=fields)


async def test_run_folds_what_systems_report_and_replay_agrees(
        kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    topics = Topics(f"r{uuid.uuid4().hex[:10]}")
    config = tmp_path / "syncline.yaml"
    config.write_text(CONFIG.format(bootstrap=kafka_settings.bootstrap, prefix=topics.prefix))
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "daemon", "run", "--config", str(config),
            "--listen", f"127.0.0.1:{free_port()}",  # not the default 8080: runs side by side
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    try:
        # The same person in both systems, the helpdesk's name edited later.
        events = [observed("crm", 100, "c-1", email="ann@example.com", name="Ann"),
                  observed("helpdesk", 200, "h-7", email="ann@example.com", name="Ann Lee")]
        # The worker creates its topics (the log kept forever) before anything is produced.
        await wait_for(lambda: topic_exists(kafka_settings, topics.observations), 30,
                       "the worker to create its topics")
        await wait_for(lambda: topic_exists(kafka_settings, topics.name("lanes")), 30,
                       "the worker to create its last topic")
        async with Admin(kafka_settings) as admin:  # as kafka.topics says, not the default 4
            shapes = await admin.describe_topics([spec.name for spec in topics.specs(
                TopicSettings())])
        assert [shape.partitions for shape in shapes.values()] == [3] * 10
        await produce(kafka_settings, topics.observations,
                      [(e.key().encode(), codec.encode(e)) for e in events])

        async def linked() -> RecordEvent | None:
            latest = None
            for r in await read_topic(kafka_settings, topics.records):
                latest = codec.decode(r.value, (RecordEvent,))
            return latest if latest and set(latest.links) == {"crm", "helpdesk"} else None

        record = await wait_for(linked, 60, f"one record linked in both systems ({log})")
        assert record.fields == {"email": "ann@example.com", "name": "Ann Lee"}  # latest wins

        replayed = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "daemon", "replay", "--config", str(config)],
            cwd=REPO, capture_output=True, text=True, check=False, timeout=120)
        assert replayed.returncode == 0, replayed.stdout + replayed.stderr
        assert "into 1 records; live table: 1 records; 0 differ" in replayed.stdout
    finally:
        if worker.returncode is None:
            worker.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            assert await worker.wait() == 0, log.read_text()[-2000:]


@pytest.mark.parametrize(("env", "config_line", "words"), [
    ({"SYNCLINE_LOG_FORMAT": "xml"}, "", "SYNCLINE_LOG_FORMAT: expected json, console or auto, "
                                         "got 'xml'"),
    ({}, "logging: {format: xml}\n", "logging.format"),
    ({}, "worker: {shutdown_timeout_seconds: 0}\n", "worker.shutdown_timeout_seconds"),
])
def test_a_bad_log_format_or_deadline_is_one_line_and_exit_code_2(
        tmp_path: Path, env: dict[str, str], config_line: str, words: str) -> None:
    config = tmp_path / "syncline.yaml"
    config.write_text(CONFIG.format(bootstrap="127.0.0.1:9", prefix="x") + config_line)
    result = subprocess.run([sys.executable, "-m", "daemon", "run", "--config", str(config)],
                            cwd=REPO, capture_output=True, text=True, check=False, timeout=60,
                            env={**os.environ, **env})
    assert result.returncode == 2, result.stderr
    assert words in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
