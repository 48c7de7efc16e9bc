"""Authentication as :class:`httpx.Auth` flows; secrets held as :class:`pydantic.SecretStr`.

Every auth here can say which values are secret (:meth:`SecretAuth.secret_values`) so the
client masks them in error messages and logs, and no ``repr`` shows one.

The OAuth2 flows get a token from the token endpoint through the same client (so through the
same transport), refresh it ``leeway`` seconds before it expires (by an injectable clock) and
once more when the API answers 401; a second 401 is the caller's :class:`Unauthorized`.
"""

from __future__ import annotations

import abc
import asyncio
import base64
import time
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any

import httpx
from pydantic import SecretStr

from daemon.http.errors import MalformedResponse, Unauthorized, Unavailable
from daemon.http.redact import redact_url, scrub


class SecretAuth(httpx.Auth):
    """An :class:`httpx.Auth` that knows its secrets."""

    #: Query parameters that carry a secret (masked in every URL shown).
    secret_params: tuple[str, ...] = ()

    def secret_values(self) -> tuple[str, ...]:
        """Every secret this auth holds now (masked wherever text leaves the client)."""
        return ()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(***)"


class ApiKeyHeader(SecretAuth):
    """An API key in a request header (``X-API-Key: <key>`` by default)."""

    def __init__(self, key: SecretStr, header: str = "X-API-Key") -> None:
        self.key = key
        self.header = header

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers[self.header] = self.key.get_secret_value()
        yield request

    def secret_values(self) -> tuple[str, ...]:
        return (self.key.get_secret_value(),)

    def __repr__(self) -> str:
        return f"ApiKeyHeader(header={self.header!r}, key=***)"


class ApiKeyQuery(SecretAuth):
    """An API key in a query parameter (``?api_key=<key>`` by default)."""

    def __init__(self, key: SecretStr, param: str = "api_key") -> None:
        self.key = key
        self.param = param
        self.secret_params = (param,)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.url = request.url.copy_merge_params({self.param: self.key.get_secret_value()})
        yield request

    def secret_values(self) -> tuple[str, ...]:
        return (self.key.get_secret_value(),)

    def __repr__(self) -> str:
        return f"ApiKeyQuery(param={self.param!r}, key=***)"


class BearerToken(SecretAuth):
    """A fixed token: ``Authorization: Bearer <token>``."""

    def __init__(self, token: SecretStr) -> None:
        self.token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.token.get_secret_value()}"
        yield request

    def secret_values(self) -> tuple[str, ...]:
        return (self.token.get_secret_value(),)


class BasicAuth(SecretAuth):
    """HTTP basic auth: ``Authorization: Basic base64(user:password)``."""

    def __init__(self, username: str, password: SecretStr) -> None:
        self.username = username
        self.password = password

    def _header(self) -> str:
        pair = f"{self.username}:{self.password.get_secret_value()}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header()
        yield request

    def secret_values(self) -> tuple[str, ...]:
        # The encoded header would reveal the password as surely as the password itself.
        return (self.password.get_secret_value(), self._header().removeprefix("Basic "))

    def __repr__(self) -> str:
        return f"BasicAuth(username={self.username!r}, password=***)"


