"""The pure parts, with injected clocks: token bucket, simulated clock, cursors, store order."""

from __future__ import annotations

import pytest

from daemon.sandbox.clock import SimClock, format_iso_ms, format_iso_seconds, parse_iso
from daemon.sandbox.cursors import Cursor
from daemon.sandbox.errors import BadRequest
from daemon.sandbox.ratelimit import RateLimit, TokenBucket
from daemon.sandbox.store import FieldSpec, ResourceSpec, Store


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_bucket_never_allows_more_than_burst_plus_refill() -> None:
    time = FakeTime()
    bucket = TokenBucket(RateLimit(per_second=10, burst=5), monotonic=time)
    allowed = 0
    for _ in range(200):  # 200 attempts over 2 simulated seconds
        allowed += bucket.take().allowed
        time.now += 0.01

    assert allowed <= 5 + 10 * 2
    assert allowed >= 20


def test_an_empty_bucket_says_when_to_come_back() -> None:
    time = FakeTime()
    bucket = TokenBucket(RateLimit(per_second=0.5, burst=1), monotonic=time)

    assert bucket.take().allowed
    refused = bucket.take()

    assert not refused.allowed
    assert refused.remaining == 0
    assert refused.retry_after_seconds == 2
    time.now += 2
    assert bucket.take().allowed


def test_a_frozen_clock_stands_still_and_thaws_without_a_jump() -> None:
    wall = FakeTime()
    clock = SimClock(wall=wall)
    clock.freeze()
    wall.now += 10

    assert clock.now_ms() == 1_000_000
    clock.advance(500)
    clock.unfreeze()
    assert clock.now_ms() == 1_000_500
    wall.now += 1
    assert clock.now_ms() == 1_001_500


def test_timestamps_format_and_parse_exactly() -> None:
    ms = parse_iso("2024-05-01T12:34:56.789Z", name="t")

    assert format_iso_ms(ms) == "2024-05-01T12:34:56.789Z"
    assert format_iso_seconds(ms) == "2024-05-01T12:34:56Z"
    assert parse_iso("2024-05-01T14:34:56.789+02:00", name="t") == ms
    with pytest.raises(BadRequest):
        parse_iso("May 1st", name="t")


def test_a_cursor_round_trips_and_belongs_to_one_listing() -> None:
    cursor = Cursor("contacts", 1, 2, 3)

    assert Cursor.decode(cursor.encode(), listing="contacts") == cursor
    with pytest.raises(BadRequest):
        Cursor.decode(cursor.encode(), listing="companies")


def test_every_write_moves_past_the_newest_position_in_a_strictly_ordered_store() -> None:
    spec = ResourceSpec("things", "thing", (FieldSpec("name"),), id_prefix="th_")
    store = Store(":memory:", system="t", resources=[spec], strictly_ordered=True)
    now = 5_000
    first = store.create("things", {"name": "a"}, now).record
    second = store.create("things", {"name": "b"}, now).record
    assert first.updated_ms == second.updated_ms == now  # equal timestamps do happen

    moved = store.update("things", first.key, {"name": "a2"}, now).record
    back_in_time = store.update("things", second.key, {"name": "b2"}, now - 1000).record

    assert (moved.updated_ms, moved.key) > (second.updated_ms, second.key)
    assert (back_in_time.updated_ms, back_in_time.key) > (moved.updated_ms, moved.key)
    store.close()


def test_a_store_that_reuses_ids_gives_a_create_the_newest_deleted_records_id() -> None:
    spec = ResourceSpec("things", "thing", (FieldSpec("name"),), id_prefix="th_")
    store = Store(":memory:", system="t", resources=[spec], reuse_ids=True)
    first = store.create("things", {"name": "a"}, 1_000).record
    second = store.create("things", {"name": "b"}, 2_000).record
    store.delete("things", first.key, 3_000)
    store.delete("things", second.key, 4_000)
    again = store.create("things", {"name": "c"}, 5_000).record
    assert again.key == second.key  # the newest deleted one's
    assert (again.fields, again.created_ms, again.version) == ({"name": "c"}, 5_000, 1)
    assert store.create("things", {"name": "d"}, 6_000).record.key == first.key
    assert store.create("things", {"name": "e"}, 7_000).record.key == 3  # none left
    plain = Store(":memory:", system="t", resources=[spec])
    gone = plain.create("things", {"name": "a"}, 1_000).record
    plain.delete("things", gone.key, 2_000)
    assert plain.create("things", {"name": "b"}, 3_000).record.key != gone.key
    store.close()
    plain.close()
