"""The merge topology on the real broker: events in, state and outputs out, exactly once.

Every test runs its own deployment (a unique topic prefix) and compares what the worker left
on Kafka with a replica: the same events folded in-process by the same Router and Merger.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import conflict
from streams import codec
from streams.checkpoint import CHECKPOINT_KEY, decode_checkpoint
from streams.events import DeadLetter, Observed, RecordEvent, WriteIntent
from streams.kafka import KafkaSettings
from streams.merge import Merger
from streams.replay import live_table, replay
from streams.runner import NEVER
from streams.topics import Topics, TopicSettings
from streams.worker import MergeWorker
from tests.streams.catalog import CATALOG
from tests.streams.kafka_helpers import produce, read_topic, wait_for

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.kafka]


def story(records: int, edits_per_record: int) -> list[Observed]:
    """Contacts created in the CRM, some already in the helpdesk, then edits on both sides."""
    seq = Counter[str]()
    events: list[Observed] = []

    def read(system: str, ext: str, **fields: Any) -> None:
        seq[system] += 1
        events.append(Observed(system=system, entity="contact", seq=seq[system],
                               external_id=ext, observed_at=seq[system],
                               source_ts=len(events), fields=fields))

    for i in range(records):
        read("crm", f"c-{i}", email=f"person{i}@example.com", name=f"Person {i}", tags=["a"])
        if i % 3 == 0:  # already in the helpdesk: linked by email, not copied
            read("helpdesk", f"h-{i}", email=f"PERSON{i}@example.com", name=f"P. {i}",
                 tags=["b"])
    for n in range(edits_per_record):
        for i in range(records):
            system, ext = ("crm", f"c-{i}") if (i + n) % 2 else ("helpdesk", f"h-{i}")
            if system == "helpdesk" and i % 3:
                continue
            read(system, ext, email=f"person{i}@example.com", name=f"Person {i} v{n}",
                 tags=[f"t{n}"])
    return events


async def replica(settings: KafkaSettings, topics: Topics,
                  ) -> tuple[dict[str, dict[str, Any]], Counter[str], list[tuple[str, int]]]:
    """The states and intents the merge stage must have produced from what it consumed.

    The ``merge`` topic holds the routed observations in the order the merge stage read them
    (only committed ones). Observations of one record from two systems may interleave
    differently from run to run; within a system they keep their order. Folding the merge
    topic in-process therefore gives exactly the states the worker must hold.
    """
    merger = Merger(CATALOG)
    records: dict[str, conflict.RecordState] = {}
    intents = Counter[str]()
    seen: list[tuple[str, int]] = []
    for r in await read_topic(settings, topics.merge):
        event = codec.decode(r.value, (Observed,))
        seen.append((event.system, event.seq))
        for out in merger.apply(event, records):
            if out.role == "intents":
                intents[codec.decode(codec.encode(out.event), (WriteIntent,)).intent_id] += 1
    return {cid: s.to_dict() for cid, s in records.items()}, intents, seen


async def kafka_states(settings: KafkaSettings, topics: Topics) -> dict[str, dict[str, Any]]:
    states, _ = await live_table(settings, topics)
    return {cid: state.to_dict() for cid, state in states.items()}


async def kafka_intents(settings: KafkaSettings, topics: Topics) -> Counter[str]:
    return Counter(codec.decode(r.value, (WriteIntent,)).intent_id
                   for r in await read_topic(settings, topics.intents))


def observation_records(events: list[Observed]) -> list[tuple[bytes, bytes]]:
    return [(e.key().encode(), codec.encode(e)) for e in events]


async def settle(settings: KafkaSettings, topics: Topics, events: list[Observed],
                 within: float, what: str) -> tuple[dict[str, Any], Counter[str]]:
    """Wait until every event was routed exactly once and the changelog holds the replica."""
    wanted = sorted((e.system, e.seq) for e in events)

    async def check() -> tuple[dict[str, Any], Counter[str]] | None:
        states, intents, seen = await replica(settings, topics)
        duplicates = [k for k, n in Counter(seen).items() if n > 1]
        assert duplicates == [], f"observations routed twice: {duplicates[:5]}"
        if sorted(seen) != wanted or await kafka_states(settings, topics) != states:
            return None
        return states, intents

    result: tuple[dict[str, Any], Counter[str]] = await wait_for(check, within, what)
    return result


@pytest.fixture
def topics() -> Topics:
    return Topics(f"t{uuid.uuid4().hex[:10]}")


@pytest.mark.parametrize("store", ["memory", "rocksdb"])
async def test_events_in_state_and_outputs_out(kafka_settings: KafkaSettings, topics: Topics,
                                               store: str, tmp_path: Path) -> None:
    events = story(records=12, edits_per_record=3)
    worker = MergeWorker(kafka_settings, topics, CATALOG,
                         topic_settings=TopicSettings(partitions=2), max_batch=7,
                         state_dir=tmp_path / "state" if store == "rocksdb" else None)
    await worker.ensure_topics()
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        await produce(kafka_settings, topics.observations, observation_records(events))
        # Poison: not JSON, and a valid observation of an entity nobody configured.
        stray = events[0].model_copy(update={"entity": "ticket"})
        await produce(kafka_settings, topics.observations,
                      [(b"crm/contact/x", b"\x00garbage"), (stray.key().encode(),
                                                             codec.encode(stray))])

        expected_states, expected_intents = await settle(
            kafka_settings, topics, events, 60, "the changelog to hold the replica's states")
        assert await kafka_intents(kafka_settings, topics) == expected_intents

        # The canonical stream: the latest record event per key is the replica's record.
        latest: dict[str, RecordEvent] = {}
        for r in await read_topic(kafka_settings, topics.records):
            event = codec.decode(r.value, (RecordEvent,))
            before = latest.get(r.key.decode())
            if before is not None:  # a consumer reading `changed` misses no change
                assert {f for f in {*before.fields, *event.fields}
                        if before.fields.get(f) != event.fields.get(f)} <= set(event.changed)
            latest[r.key.decode()] = event
        assert set(latest) == set(expected_states)
        for cid, event in latest.items():
            state = conflict.RecordState.from_dict(expected_states[cid])
            assert event.fields == state.values
            assert event.links["crm"].startswith("c-")
        linked = [e for e in latest.values() if "helpdesk" in e.links]
        assert len(linked) == 4  # records 0, 3, 6, 9 were linked by email, not duplicated

        async def dead_letters() -> list[DeadLetter]:
            records = await read_topic(kafka_settings, topics.dlq)
            return [codec.decode(r.value, (DeadLetter,)) for r in records]

        # Replay: the table rebuilt from the log is the live one, bit for bit.
        rebuilt = await replay(kafka_settings, topics, CATALOG)
        assert rebuilt.differences == [] and len(rebuilt.rebuilt) == len(expected_states)
        assert rebuilt.inputs == len(events)

        letters = await wait_for(lambda: _at_least(dead_letters, 2), 30, "two dead letters")
        by_error = {letter.error: letter for letter in letters}
        assert base64.b64decode(by_error["Undecodable"].value_b64 or "") == b"\x00garbage"
        assert by_error["Undecodable"].topic == topics.observations
        assert "'ticket' is not configured" in by_error["UnknownEntity"].reason
    finally:
        stop.set()
        await task


async def _at_least(fetch: Any, n: int) -> Any:
    items = await fetch()
    return items if len(items) >= n else None


async def preload(settings: KafkaSettings, topics: Topics, events: list[Observed]) -> None:
    """The deployment's topics (3 partitions), with ``events`` on ``observations``."""
    await MergeWorker(settings, topics, CATALOG,
                      topic_settings=TopicSettings(partitions=3)).ensure_topics()
    await produce(settings, topics.observations, observation_records(events))


