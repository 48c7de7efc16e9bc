"""The lane against a real simulated system and the real broker (no merge stage here).

What the lane publishes is read back from the ``observations`` topic with read_committed;
what it wrote is read back from the system's admin API.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from aiokafka import TopicPartition
from aiokafka.admin import RecordsToDelete

from daemon.config import EntityConfig
from daemon.connector.config import WriteConfig
from daemon.connector.rest import RestEntity, build_client
from daemon.lane import Journal, Lane
from daemon.sandbox import RunningSystem, run_crm, run_helpdesk
from streams import codec
from streams.events import (
    AnyObservation,
    DeadLetter,
    Observed,
    WriteIntent,
    WriteStale,
    Written,
)
from streams.kafka import KafkaSettings, new_admin
from streams.lanelog import LaneLog, partition_of
from streams.topics import Topics
from tests.daemon.connector.conftest import ENV, example_system
from tests.daemon.lane.test_journal_contract import JournalContract
from tests.streams.kafka_helpers import made_topics, produce, read_topic

pytestmark = [pytest.mark.kafka]

CONTACT = EntityConfig.model_validate(
    {"match_on": ["email"],
     "fields": {"email": {"crm": "email", "helpdesk": "email_address", "type": "string",
                          "transform": "email"},
                "name": {"crm": "full_name", "helpdesk": "name", "type": "string"}}},
    context={"systems": ["crm", "helpdesk"]})

RESOURCE = {"crm": "contacts", "helpdesk": "users"}
NAME = {"crm": "full_name", "helpdesk": "name"}
EMAIL = {"crm": "email", "helpdesk": "email_address"}


@pytest.fixture
async def topics(kafka_settings: KafkaSettings) -> Topics:
    return await made_topics(kafka_settings, "lane")


@asynccontextmanager
async def lane_for(settings: KafkaSettings, topics: Topics, system: str, url: str,
                   **entity_changes: Any) -> AsyncIterator[Lane]:
    config = example_system(system, url)
    entity = config.entities["contact"].model_copy(update=entity_changes)
    client = build_client(system, config)
    lane_log = LaneLog(settings, topics, system, "contact")
    await lane_log.start()
    try:
        yield Lane(RestEntity(client, system, "contact", entity),
                   CONTACT.mapping("contact", system), lane_log, match_on=("email",))
    finally:
        await lane_log.stop()
        await client.aclose()


@asynccontextmanager
async def system(name: str) -> AsyncIterator[tuple[RunningSystem, httpx.AsyncClient]]:
    serve = (run_crm(token=ENV["CRM_TOKEN"]) if name == "crm"
             else run_helpdesk(api_key=ENV["HELPDESK_API_KEY"], rate_limit=None))
    async with serve as running, httpx.AsyncClient(base_url=running.url, timeout=5) as admin:
        yield running, admin


async def person(admin: httpx.AsyncClient, system_name: str, **fields: Any) -> str:
    body = {"op": "create", "fields": {({"email": EMAIL, "name": NAME}[k][system_name]): v
                                       for k, v in fields.items()}}
    answer = await admin.post(f"/_admin/edit/{RESOURCE[system_name]}", json=body)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["record"]["id"])


async def edit(admin: httpx.AsyncClient, system_name: str, external_id: str, **fields: Any
               ) -> None:
    body = {"op": "update", "id": external_id,
            "fields": {({"email": EMAIL, "name": NAME}[k][system_name]): v
                       for k, v in fields.items()}}
    answer = await admin.post(f"/_admin/edit/{RESOURCE[system_name]}", json=body)
    assert answer.status_code == 200, answer.text


async def records(admin: httpx.AsyncClient, system_name: str) -> list[dict[str, Any]]:
    answer = await admin.get(f"/_admin/records/{RESOURCE[system_name]}")
    found: list[dict[str, Any]] = answer.json()["records"]
    return found


async def observations(settings: KafkaSettings, topics: Topics) -> list[AnyObservation]:
    return [codec.decode(r.value) for r in await read_topic(settings, topics.observations)]


async def api_writes(admin: httpx.AsyncClient) -> int:
    stats = (await admin.get("/_admin/stats")).json()
    return int(stats["writes"]["by_origin"].get("syncline", 0))


def intent(system_name: str, op: str, *, external_id: str | None, values: dict[str, Any],
           expected: dict[str, Any], attempt: int = 1) -> WriteIntent:
    return WriteIntent(intent_id=uuid.uuid4().hex, canonical_id="c-" + uuid.uuid4().hex[:8],
                       entity="contact", system=system_name, op=op,  # type: ignore[arg-type]
                       external_id=external_id, values=values, expected=expected,
                       native_version=None, clock={}, attempt=attempt)


async def send(settings: KafkaSettings, topics: Topics, *intents: WriteIntent) -> None:
    await produce(settings, topics.intents,
                  [(i.key().encode(), codec.encode(i)) for i in intents])


@pytest.mark.parametrize("name", ["crm", "helpdesk"])
async def test_a_poll_reports_each_record_once_and_a_restart_goes_on_numbering(
        kafka_settings: KafkaSettings, topics: Topics, name: str) -> None:
    async with system(name) as (running, admin):
        ids = [await person(admin, name, email=f"P{i}@Example.com", name=f"P {i}")
               for i in range(3)]
        async with lane_for(kafka_settings, topics, name, running.url) as lane:
            assert await lane.poll() == 3
            assert await lane.poll() == 0  # nothing new: nothing reported
        await edit(admin, name, ids[1], name="P one")
        async with lane_for(kafka_settings, topics, name, running.url) as lane:
            assert lane.log.head.cursor is not None
            assert await lane.poll() == 1
        seen = await observations(kafka_settings, topics)
    assert [o.external_id for o in seen] == [*ids, ids[1]]
    assert [o.seq for o in seen] == [1, 2, 3, 4]  # never backwards, across the restart
    first = seen[0]
    assert isinstance(first, Observed)
    assert first.fields == {"email": "p0@example.com", "name": "P 0"}  # canonical names
    assert seen[3].fields["name"] == "P one"  # type: ignore[union-attr]


@pytest.mark.parametrize("name", ["crm", "helpdesk"])
async def test_an_update_is_written_and_reported(kafka_settings: KafkaSettings,
                                                 topics: Topics, name: str) -> None:
    async with system(name) as (running, admin):
        external_id = await person(admin, name, email="ann@example.com", name="Ann")
        async with lane_for(kafka_settings, topics, name, running.url) as lane:
            await lane.poll()
            job = intent(name, "update", external_id=external_id, values={"name": "Ann Lee"},
                         expected={"name": "Ann"})
            await send(kafka_settings, topics, job)
            assert await lane.execute_intents(timeout_ms=5000) == 1
            assert await lane.poll() == 0  # reading our own write back reports nothing
        [held] = await records(admin, name)
        assert held[NAME[name]] == "Ann Lee"
        assert await api_writes(admin) == 1
        seen = await observations(kafka_settings, topics)
    written = seen[-1]
    assert isinstance(written, Written)
    assert written.intent_id == job.intent_id
    assert written.canonical_id == job.canonical_id
    assert written.fields == {"email": "ann@example.com", "name": "Ann Lee"}


@pytest.mark.parametrize("name", ["crm", "helpdesk"])
async def test_an_edit_the_hub_has_not_seen_makes_the_write_stale(
        kafka_settings: KafkaSettings, topics: Topics, name: str) -> None:
    async with system(name) as (running, admin):
        external_id = await person(admin, name, email="bo@example.com", name="Bo")
        async with lane_for(kafka_settings, topics, name, running.url) as lane:
            await lane.poll()
            await edit(admin, name, external_id, name="Bo (person)")  # before the write
            job = intent(name, "update", external_id=external_id, values={"name": "Bo (hub)"},
                         expected={"name": "Bo"})
            await send(kafka_settings, topics, job)
            assert await lane.execute_intents(timeout_ms=5000) == 1
        [held] = await records(admin, name)
        assert held[NAME[name]] == "Bo (person)"  # nothing overwritten
        assert await api_writes(admin) == 0
        seen = await observations(kafka_settings, topics)
    read, stale = seen[-2:]
    assert isinstance(read, Observed) and read.fields["name"] == "Bo (person)"
    assert isinstance(stale, WriteStale)
    assert stale.intent_id == job.intent_id and stale.fields_changed == ["name"]


@pytest.mark.parametrize("name", ["crm", "helpdesk"])
async def test_a_retried_intent_writes_nothing_twice(kafka_settings: KafkaSettings,
                                                     topics: Topics, name: str) -> None:
    async with system(name) as (running, admin):
        external_id = await person(admin, name, email="cy@example.com", name="Cy")
        job = intent(name, "update", external_id=external_id, values={"name": "Cy Young"},
                     expected={"name": "Cy"})
        async with lane_for(kafka_settings, topics, name, running.url) as lane:
            await lane.poll()
            await lane.execute(job)  # written, but the lane "crashes" before its commit
        await send(kafka_settings, topics, job)
        async with lane_for(kafka_settings, topics, name, running.url) as lane:
            assert await lane.execute_intents(timeout_ms=5000) == 1
        assert await api_writes(admin) == 1
        seen = await observations(kafka_settings, topics)
    assert isinstance(seen[-1], Written)


@pytest.mark.parametrize("name", ["crm", "helpdesk"])
async def test_a_create_finds_the_record_by_its_match_key_first(
        kafka_settings: KafkaSettings, topics: Topics, name: str) -> None:
    async with system(name) as (running, admin):
        job = intent(name, "create", external_id=None,
                     values={"email": "di@example.com", "name": "Di"}, expected={})
        async with lane_for(kafka_settings, topics, name, running.url) as lane:
            await lane.execute(job)  # created; the lane "crashes" before its commit
        await send(kafka_settings, topics, job)
        async with lane_for(kafka_settings, topics, name, running.url) as lane:
            assert await lane.execute_intents(timeout_ms=5000) == 1
        held = await records(admin, name)
        assert len(held) == 1  # not created twice
        seen = await observations(kafka_settings, topics)
    written = seen[-1]
    assert isinstance(written, Written)
    assert written.external_id == str(held[0]["id"])
    assert written.canonical_id == job.canonical_id


@pytest.mark.parametrize("name", ["crm", "helpdesk"])
async def test_a_copy_deleted_before_its_create_was_reported_is_not_made_again(
        kafka_settings: KafkaSettings, topics: Topics, name: str) -> None:
    """The lane dies between its create and its commit; a person deletes the new copy.

    No lookup finds a deleted copy, so only the API's idempotency key tells the re-run that
    its create happened: the lane reports the copy written and then deleted (the person's
    delete, which the hub then carries to the other systems), and makes no second copy.
    """
    async with system(name) as (running, admin):
        job = intent(name, "create", external_id=None,
                     values={"email": "ida@example.com", "name": "Ida"}, expected={})
        await send(kafka_settings, topics, job)
        async with lane_for(kafka_settings, topics, name, running.url) as lane:
            await lane.execute(job)  # created; the lane "crashes" before its commit
        made = (await records(admin, name))[0]["id"]
        await admin.post(f"/_admin/edit/{RESOURCE[name]}", json={"op": "delete", "id": made})
        async with lane_for(kafka_settings, topics, name, running.url) as lane:
            assert await lane.execute_intents(timeout_ms=5000) == 1
        assert await records(admin, name) == []
        stats = (await admin.get("/_admin/stats")).json()["writes"]
        assert stats["by_method"] == {"POST": 1}
        assert stats["replayed_creates"] == {RESOURCE[name]: 1}
        seen = await observations(kafka_settings, topics)
    assert [(type(o).__name__, o.external_id, getattr(o, "deleted", None)) for o in seen] == [
        ("Written", str(made), None), ("Observed", str(made), True)]
    assert seen[0].canonical_id == job.canonical_id


async def test_a_create_whose_answer_was_lost_waits_and_its_key_tells_what_happened(
        kafka_settings: KafkaSettings, topics: Topics) -> None:
    """The helpdesk takes the create but its answer comes back garbled: the create may have
    happened, so the lane neither reports it failed nor makes it again. It waits like in an
    outage; meanwhile a person deletes the new copy. Once the helpdesk answers, the same key
    gets the first create's answer, and a read finds that copy gone: written, then deleted.
    """
    async with system("helpdesk") as (running, admin):
        job = intent("helpdesk", "create", external_id=None,
                     values={"email": "lou@example.com", "name": "Lou"}, expected={})
        # No lookup: the create is the lane's first request, and the one whose answer is lost.
        async with lane_for(kafka_settings, topics, "helpdesk", running.url,
                            lookup=None) as lane:
            await send(kafka_settings, topics, job)
            await admin.post("/_admin/faults", json={"malformed_rate": 1.0})
            assert await lane.execute_intents(timeout_ms=5000) == 0  # waits, not failed
            assert not lane.healthy
            await admin.delete("/_admin/faults")
            [made] = await records(admin, "helpdesk")
            await admin.post("/_admin/edit/users", json={"op": "delete", "id": made["id"]})
            await lane.poll()
            assert await lane.execute_intents(timeout_ms=5000) == 1
        assert await records(admin, "helpdesk") == []
        writes = (await admin.get("/_admin/stats")).json()["writes"]
        assert writes["by_method"] == {"POST": 1}
        seen = await observations(kafka_settings, topics)
    assert [(type(o).__name__, o.external_id, getattr(o, "deleted", None)) for o in seen] == [
        ("Written", str(made["id"]), None), ("Observed", str(made["id"]), True)]


async def test_an_intent_read_again_by_the_same_process_is_not_run_twice(
        kafka_settings: KafkaSettings, topics: Topics) -> None:
    """After an outage the lane rewinds to the first intent that must wait, and reads again
    those after it that ran: one that ran and was committed is not run again (a copy it
    created and a person deleted since would otherwise come back)."""
    plain = WriteConfig(method="POST")  # not even an idempotency key to fall back on
    async with system("helpdesk") as (running, admin):
        job = intent("helpdesk", "create", external_id=None,
                     values={"email": "kim@example.com", "name": "Kim"}, expected={})
        async with lane_for(kafka_settings, topics, "helpdesk", running.url,
                            create=plain) as lane:
            await send(kafka_settings, topics, job)
            assert await lane.execute_intents(timeout_ms=5000) == 1
            made = (await records(admin, "helpdesk"))[0]["id"]
            await admin.post("/_admin/edit/users", json={"op": "delete", "id": made})
            await send(kafka_settings, topics, job)  # read again, as after a rewind
            await lane.execute_intents(timeout_ms=5000)
        assert await records(admin, "helpdesk") == []
        assert (await admin.get("/_admin/stats")).json()["writes"]["by_method"] == {"POST": 1}
        seen = await observations(kafka_settings, topics)
    assert [type(o).__name__ for o in seen] == ["Written"]


async def test_a_create_outcome_committed_at_once_is_not_made_again_after_a_delete(
        kafka_settings: KafkaSettings, topics: Topics) -> None:
    """A create without an idempotency key journals its entry and its outcome at once, on
    the broker: the next process does not run it again, so a person's delete of the copy
    stays a delete (the window left is the round trip: docs/DECISIONS.md)."""
    plain = WriteConfig(method="POST")
    async with system("helpdesk") as (running, admin):
        job = intent("helpdesk", "create", external_id=None,
                     values={"email": "jo@example.com", "name": "Jo"}, expected={})
        await send(kafka_settings, topics, job)
        async with lane_for(kafka_settings, topics, "helpdesk", running.url,
                            create=plain) as lane:
            await lane.execute(job)
        made = (await records(admin, "helpdesk"))[0]["id"]
        await admin.post("/_admin/edit/users", json={"op": "delete", "id": made})
        async with lane_for(kafka_settings, topics, "helpdesk", running.url,
                            create=plain) as lane:
            assert await lane.execute_intents(timeout_ms=5000) == 1
        again = await records(admin, "helpdesk")
    assert again == []


async def test_crm_deletes_come_from_its_delete_feed(kafka_settings: KafkaSettings,
                                                     topics: Topics) -> None:
    async with system("crm") as (running, admin):
        gone = await person(admin, "crm", email="ed@example.com", name="Ed")
        await person(admin, "crm", email="flo@example.com", name="Flo")
        async with lane_for(kafka_settings, topics, "crm", running.url) as lane:
            await lane.round()
            await admin.post("/_admin/edit/contacts", json={"op": "delete", "id": gone})
            lane.poll_soon()
            await lane.round()
            lane.poll_soon()
            await lane.round()  # the feed repeats its boundary: reported once all the same
        seen = await observations(kafka_settings, topics)
    deletes = [o for o in seen if isinstance(o, Observed) and o.deleted]
    assert [o.external_id for o in deletes] == [gone]


async def test_helpdesk_deletes_are_found_by_a_sweep(kafka_settings: KafkaSettings,
                                                     topics: Topics) -> None:
    async with system("helpdesk") as (running, admin):
        gone = await person(admin, "helpdesk", email="gus@example.com", name="Gus")
        await person(admin, "helpdesk", email="hal@example.com", name="Hal")
        async with lane_for(kafka_settings, topics, "helpdesk", running.url) as lane:
            await lane.poll()
            assert await lane.sweep() == 0
            await admin.post("/_admin/edit/users", json={"op": "delete", "id": int(gone)})
            assert await lane.sweep() == 1
            assert await lane.sweep() == 0  # reported once
        seen = await observations(kafka_settings, topics)
    deletes = [o for o in seen if isinstance(o, Observed) and o.deleted]
    assert [o.external_id for o in deletes] == [gone]


async def test_intents_wait_while_the_system_is_down(kafka_settings: KafkaSettings,
                                                     topics: Topics) -> None:
    async with system("helpdesk") as (running, admin):
        external_id = await person(admin, "helpdesk", email="ida@example.com", name="Ida")
        async with lane_for(kafka_settings, topics, "helpdesk", running.url) as lane:
            await lane.poll()
            await admin.post("/_admin/faults", json={"down": True})
            job = intent("helpdesk", "update", external_id=external_id,
                         values={"name": "Ida B"}, expected={"name": "Ida"})
            await send(kafka_settings, topics, job)
            assert await lane.execute_intents(timeout_ms=5000) == 0  # waits, not failed
            assert not lane.healthy
            await admin.delete("/_admin/faults")
            await lane.poll()
            assert lane.healthy
            assert await lane.execute_intents(timeout_ms=5000) == 1
        [held] = await records(admin, "helpdesk")
        assert held["name"] == "Ida B"
        seen = await observations(kafka_settings, topics)
    assert [type(o).__name__ for o in seen] == ["Observed", "Written"]


async def test_a_record_the_system_refuses_fails_and_the_last_attempt_is_a_dead_letter(
        kafka_settings: KafkaSettings, topics: Topics) -> None:
    async with system("helpdesk") as (running, _admin):
        # The helpdesk requires a name: a create without one is refused (422).
        job = intent("helpdesk", "create", external_id=None,
                     values={"email": "jo@example.com"}, expected={}, attempt=5)
        await send(kafka_settings, topics, job)
        async with lane_for(kafka_settings, topics, "helpdesk", running.url) as lane:
            await lane.poll()
            assert await lane.execute_intents(timeout_ms=5000) == 1
        seen = await observations(kafka_settings, topics)
        letters = [codec.decode(r.value) for r in await read_topic(kafka_settings, topics.dlq)]
    assert [type(o).__name__ for o in seen] == ["WriteFailed"]
    assert "422" in seen[0].reason  # type: ignore[union-attr]
    [letter] = letters
    assert isinstance(letter, DeadLetter)
    assert letter.stage == "lane:helpdesk" and "after 5 attempts" in letter.reason


class TestLaneLogKeepsTheJournalContract(JournalContract):
    """The contract the in-memory twin passes (tests/daemon/lane), against the broker."""

    @pytest.fixture(autouse=True)
    async def broker(self, kafka_settings: KafkaSettings) -> AsyncIterator[None]:
        self.settings = kafka_settings
        self.topics = await made_topics(kafka_settings, "journal")
        self.open_logs: list[LaneLog] = []
        yield
        for log in self.open_logs:
            await log.stop()

    async def open(self) -> Journal:
        for log in self.open_logs:  # the old process is gone
            await log.stop()
        self.open_logs = [LaneLog(self.settings, self.topics, "crm", "contact")]
        await self.open_logs[0].start()
        return self.open_logs[0]

    async def send(self, *intents: WriteIntent) -> None:
        await produce(self.settings, self.topics.intents,
                      [(i.key().encode(), codec.encode(i)) for i in intents])

    async def expire(self, below: int) -> None:
        # What the retention does to a partition: its records below an offset are deleted.
        tp = TopicPartition(self.topics.intents, partition_of("crm/contact", 2))
        admin = new_admin(self.settings)
        await admin.start()
        try:
            await admin.delete_records({tp: RecordsToDelete(below)})
        finally:
            await admin.close()

    async def published(self) -> list[Any]:
        return [codec.decode(r.value) for r in await read_topic(self.settings,
                                                                self.topics.observations)]
