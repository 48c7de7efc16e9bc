"""``syncline demo``: everything local, and a short story told live in the terminal.

It starts (or reuses) the local Kafka broker, serves the simulated CRM and helpdesk, runs a
worker with the example configuration (``examples/syncline.yaml``; both are shipped in the
package, :mod:`daemon.shipped`), then plays a scripted story, checking each step through the
systems' own APIs:

1. contacts created on each side appear on the other (the one person in both is linked, not
   duplicated, and her tags are merged);
2. an edit flows across; 3. a delete flows across;
4. the same field edited on both sides at once: a conflict the ``latest`` policy decides;
5. the same name edited on both sides: a conflict held for a person (``manual``).

It ends with where the conflict-review report is and a one-screen summary. Each run uses
fresh topics (its own topic prefix) and in-memory systems, and leaves nothing running unless
``--keep-running`` (a broker it found running is left running; one it started is stopped).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from daemon.config import Config, load_config
from daemon.errors import DaemonError
from daemon.review.report import render
from daemon.review.source import load_view
from daemon.sandbox import RunningSystem, WebhookTarget, run_crm, run_helpdesk
from daemon.shipped import example_config, kafka_script
from daemon.worker import Worker
from streams import (
    ConflictEvent,
    KafkaSettings,
    Topics,
    codec,
    read_to_end,
)

REVIEW_ENV = "SYNCLINE_REVIEW_TOKEN"
ENV = {"CRM_TOKEN": "demo-crm-token", "CRM_WEBHOOK_SECRET": "demo-webhook-secret",
       "SYNCLINE_REVIEW_TOKEN": "demo-review-token",
       "HELPDESK_API_KEY": "demo-helpdesk-key"}
"""The demo's secrets: the simulated systems accept these, and the config names them."""

STEP_SECONDS = 30.0
"""How long one step of the story may take before the demo says it failed."""


class DemoError(DaemonError):
    """The demo cannot start, or a step of its story did not happen in time."""


@dataclass(frozen=True)
class Ports:
    """Where the demo's parts listen."""

    crm: int = 8101
    helpdesk: int = 8102
    worker: int = 8080
    kafka: int = 19092


