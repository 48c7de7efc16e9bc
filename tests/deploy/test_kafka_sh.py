"""deploy/kafka/kafka.sh when something is missing: one line, what to install, exit 2."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.scripts import free_port, tools_only

KAFKA_SH = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "kafka.sh"
# What the script may use before it finds that java or mvn is missing.
TOOLS = ("bash", "dirname", "sed", "head", "mkdir", "cat", "rm", "tr", "tail")


@pytest.fixture
def bare_path(tmp_path: Path) -> Path:
    """A directory for PATH holding basic tools and python3, but no java and no mvn."""
    bin_dir = tools_only(tmp_path, TOOLS, all_needed=True)
    (bin_dir / "python3").symlink_to(sys.executable)
    return bin_dir


def run(command: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        "HOME": str(tmp_path),
        "SYNCLINE_KAFKA_STATE": str(tmp_path / "state"),
        "SYNCLINE_KAFKA_CACHE": str(tmp_path / "cache"),
        "SYNCLINE_KAFKA_PORT": str(free_port()),
        **env,
    }
    return subprocess.run(
        [str(KAFKA_SH), command],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        check=False,
    )


def test_missing_java_is_one_line_saying_what_to_install(tmp_path: Path, bare_path: Path) -> None:
    result = run("up", tmp_path, PATH=str(bare_path))

    assert result.returncode == 2
    assert result.stderr.startswith("kafka.sh: java not found: install a Java 17+ runtime")
    assert "openjdk-17-jre-headless" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_missing_maven_is_one_line_saying_what_to_install(tmp_path: Path, bare_path: Path) -> None:
    java = shutil.which("java")
    if java is None:
        pytest.skip("needs java")
    java_home = Path(os.path.realpath(java)).parent.parent

    result = run("up", tmp_path, PATH=str(bare_path), JAVA_HOME=str(java_home))

    assert result.returncode == 2
    assert result.stderr.startswith("kafka.sh: mvn not found: install Apache Maven")
    assert len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "cache").exists()


def test_status_of_a_broker_that_never_ran(tmp_path: Path) -> None:
    result = run("status", tmp_path, PATH=os.environ["PATH"])

    assert result.returncode == 3
    assert result.stdout.startswith("kafka.sh: not running")


def test_an_unknown_command_shows_the_usage(tmp_path: Path) -> None:
    result = run("start", tmp_path, PATH=os.environ["PATH"])

    assert result.returncode == 2
    assert "usage:" in result.stderr
