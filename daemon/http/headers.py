"""Reading the headers servers use to say "slow down"; the headers that name a read."""

from __future__ import annotations

import email.utils
from collections.abc import Mapping

REQUEST_ID = "X-Request-Id"
"""Sent with a read of one record: an id the write decided on it names (:data:`READ_ID`)."""
READ_ID = "X-Syncline-Read-Id"
"""Sent with a write without a precondition: the :data:`REQUEST_ID` of the read it was
decided on."""
READ_AGE = "X-Syncline-Read-Age"
"""Sent with a write without a precondition: seconds (the client's clock) from that read's
answer in hand to this write sent, the lane's own share of the window between them. Evidence
for whoever journals writes (the sandbox, the chaos run's oracle); no API needs it."""

# A reset value this large is a Unix time, not a number of seconds (GitHub style).
_EPOCH_THRESHOLD = 1_000_000_000


def retry_after_seconds(value: str | None, wall_now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or an HTTP date).

    Args:
        value: the header value, or ``None`` when absent.
        wall_now: the current Unix time, used for the HTTP-date form.

    Returns:
        A non-negative number of seconds, or ``None`` when absent or unreadable.
    """
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - wall_now)


def rate_limit_reset_seconds(headers: Mapping[str, str], wall_now: float) -> float | None:
    """Seconds until the server's budget returns, when ``X-RateLimit-Remaining`` is 0.

    ``X-RateLimit-Reset`` is read as seconds from now, or as a Unix time when it is that big.
    Returns ``None`` when there is budget left or the headers are absent or unreadable.
    """
    remaining = _number(headers.get("x-ratelimit-remaining"))
    if remaining is None or remaining > 0:
        return None
    reset = _number(headers.get("x-ratelimit-reset"))
    if reset is None:
        return None
    if reset >= _EPOCH_THRESHOLD:
        reset -= wall_now
    return max(0.0, reset)


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value.strip())
    except ValueError:
        return None
