"""The review surfaces' I/O: read the conflicts view from Kafka, publish a resolution.

Reading is :func:`streams.read_to_end` over ``conflicts`` and ``records``, and
:func:`streams.read_table` for the records table (read_committed, so an aborted transaction
of the merge is never shown); :mod:`streams.codec` turns the bytes into events. An event
that cannot be decoded is counted (:attr:`ReviewView.unreadable`) and skipped: the DLQ is
where such inputs are dealt with.
"""

from __future__ import annotations

import asyncio
import logging

from daemon.review.view import ReviewView
from streams import (
    ConflictEvent,
    DecodeError,
    Delivery,
    KafkaSettings,
    Producer,
    RecordEvent,
    Resolution,
    Topics,
    codec,
    read_table,
    read_to_end,
)

log = logging.getLogger(__name__)


async def load_view(settings: KafkaSettings, topics: Topics) -> ReviewView:
    """The conflicts view as the topics hold it now."""
    conflict_records, record_records, table = await asyncio.gather(
        read_to_end(settings, topics.conflicts),
        read_to_end(settings, topics.records),
        read_table(settings, topics))
    unreadable = 0
    conflicts: list[ConflictEvent] = []
    for item in conflict_records:
        if item.value is None:
            continue
        try:
            conflicts.append(codec.decode(item.value, (ConflictEvent,)))
        except DecodeError as exc:
            unreadable += 1
            log.warning("%s[%d]@%d: %s", item.topic, item.partition, item.offset, exc)
    latest: dict[str, RecordEvent | None] = {}
    for item in record_records:
        key = codec.text_key(item)
        if key is None:  # not syncline's (logged)
            unreadable += 1
            continue
        if item.value is None:
            latest[key] = None  # a tombstone: compacted away
            continue
        try:
            latest[key] = codec.decode(item.value, (RecordEvent,))
        except DecodeError as exc:
            unreadable += 1
            log.warning("%s[%d]@%d: %s", item.topic, item.partition, item.offset, exc)
    states, undecodable = table.states()
    unreadable += undecodable + table.skipped
    return ReviewView.build(conflicts, [r for r in latest.values() if r is not None], states,
                            unreadable)


async def publish(settings: KafkaSettings, topics: Topics, resolution: Resolution) -> Delivery:
    """Send a person's resolution to the ``resolutions`` topic, keyed by canonical id.

    The route stage forwards it to the fold, which writes the chosen value to every system.
    """
    async with Producer(settings) as producer:
        return await producer.send(topics.resolutions, resolution.canonical_id.encode(),
                                   codec.encode(resolution))
