"""Merge throughput on the local broker: ``python -m benchmarks.merge [--events N]``.

Pre-loads N observations into a fresh deployment's ``observations`` topic — by default what
two lanes publish while the hub keeps them in step (edits, write outcomes, echoes; see
:func:`synced_observations`), ``--stream edits`` for edits alone — then times

1. a raw aiokafka loop over the same data: consume (read_committed, a consumer group) and
   produce every record to another topic, committing offsets — the floor any stage pays
   (``--raw-runs`` times, 3 by default: its rate varies by ±10% from run to run here, and the
   median is the one compared);
2. the merge worker draining it: route (links table, canonical ids) and merge (the fold,
   records/intents/conflicts outputs, the changelog), each exactly once in transactions.
   The merge stage reads, in a deployment of its own, the route stage's outputs in the order
   the lanes published them (``--merge-input causal``, see :func:`routed_inputs`);
   ``--merge-input routed``: what the route stage made of the pre-loaded backlog.

Prints both rates and their ratio. Needs the broker of ``deploy/kafka/kafka.sh up``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import statistics
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import aiokafka
import aiokafka.admin

import conflict
from streams import codec
from streams.events import ObservationEvent, Observed, WriteStale, Written
from streams.kafka import Admin, ConsumedRecord, KafkaSettings, TopicSpec
from streams.merge import Merger, Router
from streams.topics import Topics, TopicSettings
from streams.transactions import BATCH_BYTES
from streams.worker import MergeWorker, tune_gc
from tests.streams.catalog import CATALOG


def observations(n: int, concurrent: float = 0.05, seed: int = 7) -> list[Observed]:
    """Contacts created in the CRM (a third also found in the helpdesk, linked by email), then
    edits: each record is mostly edited where it lives, ``concurrent`` of edits come from the
    other system (a conflict, as the hub has no write outcomes in this stream)."""
    rng = random.Random(seed)
    seq = Counter[str]()
    events: list[Observed] = []
    records = max(1, n // 5)
    values: dict[int, dict[str, Any]] = {}

    def read(system: str, r: int) -> None:
        seq[system] += 1
        events.append(Observed(system=system, entity="contact", seq=seq[system],
                               external_id=f"{system[0]}-{r}", observed_at=len(events),
                               source_ts=len(events), fields=dict(values[r])))

    for r in range(records):
        values[r] = {"email": f"person{r}@example.com", "name": f"Person {r}", "tags": ["a"]}
        read("crm", r)
        if r % 3 == 0:
            read("helpdesk", r)
    while len(events) < n:
        r = rng.randrange(records)
        if rng.random() < 0.8:
            values[r]["name"] = f"Person {r} v{len(events)}"
        else:
            values[r]["tags"] = sorted({*values[r]["tags"], f"t{len(events) % 11}"})
        other = r % 3 == 0 and rng.random() < concurrent
        read("helpdesk" if other else "crm", r)
    return events


def synced_observations(n: int, concurrent: float = 0.05, seed: int = 7,
                        records: int | None = None) -> list[ObservationEvent]:
    """What two lanes publish while the hub keeps them in step: contacts created in the CRM
    (a third also in the helpdesk, linked by email), then edits, each mostly made where the
    record was created, ``concurrent`` of them made in the other system at the same time.

    The stream is recorded by playing both systems and their lanes against the route and
    merge stages in memory (as ``benchmarks.fold`` plays them against the fold): every intent
    is carried out with the lane's stale check and reported (written, or stale), and the
    system's next poll shows the write (an echo). So the merge stage gets the mix a running
    deployment gets — edits, write outcomes and echoes — and each record a few times, far
    apart, as with many records and few edits each.
    """
    rng = random.Random(seed)
    router, merger = Router(CATALOG), Merger(CATALOG)
    links: dict[str, str] = {}
    table: dict[str, conflict.RecordState] = {}
    dbs: dict[str, dict[str, dict[str, Any]]] = {"crm": {}, "helpdesk": {}}
    emails: dict[str, dict[str, str]] = {"crm": {}, "helpdesk": {}}  # emails never change
    seq = Counter[str]()
    events: list[ObservationEvent] = []

    def publish(event: ObservationEvent) -> list[dict[str, Any]]:
        events.append(event)
        routed = router.route(event, links)
        outputs = merger.apply(routed.event, table)  # type: ignore[arg-type]
        return [o.event for o in outputs if o.role == "intents"]  # type: ignore[misc]

    def read(system: str, xid: str) -> list[dict[str, Any]]:
        seq[system] += 1
        return publish(Observed(system=system, entity="contact", seq=seq[system],
                                external_id=xid, observed_at=len(events),
                                source_ts=len(events), fields=dict(dbs[system][xid])))

    def carry_out(intents: list[dict[str, Any]]) -> None:
        queue = list(intents)
        while queue:
            intent = queue.pop(0)
            system = intent["system"]
            db = dbs[system]
            xid = intent["external_id"]
            if xid is None:  # a create: the lane looks the record up by its email first
                xid = emails[system].get(intent["values"].get("email"),
                                         f"{system[0]}-new-{len(db)}")
            held = db.get(xid)
            if held is not None and intent["op"] == "update" and any(
                    held.get(f) not in (v, intent["expected"].get(f))
                    for f, v in intent["values"].items()):
                queue += read(system, xid)  # the lane's stale check found an unseen edit
                seq[system] += 1
                queue += publish(WriteStale(
                    system=system, entity="contact", seq=seq[system], external_id=xid,
                    canonical_id=intent["canonical_id"], observed_at=len(events),
                    intent_id=intent["intent_id"]))
                continue
            db[xid] = {**(held or {}), **intent["values"]}
            emails[system][db[xid]["email"]] = xid
            seq[system] += 1
            queue += publish(Written(
                system=system, entity="contact", seq=seq[system], external_id=xid,
                canonical_id=intent["canonical_id"], observed_at=len(events),
                source_ts=len(events), intent_id=intent["intent_id"]))
            queue += read(system, xid)  # the next poll shows the write: an echo

    records = records or max(1, n // 12)
    copies: list[tuple[str, str | None]] = []  # per record: its CRM id, its helpdesk id
    for r in range(records):
        values: dict[str, Any] = {"email": f"person{r}@example.com", "name": f"Person {r}",
                                  "tags": ["a"]}
        dbs["crm"][f"c-{r}"] = dict(values)
        emails["crm"][values["email"]] = f"c-{r}"
        other = None
        if r % 3 == 0:
            other = f"h-{r}"
            dbs["helpdesk"][other] = dict(values)
            emails["helpdesk"][values["email"]] = other
            carry_out(read("helpdesk", other))
        carry_out(read("crm", f"c-{r}"))
        copies.append((f"c-{r}", other))
    def edit(system: str, xid: str, field: str) -> list[dict[str, Any]]:
        """A person edits ``field`` of the copy; the lane's next poll reads it."""
        record = dbs[system][xid]
        if field == "name":
            record["name"] = f"{record['name'].split(' v')[0]} v{len(events)}"
        else:
            record["tags"] = sorted({*record["tags"], f"t{len(events) % 11}"})
        return read(system, xid)

    while len(events) < n:
        xid, copy = copies[rng.randrange(records)]
        field = "name" if rng.random() < 0.8 else "tags"
        intents = edit("crm", xid, field)
        if copy is not None and rng.random() < concurrent * 3:  # a third are in both
            intents += edit("helpdesk", copy, field)
        carry_out(intents)
    return events