@dataclass
class Systems:
    """The running simulated systems and an admin client for each.

    ``crm`` and ``helpdesk`` are the systems this process serves; ``None`` when they run
    elsewhere (``syncline demo --against``, the story of deploy/compose.yaml).
    """

    crm: RunningSystem | None
    helpdesk: RunningSystem | None
    crm_admin: httpx.AsyncClient
    helpdesk_admin: httpx.AsyncClient
    config: Config

    async def contacts(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Per system, the live contacts by email, in canonical fields (and the ``id``).

        Read through the systems' admin APIs and mapped as the config maps them, so values
        compare as syncline compares them (normalised phones, sorted tags).
        """
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for name, admin, resource in (("crm", self.crm_admin, "contacts"),
                                      ("helpdesk", self.helpdesk_admin, "users")):
            mapping = self.config.entities["contact"].mapping("contact", name)
            records = (await admin.get(f"/_admin/records/{resource}")).json()["records"]
            found = {}
            for raw in records:
                values = mapping.to_canonical(raw).values
                if values.get("email"):
                    found[str(values["email"])] = {**values, "id": raw["id"]}
            out[name] = found
        return out

    async def edit(self, system: str, op: str, **body: Any) -> dict[str, Any]:
        """A person's edit in a system's UI (the admin API)."""
        admin, resource = ((self.crm_admin, "contacts") if system == "crm"
                           else (self.helpdesk_admin, "users"))
        answer = await admin.post(f"/_admin/edit/{resource}", json={"op": op, **body})
        answer.raise_for_status()
        result: dict[str, Any] = answer.json()
        return result

    async def api_writes(self) -> dict[str, int]:
        """Per system, how many writes syncline made through its API."""
        out = {}
        for name, admin in (("crm", self.crm_admin), ("helpdesk", self.helpdesk_admin)):
            stats = (await admin.get("/_admin/stats")).json()
            out[name] = int(stats["writes"]["by_origin"].get("syncline", 0))
        return out


@dataclass
class Story:
    """Prints the story as it happens."""

    out: Callable[[str], None] = print
    started: float = field(default_factory=time.monotonic)

    def step(self, text: str) -> None:
        self.out(f"\n▶ {text}")

    def done(self, text: str) -> None:
        self.out(f"  ✓ {text}  ({time.monotonic() - self.started:5.1f} s)")

    async def until(self, what: str, check: Callable[[], Awaitable[Any]],
                    within: float = STEP_SECONDS) -> Any:
        """Poll ``check`` until it returns something truthy; fail naming ``what``."""
        deadline = time.monotonic() + within
        while True:
            result = await check()
            if result:
                self.done(what)
                return result
            if time.monotonic() > deadline:
                raise DemoError(f"demo: {what}: did not happen within {within:.0f} s")
            await asyncio.sleep(0.2)


def preflight(ports: Ports) -> None:
    """Fail early, with one clear line, when a port is taken or Java is missing."""
    for name, port in (("crm", ports.crm), ("helpdesk", ports.helpdesk),
                       ("worker", ports.worker)):
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                raise DemoError(
                    f"demo: port {port} (for the {name}) is taken on 127.0.0.1; stop what "
                    f"uses it, or choose another with --{name}-port") from None
    if shutil.which("java") is None:
        raise DemoError("demo: java is not installed (Kafka needs Java 17+); on Debian: "
                        "apt-get install openjdk-17-jre-headless")


def _kafka_sh(command: str, port: int, env: Mapping[str, str]
              ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(kafka_script()), command], capture_output=True, text=True,
                          check=False, timeout=900,
                          env={**env, "SYNCLINE_KAFKA_PORT": str(port)})


def start_kafka(out: Callable[[str], None], port: int, env: Mapping[str, str]
                ) -> tuple[str, bool]:
    """Start (or reuse) the local broker on ``port``: its bootstrap address, and whether
    this call started it.

    ``env`` is the environment the script runs in (it needs PATH, HOME, JAVA_HOME).
    """
    if _kafka_sh("status", port, env).returncode == 0:
        out(f"using the Kafka broker already running on 127.0.0.1:{port}")
        return f"127.0.0.1:{port}", False
    out(f"starting Kafka (bash {kafka_script()} up; the first run downloads it) ...")
    result = _kafka_sh("up", port, env)
    if result.returncode != 0:
        message = (result.stderr or result.stdout).strip().splitlines()
        raise DemoError(f"demo: Kafka did not start: {message[-1] if message else '?'}")
    return f"127.0.0.1:{port}", True


def demo_config(crm_url: str, helpdesk_url: str, bootstrap: str, prefix: str,
                directory: Path) -> Path:
    """The example config, pointed at this run's systems, broker and topics."""
    text = example_config()
    text = (text.replace("http://127.0.0.1:8101", crm_url)
            .replace("http://127.0.0.1:8102", helpdesk_url)
            .replace("bootstrap: 127.0.0.1:19092", f"bootstrap: {bootstrap}")
            .replace("topic_prefix: syncline", f"topic_prefix: {prefix}"))
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "syncline.yaml"
    path.write_text(text, encoding="utf-8")
    return path


async def conflicts(settings: KafkaSettings, topics: Topics) -> dict[str, ConflictEvent]:
    """Every conflict as it stands now, by id."""
    latest: dict[str, ConflictEvent] = {}
    for record in await read_to_end(settings, topics.conflicts):
        event = codec.decode(record.value, (ConflictEvent,))
        latest[event.conflict_id] = event
    return latest


async def run_demo(*, ports: Ports, keep_running: bool, directory: Path,
                   env: Mapping[str, str], out: Callable[[str], None] = print) -> int:
    """Run the whole demo; the exit code."""
    preflight(ports)
    bootstrap, started_kafka = start_kafka(out, ports.kafka, env)
    try:
        return await _run(ports=ports, keep_running=keep_running, directory=directory,
                          bootstrap=bootstrap, out=out)
    finally:
        if started_kafka and not keep_running:
            out("stopping Kafka (it was started for the demo)")
            _kafka_sh("down", ports.kafka, env)


async def _run(*, ports: Ports, keep_running: bool, directory: Path, bootstrap: str,
               out: Callable[[str], None]) -> int:
    prefix = f"demo-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"
    webhook = WebhookTarget(f"http://127.0.0.1:{ports.worker}/webhooks/crm",
                            ENV["CRM_WEBHOOK_SECRET"])
    async with contextlib.AsyncExitStack() as stack:
        path = demo_config(f"http://127.0.0.1:{ports.crm}",
                           f"http://127.0.0.1:{ports.helpdesk}", bootstrap, prefix, directory)
        config = load_config(path, ENV)
        crm = await stack.enter_async_context(
            run_crm(port=ports.crm, token=ENV["CRM_TOKEN"], webhook=webhook))
        helpdesk = await stack.enter_async_context(
            run_helpdesk(port=ports.helpdesk, api_key=ENV["HELPDESK_API_KEY"]))
        systems = Systems(
            crm, helpdesk,
            await stack.enter_async_context(httpx.AsyncClient(base_url=crm.url, timeout=10)),
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=helpdesk.url, timeout=10)),
            config)
        out(f"simulated CRM on {crm.url}, helpdesk on {helpdesk.url}; config {path}")
        worker = Worker(config, port=ports.worker)
        stop = asyncio.Event()
        running = asyncio.create_task(worker.run(stop))
        try:
            await _wait_started(worker, running)
            out(f"worker on {worker.web.url if worker.web else '?'} (topics {prefix}.*)")
            await play(Story(out), systems, config)
            await summary(out, systems, config, worker, directory)
            if keep_running:
                out("\nstill running (--keep-running): Ctrl-C to stop")
                with contextlib.suppress(asyncio.CancelledError):
                    await _until_interrupted()
        finally:
            stop.set()
            await running
    return 0


