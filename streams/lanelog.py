"""A lane's durable side on Kafka: its observations, its state, and the intents it executes.

A lane (one system and entity; the loop lives in ``daemon/lane/``) commits, in **one Kafka
transaction**: the observations it made, its new state, and how far it got in the ``intents``
topic. So the cursor never moves past observations Kafka has not acknowledged, the sequence
number never goes backwards (it is restored from the last commit), and an intent whose outcome
was not committed is executed again after a crash (the lane's stale check makes that safe).

The state is kept in the compacted ``lanes`` topic, all of one lane in one partition:

- ``system/entity``: the :class:`LaneHead` (sequence number, cursors, intents offset);
- ``system/entity/<external id>``: a fingerprint of what the lane last reported for that
  record (a tombstone once it reported the record deleted). It lets a poll skip records it
  already reported, and a sweep find records that disappeared.
- ``system/entity#parked/<intent id>``: an intent waiting until a record it refers to is
  linked in the system (a tombstone once it ran).
- ``system/entity#creating/<intent id>``: a create's journal entry, committed before its
  request and updated with its outcome (a tombstone once the intents offset is past it).
- ``system/entity#ran/<intent id>``: the offset of an intent whose outcome is committed while
  the intents offset stays before it (an earlier intent of its batch waited): a restarted
  lane handed it again does not run it again (a tombstone once the offset is past it).

The transactional id is derived from the lane, so a second process starting the same lane
fences the first: one active lane per system and entity.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

import orjson
from aiokafka import TopicPartition
from aiokafka.partitioner import murmur2

from streams import codec
from streams.errors import StreamsError
from streams.events import DeadLetter, Event, ObservationEvent
from streams.kafka import (
    ConsumedRecord,
    KafkaSettings,
    consumed,
    new_producer,
    new_reader,
    position_now,
    read_partition,
    transaction,
    translated,
)
from streams.topics import Topics

log = logging.getLogger(__name__)

V = TypeVar("V")


def apply_changes(target: MutableMapping[str, V], changes: Mapping[str, V | None] | None
                  ) -> None:
    """Apply a commit's changes of one part of a lane's state (an index, its parked intents,
    its create entries) to ``target``: ``None`` forgets the key, anything else sets it.

    The one bookkeeping of the lane's state, shared by :class:`LaneLog` (after its
    transaction) and the lane's in-memory twin.
    """
    for key, value in (changes or {}).items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value


def _text_value(record: Any) -> bool:
    """Whether a record's value is UTF-8 (logged when not: a known record's fingerprint is
    text, so it is not the lane's, and the record it names is reported again at most)."""
    try:
        record.value.decode()
    except UnicodeDecodeError as exc:
        log.warning("%s[%d]@%d skipped: its value is not UTF-8 (%s)", record.topic,
                    record.partition, record.offset, exc.reason)
        return False
    return True


@dataclass
class LaneHead:
    """Where a lane is.

    Attributes:
        seq: the last sequence number used.
        cursor: the newest updated-at time (seconds) of a complete walk of changes.
        deletes_cursor: the same for the delete feed.
        intents_offset: the next offset of the ``intents`` partition to execute.
        swept_at: when the last sweep over all records ended (seconds since the epoch).
    """

    seq: int = 0
    cursor: float | None = None
    deletes_cursor: float | None = None
    intents_offset: int | None = None
    swept_at: float | None = None


