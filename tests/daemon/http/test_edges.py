"""HttpClient against a real aiohttp server on 127.0.0.1: the awkward answers, over sockets.

Time spent waiting (Retry-After, backoff) is fake; only the timeout test spends real time,
a few tens of milliseconds.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from pydantic import SecretStr

from daemon.http import (
    HttpClient,
    LinkHeader,
    MalformedResponse,
    OAuth2ClientCredentials,
    RateLimiter,
    Rejected,
    RetryPolicy,
    Unavailable,
)
from tests.daemon.http.conftest import FakeTime

SECRET = "edge-secret-4b1d"


@dataclass
class Server:
    url: str
    hits: Counter[str] = field(default_factory=Counter)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    tokens_issued: int = 0


def build_app(state: Server) -> web.Application:
    async def limited(request: web.Request) -> web.Response:
        state.hits["limited"] += 1
        if state.hits["limited"] <= 2:
            return web.json_response({"error": "slow"}, status=429, headers={"Retry-After": "2"})
        return web.json_response({"ok": True})

    async def flaky(request: web.Request) -> web.Response:
        state.hits["flaky"] += 1
        if state.hits["flaky"] <= 2:
            return web.json_response({"error": "server_error"}, status=502)
        return web.json_response({"ok": True})

    async def down(request: web.Request) -> web.Response:
        state.hits["down"] += 1
        return web.Response(status=503, text="down for maintenance")

    async def rejected(request: web.Request) -> web.Response:
        state.hits["rejected"] += 1
        return web.json_response({"error": "invalid_record"}, status=422)

    async def slow(request: web.Request) -> web.Response:
        state.hits["slow"] += 1
        await state.release.wait()
        return web.json_response({"late": True})

    async def html(request: web.Request) -> web.Response:
        state.hits["html"] += 1
        return web.Response(text="<html><h1>Maintenance</h1></html>", content_type="text/html")

    async def token(request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("client_secret") != SECRET:
            return web.json_response({"error": "invalid_client"}, status=401)
        state.tokens_issued += 1
        body = {"access_token": f"at-{SECRET}-{state.tokens_issued}", "expires_in": 3600}
        return web.json_response(body)

    async def me(request: web.Request) -> web.Response:
        state.hits["me"] += 1
        # The first token is "revoked" on the server's side after one use.
        good = f"Bearer at-{SECRET}-{state.tokens_issued}"
        if request.headers.get("Authorization") != good or state.hits["me"] == 2:
            return web.json_response({"error": "unauthorized"}, status=401)
        return web.json_response({"me": "syncline", "origin": request.headers.get("X-Origin")})

    async def things(request: web.Request) -> web.Response:
        page = int(request.query.get("page", "1"))
        per = int(request.query.get("per", "2"))
        records = [{"id": n} for n in range(1, 6)][(page - 1) * per : page * per]
        headers = {}
        if page * per < 5:
            headers["Link"] = f'<{state.url}/things?page={page + 1}&per={per}>; rel="next"'
        return web.json_response(records, headers=headers)

    async def budget(request: web.Request) -> web.Response:
        state.hits["budget"] += 1
        remaining = "0" if state.hits["budget"] == 1 else "10"
        headers = {"X-RateLimit-Remaining": remaining, "X-RateLimit-Reset": "5"}
        return web.json_response({"n": state.hits["budget"]}, headers=headers)

    app = web.Application()
    app.router.add_get("/limited", limited)
    app.router.add_get("/flaky", flaky)
    app.router.add_get("/down", down)
    app.router.add_post("/rejected", rejected)
    app.router.add_get("/slow", slow)
    app.router.add_get("/html", html)
    app.router.add_post("/oauth/token", token)
    app.router.add_get("/me", me)
    app.router.add_get("/things", things)
    app.router.add_get("/budget", budget)
    return app


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    state = Server(url="")
    runner = web.AppRunner(build_app(state), access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    state.url = f"http://127.0.0.1:{port}"
    try:
        yield state
    finally:
        state.release.set()
        await runner.cleanup()


def client_for(
    server: Server,
    fake_time: FakeTime,
    *,
    timeout: float = 5.0,
    retry: RetryPolicy | None = None,
    **kwargs: object,
) -> HttpClient:
    return HttpClient(
        server.url,
        limiter=RateLimiter(
            20, 40, clock=fake_time.clock, sleep=fake_time.sleep, wall=fake_time.wall
        ),
        retry=retry or RetryPolicy(attempts=4, total_seconds=60, base_seconds=0.5),
        timeout=timeout,
        clock=fake_time.clock,
        sleep=fake_time.sleep,
        rng=random.Random(3),
        **kwargs,  # type: ignore[arg-type]
    )


async def test_429_with_retry_after_is_obeyed(server: Server, fake_time: FakeTime) -> None:
    async with client_for(server, fake_time) as client:
        start = fake_time.now
        assert await client.get_json("/limited") == {"ok": True}
    assert server.hits["limited"] == 3
    assert fake_time.now - start >= 4  # two pauses of Retry-After: 2


async def test_5xx_retried_until_success(server: Server, fake_time: FakeTime) -> None:
    async with client_for(server, fake_time) as client:
        assert await client.get_json("/flaky") == {"ok": True}
    assert server.hits["flaky"] == 3


async def test_persistent_5xx_gives_up_after_the_budget(
    server: Server, fake_time: FakeTime
) -> None:
    async with client_for(server, fake_time) as client:
        with pytest.raises(Unavailable) as caught:
            await client.get_json("/down")
    assert server.hits["down"] == 4
    assert caught.value.status == 503 and "maintenance" in caught.value.excerpt


async def test_4xx_not_retried(server: Server, fake_time: FakeTime) -> None:
    async with client_for(server, fake_time) as client:
        with pytest.raises(Rejected) as caught:
            await client.send_json("POST", "/rejected", {"x": 1})
    assert server.hits["rejected"] == 1
    assert caught.value.status == 422 and not caught.value.retriable


async def test_slow_answer_times_out_and_is_retried(server: Server, fake_time: FakeTime) -> None:
    async with client_for(server, fake_time, timeout=0.05, retry=RetryPolicy(attempts=2)) as client:
        with pytest.raises(Unavailable, match="timed out"):
            await client.get_json("/slow")
    assert server.hits["slow"] == 2


async def test_html_instead_of_json(server: Server, fake_time: FakeTime) -> None:
    async with client_for(server, fake_time) as client:
        with pytest.raises(MalformedResponse, match="got HTML") as caught:
            await client.get_json("/html")
    assert server.hits["html"] == 1
    assert "Maintenance" in caught.value.excerpt


async def test_401_then_success_after_token_refresh(
    server: Server, fake_time: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    auth = OAuth2ClientCredentials(
        f"{server.url}/oauth/token", "syncline", SecretStr(SECRET), clock=fake_time.clock
    )
    async with client_for(server, fake_time, auth=auth) as client:
        assert (await client.get_json("/me"))["origin"] == "syncline"
        assert await client.get_json("/me") == {"me": "syncline", "origin": "syncline"}
    assert server.tokens_issued == 2 and server.hits["me"] == 3
    assert SECRET not in caplog.text


async def test_link_header_pages(server: Server, fake_time: FakeTime) -> None:
    async with client_for(server, fake_time) as client:
        pages = [p async for p in client.paginate("/things", LinkHeader("per", 2))]
    assert [[r["id"] for r in p.records] for p in pages] == [[1, 2], [3, 4], [5]]
    assert [p.number for p in pages] == [1, 2, 3]


async def test_remaining_zero_pauses_until_reset(server: Server, fake_time: FakeTime) -> None:
    async with client_for(server, fake_time) as client:
        await client.get_json("/budget")
        start = fake_time.now
        await client.get_json("/budget")
    assert fake_time.now - start == pytest.approx(5)


async def test_connection_refused_is_unavailable_and_retried(fake_time: FakeTime) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    closed = Server(url=f"http://127.0.0.1:{port}")
    async with client_for(closed, fake_time, retry=RetryPolicy(attempts=3)) as client:
        with pytest.raises(Unavailable, match="connection failed") as caught:
            await client.get_json("/anything")
    assert caught.value.status is None and caught.value.retriable
    assert len(fake_time.sleeps) == 2
