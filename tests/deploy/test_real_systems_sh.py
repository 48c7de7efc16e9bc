"""deploy/real-systems/*.sh: a missing tool, a taken port or a wrong command is one line."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.scripts import free_port, tools_only

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "real-systems"
TOOLS = ("bash", "dirname", "mkdir", "cat", "rm", "tr", "tail", "grep", "sleep", "flock")


@pytest.fixture
def bare_path(tmp_path: Path) -> Path:
    """A directory for PATH with basic tools, but no npm, java, mvn or compiler."""
    return tools_only(tmp_path, TOOLS, all_needed=False)


def run(script: str, command: str, tmp_path: Path, **env: str
        ) -> subprocess.CompletedProcess[str]:
    environment = {"HOME": str(tmp_path), "SYNCLINE_REAL_CACHE": str(tmp_path / "cache"),
                   "SYNCLINE_REAL_STATE": str(tmp_path / "state"), **env}
    return subprocess.run([str(DEPLOY / f"{script}.sh"), command], capture_output=True,
                          text=True, env=environment, timeout=60, check=False)


@pytest.mark.parametrize(("script", "missing", "how"), [
    ("nocodb", "npm", "install Node.js and npm (Debian: apt-get install npm)"),
    ("keycloak", "java", "install a Java 17+ runtime"),
])
def test_a_missing_tool_is_one_line_saying_what_to_install(
        tmp_path: Path, bare_path: Path, script: str, missing: str, how: str) -> None:
    result = run(script, "install", tmp_path, PATH=str(bare_path))

    assert result.returncode == 2
    assert result.stderr.startswith(f"{script}.sh: {missing} not found: {how}")
    assert len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_a_taken_port_is_named_before_anything_starts(tmp_path: Path, taken_port: int
                                                      ) -> None:
    # Pretend it is installed: the port is checked before anything runs.
    (tmp_path / "cache" / "nocodb-0.301.3").mkdir(parents=True)
    (tmp_path / "cache" / "nocodb-0.301.3" / ".complete").touch()

    result = run("nocodb", "start", tmp_path, PATH="/usr/bin:/bin",
                 SYNCLINE_NOCODB_PORT=str(taken_port))

    assert result.returncode == 1
    assert result.stderr == (f"nocodb.sh: port {taken_port} is in use by another program; "
                             "set SYNCLINE_NOCODB_PORT\n")


@pytest.mark.parametrize("script", ["nocodb", "keycloak"])
def test_status_of_a_system_never_started_and_a_wrong_command(tmp_path: Path,
                                                              script: str) -> None:
    port = {"nocodb": "SYNCLINE_NOCODB_PORT", "keycloak": "SYNCLINE_KEYCLOAK_PORT"}[script]

    status = run(script, "status", tmp_path, PATH="/usr/bin:/bin", **{port: str(free_port())})
    wrong = run(script, "launch", tmp_path, PATH="/usr/bin:/bin")

    assert (status.returncode, status.stdout) == (3, f"{script}.sh: not running\n")
    assert wrong.returncode == 2
    assert wrong.stderr == f"usage: {DEPLOY / script}.sh install|start|seed|stop|reset|status\n"


def test_a_launched_server_does_not_hold_the_scripts_lock(tmp_path: Path) -> None:
    """A server started under ``lock`` must not inherit the lock's descriptor: else the next
    ``start`` of the same system (SYNCLINE_REAL_KEEP=1, or after a start that timed out)
    waits for the lock as long as the server runs."""
    script = (f'NAME=fake VERSION=0 PORT=1; . "{DEPLOY}/lib.sh"; '
              f'lock 8 "$STATE_DIR.lock"; launch sleep 30; cat "$PID_FILE"')
    env = {"HOME": str(tmp_path), "SYNCLINE_REAL_STATE": str(tmp_path / "state"),
           "PATH": "/usr/bin:/bin"}
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env,
                          timeout=30, check=True)
    pid = int(done.stdout.split()[-1])
    try:
        # The script has exited; the lock must be free at once.
        free = subprocess.run(["flock", "-n", str(tmp_path / "state" / "fake-1.lock"),
                               "true"], timeout=10, check=False)
        assert free.returncode == 0, "the launched server holds the lock"
    finally:
        subprocess.run(["kill", str(pid)], check=False)