def partition_of(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives ``key`` (Java's murmur2)."""
    return int(murmur2(key.encode()) & 0x7FFFFFFF) % partitions


class LaneLog:
    """The Kafka side of one lane. ``start`` restores; ``commit`` makes progress durable."""

    def __init__(self, settings: KafkaSettings, topics: Topics, system: str, entity: str
                 ) -> None:
        self.settings = settings
        self.topics = topics
        self.system = system
        self.entity = entity
        self.name = f"{system}/{entity}"
        self.head = LaneHead()
        self.index: dict[str, str] = {}  # external id -> fingerprint last reported
        self.parked: dict[str, bytes] = {}  # intent id -> an intent waiting for a link
        self.creating: dict[str, bytes] = {}  # intent id -> a create's journal entry
        self.ran: dict[str, bytes] = {}  # intent id -> its offset, past the intents offset
        self._producer: Any = None
        self._consumer: Any = None
        self._intents_tp: TopicPartition | None = None
        self._state_partition = 0
        # Intents below this offset were there when the lane started: an earlier process
        # may have run them and died before committing what happened.
        self.resumed_below = 0

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        """Fence any other process running this lane, restore the state, find the intents."""
        producer = new_producer(
            self.settings,
            transactional_id=f"{self.topics.prefix}.lane.{self.system}.{self.entity}",
            linger_ms=2)
        with translated(self.settings, f"start the producer of lane {self.name}"):
            await producer.start()  # init_transactions: fences a zombie, aborts its txn
        self._producer = producer
        try:
            lanes = self.topics.name("lanes")
            self._state_partition = partition_of(
                self.name, len(await producer.partitions_for(lanes)))
            await self._restore(lanes)
            consumer = new_reader(self.settings)
            with translated(self.settings, f"start the intents reader of lane {self.name}"):
                await consumer.start()
            self._consumer = consumer
            intents = self.topics.intents
            count = len(await producer.partitions_for(intents))
            tp = self._intents_tp = TopicPartition(intents, partition_of(self.name, count))
            consumer.assign([tp])
            with translated(self.settings, f"find the end of lane {self.name}'s intents"):
                self.resumed_below = (await consumer.end_offsets([tp]))[tp]
            if self.head.intents_offset is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, self.head.intents_offset)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Disconnect (an open transaction is aborted by the broker or the next owner)."""
        consumer, self._consumer = self._consumer, None
        producer, self._producer = self._producer, None
        if consumer is not None:
            await consumer.stop()
        if producer is not None:
            await producer.stop()

    async def _restore(self, lanes: str) -> None:
        tp = TopicPartition(lanes, self._state_partition)
        reader = new_reader(self.settings)
        prefix = self.name + "/"
        parked = self.name + "#parked/"
        creating = self.name + "#creating/"
        ran = self.name + "#ran/"
        with translated(self.settings, f"restore lane {self.name}"):
            await reader.start()
            try:
                async for record in read_partition(reader, tp):
                    key = codec.text_key(record)
                    if key is None:
                        continue  # not a lane's: logged, skipped
                    if key == self.name and record.value is not None:
                        self.head = LaneHead(**orjson.loads(record.value))
                    elif key.startswith(parked):
                        apply_changes(self.parked, {key[len(parked):]: record.value})
                    elif key.startswith(creating):
                        apply_changes(self.creating, {key[len(creating):]: record.value})
                    elif key.startswith(ran):
                        apply_changes(self.ran, {key[len(ran):]: record.value})
                    elif key.startswith(prefix):
                        if record.value is not None and not _text_value(record):
                            continue  # not a fingerprint of the lane's: logged, skipped
                        apply_changes(self.index, {key[len(prefix):]: None if record.value
                                                   is None else record.value.decode()})
            finally:
                await reader.stop()
        log.info("lane %s restored: seq %d, cursor %s, %d known records, intents from %s",
                 self.name, self.head.seq, self.head.cursor, len(self.index),
                 self.head.intents_offset)

    # -- the lane's inputs ----------------------------------------------------------------
    async def intents(self, timeout_ms: int, max_records: int = 50) -> list[ConsumedRecord]:
        """The next intents of this lane's partition (other lanes' are skipped by the caller).

        Waits up to ``timeout_ms`` when none is there.
        """
        consumer, tp = self._consumer, self._intents_tp
        if consumer is None or tp is None:
            raise StreamsError(f"lane {self.name} is not started")
        with translated(self.settings, f"read intents of lane {self.name}"):
            batch = await consumer.getmany(tp, timeout_ms=timeout_ms, max_records=max_records)
        return [consumed(r) for r in batch.get(tp, [])]

    def intents_lag(self) -> int | None:
        """Intents of this lane's partition not executed yet (other lanes' of the partition
        included), as of the consumer's last fetch; None before the first."""
        consumer, tp = self._consumer, self._intents_tp
        if consumer is None or tp is None:
            return None
        end: int | None = consumer.last_stable_offset(tp)
        if end is None:
            end = consumer.highwater(tp)
        if end is None:
            return None
        # The consumer's position is past the transactions' markers; the head is not.
        done = position_now(consumer, tp)
        if done is None:
            done = self.head.intents_offset or 0
        return max(0, end - done)

    async def intents_start(self) -> int:
        """The first offset of this lane's intents partition the broker still holds: an
        intent below it is gone (the ``intents`` retention passed) and is never delivered
        again."""
        consumer, tp = self._consumer, self._intents_tp
        if consumer is None or tp is None:
            raise StreamsError(f"lane {self.name} is not started")
        with translated(self.settings, f"find the start of lane {self.name}'s intents"):
            start: int = (await consumer.beginning_offsets([tp]))[tp]
        return start

    def rewind_intents(self, offset: int) -> None:
        """Read the intents again from ``offset`` (an intent that must wait is not skipped)."""
        if self._consumer is not None and self._intents_tp is not None:
            self._consumer.seek(self._intents_tp, offset)

    def next_seq(self) -> int:
        """A new sequence number (durable with the next commit)."""
        self.head.seq += 1
        return self.head.seq

    # -- progress --------------------------------------------------------------------------
    async def commit(self, observations: Sequence[Event], *,
                     index: dict[str, str | None] | None = None,
                     dead_letters: Sequence[DeadLetter] = (),
                     dead_letter_keys: Sequence[str] = (),
                     parked: dict[str, bytes | None] | None = None,
                     creating: dict[str, bytes | None] | None = None,
                     ran: dict[str, bytes | None] | None = None) -> None:
        """Publish ``observations`` with the lane's head and index changes, atomically.

        ``index`` maps external ids to their new fingerprint (``None``: forget it).
        ``dead_letters[i]`` is sent with key ``dead_letter_keys[i]`` (or ``system/entity``).
        """
        producer = self._producer
        if producer is None:
            raise StreamsError(f"lane {self.name} is not started")
        lanes = self.topics.name("lanes")
        async with transaction(self.settings, producer, f"commit lane {self.name}"):
            for event in observations:
                key = event.key() if isinstance(event, ObservationEvent) else self.name
                await producer.send(self.topics.observations, codec.encode(event),
                                    key=key.encode())
            for i, letter in enumerate(dead_letters):
                key = dead_letter_keys[i] if i < len(dead_letter_keys) else self.name
                await producer.send(self.topics.dlq, codec.encode(letter), key=key.encode())
            for external_id, fingerprint in sorted((index or {}).items()):
                value = fingerprint.encode() if fingerprint is not None else None
                await producer.send(lanes, value, key=f"{self.name}/{external_id}".encode(),
                                    partition=self._state_partition)
            for intent_id, raw in sorted((parked or {}).items()):
                await producer.send(lanes, raw, key=f"{self.name}#parked/{intent_id}".encode(),
                                    partition=self._state_partition)
            for intent_id, raw in sorted((creating or {}).items()):
                await producer.send(lanes, raw,
                                    key=f"{self.name}#creating/{intent_id}".encode(),
                                    partition=self._state_partition)
            for intent_id, raw in sorted((ran or {}).items()):
                await producer.send(lanes, raw, key=f"{self.name}#ran/{intent_id}".encode(),
                                    partition=self._state_partition)
            await producer.send(lanes, orjson.dumps(asdict(self.head)),
                                key=self.name.encode(), partition=self._state_partition)
        apply_changes(self.parked, parked)
        apply_changes(self.creating, creating)
        apply_changes(self.ran, ran)
        apply_changes(self.index, index)