class _OAuth2(SecretAuth, abc.ABC):
    """Shared by the OAuth2 flows: a bearer token from a token endpoint, refreshed in time."""

    requires_response_body = True

    def __init__(
        self,
        token_url: str,
        *,
        client_id: str | None,
        client_secret: SecretStr | None,
        scope: str | None,
        clock: Callable[[], float],
        leeway_seconds: float,
        client_auth: str,
    ) -> None:
        if client_auth not in ("body", "basic"):
            raise ValueError("client_auth must be 'body' or 'basic'")
        self.token_url = token_url
        self.client_id = client_id
        self.client_secret = client_secret
        self.scope = scope
        self.client_auth = client_auth
        self._clock = clock
        self._leeway = leeway_seconds
        self._access: SecretStr | None = None
        self._expires_at: float | None = None
        self._lock = asyncio.Lock()
        #: How many times a token was fetched (for tests and status).
        self.refreshes = 0

    @abc.abstractmethod
    def _grant(self) -> dict[str, str]:
        """The form fields of this flow's token request (without client credentials)."""

    def _accept_extra(self, body: dict[str, Any]) -> None:
        """Keep whatever else the token response carries (a rotated refresh token)."""

    def secret_values(self) -> tuple[str, ...]:
        values = []
        if self.client_secret is not None:
            values.append(self.client_secret.get_secret_value())
        if self._access is not None:
            values.append(self._access.get_secret_value())
        return tuple(values)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(token_url={self.token_url!r}, "
            f"client_id={self.client_id!r}, secrets=***)"
        )

    def _fresh(self) -> bool:
        if self._access is None:
            return False
        if self._expires_at is None:
            return True
        return self._clock() < self._expires_at - self._leeway

    def _token_request(self) -> httpx.Request:
        data = self._grant()
        if self.scope:
            data["scope"] = self.scope
        headers = {"Accept": "application/json"}
        if self.client_id is not None:
            if self.client_auth == "basic":
                secret = self.client_secret.get_secret_value() if self.client_secret else ""
                pair = f"{self.client_id}:{secret}".encode()
                headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
            else:
                data["client_id"] = self.client_id
                if self.client_secret is not None:
                    data["client_secret"] = self.client_secret.get_secret_value()
        return httpx.Request("POST", self.token_url, data=data, headers=headers)

    def _accept(self, response: httpx.Response) -> None:
        secrets = (*self.secret_values(), *self._grant().values())
        url = redact_url(response.request.url)
        excerpt = scrub(response.text[:400], secrets)
        if response.status_code >= 500:
            raise Unavailable(
                "token endpoint failed",
                method="POST",
                url=url,
                status=response.status_code,
                excerpt=excerpt,
            )
        if response.status_code != 200:
            raise Unauthorized(
                "token endpoint refused the credentials",
                method="POST",
                url=url,
                status=response.status_code,
                excerpt=excerpt,
            )
        try:
            body = response.json()
        except ValueError:
            body = None
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(body, dict) or not isinstance(token, str) or not token:
            raise MalformedResponse(
                "token response has no access_token",
                method="POST",
                url=url,
                status=response.status_code,
                excerpt=scrub(excerpt, [str(token)]),
            )
        self._access = SecretStr(token)
        expires_in = body.get("expires_in")
        self._expires_at = (
            self._clock() + float(expires_in)
            if isinstance(expires_in, int | float) and not isinstance(expires_in, bool)
            else None
        )
        self._accept_extra(body)
        self.refreshes += 1

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError(f"{type(self).__name__} works with httpx.AsyncClient only")

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        async with self._lock:
            if not self._fresh():
                token_response = yield self._token_request()
                await token_response.aread()
                self._accept(token_response)
            assert self._access is not None
            used = self._access
        request.headers["Authorization"] = f"Bearer {used.get_secret_value()}"
        response = yield request
        if response.status_code != 401:
            return
        await response.aread()
        async with self._lock:
            # Another request may have refreshed while this one was in flight.
            if self._access is used:
                token_response = yield self._token_request()
                await token_response.aread()
                self._accept(token_response)
            assert self._access is not None
            request.headers["Authorization"] = f"Bearer {self._access.get_secret_value()}"
        yield request


class OAuth2ClientCredentials(_OAuth2):
    """OAuth2 client-credentials grant (RFC 6749 section 4.4)."""

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: SecretStr,
        *,
        scope: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        leeway_seconds: float = 30.0,
        client_auth: str = "body",
    ) -> None:
        super().__init__(
            token_url,
            client_id=client_id,
            client_secret=client_secret,
            scope=scope,
            clock=clock,
            leeway_seconds=leeway_seconds,
            client_auth=client_auth,
        )

    def _grant(self) -> dict[str, str]:
        return {"grant_type": "client_credentials"}


class OAuth2RefreshToken(_OAuth2):
    """OAuth2 refresh-token grant (RFC 6749 section 6); keeps a rotated refresh token."""

    def __init__(
        self,
        token_url: str,
        refresh_token: SecretStr,
        *,
        client_id: str | None = None,
        client_secret: SecretStr | None = None,
        access_token: SecretStr | None = None,
        expires_at: float | None = None,
        scope: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        leeway_seconds: float = 30.0,
        client_auth: str = "body",
    ) -> None:
        super().__init__(
            token_url,
            client_id=client_id,
            client_secret=client_secret,
            scope=scope,
            clock=clock,
            leeway_seconds=leeway_seconds,
            client_auth=client_auth,
        )
        self.refresh_token = refresh_token
        self._access = access_token
        self._expires_at = expires_at

    def _grant(self) -> dict[str, str]:
        token = self.refresh_token.get_secret_value()
        return {"grant_type": "refresh_token", "refresh_token": token}

    def _accept_extra(self, body: dict[str, Any]) -> None:
        rotated = body.get("refresh_token")
        if isinstance(rotated, str) and rotated:
            self.refresh_token = SecretStr(rotated)

    def secret_values(self) -> tuple[str, ...]:
        return (*super().secret_values(), self.refresh_token.get_secret_value())
