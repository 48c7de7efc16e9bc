"""Edit in one system to readable in another: ``python -m benchmarks.latency [--mode M]``.

The simulated CRM and helpdesk on loopback, in this process; a worker with the example config
(``examples/syncline.yaml``) and the local broker, in its own process (``syncline run``, as
deployed: the systems are elsewhere, and what this process does to simulate and watch them
takes none of the worker's time); the editor, the probe and the tracer in a third process
(``--editor inline``: in this one, as before session 9; they starved the systems).
``--records`` contacts are created in the CRM and synced first; then edits are made in the
CRM at a steady ``--rate`` for ``--seconds`` (open loop: each at its time, whether the ones
before were answered or not; one at a time per record), each a new phone number of a random
contact, and each edit's latency is the time from its admin request being answered (the edit
is in the CRM) to the helpdesk showing the value, looked for every ``--probe-ms`` among the
records changed since the last look (``/_admin/records`` with ``updated_since_ms``: reading
every record each time cost this process more than the worker).

``--mode webhooks``: the CRM sends signed webhooks to the worker (polls every 10 s, as in the
example); ``--mode polling``: no webhooks, the lane polls every ``--poll-seconds``.

**Where the time goes** (``stages`` in the JSON): the edit's value is followed through the
topics by a read_committed reader here: when each stage produced it (the record's create
time, stamped by the worker's producer) and when its transaction made it visible — the CRM
lane's observation, the route stage's routed copy, the merge stage's intent, the helpdesk
lane's write outcome — and when the probe saw it in the helpdesk.

Also counted through the systems' own stats: writes made by syncline against writes needed
(one helpdesk PUT per edit whose value was not superseded before it crossed, none in the CRM:
the write amplification, goal 1.00), and requests the helpdesk refused with 429 when its
limit is the budget the config gives the lane (requests above the budget, goal 0).
``--json PATH`` writes the figures for ``benchmarks.report``; ``--worker-pid-file PATH``
writes the worker's pid (for ``py-spy record --pid``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import re
import signal
import socket
import statistics
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import aiokafka
import aiokafka.errors
import httpx

from benchmarks.scale import delete_topics
from benchmarks.sync import sync_config_file
from daemon.demo import ENV
from daemon.sandbox import run_crm, run_helpdesk
from streams.kafka import KafkaSettings

PHONE = re.compile(rb"\+1555\d{7}")
EDITS_IN_FLIGHT = 256
"""Edits sent and not answered yet, at most (beyond that the editor waits: the rate falls)."""

STAGES = (
    ("observed", "the CRM lane's observation produced (webhook or poll, read, in its "
                 "transaction)"),
    ("observed_visible", "... committed: visible to the route stage"),
    ("routed", "the route stage's routed copy produced"),
    ("routed_visible", "... committed: visible to the merge stage"),
    ("intent", "the merge stage's intent for the helpdesk produced"),
    ("intent_visible", "... committed: visible to the helpdesk lane"),
    ("written", "the helpdesk lane's write outcome produced (after its read and PUT)"),
    ("readable", "the value seen in the helpdesk by the probe"),
)


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system) process ``pid`` has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Tracer:
    """Follows edited values through the observations, merge and intents topics."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        self.bootstrap = bootstrap
        self.prefix = prefix
        self.seen: dict[str, dict[str, float]] = {}  # phone -> stage -> wall time (s)
        self._intents: dict[str, str] = {}  # intent id -> phone
        self._consumer: aiokafka.AIOKafkaConsumer | None = None

    def mark(self, phone: str, stage: str, at: float) -> None:
        self.seen.setdefault(phone, {}).setdefault(stage, at)

    async def start(self) -> None:
        topics = [f"{self.prefix}.{name}" for name in ("observations", "merge", "intents")]
        self._consumer = aiokafka.AIOKafkaConsumer(
            *topics, bootstrap_servers=self.bootstrap, group_id=None,
            auto_offset_reset="latest", isolation_level="read_committed",
            enable_auto_commit=False)
        await self._consumer.start()
        while not self._consumer.assignment():  # positions at the end, before any edit
            await self._consumer.getmany(timeout_ms=100)
        for tp in self._consumer.assignment():
            await self._consumer.position(tp)

    async def run(self) -> None:
        assert self._consumer is not None
        while True:
            try:
                batch = await self._consumer.getmany(timeout_ms=100)
            except aiokafka.errors.ConsumerStoppedError:
                return
            now = time.time()
            for tp, records in batch.items():
                role = tp.topic[len(self.prefix) + 1:]
                for record in records:
                    self._record(role, record, now)

    def _record(self, role: str, record: Any, now: float) -> None:
        value: bytes = record.value or b""
        created = record.timestamp / 1000
        event = json.loads(value)
        if role == "intents":
            if event.get("system") != "helpdesk":
                return
            phone = str((event.get("values") or {}).get("phone") or "")  # not "expected"
            if PHONE.fullmatch(phone.encode()):
                self._intents[event.get("intent_id", "")] = phone
                self.mark(phone, "intent", created)
                self.mark(phone, "intent_visible", now)
            return
        schema = str(event.get("schema", ""))
        if role == "observations" and "written" in schema and event.get("system") == "helpdesk":
            phone = self._intents.get(event.get("intent_id", ""), "")
            if phone:
                self.mark(phone, "written", created)
            return
        if "observed" in schema and event.get("system") == "crm":
            found = PHONE.search(value)
            if found:
                stage = "observed" if role == "observations" else "routed"
                phone = found.group().decode()
                self.mark(phone, stage, created)
                self.mark(phone, stage + "_visible", now)

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()


