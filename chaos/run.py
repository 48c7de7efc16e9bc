"""A chaos run, start to verdict: systems, workers, the workload, the injections, the checks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiokafka.admin import AIOKafkaAdminClient

from chaos.fleet import Fleet, kill_broker, start_broker
from chaos.plan import SYSTEMS, Event, Params, Plan
from chaos.verdict import Access, Verdict, Writes, judge, needed_writes
from chaos.workload import RAW, RESOURCE, People, kind
from daemon.config import load_config
from daemon.sandbox import RateLimit, RunningSystem, WebhookTarget, run_crm, run_helpdesk
from streams import KafkaSettings, Topics, canonical_id, codec, read_to_end
from streams.events import ConflictEvent

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "syncline.yaml"
ENV = {"CRM_TOKEN": "chaos-crm-token", "CRM_WEBHOOK_SECRET": "chaos-webhook-secret",
       "SYNCLINE_REVIEW_TOKEN": "chaos-review-token", "HELPDESK_API_KEY": "chaos-helpdesk-key"}
HELPDESK_LIMIT = RateLimit(100, burst=200)
"""The helpdesk's rate limit in a chaos run (the example's 20/s would make it the bottleneck
of 10,000 edits; its 429s are injected as bursts instead). The config asks for 80/s."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Outcome:
    """What a run did and found."""

    verdict: Verdict
    injected: dict[str, Any] = field(default_factory=dict)
    timing: dict[str, float] = field(default_factory=dict)
    logs: Path | None = None


def write_config(path: Path, bootstrap: str, prefix: str,
                 systems: dict[str, RunningSystem]) -> None:
    """The example configuration pointed at the chaos systems, every policy automatic."""
    data = yaml.safe_load(EXAMPLE.read_text())
    data["kafka"]["bootstrap"] = bootstrap
    data["kafka"]["topic_prefix"] = prefix
    blocks: dict[str, Any] = {}
    for name, running in systems.items():
        block = dict(data["systems"][kind(name)])
        block["base_url"] = running.url
        if kind(name) == "helpdesk":
            block["rate_limit"] = {"per_second": 80, "burst": 160}
        blocks[name] = block
    data["systems"] = blocks
    contact = data["entities"]["contact"]
    for spec in contact["fields"].values():
        for name in systems:
            spec.setdefault(name, spec[kind(name)])
    # Nobody is at the review page during a chaos run: every conflict decided by a policy.
    contact["policy"]["name"] = "latest"
    contact["delete_policy"] = "delete_wins"
    path.write_text(yaml.safe_dump(data, sort_keys=False))