def start_worker(settings: KafkaSettings, topics: Topics, log: Path,
                 state_dir: Path | None = None, *options: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    store = ["--state-dir", str(state_dir)] if state_dir is not None else []
    with log.open("ab") as out:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "streams.worker", "--bootstrap", settings.bootstrap,
             "--prefix", topics.prefix, "--catalog", "tests.streams.catalog:CATALOG",
             "--partitions", "3", "--max-batch", "25", *store, *options],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)


@pytest.fixture
def workers() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


@pytest.mark.slow
async def test_worker_killed_mid_stream_restarts_to_the_same_state_without_duplicates(
        kafka_settings: KafkaSettings, topics: Topics, tmp_path: Path,
        workers: list[subprocess.Popen[bytes]]) -> None:
    # Long enough that the worker (25 inputs a transaction) is still at it when it is seen
    # to have committed some: a shorter stream was sometimes done before the first look.
    events = story(records=400, edits_per_record=6)
    await preload(kafka_settings, topics, events)
    log = tmp_path / "worker.log"
    workers.append(start_worker(kafka_settings, topics, log))

    async def some_progress() -> bool:
        return 0 < len(await kafka_states(kafka_settings, topics)) < 400

    await wait_for(some_progress, 60, "the worker to commit some of the stream")
    workers[0].send_signal(signal.SIGKILL)  # no polite stop: mid-batch, mid-transaction
    workers[0].wait(10)
    workers.append(start_worker(kafka_settings, topics, log))

    _, expected_intents = await settle(kafka_settings, topics, events, 120,
                                       f"convergence after the restart (log: {log})")
    intents = await kafka_intents(kafka_settings, topics)
    assert [i for i, n in intents.items() if n > 1] == []  # no duplicate visible
    assert intents == expected_intents


