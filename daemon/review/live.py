"""The conflicts view kept up to date, for the review page on a running worker.

:func:`daemon.review.source.load_view` reads three topics from their start on every call:
right for the CLI, too slow for a page on a large deployment. :class:`LiveView` follows the
same topics for as long as the worker runs — the latest event per conflict, the latest record
event per record, and the raw changelog state per record — and builds the view from memory.
A record's state is decoded only for records that have a conflict (the page shows their
history), once per new changelog value.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiokafka

import conflict
from daemon.review.view import ReviewView
from streams import codec
from streams.errors import DecodeError
from streams.events import ConflictEvent, RecordEvent
from streams.kafka import KafkaSettings, translated
from streams.topics import Topics
from streams.worker import decode_state

log = logging.getLogger(__name__)


class LiveView:
    """Follows the conflicts, records and records-changelog topics; :meth:`view` is cheap."""

    def __init__(self, settings: KafkaSettings, topics: Topics) -> None:
        self.settings = settings
        self.topics = topics
        self.conflicts: dict[str, ConflictEvent] = {}
        self.records: dict[str, RecordEvent] = {}
        self._raw_states: dict[str, bytes] = {}
        self._decoded: dict[str, tuple[bytes, conflict.RecordState]] = {}
        self.unreadable = 0
        self.caught_up = asyncio.Event()

    def apply(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        """Take one record of one of the three topics."""
        name = key.decode() if key is not None else ""
        try:
            if topic == self.topics.conflicts:
                if value is not None:
                    event = codec.decode(value, (ConflictEvent,))
                    self.conflicts[event.conflict_id] = event
            elif topic == self.topics.records:
                if value is None:
                    self.records.pop(name, None)
                else:
                    self.records[name] = codec.decode(value, (RecordEvent,))
            elif value is None:
                self._raw_states.pop(name, None)
            else:
                self._raw_states[name] = value
        except DecodeError as exc:
            self.unreadable += 1
            log.warning("%s: %s", topic, exc)

    def view(self) -> ReviewView:
        """The view as the topics stand now (as far as they have been read)."""
        states: dict[str, conflict.RecordState] = {}
        for cid in {event.canonical_id for event in self.conflicts.values()}:
            raw = self._raw_states.get(cid)
            if raw is None:
                continue
            cached = self._decoded.get(cid)
            if cached is None or cached[0] is not raw:
                try:
                    cached = (raw, decode_state(raw))
                except (ValueError, KeyError, IndexError, TypeError):
                    continue
                self._decoded[cid] = cached
            states[cid] = cached[1]
        return ReviewView.build(list(self.conflicts.values()), list(self.records.values()),
                                states, self.unreadable)

    async def load(self) -> ReviewView:
        """:meth:`view`, once the topics as they were at start-up have been read."""
        await self.caught_up.wait()
        return self.view()

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the topics until ``stop`` is set."""
        names = [self.topics.conflicts, self.topics.records,
                 self.topics.name("records_changelog")]
        consumer: Any = aiokafka.AIOKafkaConsumer(
            *names, **self.settings.client_options(), group_id=None,
            enable_auto_commit=False, auto_offset_reset="earliest",
            isolation_level="read_committed")
        with translated(self.settings, "follow the conflicts for the review page"):
            await consumer.start()
        try:
            partitions = consumer.assignment()
            while not partitions:
                await asyncio.sleep(0.05)
                partitions = consumer.assignment()
            ends = await consumer.end_offsets(list(partitions))
            while not stop.is_set():
                with translated(self.settings, "follow the conflicts for the review page"):
                    batch = await consumer.getmany(timeout_ms=200, max_records=5000)
                for tp, records in batch.items():
                    for record in records:
                        self.apply(tp.topic, record.key, record.value)
                if not self.caught_up.is_set():
                    positions = [await consumer.position(tp) for tp in ends]
                    if all(at >= end for at, end in zip(positions, ends.values(), strict=True)):
                        self.caught_up.set()
        finally:
            await consumer.stop()
