"""The end-to-end stack: simulated systems on real sockets, the daemon as its own process.

The systems run in the test's event loop (they are real HTTP servers); ``syncline run`` runs
as a child process configured by the example config (``examples/syncline.yaml``) pointed at
them, and can be killed with SIGKILL and started again. Everything is checked through the
systems' own admin APIs, never through syncline's view.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from daemon.config import Config, load_config
from daemon.sandbox import RunningSystem, WebhookTarget, run_crm, run_helpdesk
from streams import codec
from streams.events import ConflictEvent
from streams.kafka import KafkaSettings, read_to_end
from streams.topics import Topics

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "syncline.yaml"
ENV = {"CRM_TOKEN": "e2e-crm-token", "CRM_WEBHOOK_SECRET": "e2e-webhook-secret",
       "SYNCLINE_REVIEW_TOKEN": "e2e-review-token",
       "HELPDESK_API_KEY": "e2e-helpdesk-key"}
RESOURCE = {"crm": "contacts", "helpdesk": "users"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def kind(system: str) -> str:
    """``crm`` or ``helpdesk``: which simulated API a system name (``crm2``) runs."""
    return "helpdesk" if system.startswith("helpdesk") else "crm"


@dataclass
class Stack:
    """The running systems, the daemon process and how to look at both."""

    tmp: Path
    kafka: KafkaSettings
    systems: dict[str, RunningSystem] = field(default_factory=dict)
    admins: dict[str, httpx.AsyncClient] = field(default_factory=dict)
    config: Config | None = None
    config_path: Path | None = None
    worker_port: int = 0
    process: asyncio.subprocess.Process | None = None
    others: list[asyncio.subprocess.Process] = field(default_factory=list)
    runs: int = 0

    @property
    def topics(self) -> Topics:
        assert self.config is not None
        return Topics(self.config.kafka.topic_prefix)

    def write_config(self, prefix: str,
                     customize: Callable[[dict[str, Any]], None] | None = None) -> None:
        data = yaml.safe_load(EXAMPLE.read_text())
        data["kafka"]["bootstrap"] = self.kafka.bootstrap
        data["kafka"]["topic_prefix"] = prefix
        example_systems = data["systems"]
        systems: dict[str, Any] = {}
        for name, running in self.systems.items():
            block = dict(example_systems[kind(name)])
            block["base_url"] = running.url
            systems[name] = block
        data["systems"] = systems
        contact = data["entities"]["contact"]
        for field_config in contact["fields"].values():
            for name in self.systems:
                if name not in field_config:
                    field_config[name] = field_config[kind(name)]
        if customize is not None:
            customize(data)
        self.config_path = self.tmp / "syncline.yaml"
        self.config_path.write_text(yaml.safe_dump(data, sort_keys=False))
        self.config = load_config(self.config_path, ENV)

    # -- the daemon ------------------------------------------------------------------------
    async def spawn(self, *args: str) -> asyncio.subprocess.Process:
        """Another ``syncline run`` process with these arguments (stopped with the stack)."""
        assert self.config_path is not None
        self.runs += 1
        log = (self.tmp / f"run-{self.runs}.log").open("wb")
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "daemon", "run", "--config", str(self.config_path), *args,
            cwd=REPO, env={**os.environ, **ENV}, stdout=log, stderr=asyncio.subprocess.STDOUT)
        log.close()
        self.others.append(process)
        return process

    async def start(self, *roles: str) -> None:
        """Start ``syncline run`` (all roles, or ``roles``) and wait until it is ready."""
        assert self.config_path is not None
        self.runs += 1
        log = (self.tmp / f"run-{self.runs}.log").open("wb")
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "daemon", "run", "--config", str(self.config_path),
            "--listen", f"127.0.0.1:{self.worker_port}",
            *[arg for role in roles for arg in ("--role", role)], cwd=REPO,
            env={**os.environ, **ENV}, stdout=log, stderr=asyncio.subprocess.STDOUT)
        log.close()
        async with httpx.AsyncClient(timeout=2) as client:
            deadline = time.monotonic() + 60
            while True:
                if self.process.returncode is not None:
                    raise AssertionError(f"syncline run exited: {self.log()[-3000:]}")
                with contextlib.suppress(httpx.HTTPError):
                    ready = await client.get(f"http://127.0.0.1:{self.worker_port}/ready")
                    if ready.status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise AssertionError(f"syncline run not ready: {self.log()[-3000:]}")
                await asyncio.sleep(0.2)

    async def kill(self) -> None:
        """SIGKILL: no goodbye, no flush."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> None:
        for process in [self.process, *self.others]:
            if process is not None and process.returncode is None:
                process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(process.wait(), 20)
                except TimeoutError:
                    process.kill()
                    await process.wait()

    async def status(self) -> tuple[int, str]:
        """``syncline status`` against the running daemon, as its own process: exit code and
        output."""
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "daemon", "status", "--url",
            f"http://127.0.0.1:{self.worker_port}", cwd=REPO, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT)
        out, _ = await process.communicate()
        assert process.returncode is not None
        return process.returncode, out.decode()

    def log(self) -> str:
        return "".join((self.tmp / f"run-{i}.log").read_text(errors="replace")
                       for i in range(1, self.runs + 1))

    # -- the systems -------------------------------------------------------------------------
    async def edit(self, system: str, op: str, **body: Any) -> dict[str, Any]:
        """A person's edit in a system's UI."""
        answer = await self.admins[system].post(f"/_admin/edit/{RESOURCE[kind(system)]}",
                                                json={"op": op, **body})
        assert answer.status_code in (200, 201), answer.text
        result: dict[str, Any] = answer.json()
        return result

    async def create(self, system: str, email: str, name: str, **more: Any) -> str:
        names = {"crm": {"email": "email", "name": "full_name", "phone": "phone",
                         "tags": "labels"},
                 "helpdesk": {"email": "email_address", "name": "name", "phone": "phone",
                              "tags": "tags"}}[kind(system)]
        fields = {names["email"]: email, names["name"]: name,
                  **{names[k]: v for k, v in more.items()}}
        return str((await self.edit(system, "create", fields=fields))["record"]["id"])

    async def update(self, system: str, email: str, **changes: Any) -> None:
        names = {"crm": {"name": "full_name", "phone": "phone", "tags": "labels"},
                 "helpdesk": {"name": "name", "phone": "phone", "tags": "tags"}}[kind(system)]
        record = (await self.contacts())[system][email]
        await self.edit(system, "update", id=record["id"],
                        fields={names[k]: v for k, v in changes.items()})

    async def delete(self, system: str, email: str) -> None:
        record = (await self.contacts())[system][email]
        await self.edit(system, "delete", id=record["id"])

    async def raw(self, system: str) -> list[dict[str, Any]]:
        answer = await self.admins[system].get(f"/_admin/records/{RESOURCE[kind(system)]}")
        records: list[dict[str, Any]] = answer.json()["records"]
        return records

    async def contacts(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Per system, live contacts by email in canonical fields (as the config maps them)."""
        assert self.config is not None
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for name in self.systems:
            mapping = self.config.entities["contact"].mapping("contact", name)
            found: dict[str, dict[str, Any]] = {}
            for raw in await self.raw(name):
                values = mapping.to_canonical(raw).values
                email = str(values.get("email"))
                assert email not in found, f"{email} twice in {name}: a duplicate"
                found[email] = {**values, "id": raw["id"]}
            out[name] = found
        return out

    async def writes(self) -> dict[str, int]:
        """Per system, the writes syncline made through its API."""
        out = {}
        for name, admin in self.admins.items():
            stats = (await admin.get("/_admin/stats")).json()
            out[name] = int(stats["writes"]["by_origin"].get("syncline", 0))
        return out

    async def fault(self, system: str, **settings: Any) -> None:
        if settings:
            answer = await self.admins[system].post("/_admin/faults", json=settings)
        else:
            answer = await self.admins[system].delete("/_admin/faults")
        assert answer.status_code == 200, answer.text

    async def conflicts(self) -> dict[str, ConflictEvent]:
        latest: dict[str, ConflictEvent] = {}
        for record in await read_to_end(self.kafka, self.topics.conflicts):
            event = codec.decode(record.value, (ConflictEvent,))
            latest[event.conflict_id] = event
        return latest

    async def converged(self, expected: dict[str, dict[str, Any]] | None = None,
                        within: float = 60.0) -> dict[str, dict[str, Any]]:
        """Wait until every system holds the same contacts (and ``expected``, if given)."""
        last: Any = None

        async def same() -> dict[str, dict[str, Any]] | None:
            nonlocal last
            now = await self.contacts()
            views = [{e: {k: v for k, v in r.items() if k != "id"} for e, r in people.items()}
                     for people in now.values()]
            last = views
            if any(view != views[0] for view in views[1:]):
                return None
            if expected is not None and views[0] != expected:
                return None
            return views[0]

        return await eventually(same, within, lambda: f"convergence; last: {last}\n"
                                f"daemon log tail: {self.log()[-2500:]}")


async def eventually(check: Callable[[], Awaitable[Any]], within: float,
                     what: Callable[[], str] | str) -> Any:
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for "
                                 f"{what() if callable(what) else what}")
        await asyncio.sleep(0.25)


@contextlib.asynccontextmanager
async def stack(tmp: Path, kafka: KafkaSettings, systems: tuple[str, ...] = ("crm", "helpdesk"),
                customize: Callable[[dict[str, Any]], None] | None = None,
                options: dict[str, Any] | None = None) -> AsyncIterator[Stack]:
    """Systems up, config written; the daemon is started by the test (``await s.start()``).

    ``options`` go to every simulated system (``unique=False``, say)."""
    s = Stack(tmp, kafka, worker_port=free_port())
    async with contextlib.AsyncExitStack() as exits:
        for name in systems:
            if kind(name) == "crm":
                hook = WebhookTarget(f"http://127.0.0.1:{s.worker_port}/webhooks/{name}",
                                     ENV["CRM_WEBHOOK_SECRET"])
                running = await exits.enter_async_context(
                    run_crm(token=ENV["CRM_TOKEN"], webhook=hook, **(options or {})))
            else:
                running = await exits.enter_async_context(
                    run_helpdesk(api_key=ENV["HELPDESK_API_KEY"], **(options or {})))
            s.systems[name] = running
            s.admins[name] = await exits.enter_async_context(
                httpx.AsyncClient(base_url=running.url, timeout=10))
        s.write_config(f"e2e{uuid.uuid4().hex[:10]}", customize)
        try:
            yield s
        finally:
            await s.stop()
