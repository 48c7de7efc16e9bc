"""Records whose key is not UTF-8 on syncline's own state topics (the records changelog, the
``lanes`` topic): only syncline writes there, with text keys, so such a record is someone
else's. Every reader skips it with a logged reason and reads everything around it: the
records table, a stage's restore, a lane's restore. (The review's readers:
tests/daemon/review/test_state_keys.py.)
"""

from __future__ import annotations

import logging
from dataclasses import asdict

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams import codec
from streams.kafka import ConsumedRecord, KafkaSettings, new_producer
from streams.lanelog import LaneHead, LaneLog, partition_of
from streams.partition import Stats
from streams.restore import restore
from streams.stores import Store
from streams.table import read_table
from streams.topics import Topics
from tests.streams.kafka_helpers import made_topics

# Not UTF-8: a lone continuation byte, a truncated sequence, an overlong form, a surrogate,
# and text that turns invalid after a valid prefix (a lane's own prefix, even).
BAD_KEYS = [b"\xff", b"\xc3", b"\xc0\xaf", b"\xed\xa0\x80", b"c1\x80", b"crm/contact/\xfe"]


def not_utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return True
    return False


@given(st.binary(max_size=40))
def test_a_key_is_text_exactly_when_it_is_utf8(key: bytes) -> None:
    record = ConsumedRecord("t", 0, 7, key, b"v", 0)
    assert codec.text_key(record) == (None if not_utf8(key) else key.decode())


def test_a_key_that_is_not_utf8_is_logged_with_its_place(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="streams.codec"):
        assert codec.text_key(ConsumedRecord("syncline.lanes", 3, 41, b"a\xff", b"v", 0)) is None
    assert caplog.messages == ["syncline.lanes[3]@41 skipped: its key is not UTF-8 (invalid "
                               "start byte at byte 1: b'a\\xff')"]


async def send(settings: KafkaSettings, topic: str, partition: int,
               records: list[tuple[bytes, bytes | None]]) -> None:
    """Send ``records`` to one partition, in order."""
    producer = new_producer(settings)
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(topic, value, key=key, partition=partition)
    finally:
        await producer.stop()


def around_bad_keys(good: list[tuple[bytes, bytes | None]]) -> list[tuple[bytes, bytes | None]]:
    """The good records with a bad key before, between and after them."""
    out: list[tuple[bytes, bytes | None]] = [(BAD_KEYS[0], b"first")]
    for i, record in enumerate(good):
        out.append(record)
        out.append((BAD_KEYS[1 + i % (len(BAD_KEYS) - 1)], b"x"))
    out.extend((key, b"last") for key in BAD_KEYS[1:])
    return out


async def changelog_with(settings: KafkaSettings, partition: int,
                         good: list[tuple[bytes, bytes | None]]) -> tuple[Topics, str]:
    """A new deployment whose records changelog holds ``good`` among bad keys in
    ``partition``; its topics and the changelog's name."""
    topics = await made_topics(settings, "keys")
    changelog = topics.name("records_changelog")
    await send(settings, changelog, partition, around_bad_keys(good))
    return topics, changelog


@pytest.mark.kafka
async def test_the_records_table_skips_keys_that_are_not_text(
        kafka_settings: KafkaSettings) -> None:
    topics, _ = await changelog_with(kafka_settings, 0,
                                     [(b"c1", b"s1"), (b"c2", b"s2"), (b"c1", None)])

    table = await read_table(kafka_settings, topics)

    assert table.raw == {"c2": b"s2"}
    assert table.skipped == len(BAD_KEYS) + 3


@pytest.mark.kafka
async def test_a_stage_restore_skips_keys_that_are_not_text(
        kafka_settings: KafkaSettings) -> None:
    _, changelog = await changelog_with(kafka_settings, 1, [
        (b"c1", b"s1"), (b"c2", b"s2"), (b"c3", b"s3"), (b"c3", None)])
    store: Store[bytes] = Store(encode=lambda value: value, decode=lambda data: data)
    stats = Stats()

    restored = await restore(kafka_settings, changelog, store, 1, stats, source=None,
                             handle=lambda record, state: [], compacted=frozenset(), held={})

    assert restored.marker is None
    assert dict(store.partition(1)) == {"c1": b"s1", "c2": b"s2"}
    assert stats.restored == 4


@pytest.mark.kafka
async def test_a_lane_restore_skips_keys_and_fingerprints_that_are_not_text(
        kafka_settings: KafkaSettings) -> None:
    topics = await made_topics(kafka_settings, "keys")
    lanes = topics.name("lanes")
    partition = partition_of("crm/contact", 2)
    head = LaneHead(seq=5, cursor=100.0, intents_offset=0)
    await send(kafka_settings, lanes, partition, around_bad_keys([
        (b"crm/contact", orjson.dumps(asdict(head))),
        (b"crm/contact/ext-1", b"fp-1"),
        (b"crm/contact/ext-2", b"\xff\xfe"),  # a fingerprint that is not text
        (b"crm/contact/ext-3", b"fp-3"),
    ]))
    lane_log = LaneLog(kafka_settings, topics, "crm", "contact")

    await lane_log.start()
    try:
        assert lane_log.head == head
        assert lane_log.index == {"ext-1": "fp-1", "ext-3": "fp-3"}
    finally:
        await lane_log.stop()
