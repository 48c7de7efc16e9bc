"""How a simulated API checks credentials: a bearer token, or an API key header / basic auth."""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from daemon.sandbox.errors import Unauthorized


class Authenticator(Protocol):
    """Checks one request's credentials."""

    def check(self, request: web.Request) -> None:
        """Return if the request carries valid credentials.

        Raises:
            Unauthorized: it does not.
        """

    @property
    def challenge(self) -> str:
        """The ``WWW-Authenticate`` value sent with a 401."""


@dataclass(frozen=True)
class BearerAuth:
    """``Authorization: Bearer <token>``."""

    token: str

    @property
    def challenge(self) -> str:
        """The ``WWW-Authenticate`` value sent with a 401."""
        return 'Bearer realm="sandbox"'

    def check(self, request: web.Request) -> None:
        """Accept the request only with the configured bearer token."""
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not _same(credentials.strip(), self.token):
            raise Unauthorized("a valid bearer token is required")


@dataclass(frozen=True)
class KeyOrBasicAuth:
    """An API key in a header, or HTTP basic auth; either configured one is accepted.

    Attributes:
        api_key: the key expected in ``header``; ``None`` disables key auth.
        basic: ``(user, password)`` for basic auth; ``None`` disables it.
        header: the header that carries the key.
    """

    api_key: str | None
    basic: tuple[str, str] | None = None
    header: str = "X-API-Key"

    @property
    def challenge(self) -> str:
        """The ``WWW-Authenticate`` value sent with a 401."""
        return 'Basic realm="sandbox"'

    def check(self, request: web.Request) -> None:
        """Accept the request with a valid API key header or valid basic credentials."""
        sent_key = request.headers.get(self.header)
        if self.api_key is not None and sent_key is not None and _same(sent_key, self.api_key):
            return
        if self.basic is not None and self._basic_matches(request):
            return
        raise Unauthorized("Couldn't authenticate you")

    def _basic_matches(self, request: web.Request) -> bool:
        assert self.basic is not None
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        user, _, password = decoded.partition(":")
        return _same(user, self.basic[0]) & _same(password, self.basic[1])


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())
