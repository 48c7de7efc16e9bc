"""HttpClient over httpx.MockTransport: status codes to errors, retries, decoding, headers."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import pytest

from daemon.http import (
    Conflict,
    HttpError,
    MalformedResponse,
    NotFound,
    Precondition,
    PreconditionFailed,
    RateLimiter,
    Rejected,
    RetryPolicy,
    Unauthorized,
    Unavailable,
)
from tests.daemon.http.conftest import FakeTime, mock_client


class Script:
    """Answers requests from a list, in order, and records what was asked."""

    def __init__(self, *responses: httpx.Response | Exception) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


async def test_get_json_decodes_and_sends_origin_headers(fake_time: FakeTime) -> None:
    script = Script(httpx.Response(200, json={"id": 1}))
    async with mock_client(script, fake_time) as client:
        assert await client.get_json("/things/1", params={"x": "y"}) == {"id": 1}
    sent = script.requests[0]
    assert sent.url == "https://api.example.test/things/1?x=y"
    assert sent.headers["X-Origin"] == "syncline"
    assert sent.headers["User-Agent"].startswith("syncline/")


async def test_send_json_sends_body_and_returns_none_for_204(fake_time: FakeTime) -> None:
    script = Script(httpx.Response(204))
    async with mock_client(script, fake_time) as client:
        assert await client.send_json("PATCH", "/things/1", {"a": 1}) is None
    assert json.loads(script.requests[0].content) == {"a": 1}
    assert script.requests[0].headers["Content-Type"] == "application/json"


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, Rejected),
        (401, Unauthorized),
        (403, Rejected),
        (404, NotFound),
        (409, Conflict),
        (412, PreconditionFailed),
        (422, Rejected),
    ],
)
async def test_4xx_other_than_429_is_never_retried(
    fake_time: FakeTime, status: int, kind: type[HttpError]
) -> None:
    script = Script(httpx.Response(status, json={"error": "nope"}))
    async with mock_client(script, fake_time) as client:
        with pytest.raises(kind) as caught:
            await client.send_json("PUT", "/things/1", {"a": 1})
    assert len(script.requests) == 1
    assert fake_time.sleeps == []
    error = caught.value
    assert error.retriable is False
    assert (error.method, error.status) == ("PUT", status)
    assert error.url == "https://api.example.test/things/1"
    assert "nope" in error.excerpt


async def test_5xx_is_retried_with_backoff_then_succeeds(fake_time: FakeTime) -> None:
    script = Script(
        httpx.Response(503, text="busy"),
        httpx.Response(500, text="oops"),
        httpx.Response(200, json=[1]),
    )
    async with mock_client(script, fake_time) as client:
        assert await client.get_json("/x") == [1]
    assert len(script.requests) == 3
    assert len(fake_time.sleeps) == 2
    assert 0 <= fake_time.sleeps[0] <= 0.1 and 0 <= fake_time.sleeps[1] <= 0.2


async def test_retry_budget_spent_raises_last_error_with_a_note(fake_time: FakeTime) -> None:
    script = Script(httpx.Response(502, text="bad gateway"))
    async with mock_client(script, fake_time) as client:
        with pytest.raises(Unavailable) as caught:
            await client.get_json("/x")
    assert len(script.requests) == 4
    assert caught.value.retriable and caught.value.status == 502
    assert any("gave up after 4 attempt" in note for note in caught.value.__notes__)


async def test_429_retry_after_is_obeyed(fake_time: FakeTime) -> None:
    script = Script(
        httpx.Response(429, headers={"Retry-After": "7"}, json={"error": "slow down"}),
        httpx.Response(200, json={"ok": True}),
    )
    async with mock_client(script, fake_time) as client:
        started = fake_time.now
        assert await client.get_json("/x") == {"ok": True}
    assert len(script.requests) == 2
    # Waited at least what the server asked, counted once (retry loop and limiter agree).
    assert 7 <= fake_time.now - started < 7.5


async def test_timeouts_and_connect_errors_are_unavailable_and_retried(
    fake_time: FakeTime,
) -> None:
    script = Script(
        httpx.ReadTimeout("slow"),
        httpx.ConnectError("refused"),
        httpx.Response(200, json={}),
    )
    async with mock_client(script, fake_time) as client:
        assert await client.get_json("/x") == {}
    assert len(script.requests) == 3


async def test_timeout_on_a_write_with_retry_never_is_not_repeated(fake_time: FakeTime) -> None:
    script = Script(httpx.ReadTimeout("slow"), httpx.Response(201, json={}))
    async with mock_client(script, fake_time) as client:
        with pytest.raises(Unavailable, match="timed out"):
            await client.send_json("POST", "/x", {"a": 1}, retry=RetryPolicy.never())
    assert len(script.requests) == 1


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        (
            httpx.Response(
                200,
                text="<html><body>Maintenance</body></html>",
                headers={"Content-Type": "text/html"},
            ),
            "got HTML",
        ),
        (
            httpx.Response(
                200, text='{"data": [1, 2', headers={"Content-Type": "application/json"}
            ),
            "invalid JSON",
        ),
        (
            httpx.Response(
                200, text="<!DOCTYPE html>", headers={"Content-Type": "application/json"}
            ),
            "got HTML",
        ),
    ],
)
async def test_malformed_bodies_are_a_clear_non_retriable_error(
    fake_time: FakeTime, response: httpx.Response, reason: str
) -> None:
    script = Script(response)
    async with mock_client(script, fake_time) as client:
        with pytest.raises(MalformedResponse, match=reason) as caught:
            await client.get_json("/x")
    assert len(script.requests) == 1
    assert caught.value.retriable is False
    assert caught.value.status == 200


async def test_conditional_write_sends_if_match_and_412_means_re_read(
    fake_time: FakeTime,
) -> None:
    script = Script(
        httpx.Response(200, json={"v": 3}, headers={"ETag": '"3"'}),
        httpx.Response(412, json={"error": "precondition_failed", "current_version": 4}),
    )
    async with mock_client(script, fake_time) as client:
        body, precondition = await client.get_versioned("/things/1")
        assert body == {"v": 3} and precondition == Precondition(etag='"3"')
        with pytest.raises(PreconditionFailed, match="re-read"):
            await client.send_json("PATCH", "/things/1", {"a": 1}, precondition=precondition)
    assert script.requests[1].headers["If-Match"] == '"3"'
    assert len(script.requests) == 2


async def test_precondition_from_last_modified_sends_if_unmodified_since(
    fake_time: FakeTime,
) -> None:
    modified = "Wed, 01 May 2024 12:00:00 GMT"
    script = Script(
        httpx.Response(200, json={}, headers={"Last-Modified": modified}),
        httpx.Response(200, json={}),
    )
    async with mock_client(script, fake_time) as client:
        _, precondition = await client.get_versioned("/things/1")
        assert precondition is not None
        await client.send_json("PUT", "/things/1", {}, precondition=precondition)
    assert script.requests[1].headers["If-Unmodified-Since"] == modified
    assert "If-Match" not in script.requests[1].headers


async def test_429_retry_after_as_http_date(fake_time: FakeTime) -> None:
    when = datetime.fromtimestamp(fake_time.wall() + 9, tz=UTC)
    script = Script(
        httpx.Response(429, headers={"Retry-After": format_datetime(when, usegmt=True)}),
        httpx.Response(200, json={}),
    )
    async with mock_client(script, fake_time) as client:
        started = fake_time.now
        await client.get_json("/x")
    assert 8 <= fake_time.now - started < 10


async def test_429_without_retry_after_backs_off(fake_time: FakeTime) -> None:
    script = Script(httpx.Response(429), httpx.Response(200, json={}))
    async with mock_client(script, fake_time) as client:
        await client.get_json("/x")
    assert len(script.requests) == 2 and len(fake_time.sleeps) == 1


async def test_every_attempt_is_heard_with_its_status_or_error(fake_time: FakeTime) -> None:
    script = Script(httpx.ConnectError("refused"), httpx.Response(503),
                    httpx.Response(200, json={}))
    heard: list[str] = []  # the worker counts these in syncline_http_requests_total
    took: list[float] = []  # and these in syncline_http_request_seconds
    async with mock_client(script, fake_time, on_answer=heard.append,
                           on_latency=took.append) as client:
        assert await client.get_json("/things") == {}
    assert heard == ["error", "503", "200"]
    assert len(took) == 3 and all(seconds >= 0 for seconds in took)


async def test_every_wait_for_the_rate_limit_is_heard(fake_time: FakeTime) -> None:
    # A budget of 1 request a second, then a 429 asking for 5 s: two waits heard.
    script = Script(httpx.Response(200, json={}), httpx.Response(429, headers={
        "Retry-After": "5"}), httpx.Response(200, json={}))
    limiter = RateLimiter(1.0, 1, clock=fake_time.clock, sleep=fake_time.sleep,
                          wall=fake_time.wall)
    heard: list[float] = []  # the worker counts these in syncline_rate_limit_waits_total
    async with mock_client(script, fake_time, limiter=limiter, on_wait=heard.append) as client:
        await client.get_json("/a")
        await client.get_json("/b")
    assert len(heard) == 2  # /b waited for the budget, then for the server's pause
    assert heard[0] == pytest.approx(1.0) and heard[1] >= 5


async def test_a_query_in_the_path_is_sent_with_the_params_not_replaced(
        fake_time: FakeTime) -> None:
    script = Script(httpx.Response(200, json={}))
    async with mock_client(script, fake_time) as client:
        await client.get_json("/users/5?expand=roles&expand=groups", params={"brief": "false"})

    assert script.requests[0].url == (
        "https://api.example.test/users/5?expand=roles&expand=groups&brief=false")
