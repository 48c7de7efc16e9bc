"""The fault switch, on both systems: down, 5xx, latency, timeouts, 429 bursts, bad bodies."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from daemon.sandbox import run_crm, run_helpdesk
from tests.daemon.sandbox.helpers import CRM_TOKEN, HELPDESK_KEY, admin_records, eventually


@dataclass
class Target:
    """One running system, a client for it, and how to list and create on its API."""

    client: httpx.AsyncClient
    list_path: str
    resource: str
    envelope: str | None

    def body(self, name: str) -> dict[str, Any]:
        fields = {"full_name": name} if self.envelope is None else {"name": name}
        return fields if self.envelope is None else {self.envelope: fields}

    async def faults(self, **settings: Any) -> httpx.Response:
        return await self.client.post("/_admin/faults", json=settings)


@pytest.fixture(params=["crm", "helpdesk"])
async def target(request: pytest.FixtureRequest) -> AsyncIterator[Target]:
    if request.param == "crm":
        server = run_crm(token=CRM_TOKEN, seed=7)
        headers = {"Authorization": f"Bearer {CRM_TOKEN}"}
        list_path, resource, envelope = "/contacts", "contacts", None
    else:
        server = run_helpdesk(api_key=HELPDESK_KEY, rate_limit=None, seed=7)
        headers = {"X-API-Key": HELPDESK_KEY}
        list_path, resource, envelope = "/api/v2/users", "users", "user"
    async with (
        server as running,
        httpx.AsyncClient(base_url=running.url, headers=headers, timeout=5) as client,
    ):
        yield Target(client, list_path, resource, envelope)


async def test_down_answers_503_to_the_api_but_not_to_admin(target: Target) -> None:
    assert (await target.faults(down=True)).json()["down"] is True

    response = await target.client.get(target.list_path)

    assert response.status_code == 503
    assert (await target.client.get("/_admin/faults")).json()["down"] is True
    await target.faults(down=False)
    assert (await target.client.get(target.list_path)).status_code == 200


async def test_injected_errors_are_5xx_and_write_nothing(target: Target) -> None:
    await target.faults(error_rate=1.0)

    statuses = {
        (await target.client.post(target.list_path, json=target.body(f"n{i}"))).status_code
        for i in range(10)
    }

    assert statuses <= {500, 502, 503}
    assert await admin_records(target.client, target.resource) == []
    stats = (await target.client.get("/_admin/stats")).json()
    assert stats["writes"]["total"] == 0
    assert sum(stats["writes"]["rejected"].values()) == 10


async def test_a_partial_error_rate_fails_some_requests(target: Target) -> None:
    await target.faults(error_rate=0.5)

    statuses = [(await target.client.get(target.list_path)).status_code for _ in range(40)]

    assert 0 < statuses.count(200) < 40


async def test_latency_delays_every_request(target: Target) -> None:
    await target.faults(latency_ms=150)

    started = time.monotonic()
    response = await target.client.get(target.list_path)

    assert response.status_code == 200
    assert time.monotonic() - started >= 0.15


async def test_a_timeout_outlasts_the_client_but_the_write_happens(target: Target) -> None:
    await target.faults(timeout_rate=1.0, timeout_ms=20_000)

    with pytest.raises(httpx.ReadTimeout):
        await target.client.post(target.list_path, json=target.body("slow"), timeout=0.3)

    async def written() -> list[dict[str, Any]]:
        return await admin_records(target.client, target.resource)

    records = await eventually(written)
    assert len(records) == 1


async def test_a_429_burst_refuses_the_next_n_requests(target: Target) -> None:
    await target.faults(burst_429=2)

    answers = [await target.client.get(target.list_path) for _ in range(3)]

    assert [a.status_code for a in answers] == [429, 429, 200]
    assert answers[0].headers["Retry-After"] == "1"
    assert (await target.client.get("/_admin/faults")).json()["burst_429"] == 0


async def test_malformed_html_is_a_200_html_page(target: Target) -> None:
    await target.faults(malformed_rate=1.0, malformed_kind="html")

    response = await target.client.get(target.list_path)

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    with pytest.raises(json.JSONDecodeError):
        response.json()


async def test_malformed_truncated_json_does_not_parse(target: Target) -> None:
    await target.client.post(target.list_path, json=target.body("someone"))
    await target.faults(malformed_rate=1.0, malformed_kind="truncated")

    response = await target.client.get(target.list_path)

    assert response.headers["Content-Type"].startswith("application/json")
    with pytest.raises(json.JSONDecodeError):
        response.json()


async def test_garbled_bytes_are_neither_utf8_nor_json_and_the_write_happened(
        target: Target) -> None:
    await target.faults(malformed_rate=1.0, malformed_kind="garbled")

    response = await target.client.post(target.list_path, json=target.body("garbled"))

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    with pytest.raises(UnicodeDecodeError):
        response.content.decode("utf-8")
    assert len(await admin_records(target.client, target.resource)) == 1


async def test_the_stats_count_each_fault_that_struck_by_kind(target: Target) -> None:
    await target.faults(burst_429=2)
    for _ in range(3):
        await target.client.get(target.list_path)
    await target.faults(malformed_rate=1.0, malformed_kind="garbled")
    await target.client.get(target.list_path)
    await target.faults(malformed_rate=0, error_rate=1.0)
    await target.client.get(target.list_path)
    await target.faults(error_rate=0, down=True)
    await target.client.get(target.list_path)

    stats = (await target.client.get("/_admin/stats")).json()

    assert stats["faults_injected"] == {"429": 2, "down": 1, "error": 1, "garbled": 1}
    await target.client.post("/_admin/reset")
    assert (await target.client.get("/_admin/stats")).json()["faults_injected"] == {}


async def test_clearing_faults_restores_normal_service(target: Target) -> None:
    await target.faults(error_rate=1.0, latency_ms=10, burst_429=5)

    cleared = await target.client.delete("/_admin/faults")

    assert cleared.json()["error_rate"] == 0
    assert cleared.json()["burst_429"] == 0
    assert (await target.client.get(target.list_path)).status_code == 200


@pytest.mark.parametrize(
    "settings",
    [{"error_rate": 2}, {"latency_ms": -1}, {"down": "yes"}, {"explode": True}, {"burst_429": 1.5}],
)
async def test_invalid_fault_settings_are_400(target: Target, settings: dict[str, Any]) -> None:
    response = await target.faults(**settings)

    assert response.status_code == 400
    assert (await target.client.get("/_admin/faults")).json()["error_rate"] == 0


async def test_ignored_fields_are_answered_and_not_kept(target: Target) -> None:
    settings = (await target.faults(ignore_fields=["phone"])).json()
    assert settings["ignore_fields"] == ["phone"]

    def body(phone: str) -> dict[str, Any]:
        fields = {**next(iter(target.body("Ann").values())), "phone": phone} \
            if target.envelope else {**target.body("Ann"), "phone": phone}
        return fields if target.envelope is None else {target.envelope: fields}

    def unwrap(response: httpx.Response) -> dict[str, Any]:
        data: dict[str, Any] = response.json()
        return data if target.envelope is None else data[target.envelope]

    created = await target.client.post(target.list_path, json=body("555-1"))
    assert created.status_code == 201
    record = unwrap(created)
    assert record.get("phone") is None  # answered, not kept
    item = f"{target.list_path}/{record['id']}"
    update = target.client.patch if target.envelope is None else target.client.put
    answer = await update(item, json=body("555-2"))
    assert answer.status_code == 200
    assert unwrap(await target.client.get(item)).get("phone") is None

    refused = await target.faults(ignore_fields="phone")
    assert refused.status_code == 400
    assert "ignore_fields must be a list of field names" in refused.text
