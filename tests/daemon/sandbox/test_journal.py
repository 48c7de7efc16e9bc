"""The journal: when a system answered each read of a record and executed each write, by
whom and after what injected delay, as its admin API tells (the chaos run's evidence)."""

from __future__ import annotations

import time
from typing import Any

import httpx

from daemon.sandbox import run_helpdesk
from tests.daemon.sandbox.helpers import HELPDESK_KEY, admin_edit


async def journal_of(client: httpx.AsyncClient, resource: str) -> dict[str, Any]:
    answer = await client.get(f"/_admin/journal/{resource}")
    assert answer.status_code == 200
    body: dict[str, Any] = answer.json()
    return body


async def test_reads_writes_people_and_injected_delays_are_journalled_in_order() -> None:
    async with run_helpdesk(api_key=HELPDESK_KEY, rate_limit=None, journal=True) as helpdesk:
        headers = {"X-API-Key": HELPDESK_KEY, "X-Origin": "syncline"}
        async with httpx.AsyncClient(base_url=helpdesk.url, headers=headers,
                                     timeout=5) as client:
            began = time.time()
            made = await admin_edit(client, "users", op="create",
                                    fields={"email_address": "a@example.com", "name": "A"})
            user = made["record"]["id"]
            assert (await client.get(f"/api/v2/users/{user}")).status_code == 200
            await client.get("/api/v2/users")
            await admin_edit(client, "users", op="update", id=user, fields={"name": "B"})
            await client.post("/_admin/faults", json={"latency_ms": 120})
            put = await client.put(f"/api/v2/users/{user}", json={"user": {"name": "C"}})
            assert put.status_code == 200
            await client.delete("/_admin/faults")
            await client.get("/api/v2/users/search", params={"query": "email:a@example.com"})
            ended = time.time()
            body = await journal_of(client, "users")

    assert body["enabled"] is True
    entries = body["records"][str(user)]
    assert [(e["op"], e["kind"], e["by"], e["delay_ms"], e["fields"], e["changed"])
            for e in entries] == [
        ("write", "create", "person", 0, {"email_address": "a@example.com", "name": "A"}, True),
        ("read", "get", "syncline", 0, None, False),
        ("read", "list", "syncline", 0, None, False),
        ("write", "update", "person", 0, {"name": "B"}, True),
        ("write", "update", "syncline", 120, {"name": "C"}, True),
        ("read", "search", "syncline", 0, None, False),
    ]
    times = [e["at"] for e in entries]
    assert began <= times[0] and times == sorted(times) and times[-1] <= ended
    # The PUT executed after its injected 120 ms, not when it arrived.
    assert times[4] - times[3] >= 0.12


async def test_the_journal_is_off_unless_asked_for(helpdesk_client: httpx.AsyncClient) -> None:
    await admin_edit(helpdesk_client, "users", op="create",
                     fields={"email_address": "a@example.com", "name": "A"})
    body = await journal_of(helpdesk_client, "users")
    assert body == {"enabled": False, "records": {}}
    unknown = await helpdesk_client.get("/_admin/journal/deals")
    assert unknown.status_code == 404


async def test_what_a_client_says_of_its_read_and_write_is_journalled_as_said() -> None:
    async with run_helpdesk(api_key=HELPDESK_KEY, rate_limit=None, journal=True) as helpdesk:
        headers = {"X-API-Key": HELPDESK_KEY, "X-Origin": "syncline"}
        async with httpx.AsyncClient(base_url=helpdesk.url, headers=headers,
                                     timeout=5) as client:
            made = await admin_edit(client, "users", op="create",
                                    fields={"email_address": "a@example.com", "name": "A"})
            user = made["record"]["id"]
            await client.get(f"/api/v2/users/{user}", headers={"X-Request-Id": "r-1"})
            for age in ("0.012500", "soon", "-1"):
                await client.put(f"/api/v2/users/{user}", json={"user": {"name": f"C{age}"}},
                                 headers={"X-Syncline-Read-Id": "r-1",
                                          "X-Syncline-Read-Age": age})
            await client.put(f"/api/v2/users/{user}", json={"user": {"name": "D"}})
            body = await journal_of(client, "users")
    entries = body["records"][str(user)]
    assert [(e["kind"], e["request_id"], e["read_id"], e["read_age"]) for e in entries] == [
        ("create", None, None, None),
        ("get", "r-1", None, None),
        ("update", None, "r-1", 0.0125),
        ("update", None, "r-1", None),  # not a number of seconds: not evidence
        ("update", None, "r-1", None),
        ("update", None, None, None),
    ]
