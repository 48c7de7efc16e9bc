"""``syncline check`` as a user runs it: a process, its exit code and what it prints."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from daemon.sandbox import run_crm, run_helpdesk

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


async def check_example(kafka_bootstrap: str, tmp_path: Path, *, helpdesk_down: bool = False
                        ) -> tuple[int, str, str]:
    """``syncline check`` of the example config, pointed at running simulated systems."""
    async with run_crm(token=EXAMPLE_ENV["CRM_TOKEN"]) as crm, run_helpdesk(
            api_key=EXAMPLE_ENV["HELPDESK_API_KEY"], rate_limit=None) as helpdesk:
        if helpdesk_down:
            async with httpx.AsyncClient(base_url=helpdesk.url) as admin:
                await admin.post("/_admin/faults", json={"down": True})
        text = (REPO / "examples" / "syncline.yaml").read_text()
        text = (text.replace("http://127.0.0.1:8101", crm.url)
                .replace("http://127.0.0.1:8102", helpdesk.url)
                .replace("127.0.0.1:19092", kafka_bootstrap))
        config = write(tmp_path / "syncline.yaml", text)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "daemon", "check", "--config", str(config), cwd=REPO,
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
    assert "api ok: crm contact (" in out
    assert "api ok: helpdesk contact (" in out
    assert "/api/v2/users?page=1&per_page=100: " in out  # the exact request, query included
    assert "example-crm-token" not in out + err


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
        f"{config}:3: kafka.colour: unknown key (allowed: bootstrap, topic_prefix, client_id, "
        "security_protocol, sasl, ssl)",
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
        "is the broker running? To start the local one: deploy/kafka/kafka.sh up"
    )