def stage_figures(edits: dict[str, float], seen: dict[str, dict[str, float]]
                  ) -> list[dict[str, Any]]:
    """Per stage, the time from the edit to it (ms, p50/p95/p99) over the edits that got
    through every stage."""
    names = [name for name, _ in STAGES]
    complete = {p: at for p, at in edits.items() if all(s in seen.get(p, {}) for s in names)}
    rows = []
    for name, what in STAGES:
        values = [1000 * (seen[p][name] - at) for p, at in complete.items()]
        if not values:
            continue
        rows.append({"stage": name, "what": what, "edits": len(values),
                     "p50_ms": percentile(values, 0.5), "p95_ms": percentile(values, 0.95),
                     "p99_ms": percentile(values, 0.99)})
    return rows


class WorkerProcess:
    """``syncline run`` with a config, in its own process."""

    def __init__(self, proc: asyncio.subprocess.Process, url: str, log: Path) -> None:
        self.proc = proc
        self.url = url
        self.log = log

    @classmethod
    async def start(cls, config: Path, log: Path) -> WorkerProcess:
        port = _free_port()
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "daemon", "run", "--config", str(config),
                "--listen", f"127.0.0.1:{port}", env={**os.environ, **ENV},
                stdout=out, stderr=out)
        return cls(proc, f"http://127.0.0.1:{port}", log)

    async def ready(self, within: float = 120.0) -> None:
        deadline = time.monotonic() + within
        async with httpx.AsyncClient(timeout=5) as client:
            while time.monotonic() < deadline:
                if self.proc.returncode is not None:
                    raise SystemExit(f"benchmark: the worker exited ({self.proc.returncode}); "
                                     f"its log:\n{self.log.read_text()[-3000:]}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{self.url}/ready")).status_code == 200:
                        return
                await asyncio.sleep(0.2)
        raise SystemExit(f"benchmark: the worker was not ready within {within:.0f} s")

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 60)
            except TimeoutError:
                self.proc.kill()
                raise SystemExit("benchmark: the worker did not stop within 60 s of SIGTERM"
                                 ) from None


async def _changed(admin: httpx.AsyncClient, resource: str, since_ms: int
                   ) -> list[dict[str, Any]]:
    answer = await admin.get(f"/_admin/records/{resource}",
                             params={"updated_since_ms": since_ms})
    records: list[dict[str, Any]] = answer.json()["records"]
    return records