@pytest.mark.slow
async def test_a_second_worker_takes_over_partitions_without_loss(
        kafka_settings: KafkaSettings, topics: Topics, tmp_path: Path,
        workers: list[subprocess.Popen[bytes]]) -> None:
    events = story(records=120, edits_per_record=4)
    half = len(events) // 2
    await MergeWorker(kafka_settings, topics, CATALOG,
                      topic_settings=TopicSettings(partitions=3)).ensure_topics()
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    # Both keep their tables in RocksDB: what a worker restores must not depend on the store.
    workers.append(start_worker(kafka_settings, topics, first_log, tmp_path / "first"))
    await produce(kafka_settings, topics.observations, observation_records(events[:half]))
    workers.append(start_worker(kafka_settings, topics, second_log, tmp_path / "second"))

    async def second_owns_partitions() -> bool:
        return "restored" in second_log.read_text()

    await wait_for(second_owns_partitions, 60, "the second worker to be given partitions")
    await produce(kafka_settings, topics.observations, observation_records(events[half:]))
    workers[0].send_signal(signal.SIGKILL)  # the second must now take every partition

    _, expected_intents = await settle(kafka_settings, topics, events, 120,
                                       f"convergence on the second worker ({second_log})")
    assert await kafka_intents(kafka_settings, topics) == expected_intents


async def checkpoint_markers(settings: KafkaSettings, topics: Topics) -> dict[int, tuple[int, int]]:
    """Per changelog partition, the latest marker: (checkpoint, committed) merge offsets."""
    markers: dict[int, tuple[int, int]] = {}
    for record in await read_topic(settings, topics.name("records_changelog")):
        if record.key == CHECKPOINT_KEY.encode():
            markers[record.partition] = decode_checkpoint(record.value)
    return markers