async def preload(settings: KafkaSettings, topic: str, events: list[ObservationEvent],
                  by_copy: bool = False) -> None:
    """Bulk-load ``events`` (without waiting for each acknowledgement, as Producer.send
    does), keyed as on the observations topic (by lane) or ``by_copy`` (spread evenly)."""
    producer = aiokafka.AIOKafkaProducer(**settings.client_options(), acks="all",
                                         enable_idempotence=True)
    await producer.start()
    try:
        futures = [await producer.send(topic, codec.encode(e), key=(
            e.link_key() if by_copy else e.key()).encode()) for e in events]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def routed_inputs(events: list[ObservationEvent]) -> list[tuple[bytes, bytes]]:
    """The merge stage's input as a deployment's lanes make it: the route stage's outputs
    (key, value) for ``events`` in the order they were published.

    The route stage reads ``observations`` keyed by lane, each partition on its own, so a
    pre-loaded backlog comes out of it with the lanes interleaved in no particular order: a
    write's outcome can reach the merge topic before the read that caused the write (a
    dead letter, UnknownIntent, and a record that differs from then on: 1,844 of the 20,000
    synced observations in session 9). Running lanes cannot do that: a lane writes only once
    the intent exists, so the merge topic holds each record's inputs in causal order.
    """
    router, links = Router(CATALOG), dict[str, str]()
    routed: list[tuple[bytes, bytes]] = []
    for offset, event in enumerate(events):
        record = ConsumedRecord(topic="observations", partition=0, offset=offset,
                                key=event.key().encode(), value=codec.encode(event),
                                timestamp_ms=0)
        for out in router.handle(record, links, time.time):
            routed.append((out.key.encode(), out.encoded()))
    return routed


