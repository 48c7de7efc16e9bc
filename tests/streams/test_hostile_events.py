"""Hostile bytes on the topics the stages consume: a dead letter with its reason, no crash,
nothing lost.

In-process for breadth (the codec, then the route and merge stages' ``handle``), then over
the real broker: poison between good observations on ``observations``, ``resolutions`` and
``merge``, and the worker must fold every good one and dead-letter every bad one, with the
original bytes and a reason. ``SYNCLINE_FUZZ_EXAMPLES`` sets the number of examples.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from typing import Any

import orjson
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import conflict
from streams import codec
from streams.errors import DecodeError
from streams.events import EVENT_TYPES, DeadLetter, Event, Observed
from streams.kafka import ConsumedRecord, KafkaSettings
from streams.merge import Merger, Router
from streams.topics import Topics, TopicSettings
from streams.worker import MergeWorker
from tests.hostile import count, examples
from tests.streams.catalog import CATALOG
from tests.streams.hostile_events import DOCUMENTS, POISON, REFUSED, rejected, valid_payload
from tests.streams.kafka_helpers import produce, read_topic, wait_for
from tests.streams.test_merge_kafka import kafka_states, observation_records, story

AREA = "events"


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
@examples(10)
@given(data=st.data())
def test_what_a_published_schema_accepts_the_codec_reads(name: str, data: st.DataObject
                                                         ) -> None:
    payload = data.draw(valid_payload(name))
    event = codec.decode(orjson.dumps(payload))
    assert isinstance(event, tuple(EVENT_TYPES))
    count(AREA, "schema-valid payloads decoded")


@examples(100)
@given(POISON)
def test_any_bytes_decode_to_an_event_or_a_decode_error_naming_the_problem(data: bytes
                                                                          ) -> None:
    for decode in (codec.decode, lambda d: codec.decode_routed(d, ())):
        try:
            event = decode(data)
        except DecodeError as exc:
            assert str(exc), "a decode error without a reason"
            count(AREA, f"codec refusals ({type(exc).__name__})")
        else:
            assert isinstance(event, Event) or type(event).__name__ == "RoutedInput"
            count(AREA, "codec accepted a mutated payload")


def test_a_schema_that_is_no_string_is_a_decode_error_on_the_fast_path() -> None:
    """Found by the property above: the merge stage's fast path looked a list up in a dict."""
    data = (b'{"entity":"","observed_at":0.0,"schema":["a"],"seq":0,"source_ts":0.0,'
            b'"system":"","canonical_id":null,"deleted":false,"fields":{}}')
    with pytest.raises(DecodeError):
        codec.decode_routed(data, ())


def consumed(topic: str, offset: int, value: bytes, key: bytes | None = b"k") -> ConsumedRecord:
    return ConsumedRecord(topic, 0, offset, key, value, 0)


@examples(25)
@given(poison=st.lists(st.tuples(POISON, st.binary(max_size=8) | st.none()), min_size=1,
                       max_size=4),
       at=st.lists(st.integers(0, 13), min_size=4, max_size=4))
