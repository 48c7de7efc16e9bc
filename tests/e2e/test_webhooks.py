"""Webhooks from a sender that cannot sign, end to end: the delivery is the only way a change
in the CRM crosses (its polls are an hour apart), so what reaches the helpdesk is what the
receiver let through. Checked through the systems' own APIs and the worker's /metrics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from streams.kafka import KafkaSettings
from tests.e2e.harness import ENV, Stack, eventually, stack

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(300)]

SECRET = ENV["CRM_WEBHOOK_SECRET"]
EVENTS = {"records.after.insert": "created", "records.after.update": "updated",
          "records.after.delete": "deleted"}


def unsigned_hooks(data: dict[str, Any]) -> None:
    """The CRM as a NocoDB-like sender: a secret header, its own event names, rows in an array;
    and no polling to speak of, so only deliveries make its changes cross."""
    crm = data["systems"]["crm"]
    crm["webhooks"] = {"secret_env": "CRM_WEBHOOK_SECRET", "scheme": "header",
                       "secret_header": "X-Hook-Secret", "event_at": "type",
                       "id_at": "data.rows[*].id", "events": EVENTS}
    crm["entities"]["contact"]["poll_every_seconds"] = 3600


def delivery(event: str, *ids: str) -> dict[str, Any]:
    return {"type": event, "data": {"table_name": "contacts",
                                    "rows": [{"id": i, "email": "shown, not read"} for i in ids]}}


async def deliver(s: Stack, body: dict[str, Any], headers: dict[str, str] | None = None) -> int:
    url = f"http://127.0.0.1:{s.worker_port}/webhooks/crm/contact"
    async with httpx.AsyncClient(timeout=10) as client:
        answer = await client.post(url, json=body, headers=headers or {})
    return answer.status_code


async def webhook_counts(s: Stack) -> dict[str, float]:
    async with httpx.AsyncClient(timeout=10) as client:
        text = (await client.get(f"http://127.0.0.1:{s.worker_port}/metrics")).text
    return {sample.labels["outcome"]: sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "syncline_webhooks_total" and sample.labels["system"] == "crm"}


async def test_a_header_secret_delivery_naming_several_records_syncs_each(
        kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    async with stack(tmp_path, kafka_settings, customize=unsigned_hooks) as s:
        await s.admins["crm"].post("/_admin/webhooks", json={"url": None})  # the test sends them
        await s.start()
        good = {"X-Hook-Secret": SECRET}

        # Refused deliveries name a record that must then never cross.
        hidden = await s.create("crm", "hid@example.com", "Hid")
        assert await deliver(s, delivery("records.after.insert", hidden),
                             {"X-Hook-Secret": SECRET + "-not"}) == 401
        assert await deliver(s, delivery("records.after.insert", hidden)) == 401
        assert await deliver(s, delivery("records.after.insert", hidden),
                             {"X-Signature": SECRET}) == 401
        # An event it does not sync: answered 2xx (no retry), nothing read.
        assert await deliver(s, delivery("records.after.bulkInsert", hidden), good) == 200

        # One delivery, three records: each is read and created in the helpdesk.
        ids = [await s.create("crm", f"{n}@example.com", n.title()) for n in ("ana", "ben", "cai")]
        assert await deliver(s, delivery("records.after.insert", *ids), good) == 202
        people = {f"{n}@example.com": {"email": f"{n}@example.com", "name": n.title(),
                                       "phone": None, "tags": []} for n in ("ana", "ben", "cai")}

        async def crossed() -> bool:
            return set((await s.contacts())["helpdesk"]) == set(people)

        await eventually(crossed, 60, lambda: f"the three in the helpdesk; log {s.log()[-2000:]}")
        assert "hid@example.com" not in (await s.contacts())["helpdesk"]

        # The same delivery again, five times: reads, no writes.
        writes = (await s.writes())["helpdesk"]
        for _ in range(5):
            assert await deliver(s, delivery("records.after.insert", *ids), good) == 202
        await s.update("crm", "ana@example.com", phone="5550")
        assert await deliver(s, delivery("records.after.update", ids[0]), good) == 202
        people["ana@example.com"]["phone"] = "5550"

        async def edited() -> bool:
            return (await s.contacts())["helpdesk"].get("ana@example.com", {}).get(
                "phone") == "5550"

        await eventually(edited, 60, "Ana's phone in the helpdesk")
        contacts = await s.contacts()
        assert {e: {k: v for k, v in r.items() if k != "id"}
                for e, r in contacts["helpdesk"].items()} == people
        assert (await s.writes())["helpdesk"] == writes + 1  # the edit, nothing for the replays

        # A delete event makes the lane look, and find the record gone.
        await s.delete("crm", "cai@example.com")
        assert await deliver(s, delivery("records.after.delete", ids[2]), good) == 202
        del people["cai@example.com"]

        async def gone() -> bool:
            return "cai@example.com" not in (await s.contacts())["helpdesk"]

        await eventually(gone, 60, "Cai deleted in the helpdesk")
        assert "hid@example.com" not in (await s.contacts())["helpdesk"]

        counts = await webhook_counts(s)
        assert counts["bad_secret"] == 3
        assert counts["ignored"] == 1
        assert counts["accepted"] == 8
        assert counts["malformed"] == 0
