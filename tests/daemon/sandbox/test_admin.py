"""The admin API: "user" edits, write counters by origin, records dump, reset and the clock."""

from __future__ import annotations

import httpx

from daemon.sandbox import RunningSystem
from tests.daemon.sandbox.helpers import CRM_TOKEN, admin_edit, admin_records, freeze_clock


async def test_user_edits_bump_the_record_but_are_not_api_writes(
    crm_client: httpx.AsyncClient,
) -> None:
    created = await admin_edit(
        crm_client, "contacts", op="create", fields={"email": "a@example.com"}
    )
    contact = created["record"]

    edited = await admin_edit(
        crm_client, "contacts", op="update", id=contact["id"], fields={"full_name": "Ada"}
    )

    assert edited["record"]["version"] == 2
    assert edited["record"]["updated_at"] >= contact["updated_at"]
    api_view = (await crm_client.get(f"/contacts/{contact['id']}")).json()
    assert api_view["full_name"] == "Ada"
    await admin_edit(crm_client, "contacts", op="delete", id=contact["id"])
    assert (await crm_client.get(f"/contacts/{contact['id']}")).status_code == 404
    stats = (await crm_client.get("/_admin/stats")).json()
    assert stats["writes"]["total"] == 0
    assert stats["admin_edits"]["total"] == 3


async def test_user_edits_are_validated_like_api_writes(crm_client: httpx.AsyncClient) -> None:
    bad_field = await crm_client.post(
        "/_admin/edit/contacts", json={"op": "create", "fields": {"labels": "x"}}
    )
    missing = await crm_client.post(
        "/_admin/edit/contacts", json={"op": "update", "id": "ct_00000099", "fields": {}}
    )
    bad_op = await crm_client.post("/_admin/edit/contacts", json={"op": "merge"})
    unknown_resource = await crm_client.post("/_admin/edit/deals", json={"op": "create"})

    assert bad_field.status_code == 422
    assert missing.status_code == 404
    assert bad_op.status_code == 400
    assert unknown_resource.status_code == 404


async def test_api_writes_are_counted_by_method_resource_and_origin(
    crm: RunningSystem,
) -> None:
    auth = {"Authorization": f"Bearer {CRM_TOKEN}"}
    async with httpx.AsyncClient(base_url=crm.url, headers=auth) as client:
        hub = {"X-Origin": "syncline"}
        made = await client.post("/contacts", json={"email": "a@x.test"}, headers=hub)
        contact_id = made.json()["id"]
        await client.patch(f"/contacts/{contact_id}", json={"phone": "1"}, headers=hub)
        await client.post("/companies", json={"name": "Acme"}, headers={"User-Agent": "browser"})
        await client.patch(f"/contacts/{contact_id}", json={"x": 1}, headers=hub)  # 422
        await client.get("/contacts", headers=hub)

        stats = (await client.get("/_admin/stats")).json()

    writes = stats["writes"]
    assert writes["total"] == 3
    assert writes["by_method"] == {"PATCH": 1, "POST": 2}
    assert writes["by_resource"] == {"companies": 1, "contacts": 2}
    assert writes["by_origin"] == {"browser": 1, "syncline": 2}
    assert {"method": "PATCH", "resource": "contacts", "origin": "syncline", "count": 1} in writes[
        "detail"
    ]
    assert writes["rejected"] == {"422": 1}
    assert stats["requests"]["total"] == 5


async def test_records_dump_lists_live_records_only(crm_client: httpx.AsyncClient) -> None:
    kept = (await crm_client.post("/contacts", json={"email": "a@x.test"})).json()
    gone = (await crm_client.post("/contacts", json={"email": "b@x.test"})).json()
    await crm_client.delete(f"/contacts/{gone['id']}")

    records = await admin_records(crm_client, "contacts")

    assert records == [kept]
    assert (await crm_client.get("/_admin/records/deals")).status_code == 404