async def run(args: argparse.Namespace, tmp: str) -> dict[str, Any]:
    budget = args.budget
    async with run_crm(token=ENV["CRM_TOKEN"]) as crm, \
            run_helpdesk(api_key=ENV["HELPDESK_API_KEY"], rate_limit=None) as helpdesk, \
            httpx.AsyncClient(base_url=crm.url, timeout=30) as crm_admin, \
            httpx.AsyncClient(base_url=helpdesk.url, timeout=30) as helpdesk_admin:
        webhooks = args.mode == "webhooks"
        config = sync_config_file(args.bootstrap, crm.url, helpdesk.url, tmp,
                                  poll_seconds=10.0 if webhooks else args.poll_seconds,
                                  concurrency=args.concurrency,
                                  rate_limit={"per_second": budget, "burst": int(budget)})
        prefix = next(line.split(":", 1)[1].strip() for line in config.read_text().splitlines()
                      if line.strip().startswith("topic_prefix:"))
        # The helpdesk refuses what goes beyond the budget the lane was given: every 429
        # is a request above it.
        await helpdesk_admin.post("/_admin/rate_limit",
                                  json={"per_second": budget, "burst": int(budget)})
        for i in range(args.records):
            await crm_admin.post("/_admin/edit/contacts", json={"op": "create", "fields": {
                "email": f"p{i}@example.com", "full_name": f"Person {i}"}})
        worker = await WorkerProcess.start(config, Path(tmp) / "worker.log")
        try:
            if args.worker_pid_file:
                args.worker_pid_file.write_text(str(worker.proc.pid))
            await worker.ready()
            if webhooks:
                await crm_admin.post("/_admin/webhooks", json={
                    "url": f"{worker.url}/webhooks/crm", "secret": ENV["CRM_WEBHOOK_SECRET"]})
            started = time.monotonic()
            while len((await helpdesk_admin.get("/_admin/records/users")).json()["records"]
                      ) < args.records:
                if time.monotonic() - started > 600:
                    raise SystemExit("benchmark: the initial sync did not finish within 600 s")
                await asyncio.sleep(0.2)
            crm_ids = [r["id"] for r in
                       (await crm_admin.get("/_admin/records/contacts")).json()["records"]]
            before = {name: (await admin.get("/_admin/stats")).json()  # the steady phase
                      for name, admin in (("crm", crm_admin), ("helpdesk", helpdesk_admin))}
            spec = {"bootstrap": args.bootstrap, "prefix": prefix, "crm_url": crm.url,
                    "helpdesk_url": helpdesk.url, "crm_ids": crm_ids, "rate": args.rate,
                    "seconds": args.seconds, "probe_ms": args.probe_ms}
            cpu_before = cpu_seconds(worker.proc.pid), cpu_seconds(os.getpid())
            if args.editor == "process":
                result = await _editor_process(spec, Path(tmp))
            else:  # the editor, probe and tracer share the systems' process (before session 9)
                result = await _traced_edits(spec, crm_admin, helpdesk_admin)
            worker_cpu = cpu_seconds(worker.proc.pid) - cpu_before[0]
            systems_cpu = cpu_seconds(os.getpid()) - cpu_before[1]
            stats = {name: (await admin.get("/_admin/stats")).json()
                     for name, admin in (("crm", crm_admin), ("helpdesk", helpdesk_admin))}
            users = (await helpdesk_admin.get("/_admin/records/users")).json()["records"]
        finally:
            await worker.stop()
            await delete_topics(KafkaSettings(bootstrap=args.bootstrap), prefix)
            if args.worker_log:
                args.worker_log.write_bytes(worker.log.read_bytes())
    final = {u.get("phone") for u in users}
    latencies, edits, latest = result["latencies"], result["edits"], result["latest"]
    seen: dict[str, dict[str, float]] = result["seen"]
    needed = len(latencies)  # each timed edit needs one PUT (superseded ones may need none)
    made = {name: s["writes"]["by_origin"].get("syncline", 0)
            - before[name]["writes"]["by_origin"].get("syncline", 0)
            for name, s in stats.items()}
    return {
        "mode": args.mode, "rate": args.rate, "achieved_rate": result["achieved"],
        "seconds": args.seconds, "records": args.records, "edits": edits,
        "timed": len(latencies),
        "poll_seconds": 10.0 if webhooks else args.poll_seconds, "probe_ms": args.probe_ms,
        "p50_ms": 1000 * percentile(latencies, 0.50),
        "p95_ms": 1000 * percentile(latencies, 0.95),
        "p99_ms": 1000 * percentile(latencies, 0.99),
        "max_ms": 1000 * max(latencies), "mean_ms": 1000 * statistics.fmean(latencies),
        "latencies_ms": [round(1000 * x, 1) for x in latencies],
        "stages": stage_figures(result["timed_at"], seen),
        "writes_made": made, "writes_needed_min": needed, "writes_needed_max": edits,
        "final_values_present": len(set(latest.values()) & final),
        "final_values_expected": len(latest),
        "budget_per_second": budget,
        "over_budget_429": stats["helpdesk"]["requests"]["by_status"].get("429", 0),
        "over_budget_429_initial": before["helpdesk"]["requests"]["by_status"].get("429", 0),
        "webhooks": stats["crm"].get("webhooks"),
        # The values the hub saw (the CRM lane observed them) and the intents it made for
        # the helpdesk: a write per value seen is no amplification (an edit overwritten
        # before the lane read the record is never seen, and needs no write).
        "values_observed": sum(1 for s in seen.values() if "observed" in s),
        "helpdesk_intents": sum(1 for s in seen.values() if "intent" in s),
        "systems_cpu_seconds": systems_cpu, "editor": args.editor,
        "editor_cpu_seconds": result["cpu_seconds"],
        "worker_cpu_seconds": worker_cpu, "worker_cpu_ms_per_edit": 1000 * worker_cpu / edits,
        "edit_phase_seconds": result["seconds"],
        "helpdesk_requests": stats["helpdesk"]["requests"]["total"]
        - before["helpdesk"]["requests"]["total"],
        "helpdesk_requests_per_write": (stats["helpdesk"]["requests"]["total"]
                                        - before["helpdesk"]["requests"]["total"])
        / max(1, made["helpdesk"]),
    }


