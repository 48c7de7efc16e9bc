"""kill -9 of ``syncline run`` during a burst of creates both ways, on an entity with no match
key and no idempotency key: each record is in each system exactly once (issue 15).

Without a match key nothing but the create journal keeps a create that landed before the
crash from being made again (``system/entity#creating/<intent>`` in the lanes topic; the copy
is searched among the records changed since the entry's cursor, by content). And without one,
every record already in either system would be copied into the other: the test makes a
NocoDB table and a Keycloak realm of its own, empty, through their own APIs, and runs the
example config with ``match_on`` and both ``lookup:`` removed, pointed at them.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.real.conftest import MEASURED
from tests.real.systems import REPO, WORKER_PORT, Keycloak, NocoDB, Worker, eventually

pytestmark = [pytest.mark.real, pytest.mark.timeout(900)]

EACH_WAY = 150
"""Records made in each system; all 300 cross while the worker is killed three times."""

KILLS = 3
KILL_EVERY = 20
"""A kill when this many more records crossed since the worker (re)started (counted in the
other system, both ways together)."""

SYNC = 90.0


def without_match_key(config: dict[str, Any]) -> None:
    """The example with its match key and the lookups by it removed (no other change)."""
    assert config["entities"]["contact"].pop("match_on") == ["email"]
    for system in ("nocodb", "keycloak"):
        entity = config["systems"][system]["entities"]["contact"]
        assert "lookup" in entity and "idempotency" not in entity.get("create", {})
        del entity["lookup"]


@pytest.fixture
def fresh(noco: NocoDB, keycloak: Keycloak) -> Iterator[tuple[NocoDB, Keycloak]]:
    """A NocoDB table and a Keycloak realm of the test's own, both empty."""
    tag = uuid.uuid4().hex[:6]
    table = noco.new_table(f"People{tag}")
    realm = keycloak.new_realm(f"nokey-{tag}")
    assert table.rows() == [] and realm.users() == []
    try:
        yield table, realm
    finally:
        realm.drop_realm()
        table.drop_table()
        realm.http.close()
        table.http.close()


@pytest.fixture
def keyless_worker(tmp_path: Path, kafka_bootstrap: str, noco_seed: dict[str, str],
                   keycloak_seed: dict[str, str], fresh: tuple[NocoDB, Keycloak]
                   ) -> Iterator[Worker]:
    """``syncline run`` (not started) with the example less its match key, on the fresh pair;
    stopped after the test, before the table and the realm are dropped, whatever happened."""
    table, realm = fresh
    # The session's worker (on WORKER_PORT) may be running beside this one.
    running = Worker(tmp_path, noco_seed, keycloak_seed, kafka_bootstrap,
                     port=WORKER_PORT + 1, table=table.table, realm=realm.realm,
                     adjust=without_match_key)
    try:
        yield running
    finally:
        running.stop()


def test_kill_9_during_creates_both_ways_without_a_match_key_makes_no_duplicate(
        keyless_worker: Worker, fresh: tuple[NocoDB, Keycloak]) -> None:
    worker = keyless_worker
    table, realm = fresh
    from_noco = [f"n{i:03d}@{worker.prefix}.test" for i in range(EACH_WAY)]
    from_keycloak = [f"k{i:03d}@{worker.prefix}.test" for i in range(EACH_WAY)]
    everyone = sorted(from_noco + from_keycloak)
    # The burst is made first, so that every create of it is syncline's while it is killed.
    table.create_many([{"FirstName": f"N{i}", "LastName": "NocoDB", "Email": who}
                       for i, who in enumerate(from_noco)])
    for i, who in enumerate(from_keycloak):
        realm.create(username=who, email=who, firstName=f"K{i}", lastName="Keycloak",
                     enabled=True)
    started = time.monotonic()
    worker.start(until="health")

    def crossed() -> int:
        in_keycloak = {u.get("email") for u in realm.users()}
        in_noco = {r.get("Email") for r in table.rows()}
        return (len(in_keycloak.intersection(from_noco))
                + len(in_noco.intersection(from_keycloak)))

    def across(wanted: int) -> int:
        return eventually(lambda: (n := crossed()) >= wanted and n, 4 * SYNC,
                          lambda: f"{wanted} of {2 * EACH_WAY} across (have {crossed()})")

    # Each kill comes after the worker crossed KILL_EVERY more since it (re)started: it is
    # in the middle of the burst, never killed while starting or after the last create.
    have = 0
    kills = []
    for _ in range(KILLS):
        have = across(have + KILL_EVERY)
        worker.kill()
        have = crossed()
        kills.append(f"{have} at {time.monotonic() - started:.0f} s")
        worker.start(until="health")
    assert have <= 2 * EACH_WAY - 10, f"the burst ended too soon for the kills: {kills}"
    across(2 * EACH_WAY)
    kills.append(f"all at {time.monotonic() - started:.0f} s")
    # Quiescence: a few more polls of each lane, then nothing left to do.
    for system in ("nocodb", "keycloak"):
        polls = worker.polls(system) + 3

        def polled(system: str = system, polls: float = polls) -> bool:
            return worker.polls(system) >= polls

        eventually(polled, SYNC, f"3 more polls of {system}")
    MEASURED[f"kill -9 x{KILLS} during 2 x {EACH_WAY} creates without a match key: start to "
             "all across"] = (
        f"{time.monotonic() - started:.1f} s (across when killed: {', '.join(kills)})")

    users_by_email = Counter(str(u.get("email")) for u in realm.users())
    rows_by_email = Counter(str(r.get("Email")) for r in table.rows())
    twice = {who: n for who, n in (users_by_email + rows_by_email).items() if n != 2}
    assert sorted(users_by_email) == everyone and sorted(rows_by_email) == everyone, twice
    assert set(users_by_email.values()) == {1}, f"Keycloak duplicates: {twice}"
    assert set(rows_by_email.values()) == {1}, f"NocoDB duplicates: {twice}"
    # Each record as it was made, in both (nothing half-written by a kill).
    names = {u["email"]: (u.get("firstName"), u.get("lastName")) for u in realm.users()}
    assert names == {r["Email"]: (r["FirstName"], r["LastName"]) for r in table.rows()}

    # Nothing given up on: no dead letter, and `syncline status` says every lane is well.
    assert "\n0 dead letters" in "\n" + worker.cli("dlq", "list")
    status = subprocess.run([sys.executable, "-m", "daemon", "status", "--url",
                             f"http://127.0.0.1:{worker.port}"], cwd=REPO,
                            capture_output=True, text=True, timeout=60, check=False)
    assert status.returncode == 0, status.stdout + status.stderr
    creates = [e for e in realm.user_events() if e["operationType"] == "CREATE"]
    MEASURED[f"  Keycloak user creates (the test's {EACH_WAY} + syncline's), copies found "
             "after kills"] = (
        f"{len(creates)}, {worker.log().count('found the copy')}")
