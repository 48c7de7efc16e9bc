"""Constants and helpers shared by the sandbox tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

import httpx

T = TypeVar("T")

CRM_TOKEN = "test-crm-token"
HELPDESK_KEY = "test-helpdesk-key"


async def eventually(check: Callable[[], Awaitable[T | None]], *, within: float = 5.0) -> T:
    """Poll ``check`` until it returns something other than None/False, or fail at the deadline."""
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result is not None and result is not False:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(0.01)


async def admin_edit(client: httpx.AsyncClient, resource: str, **body: Any) -> dict[str, Any]:
    """A "user" edit through the admin API; returns the response body."""
    response = await client.post(f"/_admin/edit/{resource}", json=body)
    assert response.status_code in (200, 201), response.text
    result: dict[str, Any] = response.json()
    return result


async def admin_records(client: httpx.AsyncClient, resource: str) -> list[dict[str, Any]]:
    """Every live record of ``resource``, straight from the system."""
    response = await client.get(f"/_admin/records/{resource}")
    assert response.status_code == 200, response.text
    records: list[dict[str, Any]] = response.json()["records"]
    return records


async def freeze_clock(client: httpx.AsyncClient) -> str:
    """Freeze the system's clock; returns the frozen time."""
    response = await client.post("/_admin/clock", json={"freeze": True})
    assert response.status_code == 200, response.text
    now: str = response.json()["now"]
    return now


def plus_ms(iso: str, ms: int) -> str:
    """An ISO-8601 timestamp ``ms`` milliseconds after ``iso``."""
    moment = datetime.fromisoformat(iso) + timedelta(milliseconds=ms)
    return moment.isoformat()
