"""``syncline check`` as a user runs it: a process, its exit code and what it prints."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from daemon.sandbox import run_crm, run_helpdesk
from streams.kafka import Admin, KafkaSettings
from streams.topics import Topics, TopicSettings
from tests.streams.kafka_helpers import topic_exists

REPO = Path(__file__).resolve().parents[2]


def run_check(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "daemon", "check", "--config", str(config), "--timeout", "10"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.kafka
def test_a_good_config_with_the_broker_up_is_ok(kafka_bootstrap: str, tmp_path: Path) -> None:
    config = write(tmp_path / "syncline.yaml", f"kafka:\n  bootstrap: {kafka_bootstrap}\n")

    result = run_check(config)

    assert result.returncode == 0, result.stderr
    assert f"config ok: {config}" in result.stdout
    assert f"kafka ok: {kafka_bootstrap}" in result.stdout
    assert result.stderr == ""


EXAMPLE_ENV = {"CRM_TOKEN": "example-crm-token", "CRM_WEBHOOK_SECRET": "example-secret",
               "SYNCLINE_REVIEW_TOKEN": "example-review-token",
               "HELPDESK_API_KEY": "example-helpdesk-key"}


async def check_example(kafka_bootstrap: str, tmp_path: Path, *args: str,
                        helpdesk_down: bool = False, helpdesk_user: bool = False
                        ) -> tuple[int, str, str]:
    """``syncline check`` of the example config, pointed at running simulated systems."""
    async with run_crm(token=EXAMPLE_ENV["CRM_TOKEN"]) as crm, run_helpdesk(
            api_key=EXAMPLE_ENV["HELPDESK_API_KEY"], rate_limit=None) as helpdesk:
        async with httpx.AsyncClient(base_url=helpdesk.url) as admin:
            if helpdesk_down:
                await admin.post("/_admin/faults", json={"down": True})
            if helpdesk_user:
                (await admin.post("/_admin/edit/users", json={"op": "create", "fields": {
                    "name": "Ada", "email_address": "ada@example.com"}})).raise_for_status()
        text = (REPO / "examples" / "syncline.yaml").read_text()
        text = (text.replace("http://127.0.0.1:8101", crm.url)
                .replace("http://127.0.0.1:8102", helpdesk.url)
                .replace("127.0.0.1:19092", kafka_bootstrap)
                # The example's prefix is shared by whatever else uses the example on this
                # broker: a worker running its lanes makes --write-probe refuse (exit 2), and
                # its topics may not match. A prefix of this check's own sees neither.
                .replace("topic_prefix: syncline",
                         f"topic_prefix: check-example-{uuid.uuid4().hex[:10]}"))
        assert "topic_prefix: check-example-" in text, "the example's topic_prefix moved"
        config = write(tmp_path / "syncline.yaml", text)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "daemon", "check", "--config", str(config), *args, cwd=REPO,
            env={**os.environ, **EXAMPLE_ENV}, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.mark.kafka
async def test_the_example_config_reaches_kafka_and_every_api(kafka_bootstrap: str,
                                                              tmp_path: Path) -> None:
    code, out, err = await check_example(kafka_bootstrap, tmp_path)

    assert code == 0, err
    assert "api ok: crm contact\n" in out
    assert "api ok: helpdesk contact\n" in out
    assert "/api/v2/users?page=1&per_page=100\n" in out  # the exact request, query included
    assert "example-crm-token" not in out + err


@pytest.mark.kafka
async def test_the_example_config_passes_the_write_probe(kafka_bootstrap: str,
                                                         tmp_path: Path) -> None:
    empty = await check_example(kafka_bootstrap, tmp_path, "--write-probe")
    code, out, err = await check_example(kafka_bootstrap, tmp_path, "--write-probe",
                                         helpdesk_user=True)

    assert code == 0, err
    # The CRM allows a scratch record (check.scratch); the helpdesk's user is written back.
    lines = out.splitlines()
    assert "    write probe: created scratch record ct_00000001; all 2 fields round-trip" in lines
    assert "    write probe: scratch record ct_00000001 deleted" in lines
    assert "    write probe: wrote record 1's own values back; all 4 fields round-trip" in lines
    # With nothing to write back and no scratch allowed, the probe proves nothing: not ok.
    assert empty[0] == 1
    assert ("api FAILED: helpdesk contact: write probe: no record to write back (the listing "
            "is empty); set check.scratch to let the probe create one") in empty[2]


@pytest.mark.kafka
async def test_an_api_that_does_not_answer_fails_the_check(kafka_bootstrap: str,
                                                           tmp_path: Path) -> None:
    code, out, err = await check_example(kafka_bootstrap, tmp_path, helpdesk_down=True)

    assert code == 2
    assert "api ok: crm contact" in out
    assert "api FAILED: helpdesk contact: GET " in err
    assert "503" in err
    assert "1 of the systems' APIs could not be reached" in err


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"

    result = run_check(missing)

    assert result.returncode == 2
    assert result.stderr.strip() == f"{missing}: no such file"


def test_malformed_yaml_is_reported_with_its_line(tmp_path: Path) -> None:
    config = write(tmp_path / "broken.yaml", "kafka:\n  bootstrap: [127.0.0.1:19092\n")

    result = run_check(config)

    assert result.returncode == 2
    assert result.stderr.startswith(f"{config}:3:1: not valid YAML: ")
    assert "Traceback" not in result.stderr


def test_a_wrong_type_at_a_nested_path_names_file_line_and_path(tmp_path: Path) -> None:
    config = write(
        tmp_path / "typo.yaml",
        "kafka:\n  bootstrap: 127.0.0.1:19092\n  client_id: [not, a, string]\n",
    )

    result = run_check(config)

    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"{config}:3: kafka.client_id: expected a valid string, got ['not', 'a', 'string'] (a list)"
    )


def test_every_problem_gets_its_own_line(tmp_path: Path) -> None:
    config = write(tmp_path / "two.yaml", "kafka:\n  bootstrap: nowhere\n  colour: blue\n")

    result = run_check(config)

    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"{config}:2: kafka.bootstrap: expected host:port[,host:port...], got 'nowhere'",
        f"{config}:3: kafka.colour: unknown key (allowed: bootstrap, client_id, "
        "security_protocol, sasl, ssl, request_timeout, topics, topic_prefix)",
    ]


def test_a_broker_that_is_down_is_named_with_what_to_do(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"
    config = write(tmp_path / "down.yaml", f"kafka:\n  bootstrap: {address}\n")

    result = run_check(config)

    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"syncline: cannot reach Kafka at {address}: no broker accepted a connection; "
        f"is the broker running? To start the local one: bash {REPO}/deploy/kafka/kafka.sh up"
    )


async def made_topics(kafka_bootstrap: str, partitions: int) -> Topics:
    """A deployment's topics under a new prefix, as `syncline run` creates them."""
    topics = Topics(f"check-{uuid.uuid4().hex[:10]}")
    async with Admin(KafkaSettings(bootstrap=kafka_bootstrap)) as admin:
        await topics.ensure(admin, TopicSettings(partitions=partitions))
    return topics


