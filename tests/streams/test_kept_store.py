"""A RocksDB store kept between owners: a clean stop keeps the files and a checkpoint file,
the next owner reads only the changelog after it; a crash, or a checkpoint the changelog
cannot back, means a full restore. What the files hold is compared with the changelog."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
from pathlib import Path

import aiokafka
import aiokafka.admin
import pytest
from rocksdict import Options, Rdict

from streams.checkpoint import CHECKPOINT_KEY
from streams.kafka import KafkaSettings
from streams.stores import Kept
from streams.topics import Topics, TopicSettings
from streams.worker import MergeWorker
from tests.streams.catalog import CATALOG
from tests.streams.kafka_helpers import read_topic, topic_exists, wait_for
from tests.streams.test_merge_kafka import (
    observation_records,
    preload,
    produce,
    settle,
    start_worker,
    story,
    topics,
    workers,
)

__all__ = ["topics", "workers"]  # fixtures, used by name

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

TABLES = ("links", "records")

RESTORED = re.compile(r"restored (\S+) partition (\d+): \d+ keys, (\d+) changelog records read "
                      r"from offset (\d+), (\d+) inputs folded again")


def restores(log: Path, changelog: str) -> dict[int, tuple[int, int, int]]:
    """Per partition, the last restore of ``changelog`` in ``log``: (records read, from which
    offset, inputs folded again)."""
    found = {}
    for m in RESTORED.finditer(log.read_text()):
        if m.group(1) == changelog:
            found[int(m.group(2))] = (int(m.group(3)), int(m.group(4)), int(m.group(5)))
    return found


def kept_files(state: Path, table: str) -> dict[int, Kept]:
    return {int(f.name.split("-")[1].split(".")[0]): Kept.from_bytes(f.read_bytes())
            for f in (state / table).glob("partition-*.checkpoint")}


def on_disk(state: Path, table: str) -> dict[bytes, bytes]:
    """Every key and value in a stopped worker's RocksDB files of ``table``."""
    out: dict[bytes, bytes] = {}
    for path in sorted((state / table).glob("partition-*")):
        if path.is_dir():
            db = Rdict(str(path), Options(raw_mode=True))
            try:
                out.update(db.items())
            finally:
                db.close()
    return out


async def changelog_table(settings: KafkaSettings, changelog: str) -> dict[bytes, bytes]:
    """The latest value of every key of ``changelog`` (committed records), markers left out."""
    table: dict[bytes, bytes] = {}
    for record in await read_topic(settings, changelog):
        if record.key == CHECKPOINT_KEY.encode():
            continue
        if record.value is None:
            table.pop(record.key, None)
        else:
            table[record.key] = record.value
    return table


def stop(worker: subprocess.Popen[bytes], log: Path) -> None:
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(60) == 0, log.read_text()[-3000:]


async def assert_files_are_the_changelog(settings: KafkaSettings, topics: Topics,
                                         state: Path) -> None:
    for table in TABLES:
        changelog = topics.name(f"{table}_changelog")
        assert on_disk(state, table) == await changelog_table(settings, changelog), table


