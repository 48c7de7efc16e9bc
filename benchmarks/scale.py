"""Restart to ready, memory per worker and throughput as workers are added:
``python -m benchmarks.scale restart|workers``.

Each worker is its own process (``python -m benchmarks.scale child``: a
:class:`~streams.worker.MergeWorker` running the stages named, as ``python -m streams.worker
--role`` does, that also says when its stages are ready and its peak RSS when it stops), on a
fresh deployment's topics of the local broker.

``restart --records N [N ...] --store memory rocksdb``: loads the observations that create N
canonical records (:func:`benchmarks.merge.synced_observations`: created in the CRM, a third
also in the helpdesk, each written to the other system and read back), lets one worker (both
stages) work through them (its peak RSS is the worker's at N records) and stops it (SIGTERM:
a clean stop, the RocksDB store keeps its files). Then, in the same state directory: a
second worker, the **clean restart** (RocksDB: only the changelogs after the kept files are
read), killed with SIGKILL once ready; a third, the **restart after kill -9** (no checkpoint
file: every partition restored from its whole changelog, as on a new machine), stopped with
SIGTERM. Restart to ready is the time from a worker's stages starting to both being ready
(after a kill -9 it includes waiting for the group coordinator to drop the killed member:
its session timeout, 10 s); restoring is the time in restores (both stages' partitions, one
after the other); peak RSS is VmHWM.

``--seeded-from M``: record counts of M and more are not folded (3.3 observations a record
through both stages: over an hour at 1,000,000 here) but **seeded**: a sample of 2,000
records is folded in-process by the real route and merge stages' code
(:func:`seeded_tables`), and its encoded states and links are written to the two changelogs
again and again, each copy with its own canonical ids (the first 8 hex digits of the sample's
replaced by the copy's number) and link keys, keyed to partitions as the producer's default
partitioner does. Values are the sizes a real fold makes (~620 bytes a record, two links a
record). The first worker restores them from an empty directory; the restarts are then as
above — what is measured is a real restore of real encoded states, not a fold.

``workers --events E --counts 1 2 3``: the same stream of E observations (edits, outcomes and
echoes) for each count K, on 6 partitions (1, 2 and 3 divide it); K route and K merge
processes; the time from the first stage being ready to every input of both stages being
committed (the consumer groups' offsets reaching the topics' ends).

``--json PATH`` writes the figures for ``benchmarks.report``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiokafka
import aiokafka.admin
import aiokafka.errors

from benchmarks.merge import preload, synced_observations
from streams.events import ObservationEvent
from streams.kafka import KafkaSettings
from streams.merge import Merger, Router
from streams.table import encode_state
from streams.topics import Topics, TopicSettings
from streams.worker import MergeWorker, tune_gc
from tests.streams.catalog import CATALOG

# The worker process ------------------------------------------------------------------------

async def _child(args: argparse.Namespace) -> None:
    settings = KafkaSettings(bootstrap=args.bootstrap,
                             topics=TopicSettings(partitions=args.partitions))
    worker = MergeWorker(settings, Topics(args.prefix), CATALOG,
                         topic_settings=TopicSettings(partitions=args.partitions),
                         state_dir=args.state_dir)
    tune_gc()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    roles = tuple(args.roles)
    stages = {"route": worker.route_stage, "merge": worker.merge_stage}
    started = time.monotonic()
    task = asyncio.create_task(worker.run(stop, roles))
    # Stopped or failed before its stages are ready, it says nothing of being ready (waiting
    # for that alone, a worker given SIGTERM before it was would never exit).
    ready: asyncio.Future[Any] = asyncio.ensure_future(
        asyncio.gather(*(stages[r].ready.wait() for r in roles)))
    await asyncio.wait([task, ready], return_when=asyncio.FIRST_COMPLETED)
    if ready.done():
        print(json.dumps({"ready_seconds": time.monotonic() - started,
                          "ready_rss_mib": _peak_rss_mib(),
                          "restoring_seconds": sum(stages[r].stats.restoring_seconds
                                                   for r in roles)}), flush=True)
        if args.report_owned:  # the workers benchmark: each change of the partitions owned
            owned: dict[str, int] = {}
            while not task.done():
                now = {r: len(stages[r].owned_partitions()) for r in roles}
                if now != owned:
                    owned = now
                    print(json.dumps({"owned": owned}), flush=True)
                await asyncio.wait([task], timeout=0.05)
    else:
        ready.cancel()
    await task
    print(json.dumps({"peak_rss_mib": _peak_rss_mib(),
                      **{f"{r}_committed": stages[r].stats.committed for r in roles}}),
          flush=True)


def _peak_rss_mib() -> float:
    """This process's peak RSS: VmHWM, the high-water mark of its own memory.

    Not ``getrusage``'s ``ru_maxrss``: Linux carries it over ``execve`` from the process
    forked before it, which shares the harness's memory — the preloaded events, 1 GB at
    100,000 records — so every worker seemed to peak at the harness's size.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise SystemExit("benchmark: no VmHWM in /proc/self/status")