async def test_the_changelog_waits_for_work_done_not_for_time_spent_waiting_for_a_core(
        kafka_settings: KafkaSettings, topics: Topics) -> None:
    """A worker that shares its cores works through a backlog slowly; what a new owner would
    fold again since the last checkpoint is the same work, so the changelog is not written
    more often for it (it was: the interval was wall time, and a loaded machine wrote every
    changelog state several times over, docs/DECISIONS.md)."""
    events = story(records=60, edits_per_record=4)
    await preload(kafka_settings, topics, events)
    worker = MergeWorker(kafka_settings, topics, CATALOG,
                         topic_settings=TopicSettings(partitions=3), max_batch=10,
                         checkpoint_interval=0.2, checkpoint_idle=NEVER)
    handle = worker.merge_stage.handle

    def starved(record: Any, state: Any) -> Any:
        time.sleep(0.004)  # the core is taken by someone else: wall time, no CPU time
        return handle(record, state)

    worker.merge_stage.handle = starved
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        async def all_committed() -> bool:
            return worker.merge_stage.stats.committed == len(events)

        started = time.monotonic()
        await wait_for(all_committed, 60, "the merge stage to commit every input")
        # ~1.2 s waiting, a few ms of work: 0.2 s of wall time passed many times over.
        assert time.monotonic() - started > 1.0
        # Each partition wrote its changelog in its first transaction only (it had none).
        assert worker.merge_stage.stats.checkpoints == 3
        markers = await checkpoint_markers(kafka_settings, topics)
        assert len(markers) == 3 and all(k < c for k, c in markers.values()), markers
    finally:
        stop.set()
        await task


@pytest.mark.slow
async def test_a_changelog_behind_the_committed_offsets_is_caught_up_by_folding_again(
        kafka_settings: KafkaSettings, topics: Topics, tmp_path: Path,
        workers: list[subprocess.Popen[bytes]]) -> None:
    events = story(records=300, edits_per_record=5)
    await preload(kafka_settings, topics, events)
    log = tmp_path / "worker.log"
    # A worker that writes its changelog only in its first transaction per partition (its
    # checkpoint interval and idle time are longer than the test): when it has done all the
    # work, the changelog is far behind what it committed.
    workers.append(start_worker(kafka_settings, topics, log, None,
                                "--checkpoint-interval", "1000", "--checkpoint-idle", "never"))

    async def all_committed() -> dict[int, tuple[int, int]] | None:
        _, expected, seen = await replica(kafka_settings, topics)
        if len(seen) < len(events) or await kafka_intents(kafka_settings, topics) != expected:
            return None
        return await checkpoint_markers(kafka_settings, topics)

    markers = await wait_for(all_committed, 60, "the worker to commit every input")
    assert len(markers) == 3 and all(k < c for k, c in markers.values()), markers
    workers[0].send_signal(signal.SIGKILL)
    workers[0].wait(10)

    # What the changelog holds is exactly the merge topic folded up to its checkpoints, and
    # a replay says so, leaving out the inputs after them.
    result = await replay(kafka_settings, topics, CATALOG)
    assert result.differences == []
    assert result.later > 0 and result.inputs + result.later == len(events)

    # A new owner restores the states, folds the inputs since the checkpoint again (without
    # producing their outputs a second time), and writes the changelog once idle.
    workers.append(start_worker(kafka_settings, topics, log))
    _, expected_intents = await settle(kafka_settings, topics, events, 120,
                                       f"convergence after the restart (log: {log})")
    intents = await kafka_intents(kafka_settings, topics)
    assert [i for i, n in intents.items() if n > 1] == []
    assert intents == expected_intents
    # Record events go out with the changelog: those of the inputs folded again too.
    latest = {r.key.decode(): codec.decode(r.value, (RecordEvent,))
              for r in await read_topic(kafka_settings, topics.records)}
    states, _, _ = await replica(kafka_settings, topics)
    assert {cid: e.fields for cid, e in latest.items()} == {
        cid: conflict.RecordState.from_dict(s).values for cid, s in states.items()}
    folded_again = [int(line.split(" inputs folded again")[0].rsplit(" ", 1)[1])
                    for line in log.read_text().splitlines() if "inputs folded again" in line]
    assert sum(folded_again) == result.later
    assert all(k == c for k, c in (await checkpoint_markers(kafka_settings, topics)).values())
