"""Hostile bytes on the intents topic over the real broker: each is a dead letter on the DLQ
topic with its bytes and reason, and the good intents around them are written."""

from __future__ import annotations

import asyncio
import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams import codec
from streams.events import WriteIntent
from streams.kafka import KafkaSettings
from tests.daemon.served import PeopleApi, people_api
from tests.daemon.test_lane_bad_input import letters, make_lane
from tests.hostile import count, examples
from tests.streams.hostile_events import REFUSED
from tests.streams.kafka_helpers import made_topics, produce, read_topic

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
AREA = "lane intents over the broker"


def rename(pid: int, old: str, new: str) -> WriteIntent:
    return WriteIntent(intent_id=f"i-{pid}-{new}", canonical_id=f"c-{pid}", entity="contact",
                       system="people", op="update", external_id=str(pid),
                       values={"name": new}, expected={"name": old}, native_version=None,
                       clock={}, attempt=1)


@examples(2, most=10)
@given(poison=st.lists(REFUSED, min_size=3, max_size=3))
def test_poison_intents_are_dead_letters_and_the_good_ones_are_written(
        kafka_bootstrap: str, poison: list[bytes]) -> None:
    asyncio.run(_run(KafkaSettings(bootstrap=kafka_bootstrap), poison))


async def _run(settings: KafkaSettings, poison: list[bytes]) -> None:
    async with people_api() as (people, url):
        await _lane_round(settings, poison, people, url)


async def _lane_round(settings: KafkaSettings, poison: list[bytes], people: PeopleApi,
                      url: str) -> None:
    people.people = [{"pid": i, "full": f"P{i}", "contact": {"mail": f"p{i}@x.org"},
                      "modified": 100} for i in range(3)]
    topics = await made_topics(settings, "hi")
    key = b"people/contact"
    stream = []
    for i in range(3):
        stream += [(key, poison[i]), (key, codec.encode(rename(i, f"P{i}", f"Q{i}")))]
    await produce(settings, topics.intents, stream)
    async with make_lane(settings, topics, url) as lane:
        await lane.poll()
        done = 0
        for _ in range(10):
            done += await lane.execute_intents(timeout_ms=2000)
            if done >= 6:
                break
    assert [p["full"] for p in people.people] == ["Q0", "Q1", "Q2"]
    dead = await letters(settings, topics)
    assert sorted(base64.b64decode(x.value_b64 or "") for x in dead) == sorted(poison)
    assert all(x.reason and x.topic == topics.intents for x in dead)
    written = [codec.decode(r.value) for r in await read_topic(settings, topics.observations)]
    assert [type(e).__name__ for e in written].count("Written") == 3
    count(AREA, "examples run")
    count(AREA, "dead letters", len(dead))
