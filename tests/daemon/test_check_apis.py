"""``syncline check`` against the simulated systems: can a config sync, before it runs?

Each test starts a simulated API (taught a real API's bad habit where the test is about one),
writes a config, runs ``syncline check --skip-kafka`` as a user does, and reads its exit code
and what it prints: the exact requests, what was found, and every problem by name.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from daemon.sandbox import RunningSystem, run_crm, run_helpdesk

REPO = Path(__file__).resolve().parents[2]
ENV = {"CRM_TOKEN": "check-crm-token", "HELPDESK_API_KEY": "check-helpdesk-key"}

CRM_CONTACT = """\
        path: /contacts
        records_at: data
        since: {param: updated_after, format: iso_ms}
        pagination: {style: cursor, next: next_cursor, size_param: limit, size: 100}
"""


def config_text(crm_url: str, endpoint: str = CRM_CONTACT,
                fields: str = "email: {crm: email, type: string}\n"
                              "      name: {crm: full_name, type: string}\n") -> str:
    return ("kafka: {bootstrap: 127.0.0.1:9}\n"
            "systems:\n"
            "  crm:\n"
            f"    base_url: {crm_url}\n"
            "    auth: {type: bearer, token_env: CRM_TOKEN}\n"
            "    retry: {attempts: 1}\n"
            "    entities:\n"
            "      contact:\n"
            f"{endpoint}"
            "entities:\n"
            "  contact:\n"
            "    fields:\n"
            f"      {fields}")


async def check(tmp_path: Path, text: str, *args: str) -> tuple[int, str, str]:
    config = tmp_path / "syncline.yaml"
    config.write_text(text, encoding="utf-8")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "daemon", "check", "--config", str(config), "--skip-kafka",
        *args, cwd=REPO, env={**os.environ, **ENV}, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate()
    assert process.returncode is not None
    assert "Traceback" not in err.decode()
    return process.returncode, out.decode(), err.decode()


@asynccontextmanager
async def crm_with(*contacts: dict[str, Any], faults: dict[str, Any] | None = None
                   ) -> AsyncIterator[tuple[RunningSystem, httpx.AsyncClient]]:
    async with run_crm(token=ENV["CRM_TOKEN"]) as crm, httpx.AsyncClient(
            base_url=crm.url) as admin:
        if faults:
            (await admin.post("/_admin/faults", json=faults)).raise_for_status()
        for fields in contacts:
            (await admin.post("/_admin/edit/contacts",
                              json={"op": "create", "fields": fields})).raise_for_status()
        yield crm, admin


ADA = {"email": "ada@example.com", "full_name": "Ada Lovelace"}
ALAN = {"email": "alan@example.com", "full_name": "Alan Turing"}


async def test_a_config_that_can_sync_passes_and_shows_every_request(tmp_path: Path) -> None:
    async with crm_with(ADA, ALAN) as (crm, _):
        code, out, err = await check(tmp_path, config_text(crm.url))

    assert code == 0, err
    assert "api ok: crm contact\n" in out
    lines = out.splitlines()
    # The first poll, a later poll (with the since filter), the filter probe, a read by id.
    assert f"    GET {crm.url}/contacts?limit=100" in lines
    assert any(line.startswith(f"    GET {crm.url}/contacts?updated_after=20") and
               line.endswith("&limit=100") for line in lines), out
    assert f"    GET {crm.url}/contacts/ct_00000001" in lines
    assert "    first page: 2 records, 0 unreadable" in lines
    assert "    record ct_00000001 read by its id" in lines
    assert ENV["CRM_TOKEN"] not in out + err


async def test_unreadable_records_are_counted_as_unreadable_and_fail(tmp_path: Path) -> None:
    endpoint = CRM_CONTACT + "        updated: full_name\n"  # not a time
    async with crm_with(ADA, ALAN) as (crm, _):
        code, out, err = await check(tmp_path, config_text(crm.url, endpoint))

    assert code == 1
    assert "    first page: 0 records, 2 unreadable" in out.splitlines()
    assert ("api FAILED: crm contact: unreadable record ct_00000001: record ct_00000001: no "
            "readable updated-at at 'full_name' (got 'Ada Lovelace')") in err.splitlines()
    assert err.splitlines()[-1].startswith("syncline: this config would not sync: ")


async def test_a_mapped_path_no_record_has_is_named(tmp_path: Path) -> None:
    fields = ("email: {crm: email, type: string}\n"
              "      name: {crm: fullname, type: string}\n")  # the API says full_name
    async with crm_with(ADA) as (crm, _):
        code, _, err = await check(tmp_path, config_text(crm.url, fields=fields))

    assert code == 1
    assert ("api FAILED: crm contact: field name: path fullname is in none of the 2 records "
            "read (their keys: company_id, created_at, email, full_name,") in err


async def test_a_value_its_mapping_cannot_read_is_named(tmp_path: Path) -> None:
    fields = ("email: {crm: email, type: string}\n"
              "      name: {crm: full_name, type: number}\n")
    async with crm_with(ADA) as (crm, _):
        code, _, err = await check(tmp_path, config_text(crm.url, fields=fields))

    assert code == 1
    assert ("api FAILED: crm contact: field name: path full_name of record ct_00000001 cannot "
            "be read: expected a number, got 'Ada Lovelace'") in err


async def test_records_whose_updated_at_is_null_are_invisible_to_the_since_filter(
        tmp_path: Path) -> None:
    # NocoDB leaves UpdatedAt null until a record's first edit; a filter on it skips them.
    async with crm_with(ADA, ALAN, faults={"null_updated_until_edit": True,
                                                   "since_skips_null_updated": True}) as (crm, _):
        code, out, err = await check(tmp_path, config_text(crm.url))

    assert code == 1
    assert "    first page: 2 records, 0 unreadable" in out.splitlines()
    assert ("api FAILED: crm contact: record ct_00000001 has no updated-at (updated_at null or "
            "absent) and the since filter (updated_after from 2000-01-01T00:00:00.000Z) does "
            "not return it") in err


async def test_a_since_filter_the_api_ignores_fails(tmp_path: Path) -> None:
    endpoint = CRM_CONTACT.replace("param: updated_after", "param: changed_after")
    async with crm_with(ADA) as (crm, _):
        code, out, err = await check(tmp_path, config_text(crm.url, endpoint))

    assert code == 1
    assert "changed_after=" in out  # the request as sent
    assert ("api FAILED: crm contact: the since filter is ignored: asked for changes since "
            in err)
    assert "(tomorrow), the API answered 1 record; check since.param and since.format" in err


async def test_a_query_string_in_a_path_is_sent_with_every_request(tmp_path: Path) -> None:
    endpoint = ("        path: /api/v2/users?per_page=1\n"
                "        records_at: users\n"
                "        envelope: user\n"
                "        since: {param: updated_since, format: unix}\n"
                "        pagination: {style: page, next: next_page}\n")
    async with run_helpdesk(api_key=ENV["HELPDESK_API_KEY"], rate_limit=None) as helpdesk, \
            httpx.AsyncClient(base_url=helpdesk.url) as admin:
        for person in ({"name": "Ada", "email_address": "ada@example.com"},
                       {"name": "Alan", "email_address": "alan@example.com"}):
            await admin.post("/_admin/edit/users", json={"op": "create", "fields": person})
        text = config_text(helpdesk.url, endpoint, "email: {crm: email_address}\n").replace(
            "auth: {type: bearer, token_env: CRM_TOKEN}",
            "auth: {type: api_key, key_env: HELPDESK_API_KEY}")
        code, out, err = await check(tmp_path, text)

    assert code == 0, err
    lines = out.splitlines()
    assert f"    GET {helpdesk.url}/api/v2/users?per_page=1&page=1" in lines
    assert f"    GET {helpdesk.url}/api/v2/users/1?per_page=1" in lines  # reads too
    assert "    first page: 1 record, 0 unreadable" in lines  # the API honoured it


async def test_a_query_parameter_the_paging_would_replace_is_refused(tmp_path: Path) -> None:
    endpoint = CRM_CONTACT.replace("path: /contacts", "path: /contacts?limit=7")
    code, _, err = await check(tmp_path, config_text("http://127.0.0.1:9", endpoint))

    assert code == 2
    assert ("systems.crm.entities.contact: the query parameter 'limit' is fixed (params:, or "
            "the query string of path:) and also set by pagination (cursor), which would "
            "replace it in every listing: keep one") in err


async def test_a_query_string_in_the_base_url_is_refused(tmp_path: Path) -> None:
    code, _, err = await check(tmp_path, config_text("http://127.0.0.1:9/api?key=1"))

    assert code == 2
    assert "systems.crm.base_url: expected a URL without a query string" in err


SCRATCH = ("        check:\n"
           "          scratch: {email: \"check-{nonce}@example.invalid\", name: Check Probe}\n")


async def test_the_write_probe_names_a_field_the_api_ignores_on_writes(tmp_path: Path) -> None:
    async with crm_with(ADA, faults={"ignore_fields": ["full_name"]}) as (crm, admin):
        code, out, err = await check(tmp_path, config_text(crm.url, CRM_CONTACT + SCRATCH),
                                     "--write-probe")
        left = (await admin.get("/_admin/records/contacts")).json()["count"]

    assert code == 1
    assert ("api FAILED: crm contact: write probe: field name does not round-trip: wrote "
            "'Check Probe' at full_name, read back None at full_name") in err
    assert "email does not round-trip" not in err
    assert f"    POST {crm.url}/contacts" in out.splitlines()
    assert f"    DELETE {crm.url}/contacts/ct_00000002" in out.splitlines()
    assert left == 1  # the scratch record is gone


async def test_the_write_probe_names_every_field_of_a_wrapped_body_the_api_ignored(
        tmp_path: Path) -> None:
    # Answers {"data": {...}} but takes bare bodies, and ignores keys it does not know.
    faults = {"wrap_answers": "data", "ignore_unknown_fields": True}
    wrapped = CRM_CONTACT + "        envelope: data\n" + SCRATCH
    bare = CRM_CONTACT + "        envelope: {read: data}\n" + SCRATCH
    async with crm_with(ADA, faults=faults) as (crm, _):
        code, _, err = await check(tmp_path, config_text(crm.url, wrapped), "--write-probe")
        fixed, out, fixed_err = await check(tmp_path, config_text(crm.url, bare),
                                            "--write-probe")

    assert code == 1
    assert "write probe: field email does not round-trip: wrote 'check-" in err
    assert "write probe: field name does not round-trip: wrote 'Check Probe'" in err
    assert fixed == 0, fixed_err
    assert "all 2 fields round-trip" in out


async def test_the_write_probe_without_scratch_writes_a_records_own_values_back(
        tmp_path: Path) -> None:
    async with crm_with(ADA) as (crm, admin):
        code, out, err = await check(tmp_path, config_text(crm.url), "--write-probe")
        stats = (await admin.get("/_admin/stats")).json()["writes"]
        record = (await admin.get("/_admin/records/contacts")).json()["records"][0]

    assert code == 0, err
    assert (f"    PATCH {crm.url}/contacts/ct_00000001" in out.splitlines())
    assert ("    write probe: wrote record ct_00000001's own values back; all 2 fields "
            "round-trip") in out.splitlines()
    assert stats["total"] == 1 and stats["unchanged"] == 1  # a write that changed nothing
    assert record["full_name"] == "Ada Lovelace"


async def test_a_scratch_value_for_a_field_the_system_does_not_carry_is_refused(
        tmp_path: Path) -> None:
    endpoint = CRM_CONTACT + "        check: {scratch: {email: a@b.c, phone: '1'}}\n"
    code, _, err = await check(tmp_path, config_text("http://127.0.0.1:9", endpoint))

    assert code == 2
    assert ("systems.crm.entities.contact.check.scratch.phone: 'phone' is not a field of "
            "contact written to crm (those are: email, name)") in err


LOOKUP = ("        lookup: {path: /contacts/search, params: {email: \"{email}\"}, "
          "records_at: data}\n")


async def test_a_lookup_that_cannot_find_a_record_by_its_own_values_fails(
        tmp_path: Path) -> None:
    good = CRM_CONTACT + LOOKUP
    wrong = CRM_CONTACT + LOOKUP.replace('"{email}"', '"{full_name}"')
    async with crm_with(ADA) as (crm, _):
        ok, out, ok_err = await check(tmp_path, config_text(crm.url, good))
        code, _, err = await check(tmp_path, config_text(crm.url, wrong))

    assert ok == 0, ok_err
    assert f"    GET {crm.url}/contacts/search?email=ada%40example.com" in out.splitlines()
    assert "    lookup finds record ct_00000001 by its own values" in out.splitlines()
    assert code == 1
    assert ("api FAILED: crm contact: lookup: searching /contacts/search with record "
            "ct_00000001's own values did not find it (0 found): a create could duplicate "
            "it") in err
