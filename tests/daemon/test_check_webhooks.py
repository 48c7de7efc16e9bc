"""``syncline check`` and webhooks: what can be proven without a delivery, and a sample body
read by the receiver's own parsing. Run as a user runs it (``--skip-kafka``); exit codes as
check documents them (0 ok, 1 would not sync, 2 a bad file)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.daemon.test_check_apis import ADA, CRM_CONTACT, check, config_text, crm_with

SECRET = "s3cret-of-the-hook"
HOOKS = """\
    webhooks:
      secret_env: CRM_HOOK_SECRET
      scheme: header
      secret_header: X-Noco-Secret
      id_at: data.rows[*].Id
      event_at: type
      events: {records.after.insert: created, records.after.update: updated}
"""


def hooked(url: str, prefix: str = "records") -> str:
    text = config_text(url, CRM_CONTACT + f"        webhook_event: {prefix}\n")
    return text.replace("    retry: {attempts: 1}\n", "    retry: {attempts: 1}\n" + HOOKS)


@pytest.fixture(autouse=True)
def secret_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "hook-secret"
    path.write_text(SECRET + "\n", encoding="utf-8")
    monkeypatch.setenv("CRM_HOOK_SECRET_FILE", str(path))
    monkeypatch.delenv("CRM_HOOK_SECRET", raising=False)
    return path


def sample(tmp_path: Path, body: object, name: str = "sample.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(body), encoding="utf-8")
    return str(path)


async def test_the_webhooks_and_a_sample_are_read_as_the_receiver_reads_them(
        tmp_path: Path) -> None:
    body = {"type": "records.after.update", "data": {"rows": [{"Id": 3}, {"Id": 4}, {"Id": 3}]}}
    async with crm_with(ADA) as (crm, _):
        code, out, err = await check(tmp_path, hooked(crm.url), "--webhook-sample", "crm",
                                     sample(tmp_path, body))
    assert code == 0, out + err
    assert "webhooks ok: crm" in out
    assert "secret from CRM_HOOK_SECRET (or CRM_HOOK_SECRET_FILE) resolved" in out
    assert "scheme header: the secret itself in the X-Noco-Secret header" in out
    assert "event 'records.after.insert' (created) is about contact" in out
    assert ("event 'records.after.update' (updated): entity contact, 2 records to read: 3, 4"
            in out)
    assert SECRET not in out + err


@pytest.mark.parametrize(("target", "body", "why"), [
    ("crm", {"type": "records.after.delete", "data": {"rows": [{"Id": 3}]}},
     "ignored (answered 200, nothing read): event 'records.after.delete' is not one of the "
     "configured events"),
    ("crm", {"type": "records.after.update", "data": {"rows": [{"id": 3}]}},
     "refused 400 malformed: no record id"),
    ("crm", ["not", "an", "object"], "refused 400 malformed: the body is not a JSON object"),
    ("crm/company", {"type": "records.after.update", "data": {"rows": [{"Id": 3}]}},
     "404: system 'crm' has no entity 'company'"),
    ("helpdesk", {}, "system 'helpdesk' has no webhooks: in the config (known: crm)"),
])
async def test_a_sample_that_would_not_sync_says_why(tmp_path: Path, target: str,
                                                     body: object, why: str) -> None:
    async with crm_with(ADA) as (crm, _):
        code, out, err = await check(tmp_path, hooked(crm.url), "--webhook-sample", target,
                                     sample(tmp_path, body))
    assert code == 1, out + err
    assert why in err
    assert "this config would not sync" in err


async def test_an_entity_whose_events_are_in_no_event_name_is_named(tmp_path: Path) -> None:
    async with crm_with(ADA) as (crm, _):
        code, out, err = await check(tmp_path, hooked(crm.url, prefix="contact"))
    assert code == 1, out + err
    assert ("webhooks FAILED: crm webhooks: entity contact has webhook_event 'contact', but "
            "no event in webhooks.events starts with it") in err
    assert "event 'records.after.update' (updated) names no entity by its prefix" in out


def blank(path: Path) -> None:
    path.write_text("\n", encoding="utf-8")


async def test_an_empty_secret_is_a_problem(tmp_path: Path, secret_file: Path) -> None:
    blank(secret_file)
    async with crm_with(ADA) as (crm, _):
        code, _, err = await check(tmp_path, hooked(crm.url))
    assert code == 1
    assert "the secret (CRM_HOOK_SECRET or CRM_HOOK_SECRET_FILE) is empty" in err


async def test_a_sample_that_cannot_be_read_is_exit_2(tmp_path: Path) -> None:
    async with crm_with(ADA) as (crm, _):
        code, _, err = await check(tmp_path, hooked(crm.url), "--webhook-sample", "crm",
                                   str(tmp_path / "missing.json"))
    assert code == 2
    assert "--webhook-sample crm" in err and "cannot read it" in err


async def test_a_secret_file_that_cannot_be_read_is_exit_2(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_HOOK_SECRET_FILE", str(tmp_path / "no-such-secret"))
    async with crm_with(ADA) as (crm, _):
        code, _, err = await check(tmp_path, hooked(crm.url))
    assert code == 2
    assert "CRM_HOOK_SECRET_FILE names" in err and "which cannot be read" in err
