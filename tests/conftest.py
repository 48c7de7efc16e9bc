"""Fixtures shared by the whole suite: the real Kafka broker and per-test topic names.

Tests that need Kafka are marked ``@pytest.mark.kafka`` and ask for ``kafka_bootstrap``.
With ``SYNCLINE_TEST_KAFKA=host:port`` they use that broker; otherwise the session runs
``deploy/kafka/kafka.sh up`` (a no-op when the local broker already runs) and stops the
broker at the end only if it was this session that started it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from streams.kafka import KafkaSettings
from tests.kafka_sessions import Session

# Timing is no property of the code: on a shared two-core machine running brokers and
# browsers next to the suite, Hypothesis' slow-generation check and per-example deadline
# fail tests that are merely waiting for a core.
settings.register_profile("syncline", suppress_health_check=[HealthCheck.too_slow],
                          deadline=None)
settings.load_profile("syncline")

REPO = Path(__file__).resolve().parent.parent
KAFKA_SH = REPO / "deploy" / "kafka" / "kafka.sh"


def pytest_configure(config: pytest.Config) -> None:
    """Refuse to test a compiled module older than its source (``make compile`` again)."""
    for built in sorted((REPO / "conflict").glob("*.so")):
        source = built.parent / (built.name.split(".", 1)[0] + ".py")
        if source.exists() and source.stat().st_mtime > built.stat().st_mtime:
            pytest.exit(f"{built.relative_to(REPO)} is older than {source.name}: the tests "
                        "would run the old code. Run `make compile` again, or "
                        "`make clean-compiled` to test the interpreted fold.", returncode=2)


def _kafka_sh(command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(KAFKA_SH), command], capture_output=True, text=True, timeout=900, check=False
    )


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """The bootstrap address of a running Kafka broker."""
    given = os.environ.get("SYNCLINE_TEST_KAFKA")
    if given:
        yield from _session_on(given)
        return
    was_running = _kafka_sh("status").returncode == 0
    up = _kafka_sh("up")
    if up.returncode != 0:
        pytest.fail(
            f"could not start Kafka with {KAFKA_SH} up (or set SYNCLINE_TEST_KAFKA):\n"
            f"{up.stdout}{up.stderr}",
            pytrace=False,
        )
    bootstrap = f"127.0.0.1:{os.environ.get('SYNCLINE_KAFKA_PORT', '19092')}"
    yield from _session_on(bootstrap)
    if not was_running:
        _kafka_sh("down")


def _session_on(bootstrap: str) -> Iterator[str]:
    """The session on ``bootstrap``; at its end, the topics made during it are deleted
    (every test makes its own, named uniquely) — by the last of the sessions sharing that
    broker to end (tests/kafka_sessions.py).

    Left behind, they pile up over runs on the local broker, and a broker holding ~20,000
    partition directories runs out of file descriptors and takes its log directory offline.
    ``SYNCLINE_TEST_KEEP_TOPICS=1`` keeps this session's.
    """
    session = Session(bootstrap)
    session.begin()
    yield bootstrap
    if os.environ.get("SYNCLINE_TEST_KEEP_TOPICS"):
        session.only = lambda _: False
    try:
        session.end()
    except Exception as exc:  # cleanup must not turn a green run red
        print(f"\nconftest: could not delete the session's test topics: {exc!r}",
              file=sys.stderr)


@pytest.fixture
def kafka_settings(kafka_bootstrap: str) -> KafkaSettings:
    """Client settings for the test broker."""
    return KafkaSettings(bootstrap=kafka_bootstrap, client_id="syncline-tests")


@pytest.fixture
def topic_name(request: pytest.FixtureRequest) -> str:
    """A topic name no other test (and no earlier run) uses: the test's name plus a uuid."""
    test = re.sub(r"[^A-Za-z0-9-]+", "-", request.node.name).strip("-")[:80]
    return f"test-{test}-{uuid.uuid4().hex[:12]}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The hostile-input tests' counts: examples run, dead letters, refusals."""
    from tests.hostile import TALLY

    if TALLY:
        terminalreporter.section("hostile inputs")
        for name, n in sorted(TALLY.items()):
            terminalreporter.write_line(f"{name}: {n}")
