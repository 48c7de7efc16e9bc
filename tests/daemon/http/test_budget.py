"""The lane's limiter against a simulated system that meters the same budget (issue #17).

The client counts a request when the limiter lets it go; the system counts it when it handles
it. Between the two lies a delay that varies (the network, the system's own event loop, a
connection being opened); a request that is handled sooner than the ones before it finds the
system's bucket a little emptier than the client's. These tests put that variation on a real
socket — a transport that holds most requests 20 ms and lets every tenth through at once — and
saturate the budget with several requests in flight.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from pydantic import SecretStr

from daemon.connector.config import RateLimitConfig
from daemon.http import ApiKeyHeader, HttpClient, RateLimited, RetryPolicy
from daemon.sandbox import RateLimit, run_helpdesk

HELPDESK_KEY = "helpdesk-key-2e8d41"
PER_SECOND = 100.0
BURST = 100
SECONDS = 2.0
IN_FLIGHT = 8


class JitteryNetwork(httpx.AsyncBaseTransport):
    """A real HTTP transport whose requests take 20 ms to leave, except every tenth: 0 ms."""

    def __init__(self) -> None:
        self._real = httpx.AsyncHTTPTransport()
        self._sent = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self._sent += 1
        if self._sent % 10:
            await asyncio.sleep(0.02)
        return await self._real.handle_async_request(request)

    async def aclose(self) -> None:
        await self._real.aclose()


async def _saturate(url: str, config: RateLimitConfig) -> tuple[int, int, float]:
    """Send as fast as the limiter allows for SECONDS; return (ok, refused, seconds)."""
    ok = refused = 0
    async with HttpClient(url, auth=ApiKeyHeader(SecretStr(HELPDESK_KEY)),
                          limiter=config.build(), retry=RetryPolicy.never(), system="helpdesk",
                          transport=JitteryNetwork()) as http:
        start = time.monotonic()

        async def worker() -> None:
            nonlocal ok, refused
            while time.monotonic() - start < SECONDS:
                try:
                    await http.get_json("/api/v2/users")
                    ok += 1
                except RateLimited:
                    refused += 1

        await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
        return ok, refused, time.monotonic() - start


async def _refused_by_system(url: str) -> int:
    async with httpx.AsyncClient(base_url=url) as admin:
        stats = (await admin.get("/_admin/stats")).json()
    refused: int = stats["requests"]["by_status"].get("429", 0)
    return refused


@pytest.mark.timeout(30)
async def test_saturating_the_budget_sends_nothing_above_it() -> None:
    config = RateLimitConfig(per_second=PER_SECOND, burst=BURST)
    async with run_helpdesk(api_key=HELPDESK_KEY,
                            rate_limit=RateLimit(PER_SECOND, burst=BURST)) as helpdesk:
        ok, refused, seconds = await _saturate(helpdesk.url, config)
        assert await _refused_by_system(helpdesk.url) == refused == 0
    # And the budget is used: all but a few % of what the system would accept in that time.
    allowed = BURST + PER_SECOND * seconds
    assert ok >= 0.9 * allowed, f"{ok} requests in {seconds:.2f} s, the budget allows {allowed:.0f}"
