"""The review page's view, kept up to date from the real topics while the worker runs."""

from __future__ import annotations

import asyncio

import pytest

from daemon.review.live import LiveView
from streams import codec
from streams.kafka import KafkaSettings
from tests.daemon.review.events import conflict, record
from tests.streams.kafka_helpers import made_topics, produce, wait_for

pytestmark = [pytest.mark.kafka]


async def test_the_live_view_follows_conflicts_and_records(kafka_settings: KafkaSettings
                                                           ) -> None:
    topics = await made_topics(kafka_settings, "live")
    opened = conflict("c1")
    await produce(kafka_settings, topics.conflicts, [(b"c1", codec.encode(opened))])
    await produce(kafka_settings, topics.records, [(b"c1", codec.encode(record("c1")))])
    live = LiveView(kafka_settings, topics)
    stop = asyncio.Event()
    running = asyncio.create_task(live.run(stop))
    try:
        view = await asyncio.wait_for(live.load(), 30)  # what was there at start
        assert [c.conflict_id for c in view.by_status("open")] == [opened.conflict_id]
        assert "c1" in view.records

        resolved = conflict("c1", status="resolved", decision="chosen", value="Anne")
        await produce(kafka_settings, topics.conflicts, [(b"c1", codec.encode(resolved))])

        async def now_resolved() -> bool:
            return [c.conflict_id for c in live.view().by_status("resolved")] == [
                opened.conflict_id]

        await wait_for(now_resolved, 20, "the resolution to show")
        assert live.view().by_status("open") == []
    finally:
        stop.set()
        await running
