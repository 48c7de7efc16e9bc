"""The token bucket a simulated API meters its requests with."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class RateLimit:
    """``per_second`` tokens are added per second, up to ``burst`` (default: one second's worth)."""

    per_second: float
    burst: int | None = None

    @property
    def capacity(self) -> int:
        """How many requests a full bucket allows at once."""
        return self.burst if self.burst is not None else max(1, math.ceil(self.per_second))


@dataclass(frozen=True)
class Decision:
    """The outcome of asking the bucket for one request, with what the headers report."""

    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int
    retry_after_seconds: int


class TokenBucket:
    """A token bucket on the monotonic clock (never the simulated clock: a frozen simulated
    clock must not stop the refill)."""

    def __init__(self, limit: RateLimit, monotonic: Callable[[], float] = time.monotonic) -> None:
        if limit.per_second <= 0 or limit.capacity < 1:
            raise ValueError("a rate limit needs per_second > 0 and burst >= 1")
        self.limit = limit
        self._monotonic = monotonic
        self._tokens = float(limit.capacity)
        self._at = monotonic()

    def take(self) -> Decision:
        """Spend one token if there is one."""
        self._refill()
        allowed = self._tokens >= 1
        if allowed:
            self._tokens -= 1
        missing_for_one = max(0.0, 1 - self._tokens)
        missing_for_full = self.limit.capacity - self._tokens
        return Decision(
            allowed=allowed,
            limit=self.limit.capacity,
            remaining=math.floor(self._tokens),
            reset_seconds=math.ceil(missing_for_full / self.limit.per_second),
            retry_after_seconds=max(1, math.ceil(missing_for_one / self.limit.per_second)),
        )

    def _refill(self) -> None:
        now = self._monotonic()
        gained = (now - self._at) * self.limit.per_second
        self._tokens = min(float(self.limit.capacity), self._tokens + gained)
        self._at = now
