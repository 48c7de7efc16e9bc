"""The lane and the mapping decide "same value" as the fold does: ``true`` is not ``1``.

Issue 13, story 3: with a field of type ``any`` (the default), one system holding ``true`` and
the hub writing ``1``, a lane that compared with Python's ``==`` (where ``True == 1``) found
the write "done already" and wrote nothing; its next read showed ``true`` again, which the
fold (JSON semantics) took for a new edit, and so on every round: the record never
converged. Lane, mapping and fold now share :func:`conflict.values.same`.

A small HTTP server (tests/daemon/served.py) holds people with any JSON in their fields (the
simulated systems keep text only).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import yaml

from conflict import same
from daemon.config import EntityConfig
from streams import codec
from streams.events import WriteIntent, Written
from streams.kafka import KafkaSettings
from tests.daemon.served import PeopleApi, people_api, people_lane, people_system
from tests.streams.kafka_helpers import made_topics, produce, read_topic

ENTITY = """
match_on: [email]
fields:
  email: {people: mail, type: string}
  flag: {people: flag}
  score: {people: score}
  labels: {people: {path: labels, transform: sort}}
"""


@pytest.fixture
async def api() -> AsyncIterator[tuple[PeopleApi, str]]:
    async with people_api() as served_api:
        yield served_api


def entity() -> EntityConfig:
    return EntityConfig.model_validate(yaml.safe_load(ENTITY), context={"systems": ["people"]})


async def run_intent(settings: KafkaSettings, url: str, values: dict[str, Any],
                     expected: dict[str, Any]) -> list[Any]:
    """The lane polls, runs one update of person 1, and returns what it reported."""
    topics = await made_topics(settings, "eq")
    intent = WriteIntent(intent_id="i-1", canonical_id="c-1", entity="contact",
                         system="people", op="update", external_id="1", values=values,
                         expected=expected, native_version=None, clock={}, attempt=1)
    await produce(settings, topics.intents, [(intent.key().encode(), codec.encode(intent))])
    async with people_lane(settings, topics, people_system(url, 10), entity()) as lane:
        await lane.poll()
        assert await lane.execute_intents(timeout_ms=5000) == 1
    return [codec.decode(r.value) for r in await read_topic(settings, topics.observations)]


@pytest.mark.kafka
async def test_a_lane_writes_one_over_true(kafka_settings: KafkaSettings,
                                           api: tuple[PeopleApi, str]) -> None:
    """The hub writes ``1`` where the system holds ``true``: that is a change to make."""
    people, url = api
    people.people = [{"pid": 1, "mail": "ann@x.org", "flag": True, "modified": 100}]
    seen = await run_intent(kafka_settings, url, {"flag": 1}, {"flag": True})
    assert people.writes == 1
    held = people.people[0]["flag"]
    assert held == 1 and held is not True
    written = seen[-1]
    assert isinstance(written, Written) and written.fields is not None
    assert same(written.fields["flag"], 1)


@pytest.mark.kafka
async def test_a_lane_finds_one_point_zero_already_written_as_one(
        kafka_settings: KafkaSettings, api: tuple[PeopleApi, str]) -> None:
    """``1.0`` is the number ``1``: a system answering ``1.0`` needs no write of ``1``."""
    people, url = api
    people.people = [{"pid": 1, "mail": "bo@x.org", "score": 1.0, "modified": 100}]
    seen = await run_intent(kafka_settings, url, {"score": 1}, {"score": 7})
    assert people.writes == 0
    assert isinstance(seen[-1], Written)


def test_the_sort_transform_drops_repeats_as_the_fold_sees_them() -> None:
    """``1`` and ``1.0`` are one element; ``true`` and ``1`` are two."""
    mapping = entity().mapping("contact", "people")
    normal = mapping.normalise({"labels": [1, True, 1.0, "1"]})["labels"]
    assert len(normal) == 3
    assert sum(1 for v in normal if v is True) == 1
    assert mapping.to_canonical({"labels": [True, 1, 1.0]}).values["labels"] == [1, True]