async def test_a_clean_restart_reads_the_changelog_after_the_kept_files_and_folds_again(
        kafka_settings: KafkaSettings, topics: Topics, tmp_path: Path,
        workers: list[subprocess.Popen[bytes]]) -> None:
    events = story(records=120, edits_per_record=4)
    first, later = events[: len(events) // 2], events[len(events) // 2:]
    await preload(kafka_settings, topics, first)
    state, log = tmp_path / "state", tmp_path / "worker.log"
    records_changelog = topics.name("records_changelog")
    # The first owner writes the merge changelog only in its first transaction per
    # partition: when it stops, the changelog lags behind its commits (markers k < c).
    workers.append(start_worker(kafka_settings, topics, log, state,
                                "--checkpoint-interval", "1000", "--checkpoint-idle", "never"))

    async def all_routed() -> bool:
        return len(await read_topic(kafka_settings, topics.merge)) >= len(first)

    await wait_for(all_routed, 60, "the first half routed")
    await wait_for(lambda: _committed_all(kafka_settings, topics, len(first)), 60,
                   "the merge stage to commit the first half")
    stop(workers[0], log)
    kept = {table: kept_files(state, table) for table in TABLES}
    assert sorted(kept["records"]) == [0, 1, 2] and sorted(kept["links"]) == [0, 1, 2]
    assert all(k.marker is not None and k.marker[0] < k.marker[1]
               for k in kept["records"].values()), kept["records"]
    await assert_files_are_the_changelog(kafka_settings, topics, state)

    # A transaction aborted after the kept offset, in every partition: never read.
    aborted = aiokafka.AIOKafkaProducer(**kafka_settings.client_options(),
                                        transactional_id=f"{topics.prefix}.aborter")
    await aborted.start()
    try:
        await aborted.begin_transaction()
        for p in range(3):
            await aborted.send_and_wait(records_changelog, b"[not a state]",
                                        key=f"aborted-{p}".encode(), partition=p)
        await aborted.abort_transaction()
    finally:
        await aborted.stop()
    await produce(kafka_settings, topics.observations, observation_records(later))
    workers.append(start_worker(kafka_settings, topics, log, state))
    await settle(kafka_settings, topics, events, 120, f"convergence after the restart ({log})")
    # Each partition was read from its kept offset, not from the start; the merge's inputs
    # since the kept marker were folded again.
    read = restores(log, records_changelog)
    assert {p: offset for p, (_, offset, _) in read.items()} == {
        p: k.offset for p, k in kept["records"].items()}
    assert all(offset > 0 and count == 0 for count, offset, _ in read.values()), read
    assert sum(folded for _, _, folded in read.values()) > 0, read
    links = restores(log, topics.name("links_changelog"))
    assert {p: offset for p, (_, offset, _) in links.items()} == {
        p: k.offset for p, k in kept["links"].items()}
    stop(workers[1], log)
    await assert_files_are_the_changelog(kafka_settings, topics, state)


async def _committed_all(settings: KafkaSettings, topics: Topics, count: int) -> bool:
    """Whether the merge group committed ``count`` inputs (offsets: inputs and markers)."""
    admin = aiokafka.admin.AIOKafkaAdminClient(**settings.client_options())
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(f"{topics.prefix}.merge")
    finally:
        await admin.close()
    routed = await read_topic(settings, topics.merge)
    return len(routed) >= count and all(
        any(o.offset > r.offset for tp, o in offsets.items() if tp.partition == r.partition)
        for r in routed)


async def test_a_worker_killed_leaves_no_kept_files_and_the_next_restores_in_full(
        kafka_settings: KafkaSettings, topics: Topics, tmp_path: Path,
        workers: list[subprocess.Popen[bytes]]) -> None:
    events = story(records=300, edits_per_record=6)
    first, later = events[:300], events[300:]
    await preload(kafka_settings, topics, first)
    state, log = tmp_path / "state", tmp_path / "worker.log"
    records_changelog = topics.name("records_changelog")
    workers.append(start_worker(kafka_settings, topics, log, state))
    await settle(kafka_settings, topics, first, 60, "the first worker")
    stop(workers[0], log)
    assert sorted(kept_files(state, "records")) == [0, 1, 2]

    # The next owner takes the kept files (their checkpoint files go at once), works, and
    # is killed mid-stream: its files may hold changes no transaction committed.
    await produce(kafka_settings, topics.observations, observation_records(later))
    workers.append(start_worker(kafka_settings, topics, log, state))

    async def some_progress() -> bool:
        return len(await read_topic(kafka_settings, topics.merge)) > len(first) + 100

    await wait_for(some_progress, 60, "the second worker to work on the later events")
    assert kept_files(state, "records") == {} and kept_files(state, "links") == {}
    workers[1].send_signal(signal.SIGKILL)
    workers[1].wait(10)
    assert kept_files(state, "records") == {}

    log_after = tmp_path / "after.log"
    workers.append(start_worker(kafka_settings, topics, log_after, state))
    await settle(kafka_settings, topics, events, 120, f"convergence after the kill ({log_after})")
    read = restores(log_after, records_changelog)
    assert sorted(read) == [0, 1, 2] and all(offset == 0 for _, offset, _ in read.values()), read
    stop(workers[2], log_after)
    await assert_files_are_the_changelog(kafka_settings, topics, state)


async def test_kept_files_past_the_end_of_a_recreated_changelog_are_not_used(
        kafka_settings: KafkaSettings, topics: Topics, tmp_path: Path,
        workers: list[subprocess.Popen[bytes]]) -> None:
    await preload(kafka_settings, topics, many := story(records=150, edits_per_record=1))
    state, log = tmp_path / "state", tmp_path / "worker.log"
    workers.append(start_worker(kafka_settings, topics, log, state))
    await settle(kafka_settings, topics, many, 60, "the first deployment")
    stop(workers[0], log)
    assert sorted(kept_files(state, "records")) == [0, 1, 2]

    # The deployment is deleted and made again with fewer records: its changelogs end
    # before the kept offsets, and none of the kept records exists any more.
    admin = aiokafka.admin.AIOKafkaAdminClient(**kafka_settings.client_options())
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(topics.prefix + ".")]
        await admin.delete_topics(names)
    finally:
        await admin.close()

    async def gone() -> bool:
        return not any([await topic_exists(kafka_settings, n) for n in names])

    await wait_for(gone, 60, "the topics to be deleted")
    await preload(kafka_settings, topics, few := story(records=9, edits_per_record=0))
    log_after = tmp_path / "after.log"
    workers.append(start_worker(kafka_settings, topics, log_after, state))
    await settle(kafka_settings, topics, few, 60, f"the new deployment ({log_after})")
    assert "past the changelog's end" in log_after.read_text(), log_after.read_text()[-3000:]
    stop(workers[1], log_after)
    await assert_files_are_the_changelog(kafka_settings, topics, state)


