"""Reference fields end to end: a contact's company, translated between two CRMs' ids."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from streams.kafka import KafkaSettings
from tests.e2e.harness import eventually, stack

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(300)]

COMPANY_ENDPOINT = {
    "path": "/companies", "records_at": "data",
    "since": {"param": "updated_after", "format": "iso_ms"},
    "pagination": {"style": "cursor", "param": "cursor", "next": "next_cursor",
                   "size_param": "limit", "size": 100},
    "version": "version", "conditional": "etag",
    "lookup": {"path": "/companies/search", "params": {"domain": "{domain}"},
               "records_at": "data"},
    "deletes": {"feed": {"path": "/companies/deleted", "since_param": "since",
                         "since_format": "iso_ms", "records_at": "data"}},
    "webhook_event": "company", "poll_every_seconds": 1,
}


def two_crms_with_companies(data: dict[str, Any]) -> None:
    for system in ("crm", "crm2"):
        data["systems"][system]["entities"]["company"] = COMPANY_ENDPOINT
        data["systems"][system]["entities"]["contact"]["poll_every_seconds"] = 1
    data["entities"]["company"] = {
        "match_on": ["domain"],
        "fields": {"name": {"crm": "name", "crm2": "name", "type": "string"},
                   "domain": {"crm": "domain", "crm2": "domain", "type": "string",
                              "transform": "lower"}}}
    fields = data["entities"]["contact"]["fields"]
    for name in list(fields):
        fields[name].pop("helpdesk", None)
    fields["company"] = {"crm": {"path": "company_id", "ref": "company"},
                         "crm2": {"path": "company_id", "ref": "company"}, "type": "string"}


async def test_a_reference_is_translated_and_waits_for_its_record(
        kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    async with stack(tmp_path, kafka_settings, ("crm", "crm2"),
                     customize=two_crms_with_companies) as s:
        admin = s.admins

        async def company(system: str, name: str, domain: str) -> str:
            answer = await admin[system].post("/_admin/edit/companies", json={
                "op": "create", "fields": {"name": name, "domain": domain}})
            assert answer.status_code == 201, answer.text
            return str(answer.json()["record"]["id"])

        async def companies(system: str) -> dict[str, str]:
            """id -> domain."""
            records = (await admin[system].get("/_admin/records/companies")).json()["records"]
            return {r["id"]: r["domain"] for r in records}

        async def employer(system: str, email: str) -> str | None:
            """The domain of the company the contact works for, through the system's ids."""
            records = (await admin[system].get("/_admin/records/contacts")).json()["records"]
            by_id = await companies(system)
            for record in records:
                if record["email"] == email:
                    return by_id.get(record["company_id"]) if record["company_id"] else None
            return None

        # Ids differ between the two CRMs: crm2 already has a company.
        initech = await company("crm2", "Initech", "initech.com")
        acme = await company("crm", "Acme", "acme.com")
        assert initech == acme  # the same id string, two different companies
        await s.create("crm", "ann@example.com", "Ann")
        ann = (await s.raw("crm"))[0]["id"]
        await admin["crm"].post("/_admin/edit/contacts", json={
            "op": "update", "id": ann, "fields": {"company_id": acme}})
        await s.start()

        async def ann_at_acme_in_crm2() -> bool:
            return await employer("crm2", "ann@example.com") == "acme.com"

        await eventually(ann_at_acme_in_crm2, 60, lambda: f"ann at acme in crm2: {s.log()[-2000:]}")
        crm2_ids = await companies("crm2")
        assert sorted(crm2_ids.values()) == ["acme.com", "initech.com"]

        # Back the other way: ann moves to Initech in crm2; crm gets Initech, then ann's move.
        crm2_ann = next(r for r in await s.raw("crm2") if r["email"] == "ann@example.com")
        await admin["crm2"].post("/_admin/edit/contacts", json={
            "op": "update", "id": crm2_ann["id"], "fields": {"company_id": initech}})

        async def ann_at_initech_in_crm() -> bool:
            return await employer("crm", "ann@example.com") == "initech.com"

        await eventually(ann_at_initech_in_crm, 60, lambda: f"ann at initech in crm: "
                         f"{s.log()[-2000:]}")
        assert sorted((await companies("crm")).values()) == ["acme.com", "initech.com"]