async def test_records_dump_since_a_time_lists_the_records_changed_since(
    crm_client: httpx.AsyncClient,
) -> None:
    await crm_client.post("/_admin/clock", json={"freeze": True, "set": "2026-01-01T00:00:00Z"})
    old = (await crm_client.post("/contacts", json={"email": "a@x.test"})).json()
    edited = (await crm_client.post("/contacts", json={"email": "b@x.test"})).json()
    await crm_client.post("/_admin/clock", json={"advance_seconds": 5})
    await admin_edit(crm_client, "contacts", op="update", id=edited["id"],
                     fields={"full_name": "Bea"})
    made = (await crm_client.post("/contacts", json={"email": "c@x.test"})).json()
    since = 1_767_225_600_000 + 5_000  # 2026-01-01T00:00:05Z

    changed = (await crm_client.get("/_admin/records/contacts",
                                    params={"updated_since_ms": since})).json()
    later = (await crm_client.get("/_admin/records/contacts",
                                  params={"updated_since_ms": since + 1})).json()
    bad = await crm_client.get("/_admin/records/contacts", params={"updated_since_ms": "x"})

    assert sorted(r["id"] for r in changed["records"]) == sorted([edited["id"], made["id"]])
    assert old["id"] not in {r["id"] for r in changed["records"]}
    assert changed["count"] == 2
    assert later["records"] == []
    assert bad.status_code == 400
    assert len(await admin_records(crm_client, "contacts")) == 3


async def test_reset_empties_the_system_but_never_reuses_ids(
    crm_client: httpx.AsyncClient,
) -> None:
    first = (await crm_client.post("/contacts", json={"email": "a@x.test"})).json()
    await crm_client.post("/_admin/faults", json={"latency_ms": 5})
    await freeze_clock(crm_client)

    assert (await crm_client.post("/_admin/reset")).status_code == 200

    assert await admin_records(crm_client, "contacts") == []
    assert (await crm_client.get("/_admin/stats")).json()["writes"]["total"] == 0
    assert (await crm_client.get("/_admin/faults")).json()["latency_ms"] == 0
    assert (await crm_client.get("/_admin/clock")).json()["frozen"] is False
    again = (await crm_client.post("/contacts", json={"email": "a@x.test"})).json()
    assert again["id"] != first["id"]


async def test_a_frozen_clock_gives_equal_timestamps_until_advanced(
    crm_client: httpx.AsyncClient,
) -> None:
    frozen = await crm_client.post(
        "/_admin/clock", json={"freeze": True, "set": "2030-01-01T00:00:00Z"}
    )
    assert frozen.json() == {
        "now": "2030-01-01T00:00:00.000Z",
        "now_ms": 1893456000000,
        "frozen": True,
    }
    a = (await crm_client.post("/contacts", json={"email": "a@x.test"})).json()
    b = (await crm_client.post("/contacts", json={"email": "b@x.test"})).json()

    await crm_client.post("/_admin/clock", json={"advance_seconds": 2.5})
    c = (await crm_client.post("/contacts", json={"email": "c@x.test"})).json()

    assert a["updated_at"] == b["updated_at"] == "2030-01-01T00:00:00.000Z"
    assert c["updated_at"] == "2030-01-01T00:00:02.500Z"
    thawed = await crm_client.post("/_admin/clock", json={"freeze": False})
    assert thawed.json()["frozen"] is False
    assert thawed.json()["now"] >= "2030-01-01T00:00:02.500Z"
    assert (await crm_client.post("/_admin/clock", json={"set": "soon"})).status_code == 400


async def test_a_crm_update_on_a_frozen_clock_still_moves_the_record_forward(
    crm_client: httpx.AsyncClient,
) -> None:
    await freeze_clock(crm_client)
    a = (await crm_client.post("/contacts", json={"email": "a@x.test"})).json()
    b = (await crm_client.post("/contacts", json={"email": "b@x.test"})).json()

    changed = (await crm_client.patch(f"/contacts/{a['id']}", json={"phone": "1"})).json()

    # a's (updated_at, id) must pass b's, or a cursor parked on b would never see a again.
    assert (changed["updated_at"], changed["id"]) > (b["updated_at"], b["id"])


async def test_health(crm_client: httpx.AsyncClient) -> None:
    assert (await crm_client.get("/_admin/health")).json() == {"system": "crm", "ok": True}