async def preload_routed(settings: KafkaSettings, topic: str,
                         records: list[tuple[bytes, bytes]]) -> None:
    """Bulk-load the route stage's outputs, keyed by canonical id as the route stage keys them,
    in batches as large as the route stage's (a consumer pays per batch too)."""
    producer = aiokafka.AIOKafkaProducer(**settings.client_options(), acks="all",
                                         enable_idempotence=True, linger_ms=5,
                                         max_batch_size=BATCH_BYTES)
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for key, value in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def raw_loop(settings: KafkaSettings, source: str, sink: str, n: int,
                   partitions: int) -> tuple[float, float, float]:
    """The seconds the loop took, timed like a stage: from its partitions being assigned and
    its producer knowing the sink (a stage's runner does both before it is ready); and the
    CPU seconds of this process and the seconds it waited for a core meanwhile."""
    async with Admin(settings) as admin:
        await admin.ensure_topic(TopicSpec(sink, partitions))
    consumer = aiokafka.AIOKafkaConsumer(
        source, **settings.client_options(), group_id=f"raw-{uuid.uuid4().hex[:8]}",
        isolation_level="read_committed", enable_auto_commit=False,
        auto_offset_reset="earliest", max_poll_records=1000)
    producer = aiokafka.AIOKafkaProducer(**settings.client_options(), acks="all",
                                         enable_idempotence=True)
    await consumer.start()
    await producer.start()
    try:
        await producer.partitions_for(sink)
        while not consumer.assignment():  # noqa: ASYNC110 - aiokafka has no event for it
            await asyncio.sleep(0.01)
        done = 0
        start, cpu, waited = time.perf_counter(), time.process_time(), _waited_of(os.getpid())
        while done < n:
            batch = await consumer.getmany(timeout_ms=500, max_records=1000)
            futures = []
            for records in batch.values():
                for record in records:
                    futures.append(await producer.send(sink, record.value, key=record.key))
            await asyncio.gather(*futures)
            await consumer.commit()
            done += len(futures)
        return (time.perf_counter() - start, time.process_time() - cpu,
                _waited_of(os.getpid()) - waited)
    finally:
        await producer.stop()
        await consumer.stop()


async def drain(settings: KafkaSettings, topics: Topics, n: int, args: argparse.Namespace,
                role: str) -> tuple[float, MergeWorker]:
    """Run one stage alone until it has committed ``n`` inputs and written its changelog;
    the seconds it took. The merge stage writes its changelog as soon as a partition has
    nothing waiting (not after its usual 0.25 s), so that the timing covers it."""
    worker = MergeWorker(settings, topics, CATALOG,
                         topic_settings=TopicSettings(partitions=args.partitions),
                         checkpoint_idle=0.0,
                         **({} if args.max_batch is None else {"max_batch": args.max_batch}))
    stage = worker.route_stage if role == "route" else worker.merge_stage
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop, (role,)))
    await stage.ready.wait()
    broker, waited = _cpu_of(args.broker_pid), _waited_of(os.getpid())
    start, cpu = time.perf_counter(), time.process_time()
    while stage.stats.committed < n:  # noqa: ASYNC110 - a counter, polled
        await asyncio.sleep(0.02)
    worker.outputs_seconds = time.perf_counter() - start  # type: ignore[attr-defined]
    while not stage.changelog_written():  # noqa: ASYNC110 - polled
        await asyncio.sleep(0.02)
    elapsed = time.perf_counter() - start
    worker.cpu_seconds = time.process_time() - cpu  # type: ignore[attr-defined]
    worker.waited_seconds = _waited_of(os.getpid()) - waited  # type: ignore[attr-defined]
    worker.broker_cpu_seconds = _cpu_of(args.broker_pid) - broker  # type: ignore[attr-defined]
    stop.set()
    await task
    return elapsed, worker


