"""The token bucket: examples first, then the law (never over budget in any window)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from daemon.http import RateLimiter
from daemon.http.headers import rate_limit_reset_seconds, retry_after_seconds
from daemon.sandbox.ratelimit import RateLimit, TokenBucket
from tests.daemon.http.conftest import WALL_START, FakeTime


def limiter(fake_time: FakeTime, per_second: float | None, burst: int | None = None) -> RateLimiter:
    return RateLimiter(
        per_second, burst, clock=fake_time.clock, sleep=fake_time.sleep, wall=fake_time.wall
    )


async def test_burst_is_free_then_one_token_per_interval(fake_time: FakeTime) -> None:
    bucket = limiter(fake_time, per_second=10, burst=3)
    times = []
    for _ in range(6):
        await bucket.acquire()
        times.append(round(fake_time.now - 1000, 6))
    assert times == [0, 0, 0, 0.1, 0.2, 0.3]


async def test_retry_after_seconds_blocks_every_acquisition(fake_time: FakeTime) -> None:
    bucket = limiter(fake_time, per_second=None)
    assert bucket.observe(429, {"retry-after": "3"}) == 3
    waited = await bucket.acquire()
    assert waited == pytest.approx(3)
    assert await bucket.acquire() == 0


async def test_a_request_that_could_not_go_by_its_deadline_is_not_waited_for(
        fake_time: FakeTime) -> None:
    bucket = limiter(fake_time, per_second=10, burst=1)
    bucket.observe(429, {"retry-after": "1"})
    start = fake_time.now
    assert await bucket.acquire(deadline=start + 0.25) is None  # at once, no token taken
    assert fake_time.now == start
    assert await bucket.acquire(deadline=start + 1.5) == pytest.approx(1)  # can go by then
    assert await bucket.acquire(deadline=fake_time.now + 0.05) is None  # next token in 0.1 s
    assert await bucket.acquire() == pytest.approx(0.1)


async def test_retry_after_http_date(fake_time: FakeTime) -> None:
    bucket = limiter(fake_time, per_second=None)
    when = datetime.fromtimestamp(fake_time.wall() + 5, tz=UTC)
    bucket.observe(429, {"retry-after": format_datetime(when, usegmt=True)})
    assert await bucket.acquire() == pytest.approx(5, abs=1)


async def test_remaining_zero_waits_until_reset(fake_time: FakeTime) -> None:
    bucket = limiter(fake_time, per_second=100, burst=100)
    bucket.observe(200, {"x-ratelimit-remaining": "5", "x-ratelimit-reset": "9"})
    assert await bucket.acquire() == 0  # budget left: no pause
    bucket.observe(200, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "4"})
    assert await bucket.acquire() == pytest.approx(4)


async def test_reset_as_unix_time(fake_time: FakeTime) -> None:
    bucket = limiter(fake_time, per_second=None)
    reset = str(int(fake_time.wall()) + 6)
    bucket.observe(200, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset})
    assert await bucket.acquire() == pytest.approx(6, abs=1)


async def test_a_pause_is_extended_never_shortened(fake_time: FakeTime) -> None:
    bucket = limiter(fake_time, per_second=None)
    bucket.block_for(10)
    bucket.block_for(2)
    assert await bucket.acquire() == pytest.approx(10)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2", 2.0),
        (" 0 ", 0.0),
        ("-5", 0.0),
        ("soon", None),
        (None, None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
    ],
)
def test_retry_after_parsing(value: str | None, expected: float | None) -> None:
    assert retry_after_seconds(value, WALL_START) == expected


def test_reset_headers_parsing() -> None:
    assert rate_limit_reset_seconds({}, WALL_START) is None
    assert rate_limit_reset_seconds({"x-ratelimit-remaining": "1"}, WALL_START) is None
    headers = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "x"}
    assert rate_limit_reset_seconds(headers, WALL_START) is None


@settings(max_examples=200, deadline=None)
@given(
    per_second=st.floats(min_value=0.5, max_value=50),
    burst=st.integers(min_value=1, max_value=20),
    gaps=st.lists(st.floats(min_value=0, max_value=2), min_size=1, max_size=80),
    pauses=st.lists(st.tuples(st.integers(0, 79), st.floats(0, 3)), max_size=5),
)
async def test_never_exceeds_budget_in_any_window(
    per_second: float, burst: int, gaps: list[float], pauses: list[tuple[int, float]]
) -> None:
    """Over any window [a, b], acquisitions <= burst + per_second * (b - a)."""
    fake_time = FakeTime()
    bucket = limiter(fake_time, per_second, burst)
    pause_at = dict(pauses)
    stamps = []
    for i, gap in enumerate(gaps):
        fake_time.advance(gap)
        if i in pause_at:
            bucket.block_for(pause_at[i])
        await bucket.acquire()
        stamps.append(fake_time.now)
    for i in range(len(stamps)):
        for j in range(i, len(stamps)):
            allowed = burst + per_second * (stamps[j] - stamps[i]) + 1e-6
            assert j - i + 1 <= allowed, (i, j, stamps[i], stamps[j])


async def test_concurrent_acquirers_are_served_in_turn_within_budget(fake_time: FakeTime) -> None:
    bucket = limiter(fake_time, per_second=4, burst=2)
    stamps: list[float] = []

    async def one() -> None:
        await bucket.acquire()
        stamps.append(fake_time.now - 1000)

    await asyncio.gather(*(one() for _ in range(6)))
    assert stamps == pytest.approx([0, 0, 0.25, 0.5, 0.75, 1.0])


async def test_jitter_is_absorbed_by_burst_the_rate_kept_whole(fake_time: FakeTime) -> None:
    bucket = RateLimiter(100, 100, jitter_seconds=0.1, clock=fake_time.clock,
                         sleep=fake_time.sleep, wall=fake_time.wall)
    for _ in range(89):  # 11 of the burst (more than arrives in 0.1 s) are kept in hand
        assert await bucket.acquire() == 0
    assert await bucket.acquire() == pytest.approx(0.01)  # then 100 a second, as budgeted


async def test_a_burst_too_small_for_the_jitter_spaces_requests(fake_time: FakeTime) -> None:
    bucket = RateLimiter(10, 1, jitter_seconds=0.1, clock=fake_time.clock,
                         sleep=fake_time.sleep, wall=fake_time.wall)
    assert await bucket.acquire() == 0
    assert await bucket.acquire() == pytest.approx(0.2, abs=0.001)  # 1/10 s + 0.1 s


@settings(max_examples=300)
@given(
    per_second=st.floats(min_value=0.5, max_value=200),
    burst=st.integers(min_value=1, max_value=40),
    jitter=st.floats(min_value=0, max_value=0.5),
    # Mostly back to back (saturating the budget); each request is delayed either the least
    # or the most (the worst cases lie at the extremes).
    gaps=st.lists(st.just(0.0) | st.floats(min_value=0, max_value=0.3), min_size=1,
                  max_size=120),
    delayed=st.lists(st.booleans(), min_size=1, max_size=120),
)
@example(per_second=100.0, burst=20, jitter=0.1, gaps=[0.0] * 40,
         delayed=[True] * 20 + [False] * 20)  # the burst held up, the next ones not
@example(per_second=10.0, burst=1, jitter=0.1, gaps=[0.0, 0.0],
         delayed=[True, False])  # no burst to spare: the second must wait the jitter too
@example(per_second=17.0, burst=1, jitter=0.0, gaps=[0.0, 0.0],
         delayed=[False])  # spaced exactly 1/rate: float rounding, not the limiter
async def test_requests_delayed_within_the_jitter_never_exceed_the_systems_bucket(
    per_second: float, burst: int, jitter: float, gaps: list[float], delayed: list[bool]
) -> None:
    """Whatever delay each request meets on its way (within ``jitter_seconds`` of the others),
    the simulated system's own bucket of the same budget accepts every one."""
    fake_time = FakeTime()
    system_clock = [fake_time.now]  # set to each arrival before the system meters it
    system = TokenBucket(RateLimit(per_second, burst), monotonic=lambda: system_clock[0])
    bucket = RateLimiter(per_second, burst, jitter_seconds=jitter, clock=fake_time.clock,
                         sleep=fake_time.sleep, wall=fake_time.wall)
    arrivals = []
    for i, gap in enumerate(gaps):
        fake_time.advance(gap)
        await bucket.acquire()
        # Never before it was sent, and each a microsecond later than the one before: the
        # limiter spaces requests exactly 1/rate apart, and (a - b) * rate can round to just
        # under one token in the system's float arithmetic (17/s, burst 1: 0.9999999999).
        arrivals.append(fake_time.now + 1e-6 * (i + 1)
                        + (jitter if delayed[i % len(delayed)] else 0))
    for n, at in enumerate(sorted(arrivals)):
        system_clock[0] = at
        assert system.take().allowed, f"request {n} arrived above the budget"
