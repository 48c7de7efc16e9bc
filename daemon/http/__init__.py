"""HTTP machinery every connector uses, written once, over :class:`httpx.AsyncClient`.

- :mod:`daemon.http.errors`: one exception root; whether to retry is data on the error.
- :mod:`daemon.http.auth`: API key, bearer, basic and OAuth2 as :class:`httpx.Auth`.
- :mod:`daemon.http.ratelimit`: a token bucket per system that also obeys the server's headers.
- :mod:`daemon.http.retry`: the one retry loop (jittered exponential backoff, a budget).
- :mod:`daemon.http.pagination`: page number, offset/limit, cursor and Link-header walks.
- :mod:`daemon.http.conditional`: If-Match / If-Unmodified-Since for conditional writes.
- :mod:`daemon.http.client`: :class:`HttpClient`, the facade that composes them.
"""

from daemon.http.auth import (
    ApiKeyHeader,
    ApiKeyQuery,
    BasicAuth,
    BearerToken,
    OAuth2ClientCredentials,
    OAuth2RefreshToken,
)
from daemon.http.client import HttpClient
from daemon.http.conditional import Precondition
from daemon.http.errors import (
    Conflict,
    HttpError,
    MalformedResponse,
    NotFound,
    PageTooLarge,
    PageWalkTooLong,
    PaginationError,
    PreconditionFailed,
    RateLimited,
    ReadTooOld,
    Rejected,
    Unauthorized,
    Unavailable,
)
from daemon.http.pagination import (
    Cursor,
    LinkHeader,
    OffsetLimit,
    Page,
    PageGuard,
    PageNumber,
)
from daemon.http.ratelimit import RateLimiter
from daemon.http.retry import RetryPolicy

__all__ = [
    "ApiKeyHeader",
    "ApiKeyQuery",
    "BasicAuth",
    "BearerToken",
    "Conflict",
    "Cursor",
    "HttpClient",
    "HttpError",
    "LinkHeader",
    "MalformedResponse",
    "NotFound",
    "OAuth2ClientCredentials",
    "OAuth2RefreshToken",
    "OffsetLimit",
    "Page",
    "PageGuard",
    "PageNumber",
    "PageTooLarge",
    "PageWalkTooLong",
    "PaginationError",
    "Precondition",
    "PreconditionFailed",
    "RateLimited",
    "RateLimiter",
    "ReadTooOld",
    "Rejected",
    "RetryPolicy",
    "Unauthorized",
    "Unavailable",
]
