"""Restore-and-refold: a partition's state when a stage runner is given it.

The state is read from the partition's changelog, start to end. A stage with one source
topic may have written its changelog last a few seconds before its last commit; its marker
(:mod:`streams.checkpoint`) says from which source offset to which: those source records
are handed to the stage's handler again. The handler is deterministic, so the state is the
one the last owner committed; the outputs of compacted roles, which go out with the
changelog, are held for the next checkpoint, and the others dropped (their transactions
committed them already).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, MutableMapping
from typing import Any

from aiokafka import TopicPartition

from streams.checkpoint import CHECKPOINT_KEY, decode_checkpoint
from streams.codec import text_key
from streams.kafka import KafkaSettings, new_reader, read_partition, translated
from streams.merge import Output
from streams.partition import Stats, hold
from streams.stores import AnyStore

log = logging.getLogger(__name__)

Handler = Callable[[Any, MutableMapping[str, Any]], list[Output]]
"""Process one consumed record with its partition's state; the outputs to produce."""


async def restore(settings: KafkaSettings, changelog: str, store: AnyStore, p: int,
                  stats: Stats, *, source: str | None, handle: Handler,
                  compacted: frozenset[str], held: dict[tuple[str, str], Output]
                  ) -> tuple[int, int] | None:
    """Read partition ``p`` of ``changelog`` into ``store`` from its start to its end; then,
    where a checkpoint marker says the changelog lags behind the committed offset of the
    stage's one ``source``, fold the source records in between again. Returns the marker
    (checkpoint, committed offsets), if there is one."""
    log.info("restoring %s partition %d", changelog, p)
    store.drop(p)
    reader = new_reader(settings)
    with translated(settings, f"restore {changelog} partition {p}"):
        await reader.start()
        try:
            started = time.monotonic()
            marker: bytes | None = None
            async for record in read_partition(reader, TopicPartition(changelog, p)):
                key = text_key(record)
                if key is None:
                    continue  # not syncline's: logged, skipped
                if key == CHECKPOINT_KEY:
                    marker = record.value
                    continue
                store.restore(p, key, record.value)
                stats.restored += 1
            offsets = None if marker is None else decode_checkpoint(marker)
            refolded = 0
            if offsets is not None and source is not None and offsets[0] < offsets[1]:
                state = store.partition(p)
                tp = TopicPartition(source, p)
                async for record in read_partition(reader, tp, *offsets):
                    for out in handle(record, state):
                        if out.role in compacted:
                            hold(held, out)
                    refolded += 1
                stats.refolded += refolded
            log.info("restored %s partition %d: %d keys, %d inputs folded again since the "
                     "last checkpoint, in %.2fs", changelog, p, store.size(p), refolded,
                     time.monotonic() - started)
            return offsets
        finally:
            await reader.stop()
