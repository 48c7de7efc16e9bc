"""Errors raised by :mod:`daemon.http`.

One root; whether to try again is data on the error (``retriable``), read by the one retry
loop in :mod:`daemon.http.retry`::

    HttpError                 root (a DaemonError); method, url (secrets masked), status,
    │                         excerpt (the first bytes of the body, secrets masked)
    ├── Unavailable           connect error, timeout, 5xx                    retriable
    ├── RateLimited           429; ``retry_after`` seconds when the server said  retriable
    ├── Unauthorized          401 (after one token refresh, for OAuth2)      not retriable
    ├── NotFound              404                                            not retriable
    ├── Conflict              409 (e.g. a duplicate key)                     not retriable
    ├── PreconditionFailed    412: the record changed since it was read; re-read it
    │   └── ReadTooOld        not sent: the read it depends on is too old now   retriable
    ├── Rejected              any other 4xx (or unexpected non-2xx)          not retriable
    ├── MalformedResponse     HTML or invalid JSON where JSON was expected   not retriable
    └── PaginationError       a page walk that cannot go on                  not retriable
        ├── PageWalkTooLong   more pages than the guard allows, or a cursor that repeats
        └── PageTooLarge      a page with more records than the guard allows

``MalformedResponse`` is not retriable *for that record*: asking again usually gets the same
body. Servers that return a maintenance page now and then recover on their own; the caller's
next poll tries again.
"""

from __future__ import annotations

from daemon.errors import DaemonError

EXCERPT_CHARS = 200


class HttpError(DaemonError):
    """Root of everything :mod:`daemon.http` raises on purpose.

    Attributes:
        method: the HTTP method of the request.
        url: the request URL, secrets masked.
        status: the response status, or ``None`` when no response came.
        excerpt: the start of the response body (or the transport error), secrets masked.
    """

    retriable: bool = False

    def __init__(
        self,
        reason: str,
        *,
        method: str,
        url: str,
        status: int | None = None,
        excerpt: str = "",
    ) -> None:
        self.reason = reason
        self.method = method
        self.url = url
        self.status = status
        self.excerpt = excerpt[:EXCERPT_CHARS]
        status_text = f" -> {status}" if status is not None else ""
        detail = f": {self.excerpt}" if self.excerpt else ""
        super().__init__(f"{method} {url}{status_text}: {reason}{detail}")


class Unavailable(HttpError):
    """The system did not answer usefully now: connect error, timeout or 5xx."""

    retriable = True


class RateLimited(HttpError):
    """429 Too Many Requests.

    Attributes:
        retry_after: seconds the server asked us to wait, or ``None`` when it did not say.
    """

    retriable = True

    def __init__(
        self,
        reason: str,
        *,
        method: str,
        url: str,
        status: int | None = 429,
        excerpt: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(reason, method=method, url=url, status=status, excerpt=excerpt)
        self.retry_after = retry_after


class Unauthorized(HttpError):
    """401: the credentials were refused (after one refresh, where the auth can refresh)."""


class NotFound(HttpError):
    """404: no such record (or it was deleted)."""


class Conflict(HttpError):
    """409: the write conflicts with the system's state (e.g. a duplicate unique key)."""


class PreconditionFailed(HttpError):
    """412: the record changed since its version was read; re-read it and decide again."""


class ReadTooOld(PreconditionFailed):
    """An unconditional write was not sent: by the time it could go (the rate limit held it,
    the process was slow), the read it was decided on was older than the caller allows.
    Nothing was written; read the record again and decide again.

    Retriable: a caller that keeps getting it waits and runs the write again later; the retry
    loop never repeats it by itself (the write it guards is sent once,
    :meth:`daemon.connector.rest.RestEntity.update`).
    """

    retriable = True


class Rejected(HttpError):
    """Any other 4xx (or an unexpected non-2xx): the request itself is wrong; do not repeat it."""


class MalformedResponse(HttpError):
    """The body is not the JSON we expected (an HTML page, a truncated or invalid body)."""


class PaginationError(HttpError):
    """A page walk that cannot go on."""


class PageWalkTooLong(PaginationError):
    """More pages than the guard allows, or a next-page link or cursor seen before."""


class PageTooLarge(PaginationError):
    """A page with more records than the guard allows."""
