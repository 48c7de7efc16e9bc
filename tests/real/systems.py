"""The real systems of tests/real/, through their own APIs, and syncline run against them.

``deploy/real-systems/*.sh`` install and start NocoDB and Keycloak; the example config
``examples/real-nocodb-keycloak.yaml`` is used as it is, with only the NocoDB table id the
seed made, the Kafka broker and a topic prefix of its own filled in (the test without a match
key changes it further, through :attr:`Worker.adjust`, and points it at a table and a realm
of its own). Everything a test checks is read through the systems' own APIs (or the worker's
/metrics for how often it polled).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy" / "real-systems"
EXAMPLE = REPO / "examples" / "real-nocodb-keycloak.yaml"
WORKER_PORT = int(os.environ.get("SYNCLINE_REAL_WORKER_PORT", "8490"))
"""The worker's web server (health, metrics, NocoDB's webhooks)."""

T = TypeVar("T")


def eventually(check: Callable[[], T | None], within: float, what: str | Callable[[], str]
               ) -> T:
    """Poll ``check`` until it returns something truthy, or fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for "
                                 f"{what() if callable(what) else what}")
        time.sleep(0.25)


def script(name: str, command: str) -> dict[str, str]:
    """Run ``deploy/real-systems/NAME.sh COMMAND``; the KEY=VALUE lines it printed."""
    done = subprocess.run([str(DEPLOY / f"{name}.sh"), command], capture_output=True,
                          text=True, timeout=1200, check=False)
    if done.returncode != 0:
        raise AssertionError(f"{name}.sh {command} failed ({done.returncode}):\n"
                             f"{done.stdout}\n{done.stderr}")
    return dict(re.findall(r"^([A-Z_]+)=(.*)$", done.stdout, re.MULTILINE))


