"""The review page and API against hostile requests and hostile values, over real sockets:
any token but the right one is 401 and reads and sends nothing; markup in any value, field,
system or id of a conflict or record is shown as text, never as markup."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from hypothesis import assume, given
from hypothesis import strategies as st
from pydantic import SecretStr

from daemon.review.page import COOKIE, review_app
from daemon.review.view import ReviewView
from daemon.web import WebServer
from tests.daemon.review.events import T0, conflict, record
from tests.daemon.review.test_page import TOKEN, Twin
from tests.hostile import count, examples

AREA = "review"

MARKUP = st.sampled_from([
    "<script>alert(1)</script>", "</script><script>alert(2)</script>", "<img src=x onerror=y>",
    '"><svg onload=z>', "' onclick='w", "<!--", "]]><iframe>", "<a href=javascript:v>x</a>",
])


async def served(twin: Twin, work: Callable[[str], Awaitable[None]]) -> None:
    server = WebServer(port=0)
    server.add_subapp("/review", review_app(SecretStr(TOKEN), twin.load, twin.send,
                                            clock=lambda: T0 + 60, prefix="test"))
    async with server:
        await work(server.url)


@examples(40)
@given(token=st.text(max_size=40), where=st.sampled_from(["bearer", "query", "cookie",
                                                          "basic", "none"]),
       route=st.sampled_from([("GET", "/review/"), ("GET", "/review/report.json"),
                              ("POST", "/review/resolve")]))
def test_any_token_but_the_right_one_is_401_and_touches_nothing(
        token: str, where: str, route: tuple[str, str]) -> None:
    assume(token != TOKEN)
    twin = Twin()

    async def work(base: str) -> None:
        headers: dict[str, str] = {}
        params: dict[str, str] = {}
        cookies: dict[str, str] = {}
        # Control characters in a header are the HTTP parser's 400, before the page sees it.
        printable = "".join(c for c in token if " " <= c <= "~").strip()
        if where == "bearer":
            headers["Authorization"] = f"Bearer {printable}".strip()
        elif where == "basic":
            headers["Authorization"] = f"Basic {TOKEN}"
        elif where == "query":
            params["token"] = token
        elif where == "cookie":
            cookies[COOKIE] = printable.replace(";", "")
        async with httpx.AsyncClient(base_url=base, headers=headers, params=params,
                                     cookies=cookies, timeout=10) as client:
            method, path = route
            answer = await client.request(method, path, data={"conflict_id": "c1/name/crm:2",
                                                              "take": "crm"})
        assert answer.status_code == 401, (where, token, answer.text)
        assert "review token" in answer.text
        count(AREA, "refusals 401")

    asyncio.run(served(twin, work))
    assert twin.reads == 0 and twin.sent == []
    count(AREA, "token examples run")


@examples(30)
@given(markup=MARKUP, where=st.sampled_from(["value", "incoming", "field", "system", "id",
                                             "entity", "record field"]))
def test_markup_anywhere_in_a_conflict_is_text_on_the_page(markup: str, where: str) -> None:
    value: Any = {"current": (markup if where == "value" else "Ann", "helpdesk", 1),
                  "incoming": (markup if where == "incoming" else "Anne",
                               markup if where == "system" else "crm", 2)}
    event = conflict("c1" if where != "id" else markup,
                     markup if where == "field" else "name",
                     entity=markup if where == "entity" else "contact", **value)
    records = [record(event.canonical_id, **{"name": "Ann", "email": "a@x",
                                             "note": markup if where == "record field" else "",
                                             **({markup: 1} if where == "record field" else {})})]
    twin = Twin(view=ReviewView.build([event], records))

    async def work(base: str) -> None:
        async with httpx.AsyncClient(base_url=base, timeout=10,
                                     headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            page = await client.get("/review/")
            report = await client.get("/review/report.json")
        assert page.status_code == 200 and report.status_code == 200
        assert markup not in page.text, where
        assert report.headers["Content-Type"].startswith("application/json")
        count(AREA, "pages with markup rendered as text")

    asyncio.run(served(twin, work))
    count(AREA, "markup examples run")
