"""Conflict and record events for the review tests, built like the merge builds them."""

from __future__ import annotations

from typing import Any

from streams.events import ConflictEvent, RecordEvent

T0 = 1_764_000_000.0  # 2025-11-24 16:00:00 UTC


def candidate(value: Any, system: str, n: int, ts: float, deleted: bool = False
              ) -> dict[str, Any]:
    return {"value": value, "system": system, "dot": f"{system}:{n}", "source_ts": ts,
            "deleted": deleted}


def conflict(cid: str = "c1", field: str = "name", *, current: tuple[Any, str, int] = (
                 "Ann", "helpdesk", 1),
             incoming: tuple[Any, str, int] = ("Anne", "crm", 2), at: float = T0,
             status: str = "open", policy: str = "manual", decision: str = "open",
             value: Any = "__current__", resolution: dict[str, Any] | None = None,
             superseded_by: str | None = None, entity: str = "contact") -> ConflictEvent:
    cur = candidate(*current, ts=at - 5)
    inc = candidate(*incoming, ts=at)
    if value == "__current__":
        value = cur["value"] if decision in ("open", "current") else inc["value"]
    return ConflictEvent.model_validate({
        "schema": ConflictEvent.SCHEMA, "conflict_id": f"{cid}/{field}/{inc['dot']}",
        "canonical_id": cid, "entity": entity, "field": field, "current": cur,
        "incoming": inc, "policy": policy, "decision": decision, "value": value,
        "deleted": False, "status": status, "resolution": resolution,
        "superseded_by": superseded_by})


def record(cid: str = "c1", links: dict[str, str] | None = None, **fields: Any) -> RecordEvent:
    fields = fields or {"name": "Ann", "email": "ann@example.com"}
    return RecordEvent.model_validate({
        "schema": RecordEvent.SCHEMA, "canonical_id": cid, "entity": "contact", "version": 3,
        "deleted": False, "fields": fields,
        "provenance": {name: {"system": "crm", "dot": "crm:1", "source_ts": T0 - 100}
                       for name in fields},
        "clock": {"crm": 1}, "links": links or {"crm": "42", "helpdesk": "7"},
        "open_conflicts": 1, "changed": []})
