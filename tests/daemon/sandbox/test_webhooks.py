"""CRM webhooks delivered to a real receiver, signed with HMAC-SHA256 over timestamp.body."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiohttp import web

from daemon.sandbox import RunningSystem, WebhookTarget, run_crm
from tests.daemon.sandbox.helpers import CRM_TOKEN, admin_edit, eventually

SECRET = "whsec-test"


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes

    @property
    def payload(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A small webhook endpoint that records what it gets and answers ``status``."""

    url: str = ""
    status: int = 200
    deliveries: asyncio.Queue[Delivery] = field(default_factory=asyncio.Queue)

    async def handle(self, request: web.Request) -> web.Response:
        await self.deliveries.put(Delivery(dict(request.headers), await request.read()))
        return web.Response(status=self.status)

    async def next(self) -> Delivery:
        return await asyncio.wait_for(self.deliveries.get(), 5)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/hooks", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    receiver.url = f"http://{host}:{port}/hooks"
    yield receiver
    await runner.cleanup()


@pytest.fixture
async def crm_with_hooks(receiver: Receiver) -> AsyncIterator[RunningSystem]:
    async with run_crm(token=CRM_TOKEN, webhook=WebhookTarget(receiver.url, SECRET)) as running:
        yield running


@pytest.fixture
async def client(crm_with_hooks: RunningSystem) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {CRM_TOKEN}"}
    async with httpx.AsyncClient(base_url=crm_with_hooks.url, headers=headers) as client:
        yield client


def verify(delivery: Delivery) -> None:
    timestamp = delivery.headers["X-Timestamp"]
    expected = hmac.new(
        SECRET.encode(), timestamp.encode() + b"." + delivery.body, hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(delivery.headers["X-Signature"], expected)
    assert abs(int(timestamp) - time.time()) < 60


async def test_changes_are_delivered_with_a_valid_signature(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    contact = (await client.post("/contacts", json={"email": "a@x.test"})).json()
    created = await receiver.next()
    await client.patch(f"/contacts/{contact['id']}", json={"phone": "1"})
    updated = await receiver.next()
    await client.delete(f"/contacts/{contact['id']}")
    deleted = await receiver.next()

    for delivery in (created, updated, deleted):
        verify(delivery)
        assert delivery.headers["Content-Type"] == "application/json"
        assert set(delivery.payload) == {"event", "id", "occurred_at"}
        assert delivery.payload["id"] == contact["id"]
    assert [d.payload["event"] for d in (created, updated, deleted)] == [
        "contact.created",
        "contact.updated",
        "contact.deleted",
    ]
    assert created.payload["occurred_at"] == contact["updated_at"]
    assert len({d.headers["X-Delivery-Id"] for d in (created, updated, deleted)}) == 3


async def test_a_tampered_body_fails_verification(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    await client.post("/contacts", json={"email": "a@x.test"})
    delivery = await receiver.next()

    tampered = Delivery(delivery.headers, delivery.body.replace(b"created", b"deleted"))

    with pytest.raises(AssertionError):
        verify(tampered)


async def test_user_edits_send_webhooks_too(client: httpx.AsyncClient, receiver: Receiver) -> None:
    await admin_edit(client, "companies", op="create", fields={"name": "Acme"})

    delivery = await receiver.next()

    verify(delivery)
    assert delivery.payload["event"] == "company.created"


async def test_no_webhook_for_a_write_that_changes_nothing(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    contact = (await client.post("/contacts", json={"email": "a@x.test", "phone": "1"})).json()
    await receiver.next()

    await client.patch(f"/contacts/{contact['id']}", json={"phone": "1"})
    await client.patch(f"/contacts/{contact['id']}", json={"phone": "2"})

    assert (await receiver.next()).payload["event"] == "contact.updated"
    assert receiver.deliveries.empty()
    stats = (await client.get("/_admin/stats")).json()
    assert stats["webhooks"]["sent"] == 2


async def test_failed_deliveries_are_counted_and_ignored(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    receiver.status = 500

    response = await client.post("/contacts", json={"email": "a@x.test"})

    assert response.status_code == 201

    async def failed() -> bool:
        stats = (await client.get("/_admin/stats")).json()
        return bool(stats["webhooks"]["failed"] == 1)

    await eventually(failed)


async def test_an_unreachable_receiver_counts_as_failed(client: httpx.AsyncClient) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    configured = await client.post(
        "/_admin/webhooks", json={"url": f"http://127.0.0.1:{closed_port}/x", "secret": "s"}
    )
    assert configured.json()["url"].endswith("/x")
    assert "secret" not in configured.json()

    await client.post("/contacts", json={"email": "a@x.test"})

    async def failed() -> bool:
        return bool((await client.get("/_admin/webhooks")).json()["failed"] == 1)

    await eventually(failed)


async def test_webhooks_can_be_turned_on_at_run_time(receiver: Receiver) -> None:
    async with run_crm(token=None) as crm, httpx.AsyncClient(base_url=crm.url) as client:
        await client.post("/contacts", json={"email": "before@x.test"})
        await client.post("/_admin/webhooks", json={"url": receiver.url, "secret": SECRET})
        after = (await client.post("/contacts", json={"email": "after@x.test"})).json()

        delivery = await receiver.next()

        verify(delivery)
        assert delivery.payload == {
            "event": "contact.created",
            "id": after["id"],
            "occurred_at": after["updated_at"],
        }
        assert (await client.post("/_admin/webhooks", json={"url": "x"})).status_code == 400
