"""An API nobody here has seen, synced by config alone — and its bad answers.

A small HTTP server written for tests (tests/daemon/served.py, not one of the simulated
systems): people under ``/v1/people`` with offset paging, an ``items`` envelope, Unix
``modified`` times, a nested ``contact.mail`` path and a status enumeration. The lane is
configured for it from YAML only, and the server can be made to misbehave: records without an
id or a modified time, a value of the wrong type, an HTML page instead of JSON, a gigantic
page.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
import yaml

from daemon.config import EntityConfig
from daemon.http import MalformedResponse, PageTooLarge
from daemon.lane import RETRIABLE_ROUNDS, Lane
from streams import codec
from streams.events import DeadLetter, Observed, WriteIntent
from streams.kafka import KafkaSettings
from streams.topics import Topics
from tests.daemon.served import PeopleApi, people_api, people_lane, people_system
from tests.streams.kafka_helpers import made_topics, produce, read_topic, wait_for

pytestmark = [pytest.mark.kafka]

ENTITY = """
match_on: [email]
fields:
  email: {people: {path: contact.mail, transform: email}, type: string}
  name: {people: full, type: string}
  age: {people: {path: age, cast: integer}, type: integer}
  status: {people: {path: state, map: {A: active, I: inactive}}, type: string}
