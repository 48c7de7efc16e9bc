"""Acceptance: a system that reuses the id of its newest deleted record.

Both simulated systems run with ``reuse_ids``: a create takes the id of the newest deleted
record, as some real APIs do. The config reads each record's created-at (``created``), so a
record made after the one its id was linked to is a new record, not the deleted one back.
Checked through the systems' own APIs and the records topic.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from streams import codec
from streams.events import RecordEvent
from streams.kafka import KafkaSettings, read_to_end
from tests.e2e.harness import Stack, eventually, stack

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(300)]


def person(name: str) -> dict[str, object]:
    return {"name": name, "phone": None, "tags": []}


async def records(s: Stack) -> dict[str, RecordEvent]:
    """The latest record event of every canonical record."""
    latest: dict[str, RecordEvent] = {}
    for record in await read_to_end(s.kafka, s.topics.records):
        if record.value is not None:
            event = codec.decode(record.value, (RecordEvent,))
            latest[event.canonical_id] = event
    return latest


async def test_a_new_record_under_a_reused_id_is_a_new_record_not_a_resurrection(
        kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    async with stack(tmp_path, kafka_settings, options={"reuse_ids": True}) as s:
        await s.start()
        ann_id = await s.create("helpdesk", "ann@example.com", "Ann Old")
        await s.converged({"ann@example.com": {"email": "ann@example.com", **person("Ann Old")}})
        [ann_cid] = [cid for cid, r in (await records(s)).items()
                     if r.fields.get("email") == "ann@example.com"]
        await asyncio.sleep(1.1)  # the helpdesk's times are whole seconds
        await s.delete("helpdesk", "ann@example.com")

        async def gone() -> bool:  # found by the helpdesk's sweep, deleted in the crm
            return all(not people for people in (await s.contacts()).values())

        await eventually(gone, 90, "Ann deleted in both systems")
        bob_id = await s.create("helpdesk", "bob@example.com", "Bob New")
        assert bob_id == ann_id  # the helpdesk gave Bob the id of Ann's deleted record
        await s.converged({"bob@example.com": {"email": "bob@example.com", **person("Bob New")}},
                          within=90)
        for name in s.systems:  # nothing came back, nothing twice
            assert [r.get("email") or r.get("email_address") for r in await s.raw(name)] == [
                "bob@example.com"], name

        async def settled() -> dict[str, RecordEvent] | None:
            now = await records(s)
            bob = [r for r in now.values() if r.fields.get("email") == "bob@example.com"]
            if len(bob) == 1 and set(bob[0].links) == {"crm", "helpdesk"}:
                return now
            return None

        now = await eventually(settled, 30, lambda: "Bob's record linked in both systems")
        [bob] = [r for r in now.values() if r.fields.get("email") == "bob@example.com"]
        assert bob.canonical_id != ann_cid, "Bob was taken for Ann come back"
        assert now[ann_cid].deleted  # Ann stays deleted
        assert bob.links["helpdesk"] == bob_id and not bob.deleted
        crm = {r["email"]: r["id"] for r in await s.raw("crm")}
        assert bob.links["crm"] == str(crm["bob@example.com"])