@pytest.mark.kafka
async def test_topics_as_configured_pass_the_check(kafka_bootstrap: str, tmp_path: Path) -> None:
    topics = await made_topics(kafka_bootstrap, partitions=2)
    config = write(tmp_path / "syncline.yaml",
                   f"kafka:\n  bootstrap: {kafka_bootstrap}\n  topic_prefix: {topics.prefix}\n"
                   "  topics: {partitions: 2, replication_factor: 1}\n")

    result = run_check(config)

    assert result.returncode == 0, result.stderr
    assert "topics ok: 10 as configured (2 partitions, replication factor 1)" in result.stdout


@pytest.mark.kafka
async def test_topics_that_differ_from_the_settings_fail_the_check(kafka_bootstrap: str,
                                                                   tmp_path: Path) -> None:
    topics = await made_topics(kafka_bootstrap, partitions=2)
    config = write(tmp_path / "syncline.yaml",
                   f"kafka:\n  bootstrap: {kafka_bootstrap}\n  topic_prefix: {topics.prefix}\n"
                   "  topics: {partitions: 3, retention_ms: 86400000}\n")

    result = run_check(config)

    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert (f"topics FAILED: topic {topics.observations}: 2 partitions, kafka.topics.partitions "
            "is 3; retention.ms is '-1', expected '86400000'") in lines
    assert (f"topics FAILED: topic {topics.records}: 2 partitions, kafka.topics.partitions "
            "is 3") in lines
    assert len([line for line in lines if line.startswith("topics FAILED")]) == 10
    assert lines[-1].startswith("syncline: the topics do not match kafka.topics (above)")
    assert "Traceback" not in result.stderr


@pytest.mark.kafka
def test_more_replicas_than_brokers_is_named_by_check_and_run(kafka_bootstrap: str,
                                                               tmp_path: Path) -> None:
    prefix = f"check-{uuid.uuid4().hex[:10]}"
    config = write(tmp_path / "syncline.yaml",
                   f"kafka:\n  bootstrap: {kafka_bootstrap}\n  topic_prefix: {prefix}\n"
                   "  topics: {replication_factor: 3, min_insync_replicas: 2}\n")
    unmet = ("kafka.topics.replication_factor is 3, but the cluster has 1 broker: every "
             "partition needs that many brokers (lower the setting, or add brokers)")

    checked = run_check(config)
    ran = subprocess.run([sys.executable, "-m", "daemon", "run", "--config", str(config),
                          "--role", "merge", "--listen", "127.0.0.1:0"],
                         capture_output=True, text=True, timeout=60, check=False, cwd=REPO)

    assert checked.returncode == 2
    assert f"topics FAILED: {unmet}" in checked.stderr.splitlines()
    assert ran.returncode == 2
    assert ran.stderr.splitlines()[-1] == (
        f"syncline: Kafka at {kafka_bootstrap}: the topics cannot be created: {unmet}")
    assert "Traceback" not in ran.stderr
    assert not asyncio.run(topic_exists(KafkaSettings(bootstrap=kafka_bootstrap),
                                        Topics(prefix).observations))