async def _editor_process(spec: dict[str, Any], tmp: Path) -> dict[str, Any]:
    """:func:`_traced_edits` in a process of its own (``--editor-spec``): the editor, the
    probe and the tracer take none of the simulated systems' CPU, as people and their
    browsers take none of a SaaS API's."""
    spec_file, out_file = tmp / "editor-spec.json", tmp / "editor-out.json"
    spec_file.write_text(json.dumps(spec))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.latency", "--editor-spec", str(spec_file),
        "--editor-out", str(out_file), stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"benchmark: the editor process exited ({proc.returncode}): "
                         f"{err.decode(errors='replace')[-3000:]}")
    result: dict[str, Any] = json.loads(out_file.read_text())
    return result


async def _editor_main(spec: dict[str, Any]) -> dict[str, Any]:
    """The editor process: the steady phase against the systems at ``spec``'s URLs."""
    async with httpx.AsyncClient(base_url=spec["crm_url"], timeout=30) as crm_admin, \
            httpx.AsyncClient(base_url=spec["helpdesk_url"], timeout=30) as helpdesk_admin:
        return await _traced_edits(spec, crm_admin, helpdesk_admin)


async def _traced_edits(spec: dict[str, Any], crm_admin: httpx.AsyncClient,
                        helpdesk_admin: httpx.AsyncClient) -> dict[str, Any]:
    """The steady phase with the tracer following the edits through the topics; with the
    stages each edit was seen at and the CPU this process used."""
    tracer = Tracer(spec["bootstrap"], spec["prefix"])
    cpu_before = cpu_seconds(os.getpid())
    await tracer.start()
    tracing = asyncio.create_task(tracer.run())
    try:
        result = await _edit(spec, crm_admin, helpdesk_admin, spec["crm_ids"], tracer)
    finally:
        tracing.cancel()
        await asyncio.gather(tracing, return_exceptions=True)
        await tracer.stop()
    return {**result, "seen": tracer.seen, "cpu_seconds": cpu_seconds(os.getpid()) - cpu_before}


