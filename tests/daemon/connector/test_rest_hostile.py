"""The generic REST connector against a hostile API over a real local socket.

Each page of a cursor-paged listing may misbehave: HTML, invalid UTF-8, a body that is not an
object, ids and records of the wrong type, the records of the page before repeated, a cursor
that goes back to an earlier page or stays, a page with more records than allowed. A walk of
the listing either ends with every good record seen (and each bad one a :class:`BadRecord`
with its reason), or stops with an :class:`HttpError` that says why — never another
exception, never an endless walk.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
import yaml
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from daemon.connector.config import SystemConfig
from daemon.connector.rest import BadRecord, RemoteRecord, RestEntity, build_client
from daemon.http import HttpClient, HttpError, MalformedResponse
from tests.daemon.served import served
from tests.hostile import count, examples

AREA = "rest api answers"
PAGE = 3
MAX_RECORDS = 10

SYSTEM = """
base_url: {url}
auth: {{type: bearer, token_env: T}}
entities:
  contact:
    path: /items
    records_at: data
    pagination: {{style: cursor, param: cursor, next: next, size_param: limit, size: 3}}
    max_page_records: 10
retry: {{attempts: 1, base_seconds: 0.01}}
timeout_seconds: 5
"""

MOODS = st.sampled_from(["ok", "ok", "ok", "html", "invalid utf-8", "not an object",
                         "data not a list", "bad ids", "repeat", "cursor back", "cursor stays",
                         "too many", "empty body", "wrong content type"])


class Hostile:
    """Pages of good records, each answered in its drawn mood."""

    def __init__(self, moods: list[str], records: int) -> None:
        self.moods = moods
        self.records = [{"id": f"r{i}", "name": f"N{i}", "updated": 100 + i}
                        for i in range(records)]
        self.requests = 0

    async def items(self, request: web.Request) -> web.Response:
        self.requests += 1
        page = int(request.query.get("cursor", "0"))
        mood = self.moods[page % len(self.moods)]
        chunk = self.records[page * PAGE:(page + 1) * PAGE]
        last = (page + 1) * PAGE >= len(self.records)
        nxt: Any = None if last else str(page + 1)
        data: Any = list(chunk)
        if mood == "bad ids":
            data = [*chunk, {"id": {"x": 1}}, {"id": None}, {"id": True}, "a string", 7, None]
        elif mood == "repeat" and page > 0:
            data = self.records[(page - 1) * PAGE:page * PAGE] + chunk
        elif mood == "cursor back" and page > 0 and not last:
            nxt = str(page - 1)
        elif mood == "cursor stays" and not last:
            nxt = str(page)
        elif mood == "too many":
            data = chunk + [{"id": f"junk{i}"} for i in range(MAX_RECORDS)]
        elif mood == "data not a list":
            data = {"id": "r0"}
        body: dict[str, Any] = {"data": data, "next": nxt}
        raw = orjson.dumps(body)
        if mood == "html":
            return web.Response(text="<html><body>Maintenance</body></html>",
                                content_type="text/html")
        if mood == "invalid utf-8":
            raw = raw.replace(b'"N', b'"\xff\xfeN', 1)
        elif mood == "not an object":
            raw = orjson.dumps([body])
        elif mood == "empty body":
            raw = b""
        elif mood == "wrong content type":
            return web.Response(body=raw, content_type="text/plain")
        return web.Response(body=raw, content_type="application/json")


async def walk(moods: list[str], records: int) -> tuple[Hostile, list[Any], Exception | None]:
    api = Hostile(moods, records)
    app = web.Application()
    app.router.add_get("/items", api.items)
    seen: list[Any] = []
    async with served(app) as url:
        env = {"T": "hostile-api-token-9d2f"}
        system = SystemConfig.model_validate(yaml.safe_load(SYSTEM.format(url=url)),
                                             context={"env": env})
        entity = RestEntity(build_client("hostile", system), "hostile", "contact",
                            system.entities["contact"])
        try:
            async with asyncio.timeout(30):  # an endless walk fails the test
                async for page in entity.changes(None):
                    seen += page.records
        except HttpError as exc:
            return api, seen, exc
        finally:
            await entity.client.aclose()
    return api, seen, None


@examples(40)
@given(moods=st.lists(MOODS, min_size=1, max_size=6), records=st.integers(0, 14))
def test_a_hostile_listing_is_read_whole_or_refused_with_a_reason(moods: list[str],
                                                                  records: int) -> None:
    api, seen, error = asyncio.run(walk(moods, records))
    good = {r.id for r in seen if isinstance(r, RemoteRecord)}
    bad = [r for r in seen if isinstance(r, BadRecord)]
    assert all(r.reason for r in bad)
    if error is not None:
        assert str(error), "a refusal without a reason"
        count(AREA, f"refusals ({type(error).__name__})")
    else:
        # Read whole: every record of the system, whatever was repeated or refused.
        assert {r["id"] for r in api.records} <= good
        count(AREA, "listings read whole")
    assert api.requests <= 50  # no endless walk
    count(AREA, "bad records (with a reason)", len(bad))
    count(AREA, "examples run")


async def test_a_gigantic_answer_is_refused_unread_with_its_size() -> None:
    async def chunked(request: web.Request) -> web.StreamResponse:
        answer = web.StreamResponse()  # no Content-Length: refused while it is read
        answer.content_type = "application/json"
        await answer.prepare(request)
        await answer.write(b'{"data": [{"id": "x", "pad": "')
        for _ in range(64):
            await answer.write(b"x" * 65536)
        await answer.write(b'"}], "next": null}')
        return answer

    async def sized(request: web.Request) -> web.Response:  # refused by its Content-Length
        return web.Response(body=b"[" + b"0," * (2 * 1024 * 1024) + b"0]",
                            content_type="application/json")

    async def small(request: web.Request) -> web.Response:
        return web.json_response({"data": []})

    app = web.Application()
    app.router.add_get("/chunked", chunked)
    app.router.add_get("/sized", sized)
    app.router.add_get("/small", small)
    async with served(app) as url, HttpClient(url, max_body_bytes=1024 * 1024) as client:
        for path in ("/chunked", "/sized"):
            with pytest.raises(MalformedResponse, match="larger than 1048576 bytes"):
                await client.request("GET", path)
            count(AREA, "refusals (gigantic answer)")
        assert (await client.request("GET", "/small")).body == {"data": []}