class NocoDB:
    """The Contacts table, through NocoDB's own REST API (v2)."""

    def __init__(self, seed: dict[str, str], table: str | None = None) -> None:
        self.seed = seed
        self.table = table or seed["NOCO_TABLE"]
        self.token = seed["NOCO_TOKEN"]
        self.http = httpx.Client(base_url=seed["NOCO_URL"], headers={"xc-token": self.token},
                                 timeout=10)
        self.records = f"/api/v2/tables/{self.table}/records"

    def new_table(self, title: str) -> NocoDB:
        """A table of its own in the seed's base, empty, with the Contacts table's columns."""
        answer = self.http.post(f"/api/v2/meta/bases/{self.seed['NOCO_BASE']}/tables", json={
            "table_name": title.lower(), "title": title, "columns": [
                {"column_name": "first_name", "title": "FirstName", "uidt": "SingleLineText"},
                {"column_name": "last_name", "title": "LastName", "uidt": "SingleLineText"},
                {"column_name": "email", "title": "Email", "uidt": "Email"},
                {"column_name": "active", "title": "Active", "uidt": "Checkbox"}]})
        answer.raise_for_status()
        return NocoDB(self.seed, str(answer.json()["id"]))

    def drop_table(self) -> None:
        self.http.delete(f"/api/v2/meta/tables/{self.table}").raise_for_status()

    def rows(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            page = self.http.get(self.records, params={"limit": 1000, "offset": len(out),
                                                       "sort": "Id"})
            page.raise_for_status()
            body = page.json()
            out.extend(body["list"])
            if body["pageInfo"].get("isLastPage", True):
                return out

    def by_email(self, email: str) -> dict[str, Any] | None:
        found = [r for r in self.rows() if (r.get("Email") or "").lower() == email]
        assert len(found) <= 1, f"{len(found)} NocoDB rows with {email}: {found}"
        return found[0] if found else None

    def create(self, **fields: Any) -> int:
        answer = self.http.post(self.records, json=fields)
        answer.raise_for_status()
        return int(answer.json()["Id"])

    def create_many(self, rows: list[dict[str, Any]]) -> None:
        """Rows in batches of 100 (one request each), as a person importing a sheet would."""
        for start in range(0, len(rows), 100):
            self.http.post(self.records, json=rows[start:start + 100]).raise_for_status()

    def update(self, row_id: int, **fields: Any) -> None:
        self.http.patch(self.records, json={"Id": row_id, **fields}).raise_for_status()

    def delete(self, row_id: int) -> None:
        self.http.request("DELETE", self.records, json={"Id": row_id}).raise_for_status()

    def add_hook(self, url: str, headers: dict[str, str]) -> str:
        """A webhook on the table's inserts, updates and deletes (NocoDB's v3 payload)."""
        answer = self.http.post(f"/api/v2/meta/tables/{self.table}/hooks", json={
            "title": f"syncline-{uuid.uuid4().hex[:6]}", "event": "after",
            "operation": ["insert", "update", "delete"], "version": "v3", "active": True,
            "notification": {"type": "URL", "payload": {
                "method": "POST", "path": url, "body": "{{ json event }}",
                "headers": [{"enabled": True, "name": k, "value": v}
                            for k, v in headers.items()]}}})
        answer.raise_for_status()
        return str(answer.json()["id"])

    def remove_hook(self, hook_id: str) -> None:
        self.http.delete(f"/api/v2/meta/hooks/{hook_id}").raise_for_status()


class Keycloak:
    """The users of the realm, through Keycloak's own admin API."""

    def __init__(self, seed: dict[str, str], realm: str | None = None) -> None:
        self.seed = seed
        self.realm = realm or seed["KEYCLOAK_REALM"]
        self.base = seed["KEYCLOAK_URL"]
        self.http = httpx.Client(base_url=f"{self.base}/admin/realms/{self.realm}", timeout=10)
        self._token_until = 0.0

    def _master(self) -> httpx.Client:
        """The master realm's admin API, as Keycloak's bootstrap admin (tokens of 60 s)."""
        answer = httpx.post(
            f"{self.base}/realms/master/protocol/openid-connect/token",
            data={"grant_type": "password", "client_id": "admin-cli",
                  "username": self.seed["KEYCLOAK_ADMIN_USERNAME"],
                  "password": self.seed["KEYCLOAK_ADMIN_PASSWORD"]}, timeout=10)
        answer.raise_for_status()
        return httpx.Client(base_url=f"{self.base}/admin/realms", timeout=60, headers={
            "Authorization": f"Bearer {answer.json()['access_token']}"})

    def new_realm(self, name: str) -> Keycloak:
        """A realm of its own, empty: the shipped realm file under another name (its client
        ``syncline`` and that client's service account, which may manage users)."""
        realm = json.loads((DEPLOY / "keycloak-realm.json").read_text())
        realm["realm"] = name
        with self._master() as master:
            master.post("", json=realm).raise_for_status()
        return Keycloak(self.seed, name)

    def drop_realm(self) -> None:
        with self._master() as master:
            master.delete(f"/{self.realm}").raise_for_status()

    def _auth(self) -> None:
        if time.monotonic() < self._token_until:
            return
        answer = httpx.post(
            f"{self.base}/realms/{self.realm}/protocol/openid-connect/token",
            data={"grant_type": "client_credentials",
                  "client_id": self.seed["KEYCLOAK_CLIENT_ID"],
                  "client_secret": self.seed["KEYCLOAK_CLIENT_SECRET"]}, timeout=10)
        answer.raise_for_status()
        body = answer.json()
        self.http.headers["Authorization"] = f"Bearer {body['access_token']}"
        self._token_until = time.monotonic() + body["expires_in"] - 30

    def users(self) -> list[dict[str, Any]]:
        self._auth()
        answer = self.http.get("/users", params={"max": -1, "briefRepresentation": "false"})
        answer.raise_for_status()
        return list(answer.json())

    def by_email(self, email: str) -> dict[str, Any] | None:
        found = [u for u in self.users() if u.get("email") == email]
        assert len(found) <= 1, f"{len(found)} Keycloak users with {email}: {found}"
        return found[0] if found else None

    def create(self, **fields: Any) -> str:
        self._auth()
        answer = self.http.post("/users", json=fields)
        answer.raise_for_status()
        return answer.headers["location"].rsplit("/", 1)[1]

    def update(self, user_id: str, **fields: Any) -> None:
        self._auth()
        self.http.put(f"/users/{user_id}", json=fields).raise_for_status()

    def delete(self, user_id: str) -> None:
        self._auth()
        self.http.delete(f"/users/{user_id}").raise_for_status()

    def user_events(self) -> list[dict[str, Any]]:
        """The realm's admin events on users (every create, update and delete via the API)."""
        self._auth()
        answer = self.http.get("/admin-events", params={"resourceTypes": "USER", "max": 100000})
        answer.raise_for_status()
        return list(answer.json())


@dataclass
class Worker:
    """``syncline run`` with the example config, as its own process."""

    tmp: Path
    noco_seed: dict[str, str]
    keycloak_seed: dict[str, str]
    bootstrap: str
    prefix: str = field(default_factory=lambda: f"real-{uuid.uuid4().hex[:8]}")
    hook_secret: str = field(default_factory=lambda: uuid.uuid4().hex)
    port: int = WORKER_PORT
    table: str | None = None
    """The NocoDB table (the seed's when ``None``)."""
    realm: str | None = None
    """The Keycloak realm (the seed's when ``None``)."""
    adjust: Callable[[dict[str, Any]], None] | None = None
    """Changes made to the example after it is read (a test's own variant of it)."""
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0

    @property
    def config_path(self) -> Path:
        return self.tmp / "syncline.yaml"

    @property
    def log_path(self) -> Path:
        return self.tmp / "syncline-run.log"

    def write_config(self) -> None:
        """The example, with the table id, the systems' addresses, the broker and a topic
        prefix of its own (and the realm and whatever ``adjust`` changes, if given)."""
        text = (EXAMPLE.read_text()
                .replace("TABLE_ID", self.table or self.noco_seed["NOCO_TABLE"])
                .replace("http://127.0.0.1:8420", self.noco_seed["NOCO_URL"])
                .replace("http://127.0.0.1:8410", self.keycloak_seed["KEYCLOAK_URL"]))
        data = yaml.safe_load(text)
        if self.realm is not None:
            keycloak = data["systems"]["keycloak"]
            base = self.keycloak_seed["KEYCLOAK_URL"]
            keycloak["base_url"] = f"{base}/admin/realms/{self.realm}"
            keycloak["auth"]["token_url"] = (
                f"{base}/realms/{self.realm}/protocol/openid-connect/token")
        data["kafka"]["bootstrap"] = self.bootstrap
        data["kafka"]["topic_prefix"] = self.prefix
        if self.adjust is not None:
            self.adjust(data)
        self.config_path.write_text(yaml.safe_dump(data, sort_keys=False))

    def rate_limit(self, system: str) -> dict[str, float]:
        """The ``rate_limit:`` the config gives ``system``."""
        data = yaml.safe_load(self.config_path.read_text())
        return dict(data["systems"][system]["rate_limit"])

    def env(self) -> dict[str, str]:
        return {**os.environ, "NOCO_TOKEN": self.noco_seed["NOCO_TOKEN"],
                "NOCO_HOOK_SECRET": self.hook_secret,
                "KEYCLOAK_CLIENT_SECRET": self.keycloak_seed["KEYCLOAK_CLIENT_SECRET"]}

    def start(self, until: str = "ready") -> None:
        """Start ``syncline run`` and wait until it answers ``/ready`` (every lane polled
        once), or ``/health`` (listening: its lanes are restored and running)."""
        self.write_config()
        self.started_at = time.monotonic()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "daemon", "run", "--config", str(self.config_path),
                 "--listen", f"127.0.0.1:{self.port}"],
                cwd=REPO, env=self.env(), stdout=log, stderr=subprocess.STDOUT)

        def answers() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"syncline run exited: {self.log()[-3000:]}")
            try:
                return httpx.get(f"http://127.0.0.1:{self.port}/{until}", timeout=2
                                 ).status_code == 200
            except httpx.HTTPError:
                return False

        eventually(answers, 120, lambda: f"syncline run {until}; log: {self.log()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: no goodbye, no flush."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def cli(self, *args: str) -> str:
        """``syncline ARGS --config <the config>``; its output (it must succeed)."""
        done = subprocess.run([sys.executable, "-m", "daemon", *args, "--config",
                               str(self.config_path)], cwd=REPO, env=self.env(),
                              capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise AssertionError(f"syncline {' '.join(args)} failed ({done.returncode}):\n"
                                 f"{done.stdout}\n{done.stderr}")
        return done.stdout

    def metrics(self) -> dict[str, float]:
        """The worker's Prometheus samples: ``name{labels}`` -> value."""
        text = httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=5).text
        samples: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                samples[key] = float(value)
        return samples

    def polls(self, system: str) -> float:
        """How many polls of ``system`` the worker has completed."""
        return sum(v for k, v in self.metrics().items()
                   if k.startswith("syncline_lane_poll_seconds_count")
                   and f'system="{system}"' in k)
