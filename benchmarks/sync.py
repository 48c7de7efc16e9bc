"""End-to-end sync throughput: ``python -m benchmarks.sync [--records N] [--bootstrap H:P]``.

The simulated CRM and helpdesk on loopback and a worker with the example config
(``examples/syncline.yaml``, polling every 0.2 s instead of waiting for webhooks), all in
this process, and the local broker. Two measurements:

1. **initial sync**: N contacts exist in the CRM before the worker starts; time until all N
   are in the helpdesk (the CRM lane reads them, the merge folds them, the helpdesk lane
   looks each up and creates it);
2. **steady edits**: N edits made in the CRM (one field each); time until the helpdesk holds
   every edited value.

It prints records per second and the writes the systems counted. ``--latency-ms`` makes
every API request wait first, like a SaaS API far away; ``--concurrency`` is how many
records a lane writes at once. The helpdesk's rate limit
is off and the lane's own (15/s in the example) is raised, so the numbers are syncline's, not
the limit's. A lane is one sequence of HTTP calls per system and entity
(docs/ARCHITECTURE.md): these rates are one lane's.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
import uuid
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import httpx
import yaml

from daemon.config import Config, load_config
from daemon.demo import ENV
from daemon.sandbox import run_crm, run_helpdesk
from daemon.worker import Worker

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "syncline.yaml"


async def _count(admin: httpx.AsyncClient, resource: str) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = (
        await admin.get(f"/_admin/records/{resource}")).json()["records"]
    return records


async def _until(check: Any, what: str, within: float = 600.0) -> float:
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > within:
            raise SystemExit(f"benchmark: {what} did not happen within {within:.0f} s")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


def sync_config(bootstrap: str, crm_url: str, helpdesk_url: str, tmp: str, *,
                poll_seconds: float, concurrency: int, rate_limit: dict[str, float]) -> Config:
    """The example config against these systems and broker, on fresh topics, with this poll
    interval, lane concurrency and helpdesk rate budget."""
    return load_config(sync_config_file(bootstrap, crm_url, helpdesk_url, tmp,
                                        poll_seconds=poll_seconds, concurrency=concurrency,
                                        rate_limit=rate_limit), ENV)


def sync_config_file(bootstrap: str, crm_url: str, helpdesk_url: str, tmp: str, *,
                     poll_seconds: float, concurrency: int, rate_limit: dict[str, float]
                     ) -> Path:
    """:func:`sync_config`'s file (``tmp``/syncline.yaml), for ``syncline run --config``."""
    data = yaml.safe_load(EXAMPLE.read_text())
    data["kafka"]["bootstrap"] = bootstrap
    data["kafka"]["topic_prefix"] = f"benchsync{uuid.uuid4().hex[:8]}"
    data["systems"]["crm"]["base_url"] = crm_url
    data["systems"]["helpdesk"]["base_url"] = helpdesk_url
    data["systems"]["helpdesk"]["rate_limit"] = rate_limit
    for name in ("crm", "helpdesk"):
        data["systems"][name]["entities"]["contact"]["poll_every_seconds"] = poll_seconds
        data["systems"][name]["entities"]["contact"]["concurrency"] = concurrency
    path = Path(tmp) / "syncline.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


async def run(records: int, bootstrap: str, tmp: str, latency_ms: int, concurrency: int
              ) -> None:
    async with run_crm(token=ENV["CRM_TOKEN"]) as crm, \
            run_helpdesk(api_key=ENV["HELPDESK_API_KEY"], rate_limit=None) as helpdesk, \
            httpx.AsyncClient(base_url=crm.url, timeout=30) as crm_admin, \
            httpx.AsyncClient(base_url=helpdesk.url, timeout=30) as helpdesk_admin:
        config = sync_config(bootstrap, crm.url, helpdesk.url, tmp, poll_seconds=0.2,
                             concurrency=concurrency,
                             rate_limit={"per_second": 10_000, "burst": 10_000})

        for i in range(records):
            await crm_admin.post("/_admin/edit/contacts", json={"op": "create", "fields": {
                "email": f"p{i}@example.com", "full_name": f"Person {i}"}})
        if latency_ms:  # every API request waits this long first, like a SaaS API far away
            for admin in (crm_admin, helpdesk_admin):
                await admin.post("/_admin/faults", json={"latency_ms": latency_ms})
        worker = Worker(config, port=0)
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        await worker.started.wait()

        async def all_copied() -> bool:
            return len(await _count(helpdesk_admin, "users")) >= records

        initial = await _until(all_copied, "the initial sync")
        crm_ids = [r["id"] for r in await _count(crm_admin, "contacts")]
        edited = time.monotonic()
        for i, external_id in enumerate(crm_ids):
            await crm_admin.post("/_admin/edit/contacts", json={
                "op": "update", "id": external_id, "fields": {"phone": f"+1555{i:07d}"}})
        typed = time.monotonic() - edited

        async def all_edited() -> bool:
            users = await _count(helpdesk_admin, "users")
            return sum(1 for u in users if u.get("phone")) >= records

        steady = await _until(all_edited, "the edits")
        stats = {}
        for name, admin in (("crm", crm_admin), ("helpdesk", helpdesk_admin)):
            stats[name] = (await admin.get("/_admin/stats")).json()["writes"]["by_origin"]
        stop.set()
        await task
    print(f"records: {records}, API latency {latency_ms} ms, lane concurrency {concurrency}")
    print(f"initial sync (CRM -> helpdesk, lookup + create each): {initial:6.1f} s  "
          f"{records / initial:7.1f} records/s")
    total = typed + steady
    print(f"steady edits (made over {typed:.1f} s): all in the helpdesk {total:.1f} s after "
          f"the first  {records / total:7.1f} edits/s")
    print(f"writes by syncline: crm {stats['crm'].get('syncline', 0)}, "
          f"helpdesk {stats['helpdesk'].get('syncline', 0)} (the minimum: 0 and {2 * records})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=500)
    parser.add_argument("--bootstrap", default="127.0.0.1:19092")
    parser.add_argument("--latency-ms", type=int, default=0,
                        help="make every API request of both systems wait this long")
    parser.add_argument("--concurrency", type=int, default=4,
                        help="records a lane writes at once (the config's concurrency)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    with TemporaryDirectory() as tmp:
        asyncio.run(run(args.records, args.bootstrap, tmp, args.latency_ms, args.concurrency))


if __name__ == "__main__":
    main()