class Child:
    """One worker process and the JSON lines it prints."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, bootstrap: str, prefix: str, roles: list[str], partitions: int,
                    state_dir: Path | None = None, report_owned: bool = False) -> Child:
        argv = [sys.executable, "-m", "benchmarks.scale", "child", "--bootstrap", bootstrap,
                "--prefix", prefix, "--partitions", str(partitions), "--roles", *roles]
        if state_dir is not None:
            argv += ["--state-dir", str(state_dir)]
        if report_owned:
            argv.append("--report-owned")
        return cls(await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE))

    async def line(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        raw = await self.proc.stdout.readline()
        if not raw:
            raise SystemExit(f"benchmark: a worker exited ({await self.proc.wait()})")
        result: dict[str, Any] = json.loads(raw)
        return result

    async def kill(self) -> None:
        """SIGKILL: no checkpoint file is written, nothing is flushed."""
        self.proc.kill()
        await self.proc.wait()

    async def stop(self) -> dict[str, Any]:
        self.proc.send_signal(signal.SIGTERM)
        result = await self.line()
        while "owned" in result:  # the last changes of what it owned, as it stops
            result = await self.line()
        await self.proc.wait()
        return result


async def _settled(children: list[Child], roles: tuple[str, ...], partitions: int,
                   within: float = 300.0) -> None:
    """Wait until every child is ready and, per role, the children of that role own every
    partition between them, each at least one (their consumer groups have settled)."""
    for c in children:
        await c.line()  # ready
    owned = [dict.fromkeys(roles, 0) for _ in children]

    def settled() -> bool:
        return all(sum(o.get(r, 0) for o in owned) == partitions
                   and all(o[r] > 0 for o in owned if r in o) for r in roles)

    async def follow(i: int) -> None:
        while True:
            line = await children[i].line()
            owned[i] = line["owned"]
            if settled():
                return

    tasks = [asyncio.create_task(follow(i)) for i in range(len(children))]
    try:
        done, _ = await asyncio.wait(tasks, timeout=within,
                                     return_when=asyncio.FIRST_COMPLETED)
        if not done:
            raise SystemExit(f"benchmark: the workers' groups did not settle within {within} s")
        for t in done:
            t.result()
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# Progress through the consumer groups' offsets ---------------------------------------------

async def _caught_up(settings: KafkaSettings, topics: Topics, partitions: int,
                     within: float = 3600.0) -> float:
    """Wait until both stages' groups have committed every input; when that was seen.

    A group has committed every input of a partition when no record lies between its
    committed offset and the partition's last stable offset. The difference of the two
    offsets does not say so: the ``merge`` topic is written in transactions, and each ends
    with a commit marker, an offset no consumer returns or commits past. Several producers'
    transactions end in the same partition (one per route partition), so its tail may hold
    several markers in a row: a check that allowed one waited forever whenever two route
    transactions ended together (seen with the RocksDB store; py-spy showed the worker idle
    and the harness polling).
    """
    admin = aiokafka.admin.AIOKafkaAdminClient(**settings.client_options())
    # Reads what lies past a committed offset, as the stage would: committed records only,
    # a few at a time (a lagging group is seen from the first record).
    consumer = aiokafka.AIOKafkaConsumer(**settings.client_options(),
                                         isolation_level="read_committed",
                                         enable_auto_commit=False,
                                         max_partition_fetch_bytes=64 * 1024)
    sources = {"route": topics.observations, "merge": topics.merge}
    parts = [aiokafka.TopicPartition(t, p) for t in sources.values() for p in range(partitions)]
    await admin.start()
    await consumer.start()
    consumer.assign(parts)
    deadline = time.monotonic() + within
    try:
        while time.monotonic() < deadline:
            if await _all_committed(admin, consumer, topics.prefix, sources, parts):
                return time.monotonic()
            await asyncio.sleep(0.1)
        raise SystemExit(f"benchmark: the workers did not catch up within {within:.0f} s")
    finally:
        await consumer.stop()
        await admin.close()


async def _all_committed(admin: aiokafka.admin.AIOKafkaAdminClient,
                         consumer: aiokafka.AIOKafkaConsumer, prefix: str,
                         sources: dict[str, str], parts: list[aiokafka.TopicPartition]
                         ) -> bool:
    ends = await consumer.end_offsets(parts)  # last stable offsets (read_committed)
    for role, source in sources.items():
        committed = await admin.list_consumer_group_offsets(f"{prefix}.{role}")
        for tp in (tp for tp in parts if tp.topic == source):
            start = committed[tp].offset if tp in committed else 0
            if start < 0:  # nothing committed yet
                start = 0
            if start < ends[tp] and await _holds_a_record(consumer, tp, start, ends[tp]):
                return False
    return True


async def _holds_a_record(consumer: aiokafka.AIOKafkaConsumer, tp: aiokafka.TopicPartition,
                          start: int, end: int) -> bool:
    """Whether partition ``tp`` holds a committed record at an offset in [start, end)."""
    consumer.seek(tp, start)
    while await consumer.position(tp) < end:
        if (await consumer.getmany(tp, timeout_ms=500, max_records=1)).get(tp):
            return True
    return False


async def delete_topics(settings: KafkaSettings, prefix: str) -> None:
    """Delete every topic of the deployment ``prefix``."""
    admin = aiokafka.admin.AIOKafkaAdminClient(**settings.client_options())
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(prefix + ".")]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


async def _deployment(settings: KafkaSettings, partitions: int,
                      events: list[ObservationEvent], attempts: int = 3) -> Topics:
    """A fresh deployment's topics with ``events`` loaded into its observations.

    On a loaded broker the first sends to topics just created were refused now and then
    (``NotLeaderForPartitionError``, failing `make bench`'s workers step): the load is then
    made again, into another fresh deployment (so that no event is there twice).
    """
    for attempt in range(1, attempts + 1):
        topics = Topics(f"benchscale{uuid.uuid4().hex[:8]}")
        await MergeWorker(settings, topics, CATALOG,
                          topic_settings=TopicSettings(partitions=partitions)).ensure_topics()
        try:
            await preload(settings, topics.observations, events)
            return topics
        except aiokafka.errors.KafkaError as exc:
            await delete_topics(settings, topics.prefix)
            if attempt == attempts:
                raise
            print(f"benchmark: loading the observations failed ({exc!r}); again, into a "
                  "new deployment", flush=True)
            await asyncio.sleep(2.0)
    raise AssertionError("unreachable")


# The measurements --------------------------------------------------------------------------

SAMPLE = 2_000
"""Records folded for a seeded changelog (see the module's docstring)."""


def seeded_tables(sample: int = SAMPLE) -> tuple[list[tuple[str, bytes]], list[tuple[str, str]]]:
    """A sample of canonical records made by the real stages' code: the observations that
    create ``sample`` records, routed (:class:`~streams.merge.Router`) and folded
    (:class:`~streams.merge.Merger`) in-process; their encoded states and their links."""
    router, merger = Router(CATALOG), Merger(CATALOG)
    links: dict[str, str] = {}
    table: dict[str, Any] = {}
    for event in synced_observations(1, records=sample):
        merger.apply(router.route(event, links).event, table)  # type: ignore[arg-type]
    return [(cid, encode_state(state)) for cid, state in table.items()], list(links.items())


def _copy_id(cid: str, copy: int) -> str:
    return f"{copy:08x}{cid[8:]}"


async def seed(settings: KafkaSettings, topics: Topics, records: int, partitions: int) -> int:
    """Write ``records`` canonical records (copies of :func:`seeded_tables`) to the merge
    stage's changelog and their links to the route stage's; the number of links written."""
    from aiokafka.partitioner import DefaultPartitioner

    states, links = seeded_tables(min(records, SAMPLE))
    by_cid: dict[str, list[tuple[str, str]]] = {}
    for key, cid in links:
        by_cid.setdefault(cid, []).append((key, cid))
    partitioner = DefaultPartitioner()
    every = list(range(partitions))
    producer = aiokafka.AIOKafkaProducer(**settings.client_options(), acks="all",
                                         max_batch_size=1024 * 1024, linger_ms=50)
    await producer.start()
    try:
        batches: dict[tuple[str, int], Any] = {}
        futures: list[Any] = []

        async def append(topic: str, key: bytes, value: bytes) -> None:
            slot = (topic, partitioner(key, every, every))
            batch = batches.get(slot)
            if batch is None:
                batch = batches[slot] = producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None) is None:
                futures.append(await producer.send_batch(batch, topic, partition=slot[1]))
                batch = batches[slot] = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None)
            if len(futures) >= 64:
                await asyncio.gather(*futures)
                futures.clear()

        written = linked = 0
        copy = 0
        while written < records:
            for cid, value in states:
                if written == records:
                    break
                new = _copy_id(cid, copy)
                await append(topics.name("records_changelog"), new.encode(),
                             value.replace(cid.encode(), new.encode()))
                for key, _ in by_cid.get(cid, []):
                    await append(topics.name("links_changelog"),
                                 f"{key}.{copy}".encode(), new.encode())
                    linked += 1
                written += 1
            copy += 1
        for (topic, partition), batch in batches.items():
            futures.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return linked