async def _edit(spec: dict[str, Any], crm_admin: httpx.AsyncClient,
                helpdesk_admin: httpx.AsyncClient, crm_ids: list[str], tracer: Tracer
                ) -> dict[str, Any]:
    """The steady phase: edits at the rate, the probe, until every timed edit is seen."""
    rate, probe_ms = float(spec["rate"]), int(spec["probe_ms"])
    rng = random.Random(7)
    sent: dict[str, float] = {}  # phone -> when the edit was in the CRM (monotonic)
    timed_at: dict[str, float] = {}  # phone -> the same, wall time, for the stages
    latest: dict[str, str] = {}  # CRM id -> its last phone
    latencies: list[float] = []
    done = asyncio.Event()

    async def probe() -> None:
        since_ms = int(time.time() * 1000) - 1000
        while not (done.is_set() and not sent):
            # The systems' clocks are the wall clock: what changed since a little before
            # the last look started, in the helpdesk's whole seconds (its updated_at has
            # that resolution), so records changed in that second are included.
            looked = (int(time.time() * 1000) - 50) // 1000 * 1000
            users = await _changed(helpdesk_admin, "users", since_ms)
            now, wall = time.monotonic(), time.time()
            for user in users:
                phone = user.get("phone") or ""
                at = sent.pop(phone, None)
                if at is not None:
                    latencies.append(now - at)
                    tracer.mark(phone, "readable", wall)
            since_ms = looked
            await asyncio.sleep(probe_ms / 1000)

    prober = asyncio.create_task(probe())
    edits = int(rate * float(spec["seconds"]))
    # Open loop: each edit is sent at its time whether or not the ones before were answered
    # (people do not wait for each other), at most one at a time per record (so that the
    # CRM's order of a record's edits is the order they were sent), and at most
    # EDITS_IN_FLIGHT at once.
    editing: set[str] = set()
    gate = asyncio.Semaphore(EDITS_IN_FLIGHT)
    answered: list[float] = []

    async def edit(external_id: str, phone: str) -> None:
        try:
            await crm_admin.post("/_admin/edit/contacts", json={
                "op": "update", "id": external_id, "fields": {"phone": phone}})
        finally:
            editing.discard(external_id)
            gate.release()
        superseded = latest.get(external_id)
        if superseded is not None:
            sent.pop(superseded, None)  # may be overwritten before it crosses: not timed
            timed_at.pop(superseded, None)
        sent[phone], latest[external_id] = time.monotonic(), phone
        timed_at[phone] = time.time()
        answered.append(time.monotonic())

    begin = time.monotonic()
    tasks = []
    for n in range(edits):
        await asyncio.sleep(max(0.0, begin + n / rate - time.monotonic()))
        await gate.acquire()
        external_id = crm_ids[rng.randrange(len(crm_ids))]
        while external_id in editing:
            external_id = crm_ids[rng.randrange(len(crm_ids))]
        editing.add(external_id)
        tasks.append(asyncio.create_task(edit(external_id, f"+1555{n:07d}")))
    await asyncio.gather(*tasks)
    achieved = edits / max(1e-9, max(answered, default=begin) - begin)
    done.set()
    try:
        await asyncio.wait_for(prober, timeout=120)
    except TimeoutError:
        raise SystemExit(f"benchmark: {len(sent)} edits never reached the helpdesk") from None
    await asyncio.sleep(2.0)  # late writes (an echo written back) would show by now
    timed = {p: at for p, at in timed_at.items() if "readable" in tracer.seen.get(p, {})}
    return {"latencies": latencies, "edits": edits, "latest": latest, "achieved": achieved,
            "timed_at": timed, "seconds": time.monotonic() - begin}


