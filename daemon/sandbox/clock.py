"""A wall clock that tests can freeze, set and advance, and the timestamp formats the APIs use."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from daemon.sandbox.errors import BadRequest

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class SimClock:
    """The simulated system's notion of "now", in integer milliseconds since the epoch.

    Running, it follows the wall clock plus an offset; frozen, it stands still until advanced.
    Freezing lets a test produce equal ``updated_at`` values on purpose.
    """

    def __init__(self, wall: Callable[[], float] = time.time) -> None:
        self._wall = wall
        self._offset_ms = 0
        self._frozen_ms: int | None = None

    @property
    def frozen(self) -> bool:
        """Whether the clock stands still."""
        return self._frozen_ms is not None

    def now_ms(self) -> int:
        """The current simulated time."""
        if self._frozen_ms is not None:
            return self._frozen_ms
        return self._wall_ms() + self._offset_ms

    def freeze(self) -> None:
        """Stop the clock at the current simulated time."""
        self._frozen_ms = self.now_ms()

    def unfreeze(self) -> None:
        """Let the clock run again from where it stands, without a jump."""
        if self._frozen_ms is not None:
            self._offset_ms = self._frozen_ms - self._wall_ms()
            self._frozen_ms = None

    def set(self, at_ms: int) -> None:
        """Jump to ``at_ms`` (frozen or running, as before)."""
        if self._frozen_ms is not None:
            self._frozen_ms = at_ms
        else:
            self._offset_ms = at_ms - self._wall_ms()

    def advance(self, delta_ms: int) -> None:
        """Move the clock by ``delta_ms`` (negative moves it back)."""
        self.set(self.now_ms() + delta_ms)

    def reset(self) -> None:
        """Follow the wall clock again."""
        self._offset_ms = 0
        self._frozen_ms = None

    def _wall_ms(self) -> int:
        return int(self._wall() * 1000)


def format_iso_ms(epoch_ms: int) -> str:
    """``2024-05-01T12:34:56.789Z``."""
    moment = datetime.fromtimestamp(epoch_ms // 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


def format_iso_seconds(epoch_ms: int) -> str:
    """``2024-05-01T12:34:56Z`` (the milliseconds are dropped)."""
    return datetime.fromtimestamp(epoch_ms // 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str, *, name: str) -> int:
    """Parse an ISO-8601 timestamp into epoch milliseconds; a naive one is taken as UTC."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise BadRequest(f"{name} must be an ISO-8601 timestamp, got {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    # Integer arithmetic: float seconds would turn .789 into 788 ms.
    return (moment - _EPOCH) // timedelta(milliseconds=1)
