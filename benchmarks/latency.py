"""Edit in one system to readable in another: ``python -m benchmarks.latency [--mode M]``.

The simulated CRM and helpdesk on loopback, a worker with the example config
(``examples/syncline.yaml``) and the local broker, in this process (as ``benchmarks.sync``).
``--records`` contacts are created in the CRM and synced first; then edits are made in the
CRM at a steady ``--rate`` for ``--seconds``, each a new phone number of a random contact,
and each edit's latency is the time from its admin request being answered (the edit is in the
CRM) to the helpdesk's own API listing showing the value, polled every ``--probe-ms``.

``--mode webhooks``: the CRM sends signed webhooks to the worker (polls every 10 s, as in the
example); ``--mode polling``: no webhooks, the lane polls every ``--poll-seconds``.

Also counted through the systems' own stats: writes made by syncline against writes needed
(one helpdesk PUT per edit whose value was not superseded before it crossed, none in the CRM:
the write amplification, goal 1.00), and requests the helpdesk refused with 429 when its
limit is the budget the config gives the lane (requests above the budget, goal 0).
``--json PATH`` writes the figures for ``benchmarks.report``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import statistics
import time
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import httpx

from benchmarks.sync import sync_config
from daemon.demo import ENV
from daemon.sandbox import run_crm, run_helpdesk
from daemon.worker import Worker


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


async def run(args: argparse.Namespace, tmp: str) -> dict[str, Any]:
    budget = args.budget
    async with run_crm(token=ENV["CRM_TOKEN"]) as crm, \
            run_helpdesk(api_key=ENV["HELPDESK_API_KEY"], rate_limit=None) as helpdesk, \
            httpx.AsyncClient(base_url=crm.url, timeout=30) as crm_admin, \
            httpx.AsyncClient(base_url=helpdesk.url, timeout=30) as helpdesk_admin:
        webhooks = args.mode == "webhooks"
        config = sync_config(args.bootstrap, crm.url, helpdesk.url, tmp,
                             poll_seconds=10.0 if webhooks else args.poll_seconds,
                             concurrency=args.concurrency,
                             rate_limit={"per_second": budget, "burst": int(budget)})
        # The helpdesk refuses what goes beyond the budget the lane was given: every 429
        # is a request above it.
        await helpdesk_admin.post("/_admin/rate_limit",
                                  json={"per_second": budget, "burst": int(budget)})
        for i in range(args.records):
            await crm_admin.post("/_admin/edit/contacts", json={"op": "create", "fields": {
                "email": f"p{i}@example.com", "full_name": f"Person {i}"}})
        worker = Worker(config, port=0)
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        await worker.started.wait()
        if webhooks:
            assert worker.web is not None
            await crm_admin.post("/_admin/webhooks", json={
                "url": f"{worker.web.url}/webhooks/crm", "secret": ENV["CRM_WEBHOOK_SECRET"]})
        started = time.monotonic()
        while len((await helpdesk_admin.get("/_admin/records/users")).json()["records"]
                  ) < args.records:
            if time.monotonic() - started > 600:
                raise SystemExit("benchmark: the initial sync did not finish within 600 s")
            await asyncio.sleep(0.1)
        crm_ids = [r["id"] for r in
                   (await crm_admin.get("/_admin/records/contacts")).json()["records"]]
        before = {name: (await admin.get("/_admin/stats")).json()  # count the steady phase
                  for name, admin in (("crm", crm_admin), ("helpdesk", helpdesk_admin))}

        rng = random.Random(7)
        sent: dict[str, float] = {}  # phone -> when the edit was in the CRM
        latest: dict[str, str] = {}  # CRM id -> its last phone
        latencies: list[float] = []
        done = asyncio.Event()

        async def probe() -> None:
            while not (done.is_set() and not sent):
                users = (await helpdesk_admin.get("/_admin/records/users")).json()["records"]
                now = time.monotonic()
                for user in users:
                    at = sent.pop(user.get("phone") or "", None)
                    if at is not None:
                        latencies.append(now - at)
                await asyncio.sleep(args.probe_ms / 1000)

        prober = asyncio.create_task(probe())
        edits = int(args.rate * args.seconds)
        begin = time.monotonic()
        for n in range(edits):
            await asyncio.sleep(max(0.0, begin + n / args.rate - time.monotonic()))
            external_id = crm_ids[rng.randrange(len(crm_ids))]
            phone = f"+1555{n:07d}"
            await crm_admin.post("/_admin/edit/contacts", json={
                "op": "update", "id": external_id, "fields": {"phone": phone}})
            superseded = latest.get(external_id)
            if superseded is not None:
                sent.pop(superseded, None)  # may be overwritten before it crosses: not timed
            sent[phone], latest[external_id] = time.monotonic(), phone
        achieved = edits / (time.monotonic() - begin)
        done.set()
        try:
            await asyncio.wait_for(prober, timeout=120)
        except TimeoutError:
            raise SystemExit(f"benchmark: {len(sent)} edits never reached the helpdesk") from None
        await asyncio.sleep(2.0)  # late writes (an echo written back) would show by now
        stats = {}
        for name, admin in (("crm", crm_admin), ("helpdesk", helpdesk_admin)):
            stats[name] = (await admin.get("/_admin/stats")).json()
        users = (await helpdesk_admin.get("/_admin/records/users")).json()["records"]
        stop.set()
        await task
    final = {u.get("phone") for u in users}
    needed = len(latencies)  # each timed edit needs one PUT (superseded ones may need none)
    made = {name: s["writes"]["by_origin"].get("syncline", 0)
            - before[name]["writes"]["by_origin"].get("syncline", 0)
            for name, s in stats.items()}
    return {
        "mode": args.mode, "rate": args.rate, "achieved_rate": achieved, "seconds": args.seconds,
        "records": args.records, "edits": edits, "timed": len(latencies),
        "poll_seconds": 10.0 if webhooks else args.poll_seconds, "probe_ms": args.probe_ms,
        "p50_ms": 1000 * percentile(latencies, 0.50),
        "p95_ms": 1000 * percentile(latencies, 0.95),
        "p99_ms": 1000 * percentile(latencies, 0.99),
        "max_ms": 1000 * max(latencies), "mean_ms": 1000 * statistics.fmean(latencies),
        "latencies_ms": [round(1000 * x, 1) for x in latencies],
        "writes_made": made, "writes_needed_min": needed, "writes_needed_max": edits,
        "final_values_present": len(set(latest.values()) & final),
        "final_values_expected": len(latest),
        "budget_per_second": budget,
        "over_budget_429": stats["helpdesk"]["requests"]["by_status"].get("429", 0),
        "over_budget_429_initial": before["helpdesk"]["requests"]["by_status"].get("429", 0),
        "helpdesk_requests": stats["helpdesk"]["requests"]["total"]
        - before["helpdesk"]["requests"]["total"],
    }


def report(r: dict[str, Any]) -> None:
    print(f"latency ({r['mode']}, polls every {r['poll_seconds']:g} s): {r['edits']} edits at "
          f"{r['achieved_rate']:.1f}/s over {r['records']} records, {r['timed']} timed; "
          f"p50 {r['p50_ms']:.0f} ms, p95 {r['p95_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms, "
          f"max {r['max_ms']:.0f} ms (probe every {r['probe_ms']} ms)")
    print(f"  writes by syncline: helpdesk {r['writes_made']['helpdesk']}, crm "
          f"{r['writes_made']['crm']} (needed: helpdesk {r['writes_needed_min']}.."
          f"{r['writes_needed_max']}, crm 0); final values in the helpdesk "
          f"{r['final_values_present']}/{r['final_values_expected']}")
    print(f"  helpdesk requests while editing {r['helpdesk_requests']}; above the budget of "
          f"{r['budget_per_second']:g}/s (429), the whole run: {r['over_budget_429']} "
          f"({r['over_budget_429_initial']} in the initial sync)")


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
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    with TemporaryDirectory() as tmp:
        result = asyncio.run(run(args, tmp))
    report(result)
    if args.json:
        args.json.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