async def test_a_partition_whose_transaction_failed_keeps_no_files(
        kafka_settings: KafkaSettings, topics: Topics, tmp_path: Path) -> None:
    """A batch handled, its changes in the files, its transaction failed: the files are not
    what the changelog holds, so they are not kept (the other partitions are)."""
    events = story(records=200, edits_per_record=3)
    first, later = events[:200], events[200:]
    await preload(kafka_settings, topics, first)
    state = tmp_path / "state"
    worker = MergeWorker(kafka_settings, topics, CATALOG,
                         topic_settings=TopicSettings(partitions=3), max_batch=25,
                         state_dir=state)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    fencer = aiokafka.AIOKafkaProducer(**kafka_settings.client_options(),
                                       transactional_id=f"{topics.prefix}.merge-0")
    try:
        async def all_committed() -> bool:
            return worker.merge_stage.stats.committed >= len(first)

        await wait_for(all_committed, 60, "the merge stage to commit the first events")
        await fencer.start()  # fences the merge stage's producer of partition 0
        await produce(kafka_settings, topics.observations, observation_records(later))
        done, _ = await asyncio.wait([task], timeout=60)
        assert done, "the merge stage went on after its producer was fenced"
        assert task.exception() is not None
    finally:
        stop.set()
        await asyncio.wait([task])
        await fencer.stop()
    kept = kept_files(state, "records")
    assert 0 not in kept and not (state / "records" / "partition-0").exists(), kept
    assert set(kept) <= {1, 2}, kept


def test_kept_files_that_the_changelog_cannot_back_are_refused() -> None:
    kept = Kept("p.records_changelog", partitions=3, offset=100, marker=(5, 9))
    assert Kept.from_bytes(kept.to_bytes()) == kept
    assert kept.unusable("p.records_changelog", 3, 0, 100) is None
    assert kept.unusable("p.records_changelog", 3, 0, 250) is None
    assert "past the changelog's end" in str(kept.unusable("p.records_changelog", 3, 0, 99))
    assert "before the changelog's start" in str(kept.unusable("p.records_changelog", 3, 101, 300))
    assert "4" in str(kept.unusable("p.records_changelog", 4, 0, 100))
    assert "kept for changelog" in str(kept.unusable("q.records_changelog", 3, 0, 100))
