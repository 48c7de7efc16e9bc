"""Webhook delivery: signed, fire-and-forget POSTs about changed records.

Each delivery is a JSON body ``{"event", "id", "occurred_at"}`` with headers

- ``X-Timestamp``: the sending time, Unix seconds (the wall clock, not the simulated one, so a
  receiver can check freshness against its own clock),
- ``X-Signature``: hex HMAC-SHA256 with the shared secret over ``timestamp + "." + body``,
- ``X-Delivery-Id``: unique per delivery.

A delivery is never retried; a failure (non-2xx, timeout, refused connection) is counted.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Signature`` of ``body`` sent at ``timestamp``."""
    message = timestamp.encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class WebhookTarget:
    """Where webhooks go and the secret that signs them."""

    url: str
    secret: str


@dataclass
class WebhookCounts:
    """How deliveries went."""

    sent: int = 0
    delivered: int = 0
    failed: int = 0


class WebhookSender:
    """Sends webhooks in the background; ``close`` cancels what is still in flight.

    Args:
        target: where to send; ``None`` sends nothing until ``target`` is set.
        timeout_s: how long one delivery may take.
    """

    def __init__(
        self,
        target: WebhookTarget | None = None,
        *,
        timeout_s: float = 2.0,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.target = target
        self.counts = WebhookCounts()
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._wall = wall
        self._session: aiohttp.ClientSession | None = None
        self._in_flight: set[asyncio.Task[None]] = set()

    def emit(self, payload: dict[str, Any]) -> None:
        """Schedule one delivery of ``payload`` (nothing happens without a target)."""
        target = self.target
        if target is None:
            return
        self.counts.sent += 1
        task = asyncio.get_running_loop().create_task(self._deliver(target, payload))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    def reset_counts(self) -> None:
        """Forget how past deliveries went."""
        self.counts = WebhookCounts()

    async def close(self) -> None:
        """Cancel deliveries in flight and close the HTTP session."""
        for task in list(self._in_flight):
            task.cancel()
        await asyncio.gather(*self._in_flight, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _deliver(self, target: WebhookTarget, payload: dict[str, Any]) -> None:
        body = json.dumps(payload, separators=(",", ":")).encode()
        timestamp = str(int(self._wall()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "syncline-sandbox-webhooks/1",
            "X-Timestamp": timestamp,
            "X-Signature": sign(target.secret, timestamp, body),
            "X-Delivery-Id": uuid.uuid4().hex,
        }
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.post(target.url, data=body, headers=headers) as response:
                ok = 200 <= response.status < 300
        except (aiohttp.ClientError, TimeoutError):
            ok = False
        if ok:
            self.counts.delivered += 1
        else:
            self.counts.failed += 1