async def play_against(config_path: Path, env: Mapping[str, str],
                       out: Callable[[str], None] = print) -> int:
    """The story against the simulated systems, broker and worker that are already running
    where ``config_path`` points (deploy/compose.yaml's ``story`` service); the exit code."""
    config = load_config(config_path, env)
    async with contextlib.AsyncExitStack() as stack:
        admins = []
        for name in ("crm", "helpdesk"):
            url = config.systems[name].base_url
            admin = await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=10))
            await _until_answers(admin, name, url)
            admins.append(admin)
        systems = Systems(None, None, admins[0], admins[1], config)
        out(f"playing the demo's story against the CRM at {config.systems['crm'].base_url} "
            f"and the helpdesk at {config.systems['helpdesk'].base_url}")
        await play(Story(out), systems, config)
        now = await systems.contacts()
        out(f"\ndone: {len(now['crm'])} contacts in the CRM, {len(now['helpdesk'])} in the "
            "helpdesk, kept in step by the worker")
    return 0


async def _until_answers(admin: httpx.AsyncClient, name: str, url: str) -> None:
    deadline = time.monotonic() + STEP_SECONDS
    while True:
        try:
            (await admin.get("/_admin/stats")).raise_for_status()
            return
        except httpx.HTTPError as exc:
            if time.monotonic() > deadline:
                raise DemoError(f"demo: the {name} at {url} does not answer: {exc}") from None
        await asyncio.sleep(0.5)


async def _wait_started(worker: Worker, running: asyncio.Task[None]) -> None:
    waiting = asyncio.ensure_future(worker.started.wait())
    done, _ = await asyncio.wait({waiting, running}, return_when=asyncio.FIRST_COMPLETED)
    if running in done:
        waiting.cancel()
        running.result()  # raises what stopped the worker
        raise DemoError("demo: the worker stopped before it started")


async def _until_interrupted() -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def play(story: Story, systems: Systems, config: Config) -> None:
    """The scripted story, each step checked through the systems' APIs."""
    settings = config.kafka.settings()
    topics = Topics(config.kafka.topic_prefix)

    story.step("Records created on each side appear on the other")
    await systems.edit("crm", "create", fields={
        "email": "ann@example.com", "full_name": "Ann Archer", "labels": ["customer"]})
    await systems.edit("crm", "create", fields={"email": "bob@example.com",
                                                 "full_name": "Bob Brown"})
    await systems.edit("crm", "create", fields={"email": "cy@example.com",
                                                 "full_name": "Cy Young"})
    await systems.edit("helpdesk", "create", fields={
        "email_address": "ANN@example.com", "name": "Ann  Archer", "tags": ["vip"]})
    await systems.edit("helpdesk", "create", fields={"email_address": "dee@example.com",
                                                      "name": "Dee Dee"})
    story.out("  3 contacts made in the CRM, 2 in the helpdesk (Ann is in both, "
              "spelled differently)")

    async def everyone_everywhere() -> bool:
        now = await systems.contacts()
        people = {"ann@example.com", "bob@example.com", "cy@example.com", "dee@example.com"}
        return all(set(now[s]) == people for s in now)

    await story.until("4 contacts in both systems; Ann linked, not duplicated",
                      everyone_everywhere)

    async def tags_merged() -> bool:
        now = await systems.contacts()
        return all(now[s]["ann@example.com"]["tags"] == ["customer", "vip"] for s in now)

    await story.until("Ann's tags merged on both sides (union): customer, vip", tags_merged)

    story.step("An edit flows across")
    bob = (await systems.contacts())["helpdesk"]["bob@example.com"]
    await systems.edit("helpdesk", "update", id=bob["id"],
                       fields={"phone": "+1 (555) 010-2000"})
    story.out("  Bob's phone changed in the helpdesk")

    async def bob_phone() -> bool:
        phone = (await systems.contacts())["crm"]["bob@example.com"]["phone"]
        return bool(phone == "+15550102000")

    await story.until("the CRM has Bob's new phone (normalised: +15550102000)", bob_phone)

    story.step("A delete flows across")
    cy = (await systems.contacts())["crm"]["cy@example.com"]
    await systems.edit("crm", "delete", id=cy["id"])
    story.out("  Cy deleted in the CRM")

    async def cy_gone() -> bool:
        return "cy@example.com" not in (await systems.contacts())["helpdesk"]

    await story.until("Cy is gone from the helpdesk too", cy_gone)

    story.step("The same field edited on both sides at once: the policy decides")
    now = await systems.contacts()
    await systems.edit("helpdesk", "update", id=now["helpdesk"]["dee@example.com"]["id"],
                       fields={"phone": "+1 555 010 3001"})
    await systems.edit("crm", "update", id=now["crm"]["dee@example.com"]["id"],
                       fields={"phone": "+1 555 010 3002"})
    story.out("  Dee's phone: 010 3001 in the helpdesk, then 010 3002 in the CRM")

    async def decided() -> ConflictEvent | None:
        found = [c for c in (await conflicts(settings, topics)).values()
                 if c.field == "phone" and c.status == "auto_resolved"]
        return found[0] if found else None

    conflict = await story.until("a conflict on phone, decided by 'latest'", decided)
    story.out(f"    kept {conflict.value!r} ({conflict.decision}); the other value "
              f"({_loser(conflict)!r}) is recorded")

    async def dee_converged() -> bool:
        now = await systems.contacts()
        return {now[s]["dee@example.com"]["phone"] for s in now} == {conflict.value}

    await story.until("both systems hold the winning phone", dee_converged)

    story.step("A name edited on both sides: held for a person (policy 'manual')")
    now = await systems.contacts()
    await systems.edit("helpdesk", "update", id=now["helpdesk"]["ann@example.com"]["id"],
                       fields={"name": "Ann A. Archer"})
    await systems.edit("crm", "update", id=now["crm"]["ann@example.com"]["id"],
                       fields={"full_name": "Ann Archer-Smith"})
    story.out("  Ann's name: 'Ann A. Archer' in the helpdesk, 'Ann Archer-Smith' in the CRM")

    async def held() -> ConflictEvent | None:
        found = [c for c in (await conflicts(settings, topics)).values()
                 if c.field == "name" and c.status == "open"]
        return found[0] if found else None

    open_conflict = await story.until("an open conflict on Ann's name, waiting for review",
                                      held)

    async def ann_converged() -> bool:
        now = await systems.contacts()
        return {now[s]["ann@example.com"]["name"] for s in now} == {open_conflict.value}

    await story.until(f"both systems keep {open_conflict.value!r} until a person decides",
                      ann_converged)