"""


@pytest.fixture
async def api() -> AsyncIterator[tuple[PeopleApi, str]]:
    async with people_api() as served_api:
        yield served_api


@pytest.fixture
async def topics(kafka_settings: KafkaSettings) -> Topics:
    return await made_topics(kafka_settings, "bad")


def make_lane(settings: KafkaSettings, topics: Topics, url: str,
              tombstone: str | None = None) -> AbstractAsyncContextManager[Lane]:
    """The lane of the people API configured here (pages of 2, at most 50 records a page)."""
    deletes = {} if tombstone is None else {"deletes": {"tombstone": tombstone}}
    system = people_system(url, 2, max_page_records=50, **deletes)
    entity = EntityConfig.model_validate(yaml.safe_load(ENTITY),
                                         context={"systems": ["people"]})
    return people_lane(settings, topics, system, entity)


async def send_delete(settings: KafkaSettings, topics: Topics, n: str, external_id: str,
                      expected: dict[str, Any]) -> None:
    """An intent ``i-n`` to delete person ``external_id``, who held ``expected``."""
    intent = WriteIntent(intent_id=f"i-{n}", canonical_id=f"c-{n}", entity="contact",
                         system="people", op="delete", external_id=external_id, values={},
                         expected=expected, native_version=None, clock={}, attempt=1)
    await produce(settings, topics.intents, [(intent.key().encode(), codec.encode(intent))])


async def letters(settings: KafkaSettings, topics: Topics) -> list[DeadLetter]:
    return [codec.decode(r.value, (DeadLetter,)) for r in await read_topic(settings,
                                                                          topics.dlq)]


async def test_a_system_nobody_has_seen_is_read_by_config_alone_and_bad_records_are_letters(
        kafka_settings: KafkaSettings, topics: Topics, api: tuple[PeopleApi, str]) -> None:
    people, url = api
    people.people = [
        {"pid": 1, "full": "Ann", "contact": {"mail": "ANN@x.org"}, "age": "41", "state": "A",
         "modified": 100},
        {"full": "No Id", "modified": 101},  # no id: cannot be observed
        {"pid": 3, "full": "Cy", "contact": {"mail": "cy@x.org"}, "age": "old", "state": "I",
         "modified": 102},  # age of the wrong type: the rest of Cy is still observed
        {"pid": 4, "full": "No Time", "contact": {"mail": "d@x.org"}},  # no time: still seen
        {"pid": 5, "full": "Eve", "contact": {"mail": "eve@x.org"}, "state": "A",
         "modified": 103},
    ]
    async with make_lane(kafka_settings, topics, url) as lane:
        assert await lane.poll() == 4
        assert lane.log.head.cursor == 103
    seen = [codec.decode(r.value) for r in await read_topic(kafka_settings,
                                                            topics.observations)]
    assert [(o.external_id, o.fields) for o in seen if isinstance(o, Observed)] == [
        ("1", {"email": "ann@x.org", "name": "Ann", "age": 41, "status": "active"}),
        ("3", {"email": "cy@x.org", "name": "Cy", "status": "inactive"}),
        ("4", {"email": "d@x.org", "name": "No Time"}),
        ("5", {"email": "eve@x.org", "name": "Eve", "status": "active"})]
    reasons = sorted(letter.reason for letter in await letters(kafka_settings, topics))
    assert len(reasons) == 2
    for expected in ("people contact 3: field age: expected an integer (or its text), got 'old'",
                     "people contact: the record has no id at 'pid' (from /v1/people?"):
        assert any(expected in reason for reason in reasons), (expected, reasons)


async def test_an_html_page_or_a_gigantic_page_is_a_letter_and_the_cursor_stays(
        kafka_settings: KafkaSettings, topics: Topics, api: tuple[PeopleApi, str]) -> None:
    people, url = api
    people.people = [{"pid": i, "full": f"P{i}", "contact": {"mail": f"p{i}@x.org"},
                      "modified": 100 + i} for i in range(5)]
    async with make_lane(kafka_settings, topics, url) as lane:
        await lane.poll()
        assert lane.log.head.cursor == 104
        people.people.append({"pid": 9, "full": "Late", "contact": {"mail": "l@x.org"},
                              "modified": 200})
        people.html = True
        with pytest.raises(MalformedResponse):
            await lane.poll()
        assert lane.log.head.cursor == 104  # nothing observed, nothing skipped
        people.html = False
        people.pad = 60
        with pytest.raises(PageTooLarge):
            await lane.poll()
        assert lane.log.head.cursor == 104

        # The running lane reports each error once as a dead letter and goes on.
        stop = asyncio.Event()
        running = asyncio.create_task(lane.run(stop))

        async def lettered() -> list[DeadLetter]:
            return [x for x in await letters(kafka_settings, topics)
                    if x.error == "PageTooLarge"]

        [letter] = await wait_for(lettered, 20, "a dead letter for the gigantic page")
        assert letter.stage == "lane:people" and "more than 50" in letter.reason
        people.pad = 0
        await wait_for(lambda: _cursor(lane, 200), 20, "the lane to go on")
        stop.set()
        await running
    seen = [codec.decode(r.value) for r in await read_topic(kafka_settings,
                                                            topics.observations)]
    assert [o.external_id for o in seen] == ["0", "1", "2", "3", "4", "9"]
    assert len([x for x in await letters(kafka_settings, topics)
                if x.error == "PageTooLarge"]) == 1


async def test_a_delete_that_landed_is_reported_written_even_when_every_answer_failed(
        kafka_settings: KafkaSettings, topics: Topics, api: tuple[PeopleApi, str]) -> None:
    people, url = api
    people.people = [{"pid": 7, "full": "Gus", "contact": {"mail": "gus@x.org"},
                      "modified": 100}]
    await send_delete(kafka_settings, topics, "1", "7", {"name": "Gus", "email": "gus@x.org"})
    async with make_lane(kafka_settings, topics, url) as lane:
        # The first round's delete lands but its answer fails: the intent waits (it is not
        # reported failed); the next round reads the copy gone and reports it written.
        await lane.poll()
        assert await lane.execute_intents(timeout_ms=5000) == 0
        assert not lane.healthy and people.people == []
        await lane.poll()
        assert await lane.execute_intents(timeout_ms=5000) == 1
    outcomes = [codec.decode(r.value) for r in await read_topic(kafka_settings,
                                                                topics.observations)]
    assert [type(o).__name__ for o in outcomes][-1] == "Written"  # not WriteFailed
    assert people.people == []


async def test_a_delete_whose_every_answer_fails_is_settled_by_a_read(
        kafka_settings: KafkaSettings, topics: Topics, api: tuple[PeopleApi, str]) -> None:
    """After its rounds, a failing delete is read once more: gone is written, else failed."""
    people, url = api
    people.people = [{"pid": 8, "full": "Hal", "contact": {"mail": "hal@x.org"},
                      "modified": 100}]
    people.delete_does_nothing = True  # every DELETE: 502, and the record stays
    await send_delete(kafka_settings, topics, "2", "8", {"name": "Hal", "email": "hal@x.org"})
    async with make_lane(kafka_settings, topics, url) as lane:
        for _ in range(RETRIABLE_ROUNDS):
            await lane.poll()
            assert await lane.execute_intents(timeout_ms=5000) == 0  # waits
        await lane.poll()
        assert await lane.execute_intents(timeout_ms=5000) == 1
    outcomes = [codec.decode(r.value) for r in await read_topic(kafka_settings,
                                                                topics.observations)]
    assert type(outcomes[-1]).__name__ == "WriteFailed"  # the copy is there: it did fail
    assert [p["pid"] for p in people.people] == [8]


async def test_a_tombstone_in_a_listing_is_a_delete(
        kafka_settings: KafkaSettings, topics: Topics, api: tuple[PeopleApi, str]) -> None:
    people, url = api
    people.people = [{"pid": 1, "full": "Ida", "contact": {"mail": "ida@x.org"},
                      "modified": 100},
                     {"pid": 2, "full": "Never seen", "contact": {"mail": "n@x.org"},
                      "modified": 100, "gone": True}]
    async with make_lane(kafka_settings, topics, url, tombstone="gone") as lane:
        assert await lane.poll() == 1  # a tombstone the lane never saw alive: nothing
        people.people[0] = {**people.people[0], "gone": True, "modified": 101}
        assert await lane.poll() == 1
        assert await lane.connector.fetch("1") is None  # the record reads as gone too
        assert await lane.poll() == 0
    seen = [codec.decode(r.value) for r in await read_topic(kafka_settings,
                                                            topics.observations)]
    assert [(o.external_id, o.deleted) for o in seen if isinstance(o, Observed)] == [
        ("1", False), ("1", True)]


async def _cursor(lane: Lane, value: float) -> bool:
    return lane.log.head.cursor == value
