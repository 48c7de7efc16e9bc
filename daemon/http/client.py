"""The facade connectors use: one system's base URL, auth, rate limit, retries and decoding.

Every request takes a token from the system's :class:`RateLimiter`, goes through
:func:`retrying` with the system's :class:`RetryPolicy`, carries ``User-Agent`` and
``X-Origin: syncline`` (so simulated systems can count our writes apart from people's), and
is logged as one structured line with secrets masked. Failures become
:mod:`daemon.http.errors`; a body that should be JSON and is not is a
:class:`MalformedResponse`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any

import httpx
import orjson

from daemon.http.auth import SecretAuth
from daemon.http.conditional import Precondition
from daemon.http.errors import (
    Conflict,
    HttpError,
    MalformedResponse,
    NotFound,
    PreconditionFailed,
    RateLimited,
    ReadTooOld,
    Rejected,
    Unauthorized,
    Unavailable,
)
from daemon.http.headers import READ_AGE, READ_ID, retry_after_seconds
from daemon.http.pagination import Fetched, Page, PageGuard, PaginationStyle, Params, walk
from daemon.http.ratelimit import RateLimiter
from daemon.http.redact import SENSITIVE_PARAMS, redact_url, scrub
from daemon.http.retry import RetryPolicy, retrying

log = logging.getLogger(__name__)

USER_AGENT = "syncline/0.1"
ORIGIN = "syncline"


class _HttpxUrlRedaction(logging.Filter):
    """httpx logs every request's full URL at INFO; a key in the query must not reach a log."""

    def __init__(self) -> None:
        super().__init__()
        self.params: set[str] = set(SENSITIVE_PARAMS)

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact_url(arg, self.params) if isinstance(arg, httpx.URL) else arg
                for arg in record.args
            )
        return True


MAX_BODY_BYTES = 64 * 1024 * 1024
"""The largest answer a system may give (64 MiB decoded): a page of records is far smaller."""

_HTTPX_FILTER = _HttpxUrlRedaction()
logging.getLogger("httpx").addFilter(_HTTPX_FILTER)


