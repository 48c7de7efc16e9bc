"""The one retry loop: jittered exponential backoff for errors that say they are retriable.

Only :class:`~daemon.http.errors.HttpError` with ``retriable = True`` is tried again (so never
a 4xx other than 429); a 429's ``retry_after`` is waited at least. The budget is both a number
of attempts and a total time; when it is spent the last error is raised as it was, with a note
saying how many attempts were made.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from daemon.http.errors import HttpError, RateLimited

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try.

    Attributes:
        attempts: the most attempts in all (1 = never retry).
        total_seconds: no retry starts whose wait would end later than this after the first try.
        base_seconds: the first backoff ceiling; doubles each retry.
        max_delay_seconds: the largest backoff ceiling (``retry_after`` may exceed it).
    """

    attempts: int = 5
    total_seconds: float = 60.0
    base_seconds: float = 0.2
    max_delay_seconds: float = 20.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")

    def backoff(self, retry: int, rng: random.Random) -> float:
        """The "full jitter" delay before retry number ``retry`` (1-based)."""
        ceiling = min(self.max_delay_seconds, self.base_seconds * 2 ** (retry - 1))
        return rng.uniform(0.0, ceiling)

    @classmethod
    def never(cls) -> RetryPolicy:
        """One attempt, no retries (e.g. for a create that must not happen twice)."""
        return cls(attempts=1)


async def retrying(
    operation: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    rng: random.Random | None = None,
    on_rate_limited: Callable[[float], None] | None = None,
) -> T:
    """Run ``operation`` until it returns, retrying retriable :class:`HttpError` per ``policy``.

    ``on_rate_limited`` hears the seconds of each wait after a :class:`RateLimited` answer.

    Raises:
        HttpError: the first error that is not retriable, or the last one when the budget is
            spent.
    """
    rng = rng or random.Random()
    started = clock()
    attempt = 1
    while True:
        try:
            return await operation()
        except HttpError as error:
            if not error.retriable:
                raise
            delay = policy.backoff(attempt, rng)
            if isinstance(error, RateLimited) and error.retry_after is not None:
                delay = max(delay, error.retry_after)
            elapsed = clock() - started
            if attempt >= policy.attempts or elapsed + delay > policy.total_seconds:
                error.add_note(
                    f"gave up after {attempt} attempt(s) in {elapsed:.1f} s "
                    f"(budget: {policy.attempts} attempts, {policy.total_seconds:g} s)"
                )
                raise
            log.info(
                "retrying %s %s in %.3f s after attempt %d: %s",
                error.method,
                error.url,
                delay,
                attempt,
                error.reason,
                extra={
                    "http_method": error.method,
                    "http_url": error.url,
                    "http_status": error.status,
                    "attempt": attempt,
                    "delay_seconds": delay,
                },
            )
            if isinstance(error, RateLimited) and on_rate_limited is not None:
                on_rate_limited(delay)
            await sleep(delay)
            attempt += 1
