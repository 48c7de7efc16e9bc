"""The review page over real HTTP, with in-memory twins for reading and publishing.

The token check comes first: nothing is read or sent for a request without it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
from pydantic import SecretStr

from daemon.review.page import COOKIE, review_app
from daemon.review.view import ReviewView
from daemon.web import WebServer
from streams.events import Resolution
from tests.daemon.review.events import T0, conflict

TOKEN = "s3cret-review-token"


@dataclass
class Twin:
    """The topics as the page sees them: conflicts to read, resolutions sent."""

    view: ReviewView = field(default_factory=lambda: ReviewView.build([
        conflict("c1", "name", current=("<b>Ann</b>", "helpdesk", 1),
                 incoming=("Anne", "crm", 2)),
        conflict("c2", "phone", status="auto_resolved", policy="latest", decision="incoming"),
    ]))
    reads: int = 0
    sent: list[Resolution] = field(default_factory=list)

    async def load(self) -> ReviewView:
        self.reads += 1
        return self.view

    async def send(self, resolution: Resolution) -> None:
        self.sent.append(resolution)


@pytest.fixture
def twin() -> Twin:
    return Twin()


@pytest.fixture
async def base(twin: Twin) -> AsyncIterator[str]:
    server = WebServer(port=0)
    server.add_subapp("/review", review_app(SecretStr(TOKEN), twin.load, twin.send,
                                            clock=lambda: T0 + 60, prefix="test"))
    async with server:
        yield server.url


@pytest.mark.parametrize("headers, params", [
    ({}, {}),
    ({"Authorization": "Bearer wrong"}, {}),
    ({"Authorization": f"Basic {TOKEN}"}, {}),
    ({}, {"token": "wrong"}),
    ({}, {"token": ""}),
])
async def test_without_the_token_every_route_is_401(base: str, twin: Twin,
                                                    headers: dict[str, str],
                                                    params: dict[str, str]) -> None:
    async with httpx.AsyncClient(base_url=base, headers=headers, params=params) as client:
        for method, path in (("GET", "/review/"), ("GET", "/review/report.json"),
                             ("POST", "/review/resolve")):
            answer = await client.request(method, path, data={"conflict_id": "c1/name/crm:2",
                                                              "take": "crm"})
            assert answer.status_code == 401, (method, path)
            assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    async with httpx.AsyncClient(base_url=base, cookies={COOKIE: "wrong"}) as client:
        assert (await client.get("/review/")).status_code == 401
    assert twin.reads == 0 and twin.sent == []


async def test_bearer_token_shows_the_report_with_the_action(base: str) -> None:
    async with httpx.AsyncClient(base_url=base,
                                 headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        page = await client.get("/review/")
        assert page.status_code == 200
        assert page.headers["Content-Security-Policy"].startswith("default-src 'none'")
        assert "Take this value" in page.text
        assert "&lt;b&gt;Ann&lt;/b&gt;" in page.text and "<b>Ann</b>" not in page.text
        assert page.text.count('class="take-button"') == 2  # one per side of the open one
        report = (await client.get("/review/report.json")).json()
        assert report["summary"]["open"] == 1


async def test_a_token_in_the_address_becomes_a_cookie(base: str) -> None:
    async with httpx.AsyncClient(base_url=base) as client:
        first = await client.get("/review/", params={"token": TOKEN})
        assert first.status_code == 303
        assert first.headers["Location"] == "/review/"
        cookie = first.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        page = await client.get("/review/")  # the client keeps the cookie
        assert page.status_code == 200 and "Take this value" in page.text


async def test_take_this_value_publishes_a_resolution_recording_who_when_what(
        base: str, twin: Twin) -> None:
    async with httpx.AsyncClient(base_url=base, cookies={COOKIE: TOKEN}) as client:
        answer = await client.post("/review/resolve", data={
            "conflict_id": "c1/name/crm:2", "take": "helpdesk", "by": "dana",
            "note": "checked"})
        assert answer.status_code == 303
        assert answer.headers["Location"].startswith("/review/?sent=r-")
        sent = twin.sent[-1]
        assert (sent.conflict_id, sent.canonical_id, sent.take, sent.by, sent.via, sent.at,
                sent.note) == ("c1/name/crm:2", "c1", "helpdesk", "dana", "review-page",
                               T0 + 60, "checked")
        shown = await client.get(answer.headers["Location"])
        assert sent.resolution_id in shown.text

        by_json = await client.post("/review/resolve",
                                    json={"conflict_id": "c1", "value": "Ann Lee"})
        assert by_json.status_code == 202
        assert twin.sent[-1].value == "Ann Lee" and twin.sent[-1].by == "reviewer"


@pytest.mark.parametrize("body, status, error", [
    ({"conflict_id": "nope", "take": "crm"}, 404, "not_found"),
    ({"conflict_id": "c2", "take": "crm"}, 409, "not_resolvable"),  # auto-resolved
    ({"conflict_id": "c1", "take": "shop"}, 409, "not_resolvable"),
    ({"conflict_id": "c1"}, 409, "not_resolvable"),
    ({"take": "crm"}, 400, "bad_request"),
    ({"conflict_id": "c1", "take": "crm", "by": 7}, 400, "bad_request"),
])
async def test_refusals_say_why_and_send_nothing(base: str, twin: Twin, body: dict[str, object],
                                                 status: int, error: str) -> None:
    async with httpx.AsyncClient(base_url=base,
                                 headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        answer = await client.post("/review/resolve", json=body)
        assert (answer.status_code, answer.json()["error"]) == (status, error)
        form = await client.post("/review/resolve", data={"conflict_id": "c2", "take": "crm"})
        assert form.status_code == 409 and "is not open" in form.text
    assert twin.sent == []


async def test_a_post_from_another_site_is_refused(base: str, twin: Twin) -> None:
    async with httpx.AsyncClient(base_url=base, cookies={COOKIE: TOKEN}) as client:
        answer = await client.post("/review/resolve", headers={"Origin": "https://evil.example"},
                                   data={"conflict_id": "c1", "take": "crm"})
        assert answer.status_code == 403
    assert twin.sent == []


def test_an_empty_token_is_refused_at_build_time(twin: Twin) -> None:
    with pytest.raises(ValueError, match="empty"):
        review_app(SecretStr(""), twin.load, twin.send)
