"""Fake time for the HTTP machinery: a clock that only moves when something sleeps."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from daemon.http import HttpClient, RateLimiter, RetryPolicy
from daemon.http.auth import SecretAuth

WALL_START = 1_700_000_000.0


class FakeTime:
    """``clock()`` and ``wall()`` advance only by ``await sleep(s)`` or ``advance(s)``."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def wall(self) -> float:
        return WALL_START + self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


Handler = Callable[[httpx.Request], httpx.Response]


def mock_client(
    handler: Handler,
    fake_time: FakeTime,
    *,
    auth: SecretAuth | None = None,
    limiter: RateLimiter | None = None,
    retry: RetryPolicy | None = None,
    base_url: str = "https://api.example.test",
    on_answer: Callable[[str], None] | None = None,
    on_wait: Callable[[float], None] | None = None,
    on_latency: Callable[[float], None] | None = None,
) -> HttpClient:
    """An :class:`HttpClient` over ``httpx.MockTransport(handler)`` on fake time."""
    import random

    return HttpClient(
        base_url,
        auth=auth,
        limiter=limiter
        or RateLimiter.unlimited(clock=fake_time.clock, sleep=fake_time.sleep, wall=fake_time.wall),
        retry=retry or RetryPolicy(attempts=4, total_seconds=30, base_seconds=0.1),
        system="test",
        transport=httpx.MockTransport(handler),
        clock=fake_time.clock,
        sleep=fake_time.sleep,
        rng=random.Random(7),
        wall=fake_time.wall,
        on_answer=on_answer,
        on_wait=on_wait,
        on_latency=on_latency,
    )
