"""The one retry loop: what it retries, how long it waits, when it gives up."""

from __future__ import annotations

import random

import pytest

from daemon.http import NotFound, RateLimited, RetryPolicy, Unavailable
from daemon.http.errors import HttpError
from daemon.http.retry import retrying
from tests.daemon.http.conftest import FakeTime


class Flaky:
    def __init__(self, *errors: HttpError) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


def down() -> Unavailable:
    return Unavailable("server error", method="GET", url="http://x/", status=503)


async def run(flaky: Flaky, policy: RetryPolicy, fake_time: FakeTime, seed: int = 1) -> str:
    return await retrying(
        flaky, policy, clock=fake_time.clock, sleep=fake_time.sleep, rng=random.Random(seed)
    )


async def test_backoff_is_jittered_exponential_and_capped(fake_time: FakeTime) -> None:
    policy = RetryPolicy(attempts=8, total_seconds=1000, base_seconds=1, max_delay_seconds=4)
    flaky = Flaky(*(down() for _ in range(7)))
    assert await run(flaky, policy, fake_time) == "done"
    ceilings = [1, 2, 4, 4, 4, 4, 4]
    assert len(fake_time.sleeps) == 7
    for slept, ceiling in zip(fake_time.sleeps, ceilings, strict=True):
        assert 0 <= slept <= ceiling
    assert len(set(fake_time.sleeps)) == 7  # jittered, not lock-step


async def test_not_retriable_is_raised_at_once(fake_time: FakeTime) -> None:
    flaky = Flaky(NotFound("not found", method="GET", url="http://x/", status=404))
    with pytest.raises(NotFound):
        await run(flaky, RetryPolicy(), fake_time)
    assert flaky.calls == 1 and fake_time.sleeps == []


async def test_attempt_budget(fake_time: FakeTime) -> None:
    flaky = Flaky(*(down() for _ in range(10)))
    with pytest.raises(Unavailable):
        await run(flaky, RetryPolicy(attempts=3), fake_time)
    assert flaky.calls == 3


async def test_time_budget_stops_before_a_wait_that_would_overrun(fake_time: FakeTime) -> None:
    limited = RateLimited("rate limited", method="GET", url="http://x/", retry_after=50)
    flaky = Flaky(limited)
    with pytest.raises(RateLimited) as caught:
        await run(flaky, RetryPolicy(attempts=10, total_seconds=30), fake_time)
    assert flaky.calls == 1 and fake_time.sleeps == []
    assert "gave up after 1 attempt" in caught.value.__notes__[0]


async def test_retry_after_is_waited_at_least(fake_time: FakeTime) -> None:
    limited = RateLimited("rate limited", method="GET", url="http://x/", retry_after=12)
    flaky = Flaky(limited)
    assert await run(flaky, RetryPolicy(max_delay_seconds=1), fake_time) == "done"
    assert fake_time.sleeps == [12]


async def test_other_exceptions_pass_through(fake_time: FakeTime) -> None:
    async def broken() -> str:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        await retrying(broken, RetryPolicy(), clock=fake_time.clock, sleep=fake_time.sleep)
    assert fake_time.sleeps == []


def test_policy_needs_an_attempt() -> None:
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)
