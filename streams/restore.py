"""Restore-and-refold: a partition's state when a stage runner is given it.

The state is read from the partition's changelog, start to end — or, where the store kept
its files when the partition was last given up cleanly (:class:`streams.stores.Kept`), from
the offset they agree with to the end. A stage with one source topic may have written its
changelog last a few seconds before its last commit; its marker (:mod:`streams.checkpoint`)
says from which source offset to which: those source records are handed to the stage's
handler again. The handler is deterministic, so the state is the one the last owner
committed; the outputs of compacted roles, which go out with the changelog, are held for the
next checkpoint, and the others dropped (their transactions committed them already). The
latest marker is the last one in the part of the changelog read, or else the one the kept
files recorded (the part they cover).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, MutableMapping
from typing import Any, NamedTuple

from aiokafka import TopicPartition

from streams.checkpoint import CHECKPOINT_KEY, decode_checkpoint
from streams.codec import text_key
from streams.kafka import (
    KafkaSettings,
    new_reader,
    partitions_of,
    read_batches,
    read_partition,
    translated,
)
from streams.merge import Output
from streams.partition import Stats, hold
from streams.stores import AnyStore

log = logging.getLogger(__name__)

Handler = Callable[[Any, MutableMapping[str, Any]], list[Output]]
"""Process one consumed record with its partition's state; the outputs to produce."""

_MARKER = CHECKPOINT_KEY.encode()

FETCH_BYTES = 8 * 1024 * 1024
"""Bytes a restore's fetches may return per partition (aiokafka's default: 1 MiB)."""


class Restored(NamedTuple):
    """What a restore found: the latest checkpoint marker (checkpoint, committed offsets), if
    any, and the changelog's partition count."""

    marker: tuple[int, int] | None
    partitions: int


async def restore(settings: KafkaSettings, changelog: str, store: AnyStore, p: int,
                  stats: Stats, *, source: str | None, handle: Handler,
                  compacted: frozenset[str], held: dict[tuple[str, str], Output]
                  ) -> Restored:
    """Read partition ``p`` of ``changelog`` into ``store`` up to its end, from where the
    store's kept files stand or else from its start; then, where a checkpoint marker says the
    changelog lags behind the committed offset of the stage's one ``source``, fold the source
    records in between again."""
    log.info("restoring %s partition %d", changelog, p)
    kept = store.take_kept(p)  # no checkpoint file from here on: a crash means a full restore
    reader = new_reader(settings, max_partition_fetch_bytes=FETCH_BYTES,
                        fetch_max_bytes=FETCH_BYTES * 2)
    with translated(settings, f"restore {changelog} partition {p}"):
        await reader.start()
        try:
            started = time.monotonic()
            tp = TopicPartition(changelog, p)
            partitions = len(await partitions_of(reader, changelog))
            first = (await reader.beginning_offsets([tp]))[tp]
            end = (await reader.end_offsets([tp]))[tp]
            start: int | None = None
            marker: tuple[int, int] | None = None
            if kept is not None:
                unusable = kept.unusable(changelog, partitions, first, end)
                if unusable is None:
                    start, marker = kept.offset, kept.marker
                else:
                    log.warning("%s partition %d: the kept store is not used (%s); restoring "
                                "from the changelog's start", changelog, p, unusable)
                    store.drop(p)
            read = 0
            last_marker: bytes | None = None
            async for batch in read_batches(reader, tp, start, end):
                pairs = [(r.key, r.value) for r in batch
                         if r.key != _MARKER and text_key(r) is not None]  # else logged
                if len(pairs) < len(batch):  # markers (one per transaction at most), bad keys
                    last_marker = next((r.value for r in reversed(batch) if r.key == _MARKER),
                                       last_marker)
                store.restore_many(p, pairs)
                read += len(pairs)
            stats.restored += read
            if last_marker is not None:
                marker = decode_checkpoint(last_marker)
            refolded = 0
            if marker is not None and source is not None and marker[0] < marker[1]:
                state = store.partition(p)
                source_tp = TopicPartition(source, p)
                async for record in read_partition(reader, source_tp, *marker):
                    for out in handle(record, state):
                        if out.role in compacted:
                            hold(held, out)
                    refolded += 1
                stats.refolded += refolded
            stats.restoring_seconds += time.monotonic() - started
            # Counting a RocksDB's keys would read them all (6% of a restore).
            log.info("restored %s partition %d: %d keys, %d changelog records read from "
                     "offset %d, %d inputs folded again since the last checkpoint, in %.2fs",
                     changelog, p, store.estimated_size(p), read, first if start is None else start,
                     refolded,
                     time.monotonic() - started)
            return Restored(marker, partitions)
        finally:
            await reader.stop()