def _cpu_of(pid: int | None) -> float:
    """CPU seconds process ``pid`` has used (user and system); 0 without a pid."""
    if pid is None:
        return 0.0
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _waited_of(pid: int) -> float:
    """Seconds the threads of process ``pid`` have spent runnable but waiting for a core
    (the run queue's delay, ``/proc/PID/task/*/schedstat``); 0 where Linux does not say."""
    total = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    return total / 1e9


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    settings = KafkaSettings(bootstrap=args.bootstrap)
    topics = Topics(f"bench{uuid.uuid4().hex[:8]}")
    events: list[ObservationEvent] = [
        *(synced_observations(args.events, records=args.records) if args.stream == "synced"
          else observations(args.events))]
    setup = MergeWorker(settings, topics, CATALOG,
                        topic_settings=TopicSettings(partitions=args.partitions))
    created = await setup.ensure_topics()
    # The merge stage reads its input in the order the lanes made it (see routed_inputs), in a
    # deployment of its own; with --merge-input routed, what the route stage produced here.
    merge_topics, merge_inputs = topics, len(events)
    if args.merge_input == "causal":
        merge_topics = Topics(f"{topics.prefix}c")
        created += await MergeWorker(
            settings, merge_topics, CATALOG,
            topic_settings=TopicSettings(partitions=args.partitions)).ensure_topics()
    # The raw loop reads the observations keyed by copy, spread over all partitions like the
    # merge stage's input: keyed by lane (two here), they would sit in two partitions.
    source, sink = f"{topics.prefix}.raw-source", f"{topics.prefix}.raw-sink"
    try:
        async with Admin(settings) as admin:
            await admin.ensure_topic(TopicSpec(source, args.partitions))
        await preload(settings, topics.observations, events)
        await preload(settings, source, events, by_copy=True)
        if args.merge_input == "causal":
            routed = routed_inputs(events)
            merge_inputs = len(routed)
            await preload_routed(settings, merge_topics.merge, routed)
        raw_runs = [await raw_loop(settings, source, sink, len(events), args.partitions)
                    for _ in range(args.raw_runs)]
        tune_gc()
        route_seconds, router = await drain(settings, topics, len(events), args, "route")
        merge_seconds, merger = await drain(settings, merge_topics, merge_inputs, args, "merge")
    finally:
        # Each run makes ~40 partitions; a shared development broker should not keep them.
        admin = aiokafka.admin.AIOKafkaAdminClient(**settings.client_options())
        await admin.start()
        try:
            await admin.delete_topics([*created, source, sink])
        finally:
            await admin.close()
    raw_rates = sorted(len(events) / seconds for seconds, _, _ in raw_runs)
    raw_rate = statistics.median(raw_rates)
    raw_cpu = statistics.median(cpu for _, cpu, _ in raw_runs) / len(events) * 1e6
    route_rate = len(events) / route_seconds
    merge_rate = len(events) / merge_seconds
    route, merge = router.route_stage.stats, merger.merge_stage.stats
    kinds = Counter(type(e).__name__ for e in events)
    print(f"merge benchmark: {len(events)} observations ({args.stream}: "
          f"{', '.join(f'{n} {k}' for k, n in kinds.most_common())}; "
          f"{len({e.link_key() for e in events})} copies), {args.partitions} partitions, "
          f"broker {args.bootstrap}; the fold "
          f"{'compiled by mypyc' if conflict.compiled() else 'interpreted (make compile)'}")
    print(f"raw aiokafka consume->produce loop: {raw_rate:,.0f} msg/s, the median of "
          f"{len(raw_rates)} runs ({', '.join(f'{r:,.0f}' for r in raw_rates)}); "
          f"{raw_cpu:.0f} µs of CPU a message (median), per run CPU / waiting for a core: "
          f"{', '.join(f'{c:.2f} / {w:.2f} s' for _, c, w in raw_runs)}")
    print(f"route stage alone (links, canonical ids; exactly once): {route_seconds:.2f} s, "
          f"{route_rate:,.0f} observations/s, {route.transactions} transactions")
    print(f"merge stage alone (fold, outputs, changelog; exactly once): {merge_seconds:.2f} s, "
          f"{merge_rate:,.0f} observations/s, {merge.transactions} transactions "
          f"({merge.checkpoints} wrote the changelog), "
          f"{merge.produced} records produced ({merge.produced / len(events):.2f} an observation), "
          f"{merge.dead_letters} dead letters; input: {args.merge_input}")
    print(f"  merge stage: every output committed after "
          f"{merger.outputs_seconds:.2f} s, the changelog too after {merge_seconds:.2f} s")  # type: ignore
    print(f"  merge stage: {merger.cpu_seconds / len(events) * 1e6:.0f} µs of CPU an "  # type: ignore
          f"observation; {merger.cpu_seconds:.2f} s of CPU in this process "  # type: ignore
          f"({merge.handling_seconds:.2f} s in its own code), "
          f"{merger.waited_seconds:.2f} s runnable but waiting for a core; "  # type: ignore
          f"transactions took {merge.committing_seconds:.2f} s (summed over partitions, "
          "overlapping)")
    if args.broker_pid is not None:
        print(f"  broker (pid {args.broker_pid}): {merger.broker_cpu_seconds:.2f} s of CPU "  # type: ignore
              "while the merge stage ran")
    print(f"ratio merge/raw: {merge_rate / raw_rate:.2f} (goal: at least 0.8); "
          f"route/raw: {route_rate / raw_rate:.2f}")
    return {"observations": len(events), "stream": args.stream,
            "partitions": args.partitions, "compiled": conflict.compiled(),
            "raw_rates": raw_rates, "raw_rate": raw_rate, "route_rate": route_rate,
            "raw_cpu_seconds": [cpu for _, cpu, _ in raw_runs],
            "raw_waited_seconds": [waited for _, _, waited in raw_runs],
            "merge_rate": merge_rate, "merge_raw": merge_rate / raw_rate,
            "route_raw": route_rate / raw_rate,
            "merge_cpu_seconds": merger.cpu_seconds,  # type: ignore[attr-defined]
            "merge_waited_seconds": merger.waited_seconds,  # type: ignore[attr-defined]
            "merge_produced": merge.produced, "merge_transactions": merge.transactions,
            "merge_checkpoints": merge.checkpoints, "merge_dead_letters": merge.dead_letters,
            "merge_input": args.merge_input}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:19092")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--stream", choices=("synced", "edits"), default="synced",
                        help="synced: edits, write outcomes and echoes, as lanes publish them "
                             "while the hub keeps the systems in step (default); edits: reads "
                             "with edits only, no outcomes (the rows before session 4)")
    parser.add_argument("--records", type=int, default=None,
                        help="records the synced stream edits (default: events / 12)")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--raw-runs", type=int, default=3,
                        help="times the raw loop runs (over the same data); its median rate "
                             "is the one compared")
    parser.add_argument("--merge-input", choices=("causal", "routed"), default="causal",
                        help="causal: the merge stage reads the route stage's outputs in the "
                             "order the lanes published (as running lanes make it; default); "
                             "routed: what the route stage made of the pre-loaded backlog, "
                             "lanes interleaved at random (outcomes before their causes: dead "
                             "letters; the runs before session 9)")
    parser.add_argument("--max-batch", type=int, default=None,
                        help="inputs per transaction, at most (default: the worker's)")
    parser.add_argument("--broker-pid", type=int, default=None,
                        help="a local broker's pid: also print its CPU time while the merge "
                             "stage runs (Linux)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    result = asyncio.run(main_async(args))
    if args.json:
        args.json.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
