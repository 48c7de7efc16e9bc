"""``syncline demo`` as a user runs it: a process, what it prints and its exit code."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

STORY = ("✓ 4 contacts in both systems; Ann linked, not duplicated",
         "✓ Ann's tags merged on both sides (union): customer, vip",
         "✓ the CRM has Bob's new phone",
         "✓ Cy is gone from the helpdesk too",
         "✓ a conflict on phone, decided by 'latest'",
         "✓ both systems hold the winning phone",
         "✓ an open conflict on Ann's name, waiting for review",
         "records in sync:    3 of 3 (CRM) / 3 (helpdesk)",
         "conflicts:          3 recorded, 1 open for review")
"""Lines the demo prints when its whole story happened."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def demo(tmp_path: Path, *extra: str, env: dict[str, str] | None = None,
         ports: tuple[int, int, int] | None = None) -> subprocess.CompletedProcess[str]:
    crm, helpdesk, worker = ports or (free_port(), free_port(), free_port())
    return subprocess.run(
        [sys.executable, "-m", "daemon", "demo", "--crm-port", str(crm), "--helpdesk-port",
         str(helpdesk), "--worker-port", str(worker), "--dir", str(tmp_path / "demo"), *extra],
        capture_output=True, text=True, timeout=240, check=False, cwd=REPO,
        env=env if env is not None else dict(os.environ))


@pytest.mark.kafka
@pytest.mark.slow
def test_the_demo_tells_its_story_and_ends_with_a_summary(kafka_bootstrap: str,
                                                          tmp_path: Path) -> None:
    port = kafka_bootstrap.rpartition(":")[2]
    result = demo(tmp_path, env={**os.environ, "SYNCLINE_KAFKA_PORT": port})

    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for line in STORY:
        assert line in out, out
    report = tmp_path / "demo" / "conflicts.html"
    assert f"conflict-review report: {report}" in out
    html = report.read_text()
    assert "<html" in html and "Ann Archer-Smith" in html and "Ann A. Archer" in html
    assert "Ann Archer-Smith" in (tmp_path / "demo" / "conflicts.md").read_text()


@pytest.mark.kafka
@pytest.mark.slow
def test_a_broker_the_demo_started_is_stopped_again(kafka_bootstrap: str,
                                                    tmp_path: Path) -> None:
    # A broker of its own, on another port, so the suite's shared broker is not touched.
    port = str(free_port())
    env = {**os.environ, "SYNCLINE_KAFKA_PORT": port,
           "SYNCLINE_KAFKA_CONTROLLER_PORT": str(free_port()),
           "SYNCLINE_KAFKA_STATE": str(tmp_path / "kafka")}
    result = demo(tmp_path, env=env)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "starting Kafka" in result.stdout
    assert "stopping Kafka (it was started for the demo)" in result.stdout
    status = subprocess.run([str(REPO / "deploy" / "kafka" / "kafka.sh"), "status"],
                            capture_output=True, text=True, env=env, check=False)
    assert status.returncode == 3, status.stdout + status.stderr  # not running


def test_a_taken_port_is_one_clear_line_and_exit_code_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = int(taken.getsockname()[1])
        result = demo(tmp_path, ports=(port, free_port(), free_port()))

    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"demo: port {port} (for the crm) is taken on 127.0.0.1; stop what uses it, or "
        "choose another with --crm-port")


def test_without_java_the_demo_says_so(tmp_path: Path) -> None:
    result = demo(tmp_path, env={"PATH": str(tmp_path), "HOME": str(tmp_path)})

    assert result.returncode == 2
    assert "java is not installed" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_story_against_a_config_that_is_not_there_is_one_clear_line(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"
    result = subprocess.run(
        [sys.executable, "-m", "daemon", "demo", "--against", str(missing)],
        capture_output=True, text=True, timeout=60, check=False, cwd=REPO)
    assert result.returncode == 2
    assert result.stderr.strip() == f"{missing}: no such file"
