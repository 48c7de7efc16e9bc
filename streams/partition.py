"""What a stage runner keeps per partition it owns: the records waiting, the batches handled
and waiting for their transaction, the outputs held for the changelog, where the changelog
is; and the counters of the whole runner."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from aiokafka import TopicPartition

from streams.merge import Output

DEPTH = 2
"""Handled batches a partition may have waiting for their transactions."""


@dataclass
class Stats:
    """Counters a runner keeps (read by /metrics and the benchmarks)."""

    consumed: int = 0  # inputs handled (their transaction may still be committing)
    committed: int = 0  # inputs whose transaction committed
    produced: int = 0
    transactions: int = 0
    dead_letters: int = 0
    restored: int = 0
    refolded: int = 0  # source records folded again on restore (since the last checkpoint)
    restoring_seconds: float = 0.0  # in restores (reading changelogs, folding again)
    checkpoints: int = 0  # transactions that wrote the changelog
    handling_seconds: float = 0.0  # in the stage's own code (decode, fold, encode)
    committing_seconds: float = 0.0  # sending and committing (overlaps handling)
    # Records behind the end of each owned source partition, as of its last fetch.
    lag: dict[tuple[str, int], int] = field(default_factory=dict)


Batch = list[tuple[TopicPartition, list[Any]]]
"""Consumed records of one partition number, by source topic partition, in offset order."""

ProducerRecord = tuple[str, bytes, bytes | None, int | None]
"""(topic, key, value, partition or None for the key's partition)."""


class Handled(NamedTuple):
    """A batch handled in memory, waiting for its transaction."""

    records: list[ProducerRecord]  # outputs, then the changelog, in order
    offsets: dict[TopicPartition, int]
    inputs: int
    dead_letters: int
    checkpoint: bool  # the changelog is written


@dataclass(eq=False)
class Owned:
    """A partition number this runner owns, and its two tasks: one handles batches, the
    other commits them.

    Batches N+1 and N+2 are handled while batch N's transaction commits (the broker's round
    trips, several milliseconds a transaction, would otherwise leave the core idle), but
    N+1's transaction starts only once N's committed: one transactional producer has one
    transaction open at a time, and every transaction still holds its batch's outputs,
    changelog and offsets together. Records that arrive meanwhile wait in ``pending``, so
    batches grow with the load, up to ``max_batch``.
    """

    producer: Any
    pending: deque[tuple[TopicPartition, list[Any]]] = field(default_factory=deque)
    count: int = 0  # records in ``pending``
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    paused: bool = False  # the consumer stopped fetching this partition: enough is pending
    handled: asyncio.Queue[Handled] = field(
        default_factory=lambda: asyncio.Queue(maxsize=DEPTH))  # waiting for a transaction
    driver: asyncio.Task[None] | None = None  # handles
    committer: asyncio.Task[None] | None = None  # commits, one transaction after the other
    committing: asyncio.Task[None] | None = None  # the transaction under way
    held: dict[tuple[str, str], Output] = field(default_factory=dict)  # see StageRunner
    checkpoint: int | None = None  # the source offset of the last changelog written, if known
    committed: int = 0  # the source offset the last handled batch ends at
    # CPU seconds spent handling this partition's batches since its changelog was written
    # (what a new owner would fold again: see StageRunner._handle)
    work: float = 0.0
    # Whether the store may keep this partition's files when it is given up: its restore
    # completed (with this marker and partition count), and every batch handed to the
    # committer since (``outstanding`` counts those not committed yet) committed.
    restored: Any = None  # a streams.restore.Restored, once restored
    outstanding: int = 0

    def add(self, tp: TopicPartition, records: list[Any]) -> None:
        self.pending.append((tp, records))
        self.count += len(records)
        self.arrived.set()

    def take(self, limit: int) -> Batch:
        """Up to ``limit`` pending records, oldest first."""
        batch: Batch = []
        n = 0
        while self.pending and n < limit:
            tp, records = self.pending[0]
            room = limit - n
            if len(records) <= room:
                self.pending.popleft()
            else:
                self.pending[0] = (tp, records[room:])
                records = records[:room]
            batch.append((tp, records))
            n += len(records)
        self.count -= n
        if not self.pending:
            self.arrived.clear()
        return batch

    @property
    def lagging(self) -> bool:
        """Whether batches were handled since the changelog was last written."""
        return self.checkpoint is not None and self.checkpoint < self.committed

    def failure(self) -> BaseException | None:
        """The error that stopped this partition's handling or commit, if any."""
        for task in (self.driver, self.committer, self.committing):
            if task is not None and task.done() and not task.cancelled():
                error = task.exception()
                if error is not None:
                    return error
        return None


def hold(held: dict[tuple[str, str], Output], out: Output) -> None:
    """Keep ``out`` as the one output of its role and key (with what an earlier one said)."""
    slot = (out.role, out.key)
    earlier = held.get(slot)
    if earlier is not None:
        out = earlier.then(out)
    held[slot] = out
