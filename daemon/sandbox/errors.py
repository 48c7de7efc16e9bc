"""Errors of the simulated systems. The store raises them; the HTTP layer of each system
translates them, in one place, into that API's status codes and error bodies.

::

    SandboxError                 root of daemon/sandbox/
    ├── ApiError                 a request the API refuses, with its HTTP status
    │   ├── BadRequest           400: a malformed parameter, cursor or body
    │   ├── Unauthorized         401: missing or wrong credentials
    │   ├── NotFound             404: no live record with that id
    │   ├── DuplicateKey         409: a unique field (e.g. email) is already taken
    │   ├── PreconditionFailed   412: If-Match names a version the record no longer has
    │   ├── InvalidRecord        422: unknown fields, wrong types, dangling references
    │   ├── RateLimited          429: the token bucket is empty, or an injected burst
    │   └── ServerError          5xx: an injected error, or the system is down
    └── ListenError              the server cannot listen on the requested address
"""

from __future__ import annotations

from collections.abc import Mapping


class SandboxError(Exception):
    """Root of every error raised by :mod:`daemon.sandbox`."""


class ApiError(SandboxError):
    """A request the simulated API refuses; ``status`` is the HTTP status it answers with."""

    status: int = 400
    code: str = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        details: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, str] = dict(details or {})
        self.headers: dict[str, str] = dict(headers or {})


class BadRequest(ApiError):
    """A malformed query parameter, cursor or request body."""


class Unauthorized(ApiError):
    """Missing or wrong credentials."""

    status = 401
    code = "unauthorized"


class NotFound(ApiError):
    """No live record with that id."""

    status = 404
    code = "not_found"


class DuplicateKey(ApiError):
    """A field that must be unique already holds this value in another live record."""

    status = 409
    code = "duplicate"

    def __init__(self, message: str, *, field: str, existing_id: str | int) -> None:
        super().__init__(message, details={field: "already taken"})
        self.field = field
        self.existing_id = existing_id


class PreconditionFailed(ApiError):
    """``If-Match`` names a version the record does not have any more."""

    status = 412
    code = "precondition_failed"

    def __init__(self, message: str, *, current_version: int) -> None:
        super().__init__(message)
        self.current_version = current_version


class InvalidRecord(ApiError):
    """The body names unknown fields, holds a value of the wrong type or a dangling reference."""

    status = 422
    code = "invalid_record"


class RateLimited(ApiError):
    """Too many requests; ``headers`` carry ``Retry-After`` and the rate-limit headers."""

    status = 429
    code = "rate_limited"


class ServerError(ApiError):
    """An injected server-side failure (500, 502, 503)."""

    status = 500
    code = "server_error"

    def __init__(self, message: str, *, status: int = 500) -> None:
        super().__init__(message)
        self.status = status


class ListenError(SandboxError):
    """The server cannot listen on the requested host and port."""
