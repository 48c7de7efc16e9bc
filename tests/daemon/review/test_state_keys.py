"""The review's readers (``syncline conflicts``, the review page) on topics holding records
whose key is not UTF-8: each such record is skipped, logged and counted as unreadable, and
every other conflict and record is shown. (The other readers: tests/streams/test_state_keys.py.)
"""

from __future__ import annotations

import asyncio

import pytest

from daemon.review.live import LiveView
from daemon.review.source import load_view
from daemon.review.view import ReviewView
from streams import codec
from streams.kafka import KafkaSettings
from streams.topics import Topics
from tests.daemon.review.events import conflict, record
from tests.streams.kafka_helpers import made_topics, produce
from tests.streams.test_state_keys import BAD_KEYS, around_bad_keys, send

pytestmark = [pytest.mark.kafka]


@pytest.fixture
async def topics(kafka_settings: KafkaSettings) -> Topics:
    topics = await made_topics(kafka_settings, "rvkeys")
    await produce(kafka_settings, topics.conflicts,
                  [(cid.encode(), codec.encode(conflict(cid))) for cid in ("c1", "c2")])
    await send(kafka_settings, topics.records, 0, around_bad_keys(
        [(cid.encode(), codec.encode(record(cid))) for cid in ("c1", "c2")]))
    await send(kafka_settings, topics.name("records_changelog"), 1,
               [(key, b"state") for key in BAD_KEYS])
    return topics


def assert_shown_with_the_bad_keys_counted(view: ReviewView) -> None:
    assert sorted(c.canonical_id for c in view.conflicts.values()) == ["c1", "c2"]
    assert sorted(view.records) == ["c1", "c2"]
    # On `records`, as around_bad_keys puts them around two records; on the changelog, each.
    assert view.unreadable == len(BAD_KEYS) + 2 + len(BAD_KEYS)


async def test_the_review_cli_skips_keys_that_are_not_text(kafka_settings: KafkaSettings,
                                                           topics: Topics) -> None:
    assert_shown_with_the_bad_keys_counted(await load_view(kafka_settings, topics))


async def test_the_review_page_skips_keys_that_are_not_text(kafka_settings: KafkaSettings,
                                                            topics: Topics) -> None:
    live = LiveView(kafka_settings, topics)
    stop = asyncio.Event()
    running = asyncio.create_task(live.run(stop))
    try:
        assert_shown_with_the_bad_keys_counted(await asyncio.wait_for(live.load(), 30))
    finally:
        stop.set()
        await running
