"""Walking every page of a listing: page number, offset/limit, cursor token, Link header.

A style only decides what to ask for next from what the last page said; :func:`walk` owns the
loop, finds the records in each body (``records_at``: a dotted path such as ``data`` or
``users``, or ``None`` for a top-level list) and guards against a walk that never ends (a
page limit, a next page seen before) or a page too big to hold (a record limit).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from daemon.http.errors import MalformedResponse, PageTooLarge, PageWalkTooLong, PaginationError
from daemon.http.redact import redact_url

Params = dict[str, Any]


@dataclass(frozen=True)
class Fetched:
    """One answer: the response (headers, final URL) and its decoded JSON body."""

    response: httpx.Response
    body: Any


#: Fetches ``url`` with ``params`` (through auth, rate limit and retries).
Fetch = Callable[[str, Params], Awaitable[Fetched]]


@dataclass(frozen=True)
class Page:
    """One page of a listing.

    Attributes:
        records: the records on it, in the order the system sent them.
        number: 1 for the first page of the walk, 2 for the next, …
        url: the URL it came from, secrets masked.
        body: the whole decoded body (for fields beside the records, e.g. a total count).
    """

    records: list[Any]
    number: int
    url: str
    body: Any = field(repr=False)


class PaginationStyle(Protocol):
    """Decides the next request from the last page."""

    def first(self, params: Params) -> Params:
        """The query parameters of the first page."""
        ...

    def next(
        self, url: str, params: Params, fetched: Fetched, records: list[Any]
    ) -> tuple[str, Params] | None:
        """The next page's URL and parameters, or ``None`` when this was the last page."""
        ...


def path_get(body: Any, path: str | None) -> Any:
    """The value at dotted ``path`` in ``body`` (``None``/``""`` = the body itself)."""
    if not path:
        return body
    value = body
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _sized(params: Params, size_param: str | None, size: int | None) -> Params:
    """``params`` with the page size asked for, when the style sends one."""
    out = dict(params)
    if size_param and size:
        out[size_param] = size
    return out


@dataclass(frozen=True)
class PageNumber:
    """``?page=1&per_page=100``, then 2, 3, … .

    Stops at ``next_path``'s value when given (``null`` = last page; a number = that page),
    else at an empty page or one shorter than ``size``.
    """

    param: str = "page"
    size_param: str | None = "per_page"
    size: int | None = 100
    start: int = 1
    next_path: str | None = None

    def first(self, params: Params) -> Params:
        return _sized({**params, self.param: self.start}, self.size_param, self.size)

    def next(
        self, url: str, params: Params, fetched: Fetched, records: list[Any]
    ) -> tuple[str, Params] | None:
        current = int(params[self.param])
        if self.next_path is not None:
            following = path_get(fetched.body, self.next_path)
            if following is None or following is False or following == "":
                return None
            if isinstance(following, int) and not isinstance(following, bool):
                return url, {**params, self.param: following}
            return url, {**params, self.param: current + 1}
        if not records or (self.size is not None and len(records) < self.size):
            return None
        return url, {**params, self.param: current + 1}


@dataclass(frozen=True)
class OffsetLimit:
    """``?offset=0&limit=100``, then 100, 200, …; stops at a page shorter than ``limit``."""

    offset_param: str = "offset"
    limit_param: str = "limit"
    limit: int = 100

    def first(self, params: Params) -> Params:
        return {**params, self.offset_param: 0, self.limit_param: self.limit}

    def next(
        self, url: str, params: Params, fetched: Fetched, records: list[Any]
    ) -> tuple[str, Params] | None:
        if len(records) < self.limit:
            return None
        offset = int(params[self.offset_param]) + len(records)
        return url, {**params, self.offset_param: offset}


@dataclass(frozen=True)
class Cursor:
    """An opaque token at ``next_path`` in the body, sent back as ``param``; stops at null/""."""

    param: str = "cursor"
    next_path: str = "next_cursor"
    size_param: str | None = None
    size: int | None = None

    def first(self, params: Params) -> Params:
        return _sized(params, self.size_param, self.size)

    def next(
        self, url: str, params: Params, fetched: Fetched, records: list[Any]
    ) -> tuple[str, Params] | None:
        token = path_get(fetched.body, self.next_path)
        if token is None or token == "":
            return None
        return url, {**params, self.param: str(token)}


@dataclass(frozen=True)
class LinkHeader:
    """RFC 8288: follow the ``Link: <…>; rel="next"`` URL (it carries its own query)."""

    size_param: str | None = None
    size: int | None = None

    def first(self, params: Params) -> Params:
        return _sized(params, self.size_param, self.size)

    def next(
        self, url: str, params: Params, fetched: Fetched, records: list[Any]
    ) -> tuple[str, Params] | None:
        link = fetched.response.links.get("next", {}).get("url")
        if not link:
            return None
        here = fetched.response.url
        following = here.join(link)
        # Our credentials go with every page: never follow a link to another origin.
        if (following.scheme, following.host, following.port) != (
            here.scheme,
            here.host,
            here.port,
        ):
            raise PaginationError(
                f"the next-page link points to another origin ({following.scheme}://"
                f"{following.host}); not following it with our credentials",
                method="GET",
                url=redact_url(here),
            )
        return str(following), {}


@dataclass(frozen=True)
class PageGuard:
    """Limits that turn a runaway walk into a clear error instead of a hang or a heap."""

    max_pages: int = 10_000
    max_records_per_page: int = 10_000


async def walk(
    fetch: Fetch,
    url: str,
    style: PaginationStyle,
    *,
    params: Mapping[str, Any] | None = None,
    records_at: str | None = None,
    guard: PageGuard | None = None,
    secret_params: tuple[str, ...] = (),
) -> AsyncIterator[Page]:
    """Yield every page of the listing at ``url``, first to last.

    Raises:
        MalformedResponse: the records are not a list at ``records_at``.
        PageTooLarge: a page holds more than ``guard.max_records_per_page`` records.
        PageWalkTooLong: more than ``guard.max_pages`` pages, or a next page seen before.
    """
    guard = guard or PageGuard()
    request: tuple[str, Params] | None = (url, style.first(dict(params or {})))
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    number = 0
    while request is not None:
        page_url, page_params = request
        key = (page_url, tuple(sorted((k, str(v)) for k, v in page_params.items())))
        shown = redact_url(httpx.URL(page_url, params=page_params), secret_params)
        if key in seen:
            raise PageWalkTooLong(
                f"the next page after page {number} is one already read (an endless walk)",
                method="GET",
                url=shown,
            )
        if number >= guard.max_pages:
            raise PageWalkTooLong(
                f"more than {guard.max_pages} pages; stopped (raise PageGuard.max_pages?)",
                method="GET",
                url=shown,
            )
        seen.add(key)
        number += 1
        fetched = await fetch(page_url, page_params)
        records = path_get(fetched.body, records_at)
        if not isinstance(records, list):
            where = f"at {records_at!r}" if records_at else "at the top level"
            raise MalformedResponse(
                f"expected a list of records {where}, got {type(records).__name__}",
                method="GET",
                url=shown,
                status=fetched.response.status_code,
            )
        if len(records) > guard.max_records_per_page:
            raise PageTooLarge(
                f"page {number} has {len(records)} records, more than {guard.max_records_per_page}",
                method="GET",
                url=shown,
                status=fetched.response.status_code,
            )
        yield Page(records=records, number=number, url=shown, body=fetched.body)
        request = style.next(page_url, page_params, fetched, records)
