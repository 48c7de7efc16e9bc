"""A token-bucket rate limiter per system that also obeys what the server says.

The bucket holds at most ``burst`` tokens and gains ``per_second`` tokens a second; every
request takes one. The system counts a request when it handles it, the limiter when it lets it
go; the delay between varies (the network, the system's own load, a connection being opened),
and a request handled sooner than the one before finds the system's bucket emptier than ours.
``jitter_seconds`` is how much variation to absorb: the limiter's own bucket is smaller than
the budget by what arrives in that time (``floor(per_second * jitter_seconds) + 1`` tokens), so
the average rate is kept whole; a budget too small for that spaces requests instead (see
:func:`own_bucket`). Independently, :meth:`RateLimiter.observe` reads each answer's
``Retry-After`` (on 429 and 503) and ``X-RateLimit-Remaining``/``X-RateLimit-Reset`` and, when
the server says to wait, blocks every acquisition until then. Clock, sleep and wall clock are
injectable so tests run on fake time.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping

from daemon.http.headers import rate_limit_reset_seconds, retry_after_seconds

log = logging.getLogger(__name__)

# Float rounding must never make a wait loop spin on a token that is "almost" there.
_EPSILON = 1e-9
# Requests spaced by the jitter are spaced a little more, so none lands exactly on the boundary.
_SLACK_SECONDS = 1e-4


def own_bucket(per_second: float, burst: int, jitter_seconds: float) -> tuple[float, int]:
    """The ``(per_second, burst)`` the limiter keeps so that requests it lets go, each delayed
    on the way by anything within ``jitter_seconds`` of the others, never exceed the system's
    ``(per_second, burst)`` bucket.

    The system accepts at most ``burst + per_second * t`` in any ``t`` seconds; what it
    handles in ``t`` was let go within ``t + jitter_seconds``, so the limiter's own bucket must
    satisfy ``own_burst + own_rate * jitter_seconds <= burst``. Keeping the rate and giving up
    burst is free in the long run; only a budget whose burst is too small for that gives up
    rate: the most the remaining burst allows, and never less than requests ``1/per_second +
    jitter_seconds`` apart (each then reaches the system at least ``1/per_second`` after the one
    before, whatever their delays).
    """
    if jitter_seconds == 0:
        return per_second, burst
    # Strictly more than arrives in jitter_seconds: a bucket left at exactly 0 is a coin toss
    # of float rounding on the system's side.
    margin = math.floor(per_second * jitter_seconds) + 1
    if burst > margin:
        return per_second, burst - margin
    stretched = jitter_seconds + _SLACK_SECONDS
    return max(1 / (1 / per_second + stretched), (burst - 1) / stretched), 1


class RateLimiter:
    """A token bucket for one system.

    Args:
        per_second: tokens added per second; ``None`` for no client-side limit (the
            server's headers are still obeyed).
        burst: bucket size (the most requests sent back to back); defaults to
            ``max(1, per_second)``.
        jitter_seconds: how much the delay between this limiter and the system may vary
            from one request to the next without a request going above the budget; the
            bucket actually kept is :func:`own_bucket` (``0``: exactly the budget).
        clock: monotonic seconds.
        sleep: awaited to wait.
        wall: Unix seconds, to read HTTP dates and Unix-time reset headers.
    """

    def __init__(
        self,
        per_second: float | None,
        burst: int | None = None,
        *,
        jitter_seconds: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if per_second is not None and per_second <= 0:
            raise ValueError("per_second must be positive (or None for no limit)")
        self.per_second = per_second
        self.burst = burst if burst is not None else max(1, math.ceil(per_second or 1))
        if self.burst < 1:
            raise ValueError("burst must be at least 1")
        if jitter_seconds < 0:
            raise ValueError("jitter_seconds must not be negative")
        self.jitter_seconds = jitter_seconds
        # The bucket actually kept: per_second/burst above are the system's budget.
        self._rate: float | None = None
        self._size = self.burst
        if per_second is not None:
            self._rate, self._size = own_bucket(per_second, self.burst, jitter_seconds)
        self._clock = clock
        self._sleep = sleep
        self._wall = wall
        self._tokens = float(self._size)
        self._updated = clock()
        self._blocked_until = -math.inf
        self._lock = asyncio.Lock()

    @classmethod
    def unlimited(
        cls,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        wall: Callable[[], float] = time.time,
    ) -> RateLimiter:
        """A limiter that only obeys the server's headers."""
        return cls(None, clock=clock, sleep=sleep, wall=wall)

    @property
    def blocked_until(self) -> float:
        """The clock time before which nothing is sent (``-inf`` when not blocked)."""
        return self._blocked_until

    def _refill(self, now: float) -> None:
        if self._rate is not None and now > self._updated:
            gained = (now - self._updated) * self._rate
            self._tokens = min(float(self._size), self._tokens + gained)
        self._updated = max(self._updated, now)

    async def acquire(self, deadline: float | None = None) -> float | None:
        """Wait for a token (and for any server-imposed pause), take it; return seconds waited.

        Waiters are served one at a time, in order. With a ``deadline`` (clock seconds), a
        request that could not go by then is not waited for: ``None``, and no token is taken.
        """
        waited = 0.0
        async with self._lock:
            while True:
                now = self._clock()
                self._refill(now)
                if now < self._blocked_until:
                    wait = self._blocked_until - now
                elif self._rate is None or self._tokens >= 1 - _EPSILON:
                    wait = 0.0
                else:
                    wait = (1 - self._tokens) / self._rate
                if deadline is not None and now + wait > deadline:
                    return None
                if wait == 0.0:
                    if self._rate is not None:
                        self._tokens = max(0.0, self._tokens - 1)
                    return waited
                await self._sleep(wait)
                waited += wait

    def block_for(self, seconds: float) -> None:
        """Send nothing for ``seconds`` from now (extends, never shortens, a pause)."""
        now = self._clock()
        self._refill(now)
        until = now + max(0.0, seconds)
        if until > self._blocked_until:
            self._blocked_until = until
            # The server's budget is spent; ours must not send a burst the moment it opens.
            self._tokens = 0.0
            log.info(
                "rate limit: pausing %.3f s as the server asked",
                seconds,
                extra={"pause_seconds": seconds},
            )

    def observe(self, status: int, headers: Mapping[str, str]) -> float | None:
        """Read one answer's rate-limit headers; return the pause they imposed, if any."""
        wall = self._wall()
        pause: float | None = None
        if status in (429, 503):
            pause = retry_after_seconds(headers.get("retry-after"), wall)
        reset = rate_limit_reset_seconds(headers, wall)
        if reset is not None:
            pause = max(pause or 0.0, reset)
        if pause is not None:
            self.block_for(pause)
        return pause
