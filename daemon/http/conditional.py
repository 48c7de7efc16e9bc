"""Conditional writes: send the version we read, so a write never overwrites an unseen edit.

A write with :class:`Precondition` that the server refuses with 412 raises
:class:`~daemon.http.errors.PreconditionFailed`; the caller re-reads the record and decides
again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime

import httpx


@dataclass(frozen=True)
class Precondition:
    """The version a write depends on: an ETag, or else a last-modified time."""

    etag: str | None = None
    unmodified_since: datetime | None = None

    def __post_init__(self) -> None:
        if (self.etag is None) == (self.unmodified_since is None):
            raise ValueError("a precondition needs exactly one of etag or unmodified_since")
        if self.unmodified_since is not None and self.unmodified_since.tzinfo is None:
            raise ValueError("unmodified_since must be timezone-aware")

    @classmethod
    def from_response(cls, response: httpx.Response) -> Precondition | None:
        """The precondition a later write should carry, from the answer to a read."""
        etag = response.headers.get("etag")
        if etag:
            return cls(etag=etag)
        modified = response.headers.get("last-modified")
        if modified:
            try:
                return cls(unmodified_since=parsedate_to_datetime(modified))
            except (TypeError, ValueError):
                return None
        return None

    def headers(self) -> dict[str, str]:
        """The request headers that state this precondition."""
        if self.etag is not None:
            return {"If-Match": self.etag}
        assert self.unmodified_since is not None
        when = self.unmodified_since.astimezone(UTC)
        return {"If-Unmodified-Since": format_datetime(when, usegmt=True)}
