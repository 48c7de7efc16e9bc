"""Running the systems: persistence across restarts, the command line, a taken port."""

from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path

import httpx
import pytest

from daemon.sandbox import run_crm, run_helpdesk
from daemon.sandbox.errors import ListenError
from daemon.sandbox.store import StoreError
from tests.daemon.sandbox.helpers import CRM_TOKEN, HELPDESK_KEY

CRM_AUTH = {"Authorization": f"Bearer {CRM_TOKEN}"}


async def test_crm_records_survive_a_restart_with_a_file_db(tmp_path: Path) -> None:
    db = str(tmp_path / "crm.sqlite")
    async with (
        run_crm(db=db, token=CRM_TOKEN) as crm,
        httpx.AsyncClient(base_url=crm.url, headers=CRM_AUTH) as client,
    ):
        company = (await client.post("/companies", json={"name": "Acme"})).json()
        kept = (
            await client.post("/contacts", json={"email": "a@x.test", "company_id": company["id"]})
        ).json()
        kept = (await client.patch(f"/contacts/{kept['id']}", json={"phone": "1"})).json()
        gone = (await client.post("/contacts", json={"email": "b@x.test"})).json()
        await client.delete(f"/contacts/{gone['id']}")

    async with (
        run_crm(db=db, token=CRM_TOKEN) as crm,
        httpx.AsyncClient(base_url=crm.url, headers=CRM_AUTH) as client,
    ):
        again = await client.get(f"/contacts/{kept['id']}")
        listed = (await client.get("/contacts")).json()["data"]
        feed = (await client.get("/contacts/deleted")).json()["data"]
        fresh = (await client.post("/contacts", json={"email": "c@x.test"})).json()

    assert again.json() == kept
    assert again.headers["ETag"] == '"2"'
    assert [r["id"] for r in listed] == [kept["id"]]
    assert [entry["id"] for entry in feed] == [gone["id"]]
    assert fresh["id"] not in (kept["id"], gone["id"])


async def test_helpdesk_records_survive_a_restart_with_a_file_db(tmp_path: Path) -> None:
    db = str(tmp_path / "helpdesk.sqlite")
    headers = {"X-API-Key": HELPDESK_KEY}
    async with (
        run_helpdesk(db=db, api_key=HELPDESK_KEY) as hd,
        httpx.AsyncClient(base_url=hd.url, headers=headers) as client,
    ):
        user = (await client.post("/api/v2/users", json={"user": {"name": "Ada"}})).json()

    async with (
        run_helpdesk(db=db, api_key=HELPDESK_KEY) as hd,
        httpx.AsyncClient(base_url=hd.url, headers=headers) as client,
    ):
        again = (await client.get(f"/api/v2/users/{user['user']['id']}")).json()

    assert again == user


async def test_a_db_file_of_the_other_system_is_refused(tmp_path: Path) -> None:
    db = str(tmp_path / "crm.sqlite")
    async with run_crm(db=db):
        pass

    with pytest.raises(StoreError, match="belongs to the crm sandbox"):
        async with run_helpdesk(db=db):
            pass


async def test_a_taken_port_raises_listen_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        with pytest.raises(ListenError, match="already in use"):
            async with run_crm(port=port):
                pass


async def start_cli(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "daemon.sandbox",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_the_command_line_serves_until_terminated(tmp_path: Path) -> None:
    db = str(tmp_path / "cli.sqlite")
    process = await start_cli("crm", "--port", "0", "--db", db, "--token", "cli-token")
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 15)).decode()
        assert line.startswith("crm sandbox listening on http://127.0.0.1:")
        url = line.split()[4]
        async with httpx.AsyncClient(base_url=url) as client:
            refused = await client.get("/contacts")
            allowed = await client.get("/contacts", headers={"Authorization": "Bearer cli-token"})
        assert refused.status_code == 401
        assert allowed.status_code == 200
    finally:
        process.terminate()
        code = await asyncio.wait_for(process.wait(), 15)
    assert code == 0


async def test_the_command_line_exits_2_with_one_line_on_a_taken_port() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        process = await start_cli("helpdesk", "--port", str(port))
        stdout, stderr = await asyncio.wait_for(process.communicate(), 15)

    assert process.returncode == 2
    assert stdout == b""
    lines = stderr.decode().splitlines()
    assert len(lines) == 1
    assert f"cannot listen on 127.0.0.1:{port}: address already in use" in lines[0]
