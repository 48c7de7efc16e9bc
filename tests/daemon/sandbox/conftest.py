"""Real simulated systems on real loopback sockets, and clients for them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from daemon.sandbox import RunningSystem, run_crm, run_helpdesk
from tests.daemon.sandbox.helpers import CRM_TOKEN, HELPDESK_KEY


@pytest.fixture
async def crm() -> AsyncIterator[RunningSystem]:
    async with run_crm(token=CRM_TOKEN) as running:
        yield running


@pytest.fixture
async def crm_client(crm: RunningSystem) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {CRM_TOKEN}", "X-Origin": "syncline"}
    async with httpx.AsyncClient(base_url=crm.url, headers=headers, timeout=5) as client:
        yield client


@pytest.fixture
async def helpdesk() -> AsyncIterator[RunningSystem]:
    # No rate limit unless a test asks for one: most tests are not about it.
    async with run_helpdesk(api_key=HELPDESK_KEY, rate_limit=None) as running:
        yield running


@pytest.fixture
async def helpdesk_client(helpdesk: RunningSystem) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"X-API-Key": HELPDESK_KEY, "X-Origin": "syncline"}
    async with httpx.AsyncClient(base_url=helpdesk.url, headers=headers, timeout=5) as client:
        yield client