async def run(params: Params, bootstrap: str, *, broker_port: int | None = None,
              workdir: Path | None = None, keep_topics: bool = False,
              say: Any = print) -> Outcome:
    """Play ``params`` against the broker at ``bootstrap``; the outcome with its verdict.

    ``broker_port``: the port of the ``kafka.sh`` broker to SIGKILL and start again (needed
    when ``params.broker_kill``)."""
    plan = Plan.build(params)
    if params.broker_kill and broker_port is None:
        raise ValueError("a broker kill needs the port of a kafka.sh broker")
    logs = workdir or Path(tempfile.mkdtemp(prefix=f"chaos-{params.seed}-"))
    logs.mkdir(parents=True, exist_ok=True)
    prefix = f"chaos{params.seed}x{uuid.uuid4().hex[:6]}"
    lanes_port = free_port()
    kafka = KafkaSettings(bootstrap=bootstrap, client_id="syncline-chaos")
    outcome_timing: dict[str, float] = {}
    async with contextlib.AsyncExitStack() as exits:
        systems: dict[str, RunningSystem] = {}
        for i, name in enumerate(SYSTEMS):
            options: dict[str, Any] = {"unique": False, "seed": params.seed * 10 + i,
                                       "journal": True}
            if kind(name) == "crm":
                hook = WebhookTarget(f"http://127.0.0.1:{lanes_port}/webhooks/{name}",
                                     ENV["CRM_WEBHOOK_SECRET"])
                systems[name] = await exits.enter_async_context(
                    run_crm(token=ENV["CRM_TOKEN"], webhook=hook, **options))
            else:
                systems[name] = await exits.enter_async_context(
                    run_helpdesk(api_key=ENV["HELPDESK_API_KEY"], rate_limit=HELPDESK_LIMIT,
                                 **options))
        config_path = logs / "syncline.yaml"
        write_config(config_path, bootstrap, prefix, systems)
        config = load_config(config_path, ENV)
        mappings = {n: config.entities["contact"].mapping("contact", n) for n in systems}
        people = People(systems, mappings, params.seed, f"p{params.seed}-")

        fleet = Fleet(config_path, ENV, logs)
        fleet.add("lanes-a", ("lanes",), lanes_port)
        for name in ("route-a", "merge-a", "route-b", "merge-b"):
            fleet.add(name, (name.split("-")[0],), free_port())
        # Unwound last in, first out: the workers stop before the topics go. The other way
        # round, a worker still polling or producing asks for a deleted topic, and a broker
        # with auto.create.topics.enable makes it again (one partition, default settings)
        # and leaves it behind.
        if not keep_topics:
            exits.push_async_callback(delete_topics, bootstrap, prefix)
        exits.push_async_callback(fleet.stop)

        say(f"chaos: seed {params.seed}, {params.edits} edits at {params.rate}/s "
            f"(~{params.duration:.0f} s), {params.records} records to start, logs in {logs}")
        people.seed_records(params.records, params.concurrent_share)
        started = time.monotonic()
        for name in ("route-a", "merge-a", "lanes-a"):
            await fleet.start(name)
        await fleet.ready("lanes-a")
        outcome_timing["start to ready (s)"] = time.monotonic() - started

        stop = asyncio.Event()
        supervisor = asyncio.create_task(fleet.supervise(stop))
        injected: Counter[str] = Counter()
        broker_tasks: list[asyncio.Task[None]] = []
        t0 = time.monotonic()

        async def inject(event: Event) -> None:
            if event.kind == "kill":
                running = fleet.running()
                if running:
                    victim = running[min(int(event.pick * len(running)), len(running) - 1)]
                    await fleet.kill(victim)
                    injected[f"SIGKILL {victim.split('-')[0]} worker"] += 1
                    say(f"  t={event.at:6.1f}s SIGKILL {victim}")
            elif event.kind == "broker_kill":
                assert broker_port is not None
                pid = await kill_broker(broker_port)
                injected["SIGKILL broker"] += 1
                say(f"  t={event.at:6.1f}s SIGKILL broker (pid {pid})")

                async def restart() -> None:
                    await asyncio.sleep(params.broker_down_seconds)
                    began = time.monotonic()
                    await start_broker(broker_port)
                    say(f"  broker up again after {time.monotonic() - began:.0f} s start-up")

                broker_tasks.append(asyncio.create_task(restart()))
            elif event.kind in ("fault", "down"):
                settings = dict(event.settings) if event.kind == "fault" else {"down": True}
                systems[event.target].system.faults.configure(settings)
                if event.kind == "down":
                    injected[f"{event.target} down (s)"] += int(params.down_seconds)
                    say(f"  t={event.at:6.1f}s {event.target} down")
            elif event.kind in ("clear", "up"):
                systems[event.target].system.faults.clear()
                if event.kind == "up":
                    say(f"  t={event.at:6.1f}s {event.target} up")
            elif event.kind == "scale_out":
                await fleet.start("route-b")
                await fleet.start("merge-b")
                say(f"  t={event.at:6.1f}s two workers per stage role")
            elif event.kind == "scale_in":
                await fleet.retire("route-b")
                await fleet.retire("merge-b")
                say(f"  t={event.at:6.1f}s one worker per stage role")

        async def injections() -> None:
            for event in plan.events:
                delay = t0 + event.at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                await inject(event)

        injector = asyncio.create_task(injections())
        edits = step = 0
        while edits < params.edits:
            delay = t0 + step / params.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            edits += people.step(time.monotonic() - t0, params.create_share,
                                 params.delete_share, params.concurrent_share)
            step += 1
            if step % max(1, int(params.rate * 30)) == 0:
                say(f"  t={time.monotonic() - t0:6.1f}s {edits} edits, "
                    f"workers running: {', '.join(fleet.running())}")
        outcome_timing["workload (s)"] = time.monotonic() - t0
        injector.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await injector
        for task in broker_tasks:
            await task
        for running_system in systems.values():
            running_system.system.faults.clear()
        if "route-b" in fleet.wanted:
            await fleet.retire("route-b")
            await fleet.retire("merge-b")
        say(f"chaos: workload done in {outcome_timing['workload (s)']:.0f} s; "
            "waiting for quiescence")

        settle_started = time.monotonic()
        converged = await quiescence(people, systems, params)
        outcome_timing["quiescence after the workload (s)"] = time.monotonic() - settle_started
        at_rest = {n: await_writes(r) for n, r in systems.items()}
        await asyncio.sleep(params.quiet_seconds)
        after = {n: await_writes(r) for n, r in systems.items()}
        stop.set()
        await supervisor

        final = {n: people.records(n) for n in systems}
        conflicts = [event.model_dump(mode="json")
                     for event in await latest_conflicts(kafka, Topics(prefix))]
        needed = needed_writes(people.log, systems)
        writes = {}
        faults_struck: Counter[str] = Counter()
        for name, running_system in systems.items():
            stats = running_system.system.stats.as_json(running_system.system.webhooks.counts)
            origins = stats["writes"]["by_origin"]
            writes[name] = Writes(made=int(stats["writes"]["total"]),
                                  unchanged=int(stats["writes"]["unchanged"]),
                                  quiet=after[name] - at_rest[name], needed=needed[name])
            if set(origins) - {"syncline"}:
                say(f"chaos: writes to {name} from others than syncline: {origins}")
            faults_struck.update(running_system.system.faults.injected)
        journals = {name: await journal(running) for name, running in systems.items()}
        unconditional = {name for name in systems
                         if config.systems[name].entities["contact"].conditional == "none"}
        dump(logs, people, final, conflicts)
        (logs / "journals.json").write_text(json.dumps(
            {n: {k: [asdict(a) for a in v] for k, v in j.items()} for n, j in journals.items()}))
        verdict = judge(people.log, final, conflicts,
                        lambda email: canonical_id("contact", ("email",), {"email": email},
                                                   "", None), writes,
                        journals=journals, unconditional=unconditional)
        if not converged:
            verdict.violations.insert(0, f"no quiescence within {params.settle_seconds:.0f} s "
                                      "after the workload")
        verdict.figures["writes made"] = {n: w.made for n, w in writes.items()}
        verdict.figures["writes needed at most"] = {n: w.needed for n, w in writes.items()}
        verdict.figures["edits skipped (record not there)"] = people.skipped
        injected.update({f"fault episodes: {k}": v for k, v in plan.fault_counts().items()})
        injected.update({f"answers faulted: {k}": v for k, v in faults_struck.items()})
        injected["worker restarts"] = fleet.restarts
        injected["scale-out window (s)"] = int(0.4 * params.duration) if params.scale_out else 0
        return Outcome(verdict, dict(sorted(injected.items())), outcome_timing, logs)
    raise AssertionError("unreachable")  # pragma: no cover


