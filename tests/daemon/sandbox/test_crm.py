"""The CRM over real HTTP: records, ETags, cursor pagination, search, the delete feed, auth."""

from __future__ import annotations

from typing import Any

import httpx

from daemon.sandbox import RunningSystem
from tests.daemon.sandbox.helpers import (
    CRM_TOKEN,
    admin_edit,
    admin_records,
    freeze_clock,
    plus_ms,
)


async def create_contact(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    response = await client.post("/contacts", json=fields)
    assert response.status_code == 201, response.text
    record: dict[str, Any] = response.json()
    return record


async def walk(client: httpx.AsyncClient, limit: int, **params: str) -> list[list[dict[str, Any]]]:
    """Every page of ``GET /contacts``, following next_cursor."""
    pages: list[list[dict[str, Any]]] = []
    query: dict[str, Any] = {"limit": limit, **params}
    while True:
        response = await client.get("/contacts", params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body["data"])
        if body["next_cursor"] is None:
            return pages
        query = {"limit": limit, "cursor": body["next_cursor"]}


# -- records ---------------------------------------------------------------------------------


async def test_create_returns_the_record_with_server_fields_and_an_etag(
    crm_client: httpx.AsyncClient,
) -> None:
    response = await crm_client.post(
        "/contacts", json={"email": "ada@example.com", "full_name": "Ada", "labels": ["vip"]}
    )

    assert response.status_code == 201
    record = response.json()
    assert record["id"].startswith("ct_")
    assert record["version"] == 1
    assert record["lifecycle_stage"] == "lead"
    assert record["company_id"] is None
    assert record["updated_at"].endswith("Z") and len(record["updated_at"]) == 24
    assert response.headers["ETag"] == '"1"'
    assert response.headers["Location"] == f"/contacts/{record['id']}"

    fetched = await crm_client.get(f"/contacts/{record['id']}")
    assert fetched.json() == record
    assert fetched.headers["ETag"] == '"1"'


async def test_patch_changes_only_the_fields_sent_and_bumps_version(
    crm_client: httpx.AsyncClient,
) -> None:
    contact = await create_contact(crm_client, email="a@example.com", full_name="A", phone="1")

    response = await crm_client.patch(f"/contacts/{contact['id']}", json={"phone": "2"})

    assert response.status_code == 200
    assert response.json()["phone"] == "2"
    assert response.json()["full_name"] == "A"
    assert response.json()["version"] == 2
    assert response.headers["ETag"] == '"2"'
    assert response.json()["updated_at"] >= contact["updated_at"]


async def test_put_replaces_every_field(crm_client: httpx.AsyncClient) -> None:
    contact = await create_contact(crm_client, email="a@example.com", full_name="A", phone="1")

    response = await crm_client.put(f"/contacts/{contact['id']}", json={"email": "b@example.com"})

    assert response.status_code == 200
    assert response.json()["email"] == "b@example.com"
    assert response.json()["full_name"] is None
    assert response.json()["phone"] is None


async def test_a_write_that_changes_nothing_keeps_version_and_timestamp(
    crm_client: httpx.AsyncClient,
) -> None:
    contact = await create_contact(crm_client, email="a@example.com", full_name="A")

    response = await crm_client.patch(f"/contacts/{contact['id']}", json={"full_name": "A"})

    assert response.json()["version"] == 1
    assert response.json()["updated_at"] == contact["updated_at"]
    stats = (await crm_client.get("/_admin/stats")).json()
    assert stats["writes"]["unchanged"] == 1


async def test_if_match_with_a_stale_version_is_412_and_writes_nothing(
    crm_client: httpx.AsyncClient,
) -> None:
    contact = await create_contact(crm_client, email="a@example.com", full_name="A")
    path = f"/contacts/{contact['id']}"
    await crm_client.patch(path, json={"full_name": "B"}, headers={"If-Match": '"1"'})

    stale = await crm_client.patch(path, json={"full_name": "C"}, headers={"If-Match": '"1"'})

    assert stale.status_code == 412
    assert stale.json()["current_version"] == 2
    assert (await crm_client.get(path)).json()["full_name"] == "B"
    weak_ok = await crm_client.patch(path, json={"full_name": "D"}, headers={"If-Match": 'W/"2"'})
    assert weak_ok.status_code == 200
    star = await crm_client.put(path, json={"full_name": "E"}, headers={"If-Match": "*"})
    assert star.status_code == 200
    stale_delete = await crm_client.delete(path, headers={"If-Match": '"1"'})
    assert stale_delete.status_code == 412


async def test_if_none_match_with_the_current_tag_is_304(crm_client: httpx.AsyncClient) -> None:
    contact = await create_contact(crm_client, email="a@example.com")
    path = f"/contacts/{contact['id']}"

    assert (await crm_client.get(path, headers={"If-None-Match": '"1"'})).status_code == 304
    await crm_client.patch(path, json={"phone": "9"})
    assert (await crm_client.get(path, headers={"If-None-Match": '"1"'})).status_code == 200


async def test_missing_records_are_404_json(crm_client: httpx.AsyncClient) -> None:
    for method, path in [
        ("GET", "/contacts/ct_99999999"),
        ("GET", "/contacts/not-an-id"),
        ("PATCH", "/contacts/ct_99999999"),
        ("DELETE", "/companies/co_99999999"),
        ("GET", "/no-such-resource"),
    ]:
        response = await crm_client.request(method, path, json={} if method == "PATCH" else None)
        assert response.status_code == 404, (method, path)
        assert response.json()["error"] == "not_found"


async def test_invalid_bodies_are_422_naming_each_field(crm_client: httpx.AsyncClient) -> None:
    response = await crm_client.post(
        "/contacts",
        json={"email": 5, "labels": "vip", "lifecycle_stage": "king", "nickname": "x"},
    )

    assert response.status_code == 422
    assert set(response.json()["details"]) == {"email", "labels", "lifecycle_stage", "nickname"}
    assert (await crm_client.post("/contacts", content=b"{")).status_code == 400
    dangling = await crm_client.post("/contacts", json={"company_id": "co_00000042"})
    assert dangling.status_code == 422


async def test_email_is_unique_case_insensitively(crm_client: httpx.AsyncClient) -> None:
    first = await create_contact(crm_client, email="Ada@Example.com")

    response = await crm_client.post("/contacts", json={"email": "ada@example.COM"})

    assert response.status_code == 409
    assert response.json()["existing_id"] == first["id"]


async def test_search_finds_by_email_ignoring_case(crm_client: httpx.AsyncClient) -> None:
    ada = await create_contact(crm_client, email="ada@example.com")
    await create_contact(crm_client, email="bob@example.com")

    found = (await crm_client.get("/contacts/search", params={"email": "ADA@example.com"})).json()
    none = (await crm_client.get("/contacts/search", params={"email": "x@example.com"})).json()

    assert [r["id"] for r in found["data"]] == [ada["id"]]
    assert none["data"] == []
    assert (await crm_client.get("/contacts/search")).status_code == 400


async def test_deleting_a_company_clears_references_to_it(crm_client: httpx.AsyncClient) -> None:
    company = (await crm_client.post("/companies", json={"name": "Acme"})).json()
    contact = await create_contact(crm_client, email="a@example.com", company_id=company["id"])

    assert (await crm_client.delete(f"/companies/{company['id']}")).status_code == 204

    after = (await crm_client.get(f"/contacts/{contact['id']}")).json()
    assert after["company_id"] is None
    assert after["version"] == 2


# -- delete feed -----------------------------------------------------------------------------


async def test_deleted_records_are_gone_and_reported_by_the_delete_feed(
    crm_client: httpx.AsyncClient,
) -> None:
    keep = await create_contact(crm_client, email="keep@example.com")
    gone = await create_contact(crm_client, email="gone@example.com")

    assert (await crm_client.delete(f"/contacts/{gone['id']}")).status_code == 204

    assert (await crm_client.get(f"/contacts/{gone['id']}")).status_code == 404
    assert (await crm_client.delete(f"/contacts/{gone['id']}")).status_code == 404
    listed = (await crm_client.get("/contacts")).json()["data"]
    assert [r["id"] for r in listed] == [keep["id"]]
    feed = (await crm_client.get("/contacts/deleted", params={"since": gone["created_at"]})).json()
    assert [entry["id"] for entry in feed["data"]] == [gone["id"]]
    assert feed["data"][0]["deleted_at"] >= gone["updated_at"]
    later = plus_ms(feed["data"][0]["deleted_at"], 1)
    assert (await crm_client.get("/contacts/deleted", params={"since": later})).json()["data"] == []


async def test_the_delete_feed_pages_with_a_cursor(crm_client: httpx.AsyncClient) -> None:
    await freeze_clock(crm_client)
    ids = [(await create_contact(crm_client, email=f"{i}@example.com"))["id"] for i in range(7)]
    for contact_id in ids:
        await crm_client.delete(f"/contacts/{contact_id}")

    seen: list[str] = []
    params: dict[str, Any] = {"limit": 3}
    while True:
        body = (await crm_client.get("/contacts/deleted", params=params)).json()
        seen += [entry["id"] for entry in body["data"]]
        if body["next_cursor"] is None:
            break
        params = {"limit": 3, "cursor": body["next_cursor"]}

    assert seen == ids


# -- pagination ------------------------------------------------------------------------------


async def test_a_walk_returns_every_record_once_even_when_all_share_a_timestamp(
    crm_client: httpx.AsyncClient,
) -> None:
    await freeze_clock(crm_client)
    created = [
        (await admin_edit(crm_client, "contacts", op="create", fields={"email": f"{i}@x.test"}))[
            "record"
        ]
        for i in range(60)
    ]
    assert len({r["updated_at"] for r in created}) == 1

    pages = await walk(crm_client, limit=7)

    ids = [r["id"] for page in pages for r in page]
    assert ids == [r["id"] for r in created]
    assert [len(page) for page in pages] == [7] * 8 + [4]


async def test_updated_after_filters_inclusively(crm_client: httpx.AsyncClient) -> None:
    await freeze_clock(crm_client)
    old = await create_contact(crm_client, email="old@example.com")
    await crm_client.post("/_admin/clock", json={"advance_ms": 1500})
    new = await create_contact(crm_client, email="new@example.com")

    since_new = await walk(crm_client, 10, updated_after=new["updated_at"])
    since_old = await walk(crm_client, 10, updated_after=old["updated_at"])
    bad = await crm_client.get("/contacts", params={"updated_after": "yesterday"})

    assert [r["id"] for r in since_new[0]] == [new["id"]]
    assert [r["id"] for r in since_old[0]] == [old["id"], new["id"]]
    assert bad.status_code == 400


async def test_records_changed_during_a_walk_are_not_skipped(
    crm_client: httpx.AsyncClient,
) -> None:
    # A frozen clock is the hard case: every write lands on the same millisecond.
    await freeze_clock(crm_client)
    ids = [(await create_contact(crm_client, email=f"{i}@example.com"))["id"] for i in range(40)]
    latest_seen: dict[str, int] = {}
    body = (await crm_client.get("/contacts", params={"limit": 6})).json()
    for step in range(100):
        latest_seen.update({r["id"]: r["version"] for r in body["data"]})
        if body["next_cursor"] is None:
            break
        if step < 10:
            # Between pages, change a record already walked past and one not reached yet.
            for target in (ids[step % 40], ids[(39 - 3 * step) % 40]):
                await crm_client.patch(f"/contacts/{target}", json={"phone": f"step-{step}"})
        query = {"limit": 6, "cursor": body["next_cursor"]}
        body = (await crm_client.get("/contacts", params=query)).json()

    final = {r["id"]: r["version"] for r in await admin_records(crm_client, "contacts")}
    assert latest_seen == final


async def test_a_bad_cursor_is_400(crm_client: httpx.AsyncClient) -> None:
    for cursor in ("garbage", "W1tdXQ"):
        response = await crm_client.get("/contacts", params={"cursor": cursor})
        assert response.status_code == 400


async def test_a_cursor_from_another_listing_is_refused(crm_client: httpx.AsyncClient) -> None:
    for i in range(3):
        await create_contact(crm_client, email=f"{i}@example.com")
    cursor = (await crm_client.get("/contacts", params={"limit": 1})).json()["next_cursor"]

    response = await crm_client.get("/companies", params={"cursor": cursor})

    assert response.status_code == 400


# -- auth ------------------------------------------------------------------------------------


async def test_requests_without_the_bearer_token_are_401(crm: RunningSystem) -> None:
    async with httpx.AsyncClient(base_url=crm.url) as anonymous:
        missing = await anonymous.get("/contacts")
        wrong = await anonymous.get("/contacts", headers={"Authorization": "Bearer nope"})
        right = await anonymous.get("/contacts", headers={"Authorization": f"Bearer {CRM_TOKEN}"})
        write = await anonymous.post("/contacts", json={"email": "a@example.com"})
        admin = await anonymous.get("/_admin/stats")

    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert wrong.status_code == 401
    assert right.status_code == 200
    assert write.status_code == 401
    assert admin.status_code == 200
    assert admin.json()["writes"]["total"] == 0
