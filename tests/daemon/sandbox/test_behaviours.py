"""The real APIs' behaviours the simulated systems can be switched to (issue 15), each over
real HTTP: what a client writes, what it is answered, what a later read shows."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.daemon.sandbox.helpers import admin_edit


async def behave(client: httpx.AsyncClient, **settings: Any) -> dict[str, Any]:
    answer = await client.post("/_admin/faults", json=settings)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


async def test_a_normalised_form_is_stored(crm_client: httpx.AsyncClient) -> None:
    await behave(crm_client, normalise_fields={"full_name": "lower", "phone": "trim"})

    made = await crm_client.post("/contacts", json={"email": "a@x.io", "full_name": "Ann LEE",
                                                    "phone": " 555 "})

    assert made.status_code == 201, made.text
    assert (made.json()["full_name"], made.json()["phone"]) == ("ann lee", "555")
    # A person's edit in the UI is kept as typed: only API writes are normalised.
    edited = await admin_edit(crm_client, "contacts", op="update", id=made.json()["id"],
                              fields={"full_name": "Ann Lee"})
    assert edited["record"]["full_name"] == "Ann Lee"


async def test_lying_writes_are_answered_as_done_and_not_kept(
        crm_client: httpx.AsyncClient) -> None:
    made = (await crm_client.post("/contacts", json={"email": "b@x.io", "phone": "1"})).json()
    await behave(crm_client, lie_on_writes=True)
    item = f"/contacts/{made['id']}"

    patched = await crm_client.patch(item, json={"phone": "2"})
    deleted = await crm_client.delete(item)

    assert patched.status_code == 200 and patched.json()["phone"] == "2"
    assert deleted.status_code == 204
    assert (await crm_client.get(item)).json()["phone"] == "1"


async def test_forged_versions_are_answered_new_and_not_kept(
        crm_client: httpx.AsyncClient) -> None:
    made = (await crm_client.post("/contacts", json={"email": "f@x.io", "phone": "1"})).json()
    await behave(crm_client, forge_versions=True)
    item = f"/contacts/{made['id']}"
    before = (await crm_client.get(item)).json()

    patched = (await crm_client.patch(item, json={"phone": "2"})).json()
    after = (await crm_client.get(item)).json()

    assert patched["phone"] == "2"
    assert patched["version"] > before["version"]  # a version made up for the answer
    assert patched["updated_at"] > before["updated_at"]
    assert after == before  # nothing was stored


async def test_nested_read_with_a_flat_write_field(crm_client: httpx.AsyncClient) -> None:
    await behave(crm_client, nested_fields=["lifecycle_stage"])
    made = (await crm_client.post("/contacts", json={"email": "c@x.io"})).json()
    item = f"/contacts/{made['id']}"
    assert made["lifecycle_stage"] == {"id": 2, "name": "lead"}

    ignored = await crm_client.patch(item, json={"lifecycle_stage": "customer"})
    assert ignored.status_code == 200
    assert ignored.json()["lifecycle_stage"] == {"id": 2, "name": "lead"}  # silently dropped
    taken = await crm_client.patch(item, json={"lifecycle_stage_id": 4})
    assert taken.json()["lifecycle_stage"] == {"id": 4, "name": "customer"}
    refused = await crm_client.patch(item, json={"lifecycle_stage_id": 9})
    assert refused.status_code == 422


async def test_updated_at_null_until_the_first_edit_and_whole_seconds(
        crm_client: httpx.AsyncClient) -> None:
    await behave(crm_client, null_updated_until_edit=True, whole_seconds=True)
    made = (await crm_client.post("/contacts", json={"email": "d@x.io"})).json()
    assert made["updated_at"] is None
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", made["created_at"]), made
    listed = (await crm_client.get("/contacts")).json()["data"]
    assert [r["updated_at"] for r in listed] == [None]

    edited = (await crm_client.patch(f"/contacts/{made['id']}", json={"phone": "3"})).json()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", edited["updated_at"]), edited


async def test_bare_writes_drop_the_envelope_silently(helpdesk_client: httpx.AsyncClient) -> None:
    await behave(helpdesk_client, bare_writes=True)

    bare = await helpdesk_client.post("/api/v2/users", json={"name": "Eve"})
    wrapped = await helpdesk_client.put(f"/api/v2/users/{bare.json()['user']['id']}",
                                        json={"user": {"name": "Not Eve"}})

    assert bare.status_code == 201, bare.text
    assert bare.json()["user"]["name"] == "Eve"  # answers stay wrapped
    assert wrapped.status_code == 200
    assert wrapped.json()["user"]["name"] == "Eve"  # the envelope was an unknown key
    empty = await helpdesk_client.post("/api/v2/users", json={"user": {"name": "Fay"}})
    assert empty.status_code == 422  # nothing of it was read: the name is required


@pytest.mark.parametrize("settings", [
    {"normalise_fields": {"phone": "upper"}}, {"normalise_fields": ["phone"]},
    {"nested_fields": "lifecycle_stage"}, {"lie_on_writes": 1}, {"forge_versions": "yes"},
    {"whole_seconds": "yes"},
])
async def test_bad_behaviour_settings_are_400(crm_client: httpx.AsyncClient,
                                               settings: dict[str, Any]) -> None:
    answer = await crm_client.post("/_admin/faults", json=settings)

    assert answer.status_code == 400, answer.text
