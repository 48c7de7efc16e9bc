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

from daemon.review.view import ReviewView
from streams import (
    ConflictEvent,
    ConsumedRecord,
    DecodeError,
    KafkaSettings,
    RecordEvent,
    RecordsTable,
    Topics,
    codec,
    follow,
)

log = logging.getLogger(__name__)


class LiveView:
    """Follows the conflicts, records and records-changelog topics; :meth:`view` is cheap."""

    def __init__(self, settings: KafkaSettings, topics: Topics) -> None:
        self.settings = settings
        self.topics = topics
        self.conflicts: dict[str, ConflictEvent] = {}
        self.records: dict[str, RecordEvent] = {}
        self.table = RecordsTable()
        self.unreadable = 0
        self.caught_up = asyncio.Event()

    def apply(self, record: ConsumedRecord) -> None:
        """Take one record of one of the three topics."""
        topic, value = record.topic, record.value
        if topic not in (self.topics.conflicts, self.topics.records):
            self.table.apply(record)
            return
        try:
            if topic == self.topics.conflicts:
                if value is not None:
                    event = codec.decode(value, (ConflictEvent,))
                    self.conflicts[event.conflict_id] = event
            elif topic == self.topics.records:
                name = codec.text_key(record)
                if name is None:  # not syncline's (logged)
                    self.unreadable += 1
                elif value is None:
                    self.records.pop(name, None)
                else:
                    self.records[name] = codec.decode(value, (RecordEvent,))
        except DecodeError as exc:
            self.unreadable += 1
            log.warning("%s: %s", topic, exc)

    def view(self) -> ReviewView:
        """The view as the topics stand now (as far as they have been read)."""
        states, _ = self.table.states({event.canonical_id
                                       for event in self.conflicts.values()})
        return ReviewView.build(list(self.conflicts.values()), list(self.records.values()),
                                states, self.unreadable + self.table.skipped)

    async def load(self) -> ReviewView:
        """:meth:`view`, once the topics as they were at start-up have been read."""
        await self.caught_up.wait()
        return self.view()

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the topics until ``stop`` is set."""
        names = [self.topics.conflicts, self.topics.records,
                 self.topics.name("records_changelog")]
        await follow(self.settings, names, self.apply, stop, self.caught_up,
                     "follow the conflicts for the review page")
