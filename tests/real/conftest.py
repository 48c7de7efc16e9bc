"""Fixtures of the real-systems suite: NocoDB and Keycloak started by the project's own
scripts, fresh for the session, and ``syncline run`` with the example config against them.

Run it with ``make test-real`` (it is left out of ``make test``). ``SYNCLINE_REAL_KEEP=1``
keeps the systems' data from the last run instead of starting from empty ones.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.real.systems import Keycloak, NocoDB, Worker, eventually, script

MEASURED: dict[str, str] = {}
"""What the suite measured, shown at the end of the run (docs/REAL-SYSTEMS.md quotes it)."""


KEEP = os.environ.get("SYNCLINE_REAL_KEEP") == "1"


def _up(name: str) -> Iterator[dict[str, str]]:
    """Start ``name`` empty (unless KEEP), seeded; stop it after the session (unless KEEP)."""
    started = time.monotonic()
    if not KEEP:
        script(name, "reset")
    script(name, "start")
    seed = script(name, "seed")
    MEASURED[f"{name}: install (if needed), start and seed"] = (
        f"{time.monotonic() - started:.1f} s")
    yield seed
    if not KEEP:
        script(name, "stop")


@pytest.fixture(scope="session")
def noco_seed() -> Iterator[dict[str, str]]:
    yield from _up("nocodb")


@pytest.fixture(scope="session")
def keycloak_seed() -> Iterator[dict[str, str]]:
    yield from _up("keycloak")


@pytest.fixture(scope="session")
def noco(noco_seed: dict[str, str]) -> Iterator[NocoDB]:
    api = NocoDB(noco_seed)
    yield api
    api.http.close()


@pytest.fixture(scope="session")
def keycloak(keycloak_seed: dict[str, str]) -> Iterator[Keycloak]:
    api = Keycloak(keycloak_seed)
    yield api
    api.http.close()


@pytest.fixture(scope="session")
def worker(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str,
           noco_seed: dict[str, str], keycloak_seed: dict[str, str], noco: NocoDB,
           keycloak: Keycloak) -> Iterator[Worker]:
    """The worker, started after one record was made in each system; how long until each
    reached the other is the time to first sync."""
    tmp: Path = tmp_path_factory.mktemp("real")
    running = Worker(tmp, noco_seed, keycloak_seed, kafka_bootstrap)
    noco.create(FirstName="First", LastName="Row", Email=f"first-row@{running.prefix}.test")
    keycloak.create(username=f"first-user@{running.prefix}.test",
                    email=f"first-user@{running.prefix}.test", firstName="First",
                    lastName="User", enabled=True)
    running.start()
    ready = time.monotonic() - running.started_at
    eventually(lambda: keycloak.by_email(f"first-row@{running.prefix}.test"), 120,
               lambda: f"the first NocoDB row in Keycloak; log: {running.log()[-3000:]}")
    eventually(lambda: noco.by_email(f"first-user@{running.prefix}.test"), 120,
               lambda: f"the first Keycloak user in NocoDB; log: {running.log()[-3000:]}")
    MEASURED["syncline run: started to ready"] = f"{ready:.1f} s"
    MEASURED["time to first sync (syncline run started to both records across)"] = (
        f"{time.monotonic() - running.started_at:.1f} s")
    try:
        yield running
    finally:
        running.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if MEASURED:
        terminalreporter.section("real systems: measured")
        for what, value in MEASURED.items():
            terminalreporter.write_line(f"{what}: {value}")
