"""The machinery against the simulated CRM and helpdesk (real servers on real sockets)."""

from __future__ import annotations

import logging
import random
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from daemon.http import (
    ApiKeyHeader,
    BasicAuth,
    BearerToken,
    Conflict,
    Cursor,
    HttpClient,
    MalformedResponse,
    PageNumber,
    PreconditionFailed,
    RateLimiter,
    RetryPolicy,
    Unauthorized,
)
from daemon.http.auth import SecretAuth
from daemon.sandbox import RateLimit, run_crm, run_helpdesk
from tests.daemon.http.conftest import FakeTime

CRM_TOKEN = "crm-token-7f3a9c"
HELPDESK_KEY = "helpdesk-key-2e8d41"


def client(url: str, auth: SecretAuth, fake_time: FakeTime) -> HttpClient:
    return HttpClient(
        url,
        auth=auth,
        limiter=RateLimiter(
            50, 50, clock=fake_time.clock, sleep=fake_time.sleep, wall=fake_time.wall
        ),
        retry=RetryPolicy(attempts=4, total_seconds=60),
        system="sandbox",
        clock=fake_time.clock,
        sleep=fake_time.sleep,
        rng=random.Random(5),
    )


async def admin(url: str, method: str, path: str, body: Any = None) -> Any:
    async with httpx.AsyncClient(base_url=url) as raw:
        response = await raw.request(method, f"/_admin{path}", json=body)
        response.raise_for_status()
        return response.json()


async def test_crm_cursor_pagination_reads_every_contact(fake_time: FakeTime) -> None:
    async with run_crm(token=CRM_TOKEN) as crm:
        async with client(crm.url, BearerToken(SecretStr(CRM_TOKEN)), fake_time) as http:
            created = [
                await http.send_json("POST", "/contacts", {"email": f"p{n}@example.com"})
                for n in range(7)
            ]
            style = Cursor(param="cursor", next_path="next_cursor", size_param="limit", size=3)
            pages = [p async for p in http.paginate("/contacts", style, records_at="data")]
        stats = await admin(crm.url, "GET", "/stats")
    assert [len(p.records) for p in pages] == [3, 3, 1]
    assert [r["id"] for p in pages for r in p.records] == [c["id"] for c in created]
    assert stats["writes"]["by_origin"] == {"syncline": 7}


async def test_crm_412_on_a_stale_etag_and_nothing_written(fake_time: FakeTime) -> None:
    async with run_crm(token=CRM_TOKEN) as crm:
        async with client(crm.url, BearerToken(SecretStr(CRM_TOKEN)), fake_time) as http:
            made = await http.send_json("POST", "/contacts", {"email": "a@example.com"})
            path = f"/contacts/{made['id']}"
            record, precondition = await http.get_versioned(path)
            assert precondition is not None and precondition.etag == '"1"'
            # A person edits the record in the CRM meanwhile.
            edit = {"op": "update", "id": made["id"], "fields": {"full_name": "Ann"}}
            await admin(crm.url, "POST", "/edit/contacts", edit)
            with pytest.raises(PreconditionFailed) as caught:
                await http.send_json("PATCH", path, {"full_name": "Bob"}, precondition=precondition)
            # Re-read, decide again, write on the fresh version.
            record, precondition = await http.get_versioned(path)
            assert record["full_name"] == "Ann"
            updated = await http.send_json(
                "PATCH", path, {"phone": "+1"}, precondition=precondition
            )
        stats = await admin(crm.url, "GET", "/stats")
    assert caught.value.status == 412 and not caught.value.retriable
    assert updated["full_name"] == "Ann" and updated["version"] == 3
    assert stats["writes"]["rejected"] == {"412": 1}


async def test_crm_wrong_token_is_unauthorized_and_masked(
    fake_time: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with run_crm(token=CRM_TOKEN) as crm:
        async with client(crm.url, BearerToken(SecretStr("wrong-token-x")), fake_time) as http:
            with pytest.raises(Unauthorized) as caught:
                await http.get_json("/contacts")
        stats = await admin(crm.url, "GET", "/stats")
    assert stats["requests"]["total"] == 1  # not retried
    assert "wrong-token-x" not in str(caught.value) + caplog.text


async def test_crm_html_maintenance_page_is_malformed(fake_time: FakeTime) -> None:
    async with run_crm(token=CRM_TOKEN) as crm:
        await admin(crm.url, "POST", "/faults", {"malformed_rate": 1, "malformed_kind": "html"})
        async with client(crm.url, BearerToken(SecretStr(CRM_TOKEN)), fake_time) as http:
            with pytest.raises(MalformedResponse, match="HTML"):
                await http.get_json("/contacts")


@pytest.mark.parametrize("use_basic", [False, True])
async def test_helpdesk_page_number_pagination(fake_time: FakeTime, use_basic: bool) -> None:
    auth: SecretAuth = (
        BasicAuth("agent@example.com", SecretStr("pw-91b2"))
        if use_basic
        else ApiKeyHeader(SecretStr(HELPDESK_KEY))
    )
    async with run_helpdesk(api_key=HELPDESK_KEY, basic=("agent@example.com", "pw-91b2")) as hd:
        for n in range(5):
            body = {"op": "create", "fields": {"name": f"User {n}"}}
            await admin(hd.url, "POST", "/edit/users", body)
        async with client(hd.url, auth, fake_time) as http:
            style = PageNumber(size=2, next_path="next_page")
            pages = [
                p
                async for p in http.paginate(
                    "/api/v2/users", style, records_at="users", params={"updated_since": 0}
                )
            ]
    assert [len(p.records) for p in pages] == [2, 2, 1]
    assert sorted(r["name"] for p in pages for r in p.records) == [f"User {n}" for n in range(5)]


async def test_helpdesk_429_burst_obeys_retry_after(fake_time: FakeTime) -> None:
    async with run_helpdesk(api_key=HELPDESK_KEY, rate_limit=RateLimit(100, burst=100)) as hd:
        await admin(hd.url, "POST", "/faults", {"burst_429": 2})
        async with client(hd.url, ApiKeyHeader(SecretStr(HELPDESK_KEY)), fake_time) as http:
            start = fake_time.now
            body = await http.get_json("/api/v2/users")
        stats = await admin(hd.url, "GET", "/stats")
    assert body["users"] == []
    assert stats["requests"]["by_status"]["429"] == 2
    assert fake_time.now - start >= 2  # Retry-After: 1, twice


async def test_crm_duplicate_email_is_conflict_not_retried(fake_time: FakeTime) -> None:
    async with run_crm(token=CRM_TOKEN) as crm:
        async with client(crm.url, BearerToken(SecretStr(CRM_TOKEN)), fake_time) as http:
            await http.send_json("POST", "/contacts", {"email": "dup@example.com"})
            with pytest.raises(Conflict) as caught:
                await http.send_json("POST", "/contacts", {"email": "DUP@example.com"})
        stats = await admin(crm.url, "GET", "/stats")
    assert caught.value.status == 409 and "duplicate" in caught.value.excerpt
    assert stats["requests"]["total"] == 2
