"""Opaque keyset cursors: where a walk over ``(timestamp, id)`` order stopped."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from daemon.sandbox.errors import BadRequest


@dataclass(frozen=True)
class Cursor:
    """A position in one listing.

    Attributes:
        listing: which listing it belongs to (``contacts``, ``contacts/deleted``); a cursor
            is refused by any other.
        since_ms: the lower bound the walk started with.
        after_ms: the timestamp of the last record returned.
        after_key: the key of the last record returned.
    """

    listing: str
    since_ms: int
    after_ms: int
    after_key: int

    def encode(self) -> str:
        """The token a client sends back."""
        raw = json.dumps([self.listing, self.since_ms, self.after_ms, self.after_key])
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str, *, listing: str) -> Cursor:
        """Read a token made by :meth:`encode` for ``listing``.

        Raises:
            BadRequest: the token is not one, or belongs to another listing.
        """
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            name, since_ms, after_ms, after_key = json.loads(raw)
        except (binascii.Error, ValueError, TypeError):
            raise BadRequest("cursor is not valid") from None
        numbers = (since_ms, after_ms, after_key)
        if name != listing or not all(type(n) is int for n in numbers):
            raise BadRequest("cursor is not valid for this listing")
        return cls(name, since_ms, after_ms, after_key)
