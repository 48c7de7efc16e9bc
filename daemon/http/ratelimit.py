"""A token-bucket rate limiter per system that also obeys what the server says.

The bucket holds at most ``burst`` tokens and gains ``per_second`` tokens a second; every
request takes one. Independently, :meth:`RateLimiter.observe` reads each answer's
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


class RateLimiter:
    """A token bucket for one system.

    Args:
        per_second: tokens added per second; ``None`` for no client-side limit (the
            server's headers are still obeyed).
        burst: bucket size (the most requests sent back to back); defaults to
            ``max(1, per_second)``.
        clock: monotonic seconds.
        sleep: awaited to wait.
        wall: Unix seconds, to read HTTP dates and Unix-time reset headers.
    """

    def __init__(
        self,
        per_second: float | None,
        burst: int | None = None,
        *,
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
        self._clock = clock
        self._sleep = sleep
        self._wall = wall
        self._tokens = float(self.burst)
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
        if self.per_second is not None and now > self._updated:
            gained = (now - self._updated) * self.per_second
            self._tokens = min(float(self.burst), self._tokens + gained)
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
                elif self.per_second is None or self._tokens >= 1 - _EPSILON:
                    wait = 0.0
                else:
                    wait = (1 - self._tokens) / self.per_second
                if deadline is not None and now + wait > deadline:
                    return None
                if wait == 0.0:
                    if self.per_second is not None:
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