def test_poison_among_good_observations_is_dead_lettered_and_the_good_ones_folded(
        poison: list[tuple[bytes, bytes | None]], at: list[int]) -> None:
    assume(all(rejected(value) for value, _ in poison))
    good = story(records=4, edits_per_record=1)  # 14 observations
    stream: list[bytes | tuple[bytes, bytes | None]] = [codec.encode(e) for e in good]
    for (value, key), i in zip(poison, at, strict=False):
        stream.insert(i, (value, key))

    def run(inputs: list[Any]) -> tuple[dict[str, Any], list[DeadLetter]]:
        router, merger = Router(CATALOG), Merger(CATALOG)
        links: dict[str, str] = {}
        records: dict[str, conflict.RecordState] = {}
        letters: list[DeadLetter] = []
        for offset, item in enumerate(inputs):
            value, key = item if isinstance(item, tuple) else (item, b"k")
            # The route stage, then (for what it routed) the merge stage; the poison also
            # straight onto the merge topic, as a producer that bypassed the route could.
            outs = router.handle(consumed("observations", offset, value, key), links, float)
            if isinstance(item, tuple):
                outs += merger.handle(consumed("merge", offset, value, key), records, float)
            for out in outs:
                if out.role == "dlq":
                    assert isinstance(out.event, DeadLetter)
                    letters.append(out.event)
                else:
                    assert out.role == "merge"
                    merger.apply(out.event, records)  # type: ignore[arg-type]
        return {cid: s.to_dict() for cid, s in records.items()}, letters

    clean, no_letters = run([codec.encode(e) for e in good])
    states, letters = run(stream)
    assert no_letters == []
    assert states == clean  # nothing lost, nothing changed by the poison
    assert len(letters) == 2 * len(poison)  # one per stage it reached
    for stage in ("route", "merge"):
        got = [(base64.b64decode(letter.value_b64 or ""),
                None if letter.key_b64 is None else base64.b64decode(letter.key_b64))
               for letter in letters if letter.stage == stage]
        assert sorted(got, key=repr) == sorted(poison, key=repr), stage
    assert all(letter.reason and letter.error in ("Undecodable", "UnknownSchema",
                                                  "InvalidEvent", "UnexpectedEvent")
               for letter in letters)
    count(AREA, "stage examples run")
    count(AREA, "stage dead letters", len(letters))


# -- over the real broker -------------------------------------------------------------------

@pytest.mark.kafka
@pytest.mark.slow
@examples(2, most=12)
@given(poison=st.lists(REFUSED, min_size=6, max_size=6))
def test_poison_on_every_input_topic_is_dead_lettered_over_the_broker(
        kafka_bootstrap: str, poison: list[bytes]) -> None:
    asyncio.run(_poison_over_the_broker(KafkaSettings(bootstrap=kafka_bootstrap), poison))


async def _poison_over_the_broker(settings: KafkaSettings, poison: list[bytes]) -> None:
    topics = Topics(f"t{uuid.uuid4().hex[:10]}")
    good = story(records=5, edits_per_record=2)
    worker = MergeWorker(settings, topics, CATALOG, topic_settings=TopicSettings(partitions=1),
                         max_batch=5)
    await worker.ensure_topics()
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    placed = {topics.observations: poison[0:2], topics.resolutions: poison[2:4],
              topics.merge: poison[4:6]}
    try:
        records = observation_records(good)
        half = len(records) // 2
        await produce(settings, topics.observations, records[:half])
        for topic, values in placed.items():
            await produce(settings, topic, [(b"poison", v) for v in values])
        await produce(settings, topics.observations, records[half:])

        async def settled() -> tuple[dict[str, Any], list[DeadLetter]] | None:
            letters = [codec.decode(r.value, (DeadLetter,))
                       for r in await read_topic(settings, topics.dlq)]
            if len(letters) < len(poison):
                return None
            merger = Merger(CATALOG)
            states: dict[str, conflict.RecordState] = {}
            folded = 0
            for r in await read_topic(settings, topics.merge):
                if r.value in placed[topics.merge]:
                    continue
                merger.apply(codec.decode(r.value, (Observed,)), states)
                folded += 1
            expected = {cid: s.to_dict() for cid, s in states.items()}
            if folded < len(good) or await kafka_states(settings, topics) != expected:
                return None
            return expected, letters

        states, letters = await wait_for(settled, 90, "every poison dead-lettered, every "
                                                      "good observation routed")
        assert len(letters) == len(poison)
        for topic, values in placed.items():
            got = sorted(base64.b64decode(letter.value_b64 or "") for letter in letters
                         if letter.topic == topic)
            assert got == sorted(values), topic
        assert all(letter.reason for letter in letters)
        assert len(states) == 5  # every record folded, in the changelog as in the replica
        count(AREA, "broker examples run")
        count(AREA, "broker dead letters", len(letters))
    finally:
        stop.set()
        await task
