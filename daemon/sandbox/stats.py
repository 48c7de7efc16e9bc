"""Counters of what a simulated API was asked to do, so tests can tell whose writes were whose."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from daemon.sandbox.webhooks import WebhookCounts


@dataclass
class Stats:
    """Requests by status; API writes by method, resource and origin; admin ("user") edits.

    A write counts once the record store accepted it (even if a fault then damaged or held
    the response); a write the API refused counts under ``writes.rejected`` by status.
    The origin is the ``X-Origin`` header, else the ``User-Agent``, else ``unknown``.
    """

    requests: Counter[int] = field(default_factory=Counter)
    writes: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    unchanged_writes: int = 0
    rejected_writes: Counter[int] = field(default_factory=Counter)
    admin_edits: Counter[tuple[str, str]] = field(default_factory=Counter)
    replayed_creates: Counter[str] = field(default_factory=Counter)

    def count_request(self, status: int) -> None:
        """One API request answered with ``status``."""
        self.requests[status] += 1

    def count_write(self, method: str, resource: str, origin: str, *, changed: bool) -> None:
        """One accepted API write; ``changed`` is false when it left the record as it was."""
        self.writes[method, resource, origin] += 1
        if not changed:
            self.unchanged_writes += 1

    def count_rejected_write(self, status: int) -> None:
        """One API write refused with ``status``."""
        self.rejected_writes[status] += 1

    def count_replay(self, resource: str) -> None:
        """One create answered from its ``Idempotency-Key`` (nothing written)."""
        self.replayed_creates[resource] += 1

    def count_admin_edit(self, resource: str, op: str) -> None:
        """One edit made through ``/_admin/edit`` (a person in the UI)."""
        self.admin_edits[resource, op] += 1

    def reset(self) -> None:
        """Forget every count."""
        self.requests.clear()
        self.writes.clear()
        self.unchanged_writes = 0
        self.rejected_writes.clear()
        self.admin_edits.clear()
        self.replayed_creates.clear()

    def as_json(self, webhooks: WebhookCounts) -> dict[str, Any]:
        """The counts as a JSON object (see the README for its shape)."""

        def tally(position: int) -> dict[str, int]:
            totals: Counter[str] = Counter()
            for key, count in self.writes.items():
                totals[key[position]] += count
            return dict(sorted(totals.items()))

        return {
            "requests": {
                "total": self.requests.total(),
                "by_status": {str(k): v for k, v in sorted(self.requests.items())},
            },
            "writes": {
                "total": self.writes.total(),
                "unchanged": self.unchanged_writes,
                "by_method": tally(0),
                "by_resource": tally(1),
                "by_origin": tally(2),
                "detail": [
                    {"method": m, "resource": r, "origin": o, "count": n}
                    for (m, r, o), n in sorted(self.writes.items())
                ],
                "rejected": {str(k): v for k, v in sorted(self.rejected_writes.items())},
                "replayed_creates": dict(sorted(self.replayed_creates.items())),
            },
            "admin_edits": {
                "total": self.admin_edits.total(),
                "detail": [
                    {"resource": r, "op": op, "count": n}
                    for (r, op), n in sorted(self.admin_edits.items())
                ],
            },
            "webhooks": {
                "sent": webhooks.sent,
                "delivered": webhooks.delivered,
                "failed": webhooks.failed,
            },
        }