async def restart(args: argparse.Namespace) -> list[dict[str, Any]]:
    settings = KafkaSettings(bootstrap=args.bootstrap)
    rows = []
    for records in args.records:
        seeded = args.seeded_from is not None and records >= args.seeded_from
        events = [] if seeded else synced_observations(1, records=records)  # creations only
        shared: Topics | None = None  # seeded: one deployment for every store (it is read)
        seeding: dict[str, Any] = {}
        if seeded:
            shared = await _deployment(settings, args.partitions, events)
            begin = time.monotonic()
            seeding["links"] = await seed(settings, shared, records, args.partitions)
            seeding["seed_seconds"] = time.monotonic() - begin
        for store in args.store:
            topics = shared or await _deployment(settings, args.partitions, events)
            try:
                with tempfile.TemporaryDirectory() as tmp:
                    state = None if store == "memory" else Path(tmp)
                    row: dict[str, Any] = {"records": records, "store": store,
                                           "made": "seeded" if seeded else "folded",
                                           "observations": len(events), **seeding}
                    first = await Child.start(args.bootstrap, topics.prefix,
                                              ["route", "merge"], args.partitions, state)
                    ready = await first.line()
                    begin = time.monotonic()
                    caught_up = await _caught_up(settings, topics, args.partitions)
                    working = await first.stop()  # SIGTERM: RocksDB keeps its files
                    clean = await Child.start(args.bootstrap, topics.prefix,
                                              ["route", "merge"], args.partitions, state)
                    clean_ready = await clean.line()
                    await clean.kill()  # kill -9: no checkpoint file left
                    second = await Child.start(args.bootstrap, topics.prefix,
                                               ["route", "merge"], args.partitions, state)
                    restarted = await second.line()
                    after = await second.stop()
            finally:
                if shared is None or store == args.store[-1]:
                    await delete_topics(settings, topics.prefix)
            row |= {"first_ready_seconds": ready["ready_seconds"],
                    "first_ready_rss_mib": ready["ready_rss_mib"],
                    "drain_seconds": caught_up - begin,
                    "working_peak_rss_mib": working["peak_rss_mib"],
                    "first_restoring_seconds": ready["restoring_seconds"],
                    "clean_restart_ready_seconds": clean_ready["ready_seconds"],
                    "clean_restart_restoring_seconds": clean_ready["restoring_seconds"],
                    "restart_restoring_seconds": restarted["restoring_seconds"],
                    "clean_restart_rss_mib": clean_ready["ready_rss_mib"],
                    "restart_ready_seconds": restarted["ready_seconds"],
                    "restart_ready_rss_mib": restarted["ready_rss_mib"],
                    "restart_peak_rss_mib": after["peak_rss_mib"]}
            made = (f"seeded in {row['seed_seconds']:.1f} s" if seeded
                    else f"{len(events):,} observations")
            print(f"restart: {records:,} records ({made}), {store}: first ready in "
                  f"{row['first_ready_seconds']:.2f} s, worked through in "
                  f"{row['drain_seconds']:.1f} s, peak RSS {row['working_peak_rss_mib']:.0f} "
                  f"MiB; clean restart to ready {row['clean_restart_ready_seconds']:.2f} s "
                  f"(restoring {row['clean_restart_restoring_seconds']:.2f} s, "
                  f"{row['clean_restart_rss_mib']:.0f} MiB); restart after kill -9 to ready "
                  f"{row['restart_ready_seconds']:.2f} s (restoring "
                  f"{row['restart_restoring_seconds']:.2f} s), peak RSS "
                  f"{row['restart_peak_rss_mib']:.0f} MiB", flush=True)
            rows.append(row)
    return rows


