"""Page walks over httpx.MockTransport: every style, records location, and the guards."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from daemon.http import (
    Cursor,
    LinkHeader,
    MalformedResponse,
    OffsetLimit,
    PageGuard,
    PageNumber,
    PageTooLarge,
    PageWalkTooLong,
    PaginationError,
)
from tests.daemon.http.conftest import FakeTime, mock_client

RECORDS = [{"id": n} for n in range(1, 8)]


async def collect(client: Any, *args: Any, **kwargs: Any) -> list[list[Any]]:
    return [page.records async for page in client.paginate(*args, **kwargs)]


def ids(pages: list[list[Any]]) -> list[list[int]]:
    return [[r["id"] for r in page] for page in pages]


async def test_page_number_until_a_short_page(fake_time: FakeTime) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        page, size = int(request.url.params["page"]), int(request.url.params["per_page"])
        chunk = RECORDS[(page - 1) * size : page * size]
        return httpx.Response(200, json={"users": chunk})

    async with mock_client(handler, fake_time) as client:
        pages = await collect(client, "/users", PageNumber(size=3), records_at="users")
    assert ids(pages) == [[1, 2, 3], [4, 5, 6], [7]]


async def test_page_number_follows_next_page_field(fake_time: FakeTime) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"])
        chunk = RECORDS[(page - 1) * 3 : page * 3]
        following = page + 1 if page * 3 < len(RECORDS) else None
        return httpx.Response(200, json={"users": chunk, "next_page": following})

    style = PageNumber(size=3, next_path="next_page")
    async with mock_client(handler, fake_time) as client:
        pages = await collect(client, "/users", style, records_at="users", params={"q": "a"})
    assert ids(pages) == [[1, 2, 3], [4, 5, 6], [7]]


async def test_offset_limit_top_level_list(fake_time: FakeTime) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.query.decode())
        offset, limit = int(request.url.params["offset"]), int(request.url.params["limit"])
        return httpx.Response(200, json=RECORDS[offset : offset + limit])

    async with mock_client(handler, fake_time) as client:
        pages = await collect(client, "/items", OffsetLimit(limit=4))
    assert ids(pages) == [[1, 2, 3, 4], [5, 6, 7]]
    assert seen == ["offset=0&limit=4", "offset=4&limit=4"]


async def test_cursor_from_a_nested_path(fake_time: FakeTime) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        start = int(request.url.params.get("after", "0"))
        chunk = RECORDS[start : start + 3]
        token = str(start + 3) if start + 3 < len(RECORDS) else None
        return httpx.Response(200, json={"result": {"items": chunk}, "meta": {"next": token}})

    style = Cursor(param="after", next_path="meta.next", size_param="limit", size=3)
    async with mock_client(handler, fake_time) as client:
        pages = await collect(client, "/c", style, records_at="result.items")
    assert ids(pages) == [[1, 2, 3], [4, 5, 6], [7]]


async def test_link_header_relative_and_absolute(fake_time: FakeTime) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params.get("page", "1"))
        links = {
            1: '</v1/things?page=2>; rel="next", </v1/things?page=3>; rel="last"',
            2: '<https://api.example.test/v1/things?page=3>; rel="next"',
            3: '</v1/things?page=1>; rel="first"',
        }
        return httpx.Response(200, json={"data": [{"id": page}]}, headers={"Link": links[page]})

    async with mock_client(handler, fake_time) as client:
        pages = await collect(client, "/v1/things", LinkHeader(), records_at="data")
    assert ids(pages) == [[1], [2], [3]]


async def test_endless_cursor_is_stopped(fake_time: FakeTime) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": [{"id": 1}], "next_cursor": "same"})

    async with mock_client(handler, fake_time) as client:
        with pytest.raises(PageWalkTooLong, match="already read"):
            await collect(client, "/c", Cursor(), records_at="data")


async def test_max_pages_guard(fake_time: FakeTime) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        n = int(request.url.params.get("cursor", "0"))
        return httpx.Response(200, json={"data": [{"id": n}], "next_cursor": str(n + 1)})

    async with mock_client(handler, fake_time) as client:
        walk = client.paginate("/c", Cursor(), records_at="data", guard=PageGuard(max_pages=5))
        got = []
        with pytest.raises(PageWalkTooLong, match="more than 5 pages"):
            async for page in walk:
                got.append(page.number)
    assert got == [1, 2, 3, 4, 5]


async def test_gigantic_page_guard(fake_time: FakeTime) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": [{"id": n} for n in range(50)]})

    guard = PageGuard(max_records_per_page=10)
    async with mock_client(handler, fake_time) as client:
        with pytest.raises(PageTooLarge, match="50 records, more than 10"):
            await collect(client, "/c", Cursor(), records_at="data", guard=guard)


async def test_records_not_a_list_is_malformed(fake_time: FakeTime) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": {"id": 1}})

    async with mock_client(handler, fake_time) as client:
        with pytest.raises(MalformedResponse, match="at 'users', got NoneType"):
            await collect(client, "/c", Cursor(), records_at="users")
        with pytest.raises(MalformedResponse, match="at 'data', got dict"):
            await collect(client, "/c", Cursor(), records_at="data")


async def test_link_to_another_origin_is_not_followed(fake_time: FakeTime) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        link = '<https://evil.example.test/steal?page=2>; rel="next"'
        return httpx.Response(200, json=[{"id": 1}], headers={"Link": link})

    async with mock_client(handler, fake_time) as client:
        with pytest.raises(PaginationError, match="another origin"):
            await collect(client, "/things", LinkHeader())
    assert seen == ["https://api.example.test/things"]