class HttpClient:
    """HTTP to one system.

    Args:
        base_url: e.g. ``http://localhost:8101``; request paths are relative to it.
        auth: how to authenticate, or ``None``.
        limiter: the system's rate limiter (shared by everything that talks to the system);
            by default one that only obeys the server's headers.
        retry: the default retry policy.
        timeout: seconds (or an :class:`httpx.Timeout`) per attempt.
        system: the system's name, for logs.
        transport: an :class:`httpx.AsyncBaseTransport` (``httpx.MockTransport`` in tests).
        clock, sleep, rng: time and randomness for the retry loop (injectable for tests).
        wall: Unix seconds, to read a ``Retry-After`` given as an HTTP date.
        on_answer: called once per attempt with its HTTP status (``"200"``), or ``"error"``
            when no answer came (a timeout, a refused connection): for metrics.
        on_request: called once per attempt, before it is sent, with its method and URL
            (query included, secrets redacted): ``syncline check`` shows every request.
        on_wait: called with the seconds a request waited for the rate limit (the client's
            budget, or a pause a 429 answer asked for), when it waited: for metrics.
        on_latency: called once per attempt with its seconds, answered or not: for metrics.
        max_body_bytes: the largest answer read (decoded); a larger one is refused as
            :class:`MalformedResponse` before it fills the worker's memory.

    The OAuth2 token requests of ``auth`` go through the same transport but not through
    the limiter or the retry loop: a failed refresh fails the request that needed it.
    """

    def __init__(
        self,
        base_url: str,
        *,
        auth: SecretAuth | None = None,
        limiter: RateLimiter | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | httpx.Timeout = 10.0,
        system: str = "",
        user_agent: str = USER_AGENT,
        origin: str = ORIGIN,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        wall: Callable[[], float] = time.time,
        on_answer: Callable[[str], None] | None = None,
        on_request: Callable[[str, str], None] | None = None,
        on_wait: Callable[[float], None] | None = None,
        on_latency: Callable[[float], None] | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self.system = system
        self.max_body_bytes = max_body_bytes
        self._on_answer = on_answer
        self._on_request = on_request
        self._on_wait = on_wait
        self._on_latency = on_latency
        self.auth = auth
        self.limiter = limiter or RateLimiter.unlimited(clock=clock, sleep=sleep, wall=wall)
        self._wall = wall
        self.retry = retry or RetryPolicy()
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._secret_params = auth.secret_params if auth is not None else ()
        _HTTPX_FILTER.params.update(p.lower() for p in self._secret_params)
        self._client = httpx.AsyncClient(
            base_url=base_url,
            auth=auth,
            timeout=timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout),
            headers={
                "User-Agent": user_agent,
                "X-Origin": origin,
                "Accept": "application/json",
                **(headers or {}),
            },
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"HttpClient(system={self.system!r}, base_url={str(self._client.base_url)!r})"

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections."""
        await self._client.aclose()

    # -- the verbs connectors use ---------------------------------------------------------

    def now(self) -> float:
        """The client's clock (monotonic seconds): what ``send_by`` is measured in."""
        return self._clock()

    async def get_json(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """GET ``path`` and return its decoded JSON body."""
        return (await self.request("GET", path, params=params, headers=headers)).body

    async def get_versioned(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[Any, Precondition | None]:
        """GET ``path``; return its body and the precondition a later write should carry."""
        fetched = await self.request("GET", path, params=params, headers=headers)
        return fetched.body, Precondition.from_response(fetched.response)

    async def send_json(
        self,
        method: str,
        path: str,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        *,
        params: Mapping[str, Any] | None = None,
        precondition: Precondition | None = None,
        retry: RetryPolicy | None = None,
    ) -> Any:
        """Send ``json`` with ``method``; return the decoded answer (``None`` for no body).

        With ``precondition`` the write is conditional: a 412 raises
        :class:`PreconditionFailed` and nothing was written. Pass ``retry=RetryPolicy.never()``
        for a write that must not be repeated after a timeout (the first may have landed).
        """
        merged = {**(headers or {}), **(precondition.headers() if precondition else {})}
        fetched = await self.request(
            method, path, params=params, json=json, headers=merged, retry=retry
        )
        return fetched.body

    def paginate(
        self,
        path: str,
        style: PaginationStyle,
        *,
        params: Mapping[str, Any] | None = None,
        records_at: str | None = None,
        guard: PageGuard | None = None,
    ) -> AsyncIterator[Page]:
        """Every page of the listing at ``path``, as :class:`~daemon.http.pagination.Page`."""

        async def fetch(url: str, page_params: Params) -> Fetched:
            return await self.request("GET", url, params=page_params)

        return walk(
            fetch,
            path,
            style,
            params=params,
            records_at=records_at,
            guard=guard,
            secret_params=self._secret_params,
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        retry: RetryPolicy | None = None,
        send_by: float | None = None,
        decided_on: tuple[str | None, float] | None = None,
    ) -> Fetched:
        """One request with rate limit and retries; the answer with its JSON body decoded.

        ``send_by`` (seconds of :meth:`now`): the request is sent only if it can go by then;
        one the rate limit (or a slow process) would hold past it is not sent at all
        (:class:`ReadTooOld`). For a write decided on a read that must still be fresh.
        ``decided_on``: that read's request id and when its answer came (seconds of
        :meth:`now`); the request carries both, the age taken as it is sent
        (:data:`~daemon.http.headers.READ_ID`, :data:`~daemon.http.headers.READ_AGE`).
        """
        content = orjson.dumps(json) if json is not None else None
        send_headers = dict(headers or {})
        if content is not None:
            send_headers.setdefault("Content-Type", "application/json")

        async def attempt() -> Fetched:
            return await self._attempt(method, path, params, content, send_headers, send_by,
                                       decided_on)

        return await retrying(
            attempt, retry or self.retry, clock=self._clock, sleep=self._sleep, rng=self._rng,
            on_rate_limited=self._on_wait,
        )

    # -- one attempt ------------------------------------------------------------------------

    def _secrets(self) -> tuple[str, ...]:
        return self.auth.secret_values() if self.auth is not None else ()

    def _shown(self, url: httpx.URL) -> str:
        return scrub(redact_url(url, self._secret_params), self._secrets())

    async def _attempt(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        content: bytes | None,
        headers: Mapping[str, str],
        send_by: float | None = None,
        decided_on: tuple[str | None, float] | None = None,
    ) -> Fetched:
        waited = await self.limiter.acquire(send_by)
        if waited is not None and waited > 0 and self._on_wait is not None:
            self._on_wait(waited)
        query: Any = dict(params) if params else None
        if query and "?" in path:
            # httpx replaces a URL's own query with ``params``: keep both (a Location header
            # with a query, read with the entity's params), the URL's own first.
            url = httpx.URL(path)
            own = url.params
            query = [*own.multi_items(), *((k, v) for k, v in query.items() if k not in own)]
            path = str(url.copy_with(query=None))
        if decided_on is not None:
            # The lane's own share of the read-to-write window, as it sends: nothing is
            # awaited from here to the send.
            read_id, read_at = decided_on
            headers = {**headers, READ_AGE: f"{max(0.0, self._clock() - read_at):.6f}",
                       **({READ_ID: read_id} if read_id else {})}
        request = self._client.build_request(
            method,
            path,
            params=query,
            content=content,
            headers=headers,
        )
        # Checked after the rate limit and just before sending: nothing awaited in between.
        if waited is None or (send_by is not None and self._clock() > send_by):
            raise ReadTooOld("not sent: the read it was decided on is too old by now",
                             method=method, url=self._shown(request.url))
        if self._on_request is not None:
            self._on_request(method, self._shown(request.url))
        started = self._clock()
        try:
            response = await self._read_capped(request, started)
        except HttpError:
            raise  # from an OAuth2 token request, already translated
        except httpx.TimeoutException as exc:
            self._log(request, None, started, type(exc).__name__)
            raise Unavailable(
                f"timed out ({type(exc).__name__})", method=method, url=self._shown(request.url)
            ) from None
        except httpx.TransportError as exc:
            self._log(request, None, started, type(exc).__name__)
            raise Unavailable(
                f"connection failed ({type(exc).__name__})",
                method=method,
                url=self._shown(request.url),
                excerpt=scrub(str(exc), self._secrets()),
            ) from None
        self.limiter.observe(response.status_code, response.headers)
        self._log(request, response, started, None)
        if not response.is_success:
            raise self._error_for(response)
        return Fetched(response=response, body=self._decode(response))

    async def _read_capped(self, request: httpx.Request, started: float) -> httpx.Response:
        """The answer to ``request``, its body read only up to :attr:`max_body_bytes`."""
        streamed = await self._client.send(request, stream=True)
        chunks: list[bytes] = []
        try:
            declared = streamed.headers.get("content-length", "")
            size = int(declared) if declared.isdigit() else 0
            if size <= self.max_body_bytes:
                size = 0
                async for chunk in streamed.aiter_bytes():
                    size += len(chunk)
                    if size > self.max_body_bytes:
                        break
                    chunks.append(chunk)
        finally:
            await streamed.aclose()
        if size > self.max_body_bytes:
            self._log(request, streamed, started, None)
            raise MalformedResponse(
                f"the answer is larger than {self.max_body_bytes} bytes; not read",
                method=request.method, url=self._shown(request.url),
                status=streamed.status_code)
        # The body as read (decoded): the same answer, no longer a stream.
        headers = [(k, v) for k, v in streamed.headers.multi_items()
                   if k.lower() not in ("content-encoding", "content-length",
                                        "transfer-encoding")]
        return httpx.Response(streamed.status_code, headers=headers, content=b"".join(chunks),
                              request=request, extensions=streamed.extensions)

    def _log(
        self,
        request: httpx.Request,
        response: httpx.Response | None,
        started: float,
        failure: str | None,
    ) -> None:
        elapsed_ms = round((self._clock() - started) * 1000, 1)
        status = response.status_code if response is not None else None
        if self._on_answer is not None:
            self._on_answer("error" if status is None else str(status))
        if self._on_latency is not None:
            self._on_latency(elapsed_ms / 1000)
        url = self._shown(request.url)
        log.log(
            logging.DEBUG if response is not None and response.is_success else logging.INFO,
            "%s %s %s -> %s in %.1f ms",
            self.system or "http",
            request.method,
            url,
            status or failure,
            elapsed_ms,
            extra={
                "system": self.system,
                "http_method": request.method,
                "http_url": url,
                "http_status": status,
                "elapsed_ms": elapsed_ms,
            },
        )

    def _error_for(self, response: httpx.Response) -> HttpError:
        status = response.status_code
        method = response.request.method
        url = self._shown(response.request.url)
        excerpt = scrub(response.text[:400], self._secrets())
        if status == 429:
            retry_after = retry_after_seconds(response.headers.get("retry-after"), self._wall())
            return RateLimited(
                "rate limited",
                method=method,
                url=url,
                status=status,
                excerpt=excerpt,
                retry_after=retry_after,
            )
        kinds: dict[int, tuple[type[HttpError], str]] = {
            401: (Unauthorized, "credentials refused"),
            404: (NotFound, "not found"),
            409: (Conflict, "conflict"),
            412: (PreconditionFailed, "precondition failed: the record changed; re-read it"),
        }
        if status in kinds:
            kind, reason = kinds[status]
            return kind(reason, method=method, url=url, status=status, excerpt=excerpt)
        if status >= 500:
            return Unavailable(
                "server error", method=method, url=url, status=status, excerpt=excerpt
            )
        return Rejected("request rejected", method=method, url=url, status=status, excerpt=excerpt)

    def _decode(self, response: httpx.Response) -> Any:
        if response.status_code == 204 or not response.content:
            return None
        content_type = response.headers.get("content-type", "")
        text_start = response.content[:64].lstrip()[:1]
        if "html" in content_type or text_start == b"<":
            raise self._malformed(
                response, f"expected JSON, got HTML ({content_type or 'no content type'})")
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise self._malformed(
                response, f"invalid JSON ({exc.msg} at byte {exc.pos})") from None

    def _malformed(self, response: httpx.Response, message: str) -> MalformedResponse:
        """The error for a body that is not JSON, with the start of it (secrets scrubbed)."""
        return MalformedResponse(
            message,
            method=response.request.method,
            url=self._shown(response.request.url),
            status=response.status_code,
            excerpt=scrub(response.text[:200], self._secrets()),
        )