async def workers(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Per count K: the observations loaded into a fresh deployment, then K route and K merge
    processes started; once their consumer groups have settled (each process owns its share
    of the partitions) the groups' committed offsets are read, and the rate is what was left
    for the merge stage then over the time until both groups have committed every input.
    (Timing from the first process ready counted the rebalances as the others joined and
    the first process's work alone; loading while they ran timed the loading.)"""
    settings = KafkaSettings(bootstrap=args.bootstrap)
    events = synced_observations(args.events)
    records = len({e.link_key() for e in events})
    rows = []
    for count in args.counts:
        topics = await _deployment(settings, args.partitions, events)
        children: list[Child] = []
        try:
            by_role: dict[str, list[Child]] = {}
            for role in ("route", "merge"):
                by_role[role] = [await Child.start(args.bootstrap, topics.prefix, [role],
                                                   args.partitions, report_owned=True)
                                 for _ in range(count)]
                children += by_role[role]
            await asyncio.gather(*(_settled(group, (role,), args.partitions)
                                   for role, group in by_role.items()))
            begin = time.monotonic()
            cpu_at_begin = _cpu_seconds([c.proc.pid for c in children])
            at_begin = await _committed(settings, topics)
            done = await _caught_up(settings, topics, args.partitions)
            cpu = {role: sum(_cpu_seconds([c.proc.pid for c in group]).values())
                   - sum(cpu_at_begin[c.proc.pid] for c in group)
                   for role, group in by_role.items()}
            at_end = await _committed(settings, topics)
            stopped = [await c.stop() for c in children]
        finally:
            for c in children:
                if c.proc.returncode is None:
                    c.proc.kill()
            await delete_topics(settings, topics.prefix)
        seconds = done - begin
        left = at_end["merge"] - at_begin["merge"]  # merge inputs (offsets: + a few markers)
        row = {"workers_per_role": count, "observations": len(events), "records": records,
               "partitions": args.partitions, "seconds": seconds,
               "left_at_settled": left, "done_before_settled": at_begin["merge"],
               "observations_per_second": left / seconds,
               "cpu_seconds": cpu,
               "peak_rss_mib": max(s["peak_rss_mib"] for s in stopped)}
        print(f"workers: {count} per role, {len(events):,} observations ({records:,} copies) "
              f"on {args.partitions} partitions: {left:,} left for the merge stage once the "
              f"groups settled ({at_begin['merge']:,} done before), worked through in "
              f"{seconds:.1f} s: {row['observations_per_second']:,.0f} observations/s through "
              f"both stages; CPU in that time: route {cpu['route']:.1f} s, merge "
              f"{cpu['merge']:.1f} s (peak RSS of a worker {row['peak_rss_mib']:.0f} MiB)",
              flush=True)
        rows.append(row)
    return rows


async def _committed(settings: KafkaSettings, topics: Topics) -> dict[str, int]:
    """Per stage, the sum of its group's committed offsets over its source's partitions."""
    admin = aiokafka.admin.AIOKafkaAdminClient(**settings.client_options())
    await admin.start()
    try:
        return {role: sum(o.offset for o in (await admin.list_consumer_group_offsets(
                    f"{topics.prefix}.{role}")).values())
                for role in ("route", "merge")}
    finally:
        await admin.close()


def _cpu_seconds(pids: list[int]) -> dict[int, float]:
    """CPU seconds (user and system) each process has used so far (Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        out[pid] = (int(fields[11]) + int(fields[12])) / tick
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("restart", "workers", "child"):
        p = sub.add_parser(name)
        p.add_argument("--bootstrap", default="127.0.0.1:19092")
        p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    sub.choices["restart"].add_argument("--records", type=int, nargs="+", default=[10_000])
    sub.choices["restart"].add_argument("--store", nargs="+", choices=("memory", "rocksdb"),
                                        default=["memory", "rocksdb"])
    sub.choices["restart"].add_argument("--partitions", type=int, default=4)
    sub.choices["restart"].add_argument(
        "--seeded-from", type=int, default=None,
        help="seed the changelogs with copies of a folded sample for this many records and "
             "more, instead of folding them (see the module's docstring)")
    sub.choices["workers"].add_argument("--events", type=int, default=100_000)
    sub.choices["workers"].add_argument("--counts", type=int, nargs="+", default=[1, 2, 3])
    sub.choices["workers"].add_argument("--partitions", type=int, default=6)
    child = sub.choices["child"]
    child.add_argument("--prefix", required=True)
    child.add_argument("--partitions", type=int, required=True)
    child.add_argument("--roles", nargs="+", choices=("route", "merge"), required=True)
    child.add_argument("--state-dir", type=Path, default=None)
    child.add_argument("--report-owned", action="store_true",
                       help="print the partitions owned per stage whenever they change")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    if args.command == "child":
        asyncio.run(_child(args))
        return
    rows = asyncio.run(restart(args) if args.command == "restart" else workers(args))
    if args.json:
        args.json.write_text(json.dumps(rows))


if __name__ == "__main__":
    main()

