"""The helpdesk over real HTTP: envelopes, page-number pagination over colliding timestamps,
deletes nobody reports, search, the rate limit and its headers, API key and basic auth."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from daemon.sandbox import RateLimit, RunningSystem, run_helpdesk
from tests.daemon.sandbox.helpers import (
    HELPDESK_KEY,
    admin_edit,
    eventually,
    freeze_clock,
)

USERS = "/api/v2/users"


async def create_user(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    response = await client.post(USERS, json={"user": fields})
    assert response.status_code == 201, response.text
    user: dict[str, Any] = response.json()["user"]
    return user


def unix_seconds(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp())


# -- records ---------------------------------------------------------------------------------


async def test_records_are_wrapped_in_envelopes_with_integer_ids(
    helpdesk_client: httpx.AsyncClient,
) -> None:
    user = await create_user(helpdesk_client, name="Ada", email_address="ada@example.com")

    assert isinstance(user["id"], int)
    assert user["tags"] == []
    assert user["updated_at"].endswith("Z") and len(user["updated_at"]) == 20
    fetched = await helpdesk_client.get(f"{USERS}/{user['id']}")
    assert fetched.json() == {"user": user}
    assert "ETag" not in fetched.headers
    assert (await helpdesk_client.post(USERS, json={"name": "no envelope"})).status_code == 400


async def test_put_changes_the_fields_sent_without_conditions(
    helpdesk_client: httpx.AsyncClient,
) -> None:
    user = await create_user(helpdesk_client, name="Ada", phone="1")

    response = await helpdesk_client.put(
        f"{USERS}/{user['id']}", json={"user": {"tags": ["vip"]}}, headers={"If-Match": '"99"'}
    )

    assert response.status_code == 200
    assert response.json()["user"]["tags"] == ["vip"]
    assert response.json()["user"]["phone"] == "1"
    assert "ETag" not in response.headers


async def test_invalid_and_duplicate_records_are_422_record_invalid(
    helpdesk_client: httpx.AsyncClient,
) -> None:
    await create_user(helpdesk_client, name="Ada", email_address="ada@example.com")

    missing_name = await helpdesk_client.post(USERS, json={"user": {"email_address": "b@x.test"}})
    duplicate = await helpdesk_client.post(
        USERS, json={"user": {"name": "Imposter", "email_address": "ADA@example.com"}}
    )

    assert missing_name.status_code == 422
    assert missing_name.json()["error"] == "RecordInvalid"
    assert "name" in missing_name.json()["details"]
    assert duplicate.status_code == 422
    assert "email_address" in duplicate.json()["details"]


async def test_missing_records_are_404_record_not_found(
    helpdesk_client: httpx.AsyncClient,
) -> None:
    for method, path in [("GET", f"{USERS}/999"), ("PUT", f"{USERS}/999"), ("GET", f"{USERS}/x")]:
        body = {"user": {"name": "x"}} if method == "PUT" else None
        response = await helpdesk_client.request(method, path, json=body)
        assert response.status_code == 404
        assert response.json() == {"error": "RecordNotFound", "description": "Not found"}


async def test_deleted_users_just_disappear(helpdesk_client: httpx.AsyncClient) -> None:
    keep = await create_user(helpdesk_client, name="Keep")
    gone = await create_user(helpdesk_client, name="Gone")

    assert (await helpdesk_client.delete(f"{USERS}/{gone['id']}")).status_code == 204

    assert (await helpdesk_client.get(f"{USERS}/{gone['id']}")).status_code == 404
    listed = (await helpdesk_client.get(USERS)).json()
    assert [u["id"] for u in listed["users"]] == [keep["id"]]
    assert listed["count"] == 1
    # There is no delete feed: "deleted" is read as a (missing) id.
    assert (await helpdesk_client.get(f"{USERS}/deleted")).status_code == 404


async def test_tickets_reference_users(helpdesk_client: httpx.AsyncClient) -> None:
    user = await create_user(helpdesk_client, name="Ada")

    ticket = await helpdesk_client.post(
        "/api/v2/tickets", json={"ticket": {"subject": "Help", "requester_id": user["id"]}}
    )
    dangling = await helpdesk_client.post(
        "/api/v2/tickets", json={"ticket": {"subject": "Help", "requester_id": 404}}
    )

    assert ticket.status_code == 201
    assert ticket.json()["ticket"]["status"] == "open"
    assert dangling.status_code == 422
    solved = await helpdesk_client.put(
        f"/api/v2/tickets/{ticket.json()['ticket']['id']}", json={"ticket": {"status": "solved"}}
    )
    assert solved.json()["ticket"]["status"] == "solved"


async def test_search_by_email(helpdesk_client: httpx.AsyncClient) -> None:
    ada = await create_user(helpdesk_client, name="Ada", email_address="ada@example.com")
    await create_user(helpdesk_client, name="Bob", email_address="bob@example.com")

    found = await helpdesk_client.get(f"{USERS}/search", params={"query": "email:ADA@example.com"})
    unsupported = await helpdesk_client.get(f"{USERS}/search", params={"query": "name:Ada"})

    assert found.json()["users"] == [ada]
    assert found.json()["count"] == 1
    assert unsupported.status_code == 400


# -- pagination ------------------------------------------------------------------------------


async def test_a_page_walk_returns_every_record_once_when_all_share_one_second(
    helpdesk_client: httpx.AsyncClient,
) -> None:
    await freeze_clock(helpdesk_client)
    for i in range(250):
        await admin_edit(helpdesk_client, "users", op="create", fields={"name": f"user {i}"})

    ids: list[int] = []
    stamps: set[str] = set()
    page: int | None = 1
    next_pages: list[int | None] = []
    while page is not None:
        body = (await helpdesk_client.get(USERS, params={"page": page, "per_page": 100})).json()
        assert body["count"] == 250
        ids += [u["id"] for u in body["users"]]
        stamps |= {u["updated_at"] for u in body["users"]}
        page = body["next_page"]
        next_pages.append(page)

    assert next_pages == [2, 3, None]
    assert len(ids) == 250 and len(set(ids)) == 250
    assert ids == sorted(ids)
    assert len(stamps) == 1


async def test_updated_since_is_inclusive_at_second_resolution(
    helpdesk_client: httpx.AsyncClient,
) -> None:
    clock = "/_admin/clock"
    await helpdesk_client.post(clock, json={"set": "2030-01-01T00:00:00.500Z", "freeze": True})
    first = await create_user(helpdesk_client, name="first")
    await helpdesk_client.post(clock, json={"advance_ms": 499})
    same_second = await create_user(helpdesk_client, name="same second")
    await helpdesk_client.post(clock, json={"advance_ms": 1})
    next_second = await create_user(helpdesk_client, name="next second")
    start = unix_seconds("2030-01-01T00:00:00Z")

    assert first["updated_at"] == same_second["updated_at"] == "2030-01-01T00:00:00Z"
    assert next_second["updated_at"] == "2030-01-01T00:00:01Z"
    at_start = await helpdesk_client.get(USERS, params={"updated_since": start})
    a_second_later = await helpdesk_client.get(USERS, params={"updated_since": start + 1})
    assert [u["name"] for u in at_start.json()["users"]] == ["first", "same second", "next second"]
    assert [u["name"] for u in a_second_later.json()["users"]] == ["next second"]
    assert (await helpdesk_client.get(USERS, params={"updated_since": "x"})).status_code == 400


async def test_per_page_is_capped_at_100(helpdesk_client: httpx.AsyncClient) -> None:
    for i in range(101):
        await admin_edit(helpdesk_client, "users", op="create", fields={"name": f"user {i}"})

    body = (await helpdesk_client.get(USERS, params={"per_page": 500})).json()

    assert len(body["users"]) == 100
    assert body["next_page"] == 2


# -- rate limit ------------------------------------------------------------------------------


@pytest.fixture
async def limited() -> AsyncIterator[RunningSystem]:
    async with run_helpdesk(api_key=HELPDESK_KEY, rate_limit=RateLimit(1, burst=3)) as running:
        yield running


async def test_an_empty_bucket_answers_429_with_retry_after(limited: RunningSystem) -> None:
    headers = {"X-API-Key": HELPDESK_KEY}
    async with httpx.AsyncClient(base_url=limited.url, headers=headers) as client:
        answers = [await client.get(USERS) for _ in range(4)]

        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
        assert answers[0].headers["X-RateLimit-Limit"] == "3"
        refused = answers[3]
        assert int(refused.headers["Retry-After"]) >= 1
        assert int(refused.headers["X-RateLimit-Reset"]) >= 1
        assert refused.json()["error"] == "TooManyRequests"
        # The admin API is not metered.
        assert (await client.get("/_admin/stats")).status_code == 200

        async def allowed_again() -> bool:
            return (await client.get(USERS)).status_code == 200

        await eventually(allowed_again, within=5)
        stats = (await client.get("/_admin/stats")).json()
        assert stats["requests"]["by_status"]["429"] >= 1


async def test_the_rate_limit_can_be_changed_at_run_time(
    helpdesk: RunningSystem, helpdesk_client: httpx.AsyncClient
) -> None:
    changed = await helpdesk_client.post("/_admin/rate_limit", json={"per_second": 1, "burst": 1})
    assert changed.json() == {"per_second": 1.0, "burst": 1}

    statuses = [(await helpdesk_client.get(USERS)).status_code for _ in range(2)]

    assert statuses == [200, 429]
    await helpdesk_client.post("/_admin/rate_limit", json={"per_second": None})
    assert (await helpdesk_client.get(USERS)).status_code == 200


# -- auth ------------------------------------------------------------------------------------


async def test_requests_without_credentials_are_401() -> None:
    async with run_helpdesk(
        api_key=HELPDESK_KEY, basic=("agent@example.com/token", "s3cret")
    ) as hd:
        good_basic = base64.b64encode(b"agent@example.com/token:s3cret").decode()
        bad_basic = base64.b64encode(b"agent@example.com/token:wrong").decode()
        async with httpx.AsyncClient(base_url=hd.url) as client:
            missing = await client.get(USERS)
            wrong_key = await client.get(USERS, headers={"X-API-Key": "nope"})
            key = await client.get(USERS, headers={"X-API-Key": HELPDESK_KEY})
            by_basic = await client.get(USERS, headers={"Authorization": f"Basic {good_basic}"})
            wrong = await client.get(USERS, headers={"Authorization": f"Basic {bad_basic}"})

    assert missing.status_code == 401
    assert missing.json() == {"error": "Couldn't authenticate you"}
    assert wrong_key.status_code == 401
    assert key.status_code == 200
    assert by_basic.status_code == 200
    assert wrong.status_code == 401