async def journal(running: RunningSystem) -> dict[str, list[Access]]:
    """The system's journal of the contacts' reads and writes, fetched from its admin API
    (``/_admin/journal/<resource>``), fields named canonically."""
    system = kind(running.system.name)
    canonical = {raw: name for name, raw in RAW[system].items()}
    url = f"{running.url}/_admin/journal/{RESOURCE[system]}"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        response.raise_for_status()
        body = await response.json()
    if not body["enabled"]:
        raise RuntimeError(f"{url}: the journal is off")
    return {key: [Access(e["at"], e["op"], e["kind"], e["by"], e["delay_ms"] / 1000,
                         {canonical[f]: v for f, v in (e["fields"] or {}).items()
                          if f in canonical},
                         e.get("request_id"), e.get("read_id"), e.get("read_age"))
                  for e in entries]
            for key, entries in body["records"].items()}


def dump(logs: Path, people: People, final: dict[str, Any], conflicts: list[Any]) -> None:
    """The people's log, the final records and the conflict reports, for a post-mortem."""
    with (logs / "actions.jsonl").open("w") as out:
        for action in people.log:
            out.write(json.dumps(asdict(action)) + "\n")
    (logs / "final.json").write_text(json.dumps(final, indent=1))
    (logs / "conflicts.json").write_text(json.dumps(conflicts, indent=1))


def await_writes(running: RunningSystem) -> int:
    """The API writes a system has taken so far."""
    return running.system.stats.writes.total()


async def quiescence(people: People, systems: dict[str, RunningSystem],
                     params: Params) -> bool:
    """Wait until every system holds the same records and no write came for
    ``quiet_seconds``; False if that took longer than ``settle_seconds``."""
    deadline = time.monotonic() + params.settle_seconds
    last = -1
    since = time.monotonic()
    while time.monotonic() < deadline:
        writes = sum(await_writes(r) for r in systems.values())
        if writes != last:
            last, since = writes, time.monotonic()
        views = []
        for name in systems:
            views.append(sorted(tuple(sorted((k, str(v)) for k, v in r.items() if k != "id"))
                                for r in people.records(name)))
        agree = all(v == views[0] for v in views[1:])
        if agree and time.monotonic() - since >= params.quiet_seconds:
            return True
        await asyncio.sleep(2)
    return False


async def latest_conflicts(kafka: KafkaSettings, topics: Topics) -> list[ConflictEvent]:
    """Every conflict the daemon reported, as it stands now (its latest event)."""
    latest: dict[str, ConflictEvent] = {}
    for record in await read_to_end(kafka, topics.conflicts):
        event = codec.decode(record.value, (ConflictEvent,))
        latest[event.conflict_id] = event
    return list(latest.values())


async def delete_topics(bootstrap: str, prefix: str) -> None:
    """Delete the run's topics (left behind, runs pile up partitions on the broker)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="syncline-chaos")
    await admin.start()
    try:
        mine = [t for t in await admin.list_topics() if t.startswith(f"{prefix}.")]
        if mine:
            await admin.delete_topics(mine, timeout_ms=60_000)
    finally:
        await admin.close()
