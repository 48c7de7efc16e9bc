"""The container suite: the images built by the project's scripts and the demo of
deploy/compose.yaml run by Compose, checked through the simulated systems' APIs.

Run it with ``make test-container`` (it is left out of ``make test``). It installs Docker and
Compose with deploy/docker/setup.sh and builds the images with deploy/docker/build.sh; where
Docker cannot be started (no root, no apt-get, no kernel support), it is skipped with the reason.
``SYNCLINE_CONTAINER_KEEP=1`` leaves the Compose project up afterwards, to look around.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest

from tests.container.stack import ROOT, Stack, docker, free_port

MEASURED: dict[str, str] = {}
"""What the suite measured, shown at the end of the run (docs/DEPLOY.md quotes it)."""


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """Docker installed and its engine answering, or the suite skipped saying why."""
    if os.environ.get("SYNCLINE_CONTAINER_SKIP_SETUP") != "1":
        setup = subprocess.run([str(ROOT / "deploy/docker/setup.sh")], capture_output=True,
                               text=True, timeout=900, check=False)
        if setup.returncode != 0:
            pytest.skip(f"Docker cannot be started here: {setup.stderr.strip()}")
    check = subprocess.run([str(ROOT / "deploy/docker/setup.sh"), "check"],
                           capture_output=True, text=True, timeout=60, check=False)
    if check.returncode != 0:
        pytest.skip(f"Docker cannot be started here: {check.stderr.strip()}")


@pytest.fixture(scope="session")
def images(docker_engine: None) -> None:
    """The worker's and Kafka's images, built by the project's script (a failure fails)."""
    started = time.monotonic()
    build = subprocess.run([str(ROOT / "deploy/docker/build.sh")], capture_output=True,
                           text=True, timeout=3600, check=False)
    assert build.returncode == 0, f"deploy/docker/build.sh failed:\n{build.stdout[-3000:]}\n" \
                                  f"{build.stderr[-3000:]}"
    MEASURED["deploy/docker/build.sh (bases, worker, Kafka)"] = (
        f"{time.monotonic() - started:.0f} s")
    for line in build.stdout.splitlines():
        if " built in " in line:
            MEASURED[line.split(": ", 1)[1].split(" built")[0]] = line.split("; ")[-1]


@pytest.fixture(scope="session")
def stack(images: None) -> Iterator[Stack]:
    """deploy/compose.yaml with the local Kafka image, up, its story played to the end."""
    stack = Stack(project=f"synclinetest{uuid.uuid4().hex[:6]}", crm_port=free_port(),
                  helpdesk_port=free_port())
    started = time.monotonic()
    try:
        stack.compose("up", "-d")
        stack.story_exit = stack.wait_exit("story", timeout=300)
        MEASURED["compose up until the story ends"] = f"{time.monotonic() - started:.0f} s"
        yield stack
    finally:
        stack.dump_logs_if_failed()
        if os.environ.get("SYNCLINE_CONTAINER_KEEP") != "1":
            stack.compose("down", "-v", "--remove-orphans")
            # Down means down: no container and no network of the project is left.
            label = f"label=com.docker.compose.project={stack.project}"
            assert not docker("ps", "-a", "-q", "--filter", label).strip()
            assert not docker("network", "ls", "-q", "--filter", label).strip()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if MEASURED:
        terminalreporter.section("container suite: measured")
        for what, value in MEASURED.items():
            terminalreporter.write_line(f"{what}: {value}")