def report(r: dict[str, Any]) -> None:
    print(f"latency ({r['mode']}, polls every {r['poll_seconds']:g} s): {r['edits']} edits at "
          f"{r['achieved_rate']:.1f}/s over {r['records']} records, {r['timed']} timed; "
          f"p50 {r['p50_ms']:.0f} ms, p95 {r['p95_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms, "
          f"max {r['max_ms']:.0f} ms (probe every {r['probe_ms']} ms)")
    if r["stages"]:
        print(f"  where the time goes (since the edit; {r['stages'][0]['edits']} edits seen "
              "at every stage):")
        for s in r["stages"]:
            print(f"    {s['stage']:<17} p50 {s['p50_ms']:6.0f} ms  p95 {s['p95_ms']:6.0f} ms"
                  f"  p99 {s['p99_ms']:6.0f} ms  {s['what']}")
    print(f"  the worker's CPU while editing: {r['worker_cpu_seconds']:.1f} s in "
          f"{r['edit_phase_seconds']:.0f} s ({r['worker_cpu_ms_per_edit']:.1f} ms an edit)")
    if r["editor"] == "process":
        print(f"  the systems' process: {r['systems_cpu_seconds']:.1f} s of CPU; the editor's, "
              f"probe's and tracer's: {r['editor_cpu_seconds']:.1f} s")
    else:
        print(f"  the systems', editor's, probe's and tracer's process: "
              f"{r['systems_cpu_seconds']:.1f} s of CPU")
    print(f"  writes by syncline: helpdesk {r['writes_made']['helpdesk']}, crm "
          f"{r['writes_made']['crm']} (needed: helpdesk {r['writes_needed_min']}.."
          f"{r['writes_needed_max']}, crm 0); final values in the helpdesk "
          f"{r['final_values_present']}/{r['final_values_expected']}")
    print(f"  values the hub saw in the CRM {r['values_observed']}, intents for the helpdesk "
          f"{r['helpdesk_intents']}, helpdesk writes {r['writes_made']['helpdesk']}: "
          f"{r['writes_made']['helpdesk'] / max(1, r['values_observed']):.2f} writes a value "
          "seen")
    print(f"  helpdesk requests while editing {r['helpdesk_requests']}; above the budget of "
          f"{r['budget_per_second']:g}/s (429), the whole run: {r['over_budget_429']} "
          f"({r['over_budget_429_initial']} in the initial sync); "
          f"{r['helpdesk_requests_per_write']:.2f} helpdesk requests a helpdesk write")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:19092")
    parser.add_argument("--mode", choices=("webhooks", "polling"), default="webhooks")
    parser.add_argument("--rate", type=float, default=100.0, help="edits per second")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--poll-seconds", type=float, default=1.0,
                        help="the lanes' poll interval in polling mode")
    parser.add_argument("--probe-ms", type=int, default=20,
                        help="how often the helpdesk is read to see an edit arrive")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--budget", type=float, default=150.0,
                        help="the helpdesk's rate limit and the lane's budget, requests/s")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--worker-pid-file", type=Path, default=None,
                        help="write the worker process's pid here (for py-spy)")
    parser.add_argument("--worker-log", type=Path, default=None,
                        help="keep the worker's log here")
    parser.add_argument("--editor", choices=("process", "inline"), default="process",
                        help="where the editor, probe and tracer run: their own process, or "
                             "the simulated systems' (as before session 9)")
    parser.add_argument("--editor-spec", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--editor-out", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if args.editor_spec is not None and args.editor_out is not None:
        edited = asyncio.run(_editor_main(json.loads(args.editor_spec.read_text())))
        args.editor_out.write_text(json.dumps(edited))
        return
    with TemporaryDirectory() as tmp:
        result = asyncio.run(run(args, tmp))
    report(result)
    if args.json:
        args.json.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