def _loser(conflict: ConflictEvent) -> Any:
    return (conflict.current.value if conflict.value == conflict.incoming.value
            else conflict.incoming.value)


async def summary(out: Callable[[str], None], systems: Systems, config: Config,
                  worker: Worker, directory: Path) -> None:
    """Where the report is, and the one-screen summary."""
    settings = config.kafka.settings()
    topics = Topics(config.kafka.topic_prefix)
    now = await systems.contacts()
    fields = ("email", "name", "phone", "tags")
    in_sync = sum(1 for email, record in now["crm"].items()
                  if email in now["helpdesk"]
                  and all(record.get(f) == now["helpdesk"][email].get(f) for f in fields))
    writes = await systems.api_writes()
    echoes = _counter_total(worker, "syncline_echoes_suppressed_total")
    found = await conflicts(settings, topics)
    open_count = sum(1 for c in found.values() if c.status == "open")
    view = await load_view(settings, topics)
    report = directory / "conflicts.html"
    report.write_text(render(view, "html", time.time()), encoding="utf-8")
    (directory / "conflicts.md").write_text(render(view, "md", time.time()), encoding="utf-8")
    out("\n" + "─" * 64)
    out(f"conflict-review report: {report} (and conflicts.md beside it)")
    if worker.web is not None and config.review is not None:
        out(f"review page (with --keep-running): {worker.web.url}/review/"
            f"?token={ENV[REVIEW_ENV]}")
    out(f"records in sync:    {in_sync} of {len(now['crm'])} (CRM) / "
        f"{len(now['helpdesk'])} (helpdesk)")
    out(f"writes made:        {writes['crm']} to the CRM, {writes['helpdesk']} to the helpdesk")
    out(f"echoes suppressed:  {echoes:.0f} (own writes read back and not re-sent)")
    out(f"conflicts:          {len(found)} recorded, {open_count} open for review")
    out("─" * 64)


def _counter_total(worker: Worker, name: str) -> float:
    total = 0.0
    for metric in worker.metrics.registry.collect():
        for sample in metric.samples:
            if sample.name == name:
                total += sample.value
    return total


def main(ports: Ports, keep_running: bool, directory: Path, env: Mapping[str, str],
         against: Path | None = None) -> int:
    """Run the demo (only its story, against running systems, with ``against``); prints one
    line and returns 2 when it cannot run."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        if against is not None:
            return asyncio.run(play_against(against, env))
        return asyncio.run(run_demo(ports=ports, keep_running=keep_running,
                                    directory=directory, env=env))
    except DaemonError as exc:
        print(str(exc), file=sys.stderr)
        return 2
