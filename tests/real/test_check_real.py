"""``syncline check`` against the real pair, before anything runs: the shipped config passes
(with a write probe), and the config a new user first wrote for NocoDB — a since filter on
UpdatedAt alone — is caught: rows whose UpdatedAt is null are named as invisible to it.

Runs first in the suite (before the worker starts), as a user runs check before ``run``.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from tests.real.systems import REPO, Keycloak, NocoDB, Worker

pytestmark = [pytest.mark.real, pytest.mark.timeout(900)]


def run_check(worker: Worker, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "daemon", "check", "--config",
                           str(worker.config_path), *args], cwd=REPO, env=worker.env(),
                          capture_output=True, text=True, timeout=300, check=False)


def test_the_shipped_config_proves_it_can_sync_and_a_naive_one_is_caught(
        tmp_path: Path, kafka_bootstrap: str, noco_seed: dict[str, str],
        keycloak_seed: dict[str, str], noco: NocoDB, keycloak: Keycloak) -> None:
    tag = uuid.uuid4().hex[:6]
    noco.create(FirstName="Check", LastName="Row", Email=f"check-{tag}@check.test")
    keycloak.create(username=f"check-{tag}@check.test", email=f"check-{tag}@check.test",
                    firstName="Check", lastName="User", enabled=True)
    worker = Worker(tmp_path, noco_seed, keycloak_seed, kafka_bootstrap)
    worker.write_config()

    shipped = run_check(worker, "--write-probe")

    assert shipped.returncode == 0, shipped.stdout + shipped.stderr
    out = shipped.stdout
    table = noco_seed["NOCO_TABLE"]
    assert f"GET {noco_seed['NOCO_URL']}/api/v2/tables/{table}/records?sort=Id&offset=0" in out
    assert any("&where=" in line and "UpdatedAt" in line and "CreatedAt" in line
               for line in out.splitlines())  # the since filter, as sent
    assert (f"GET {keycloak_seed['KEYCLOAK_URL']}/admin/realms/syncline/users"
            "?briefRepresentation=false&first=0&max=500") in out
    assert "no since filter: every poll reads the whole listing" in out  # Keycloak
    assert out.count("0 unreadable") == 2
    assert out.count("write probe: wrote record") == 2
    assert out.count("fields round-trip") == 2

    data = yaml.safe_load(worker.config_path.read_text())
    contact = data["systems"]["nocodb"]["entities"]["contact"]
    contact["updated"] = "UpdatedAt"
    contact["since"]["template"] = "(UpdatedAt,gte,exactDate,{since})"
    worker.config_path.write_text(yaml.safe_dump(data, sort_keys=False))
    # A new row: the probe's write-back above gave the first one an UpdatedAt.
    row = noco.create(FirstName="New", LastName="Row", Email=f"new-{tag}@check.test")

    naive = run_check(worker, "--skip-kafka")

    assert naive.returncode == 1, naive.stdout + naive.stderr
    assert ("has no updated-at (UpdatedAt null or absent) and the since filter (where from "
            in naive.stderr)
    assert f"record {row} " in naive.stderr or "records missed by the since filter" in naive.stderr
