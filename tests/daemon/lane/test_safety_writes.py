"""Writes that do not take: verified, never taken for a person's edit, never looped.

The smallest form of the worst bug: two systems with one field ``status``; the second drops
it on writes (keeps its default ``new``). A person creates a record in the first with
``status: open``; the hub creates it in the second, which holds ``new``. Unverified, that
``new`` read back is an edit there, and the person's ``open`` is overwritten in the first
system with no conflict and every status ok. These tests run two lanes and the fold over
in-memory twins (no Kafka).
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import httpx
import pytest
import yaml
from click.testing import CliRunner

from daemon.cli import cli
from daemon.config import EntityConfig
from daemon.connector.config import EntityEndpointConfig
from daemon.lane import Lane
from daemon.lane.memory import MemoryConnector, MemoryJournal
from daemon.sandbox import run_crm
from streams import codec
from streams.events import NotTaken, RecordEvent, WriteIntent, Written
from tests.daemon.connector.conftest import ENV, EXAMPLE, connector

from .hub import Hub


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def twin(name: str, **behaviour: Any) -> MemoryConnector:
    return MemoryConnector(name, "ticket", **behaviour)


def letters(hub: Hub, system: str, error: str) -> list[str]:
    return [letter.reason for _, letter in hub.journals[system].dead_letters
            if letter.error == error]


def test_a_dropped_field_never_overwrites_the_persons_value() -> None:
    a, b = twin("a"), twin("b", drops={"status": "new"})
    hub = Hub({"a": a, "b": b})
    ticket = a.put(status="open", title="printer")
    run(hub.run(6))

    assert a.held(ticket) == {"status": "open", "title": "printer"}  # the person's value
    assert a.writes == []  # nothing was written back to the first system
    [copy] = b.live()
    assert copy["status"] == "new" and copy["title"] == "printer"
    [record] = hub.records.values()
    assert record.fields["status"].value == "open"
    assert record.conflicts == ()
    written = [e for e in hub.journals["b"].observations if isinstance(e, Written)]
    assert [{n: (t.wrote, t.holds) for n, t in e.not_taken.items()} for e in written] == \
        [{"status": ("open", "new")}]
    reason = "system b does not keep field status of ticket 1 (wrote 'open', it holds 'new')"
    assert letters(hub, "b", "NotTaken") == [reason]  # one dead letter, however many rounds
    status = hub.lanes["b"].status()
    assert status["not_kept"] == [reason] and status["not_kept_count"] == 1


def test_the_field_is_not_written_there_again_until_its_value_changes() -> None:
    a, b = twin("a"), twin("b", drops={"status": "new"})
    hub = Hub({"a": a, "b": b})
    ticket = a.put(status="open", title="printer")
    run(hub.run(4))
    a.edit(ticket, title="printer on fire")  # another field: written, status is not
    run(hub.run(4))
    assert b.live()[0]["title"] == "printer on fire"
    assert hub.updates("b") == 1
    a.edit(ticket, status="closed")  # the canonical value changes: tried once more
    run(hub.run(4))
    assert hub.updates("b") == 2
    assert a.held(ticket) == {"status": "closed", "title": "printer on fire"}
    assert a.writes == []
    assert len(letters(hub, "b", "NotTaken")) == 2  # one per value not kept


def test_a_field_that_takes_again_clears_the_not_kept_status() -> None:
    a, b = twin("a"), twin("b", drops={"status": "new"})
    hub = Hub({"a": a, "b": b})
    ticket = a.put(status="open", title="printer")
    run(hub.run(4))
    assert hub.lanes["b"].status()["not_kept_count"] == 1
    b.drops.clear()  # the API is fixed
    a.edit(ticket, status="closed")
    run(hub.run(4))
    assert b.live()[0]["status"] == "closed"
    assert hub.lanes["b"].status()["not_kept_count"] == 0
    a.edit(ticket, status="open")  # the value it once did not keep is written again
    run(hub.run(4))
    assert b.live()[0]["status"] == "open"
    [record] = hub.records.values()
    assert record.peers["b"].not_kept == {}


def test_one_dead_letter_per_value_not_kept() -> None:
    a, b = twin("a"), twin("b", drops={"status": "new"})
    hub = Hub({"a": a, "b": b})
    ticket = a.put(status="open", title="printer")
    run(hub.run(4))
    for value in ("closed", "open", "closed"):
        a.edit(ticket, status=value)
        run(hub.run(4))
    assert hub.updates("b") == 3  # each change of the canonical value is tried once
    assert len(letters(hub, "b", "NotTaken")) == 2  # 'open' and 'closed'
    assert a.held(ticket) == {"status": "closed", "title": "printer"}


def test_a_form_the_mapping_declares_is_taken() -> None:
    entity = EntityConfig.model_validate(
        {"fields": {"status": {"a": "status", "b": "status", "type": "string"},
                    "title": {"a": "title", "b": {"path": "title", "transform": "lower"},
                              "type": "string"}}},
        context={"systems": ["a", "b"]})
    a, b = twin("a"), twin("b", forms={"title": str.lower})
    hub = Hub({"a": a, "b": b}, entity)
    a.put(status="open", title="Printer")
    run(hub.run(6))
    assert b.live()[0]["title"] == "printer"
    assert letters(hub, "b", "NotTaken") == []
    assert hub.lanes["b"].status()["not_kept_count"] == 0


def test_a_system_that_ignores_a_wrapped_body_keeps_the_other_systems_edits() -> None:
    a, b = twin("a"), twin("b", ignores_writes=True)
    hub = Hub({"a": a, "b": b})
    ticket = a.put(status="open", title="printer")
    run(hub.run(4))
    for number in range(5):
        a.edit(ticket, title=f"printer {number}")
        run(hub.run(3))
    assert a.held(ticket) == {"status": "open", "title": "printer 4"}
    assert a.writes == []
    assert hub.updates("b") == 5  # one per edit, none repeated
    assert b.live()[0]["title"] == "printer"


def test_a_system_that_keeps_its_own_form_is_not_fought_over() -> None:
    a = twin("a", forms={"title": str.lower})
    b = twin("b", forms={"title": str.upper})
    hub = Hub({"a": a, "b": b})
    ticket = a.put(status="open", title="Printer")
    run(hub.run(20))
    assert a.held(ticket) == {"status": "open", "title": "Printer"}
    assert a.writes == []
    assert b.live()[0]["title"] == "PRINTER"
    assert len(b.writes) == 1  # the create, and nothing after it


def test_answering_200_to_everything_is_caught_by_the_read_after_the_write() -> None:
    """Both systems keep their own form and answer every write with what they were sent:
    no answer shows the value not kept, the read after the write does. The two would
    rewrite each other forever (before every write was read back, only the loop breaker
    stopped it); now each write is found not kept at once, and nothing loops."""
    a = twin("a", forms={"title": str.lower}, echoes=True)
    b = twin("b", forms={"title": str.upper}, echoes=True)
    hub = Hub({"a": a, "b": b})
    a.put(status="open", title="Printer")
    run(hub.run(60))
    assert hub.updates("a") + hub.updates("b") <= 2
    assert all(lane.status()["loop_breakers_open"] == 0 for lane in hub.lanes.values())
    assert sum(len(letters(hub, name, "NotTaken")) for name in ("a", "b")) >= 1
    before = len(a.writes) + len(b.writes)
    run(hub.run(10))
    assert len(a.writes) + len(b.writes) == before


def test_a_record_edited_often_elsewhere_is_not_taken_for_a_loop() -> None:
    a, b = twin("a"), twin("b")
    hub = Hub({"a": a, "b": b})
    ticket = a.put(status="open", title="printer")
    run(hub.run(3))
    for number in range(3 * a.config.loop_bound):
        a.edit(ticket, title=f"printer {number}")
        run(hub.run(2))
    assert b.live()[0]["title"] == f"printer {3 * a.config.loop_bound - 1}"
    assert hub.updates("b") == 3 * a.config.loop_bound
    assert all(lane.status()["loop_breakers_open"] == 0 for lane in hub.lanes.values())


def lied_to(hub: Hub, a: MemoryConnector, b: MemoryConnector, how: str = "lies") -> str:
    """A ticket synced; then b answers every update with what it was sent and keeps
    nothing (``how``: at the version read before, or with a made-up new version), while a
    person edits the ticket in a twice (each edit is an update to b)."""
    ticket = a.put(status="open", title="printer")
    run(hub.run(4))
    setattr(b, how, True)
    a.edit(ticket, status="closed")
    run(hub.run(3))
    run(hub.lanes["b"].sweep())  # b's sweep reads the ticket as b kept it
    hub.fold_new()
    a.edit(ticket, title="printer on fire")
    run(hub.run(3))
    run(hub.lanes["b"].sweep())
    hub.fold_new()
    run(hub.run(3))
    return ticket


@pytest.mark.parametrize("how", ["lies", "forges"])
def test_an_api_that_answers_200_and_stores_nothing_overwrites_no_persons_value(
        how: str) -> None:
    """The answer shows what was written, at the version read before the write or with a
    new version it made up: either way it proves nothing, so the lane reads the record
    again and finds the write did not take. What b kept is then not a person's edit there,
    and nothing is written back to a."""
    a, b = twin("a"), twin("b")
    hub = Hub({"a": a, "b": b})
    ticket = lied_to(hub, a, b, how)

    assert a.held(ticket) == {"status": "closed", "title": "printer on fire"}  # the person's
    assert a.writes == []  # nothing written back to the person's system
    assert b.live()[0] == {"id": "1", "status": "open", "title": "printer"}  # kept nothing
    [record] = hub.records.values()
    assert record.fields["status"].value == "closed"
    assert record.fields["title"].value == "printer on fire"
    written = [e for e in hub.journals["b"].observations if isinstance(e, Written)]
    assert [{n: (t.wrote, t.holds) for n, t in e.not_taken.items()} for e in written] == [
        {}, {"status": ("closed", "open")}, {"title": ("printer on fire", "printer")}]
    assert letters(hub, "b", "NotTaken") == [
        "system b does not keep field status of ticket 1 (wrote 'closed', it holds 'open')",
        "system b does not keep field title of ticket 1 "
        "(wrote 'printer on fire', it holds 'printer')"]
    code, out = hub_status(hub)
    assert code == 1, out
    assert "does not keep field title" in out


def test_an_edit_after_a_write_that_took_is_still_an_edit() -> None:
    """The re-read changes nothing for a write that took: a person's later edit in b (a
    new version and updated-at) reaches a."""
    a, b = twin("a"), twin("b")
    hub = Hub({"a": a, "b": b})
    ticket = a.put(status="open", title="printer")
    run(hub.run(4))
    a.edit(ticket, status="closed")
    run(hub.run(3))
    [copy] = b.live()
    b.edit(copy["id"], status="open")  # a person reopens it in b
    run(hub.run(4))
    assert a.held(ticket) == {"status": "open", "title": "printer"}
    assert letters(hub, "b", "NotTaken") == []


@pytest.mark.parametrize("order", ["versions", "updated-at", "neither"])
def test_a_persons_edit_between_the_write_and_its_re_read_is_an_edit(order: str) -> None:
    """A person edits the written field in b after the hub's write took and before the read
    that verifies it: that read shows a change made after the write (a version, else an
    updated-at, past the answer's; else, times too coarse to order them, a third value, neither
    the written nor the one held before, while the answer showed the write kept), so it is
    not the write's verdict. The write took (its
    answer says so), the person's value is an edit there: it reaches a, and nothing is
    reported not kept."""
    a, b = twin("a"), twin("b")
    hub = Hub({"a": a, "b": b})
    ticket = a.put(status="open", title="printer")
    run(hub.run(4))
    [copy] = b.live()
    plain = b._remote
    if order == "updated-at":
        b._remote = lambda stored: replace(plain(stored), version=None)  # type: ignore[method-assign]
    elif order == "neither":  # whole seconds: the three reads in one second
        b._remote = lambda stored: replace(  # type: ignore[method-assign]
            plain(stored), version=None, updated=1_000.0)
    a.edit(ticket, status="closed")
    b.before("update", lambda: b.before(
        "fetch", lambda: b.edit(copy["id"], status="pending")))  # a person, just after it
    run(hub.run(4))
    assert letters(hub, "b", "NotTaken") == []
    assert a.held(ticket) == {"status": "pending", "title": "printer"}
    assert b.held(copy["id"]) == {"status": "pending", "title": "printer"}


def test_an_edit_in_a_system_that_lied_once_is_still_an_edit() -> None:
    """After a write that did not take, a person's edit there (a new version) is an edit:
    it reaches a, and b's lane reports nothing not kept for the field any more."""
    a, b = twin("a"), twin("b")
    hub = Hub({"a": a, "b": b})
    ticket = a.put(status="open", title="printer")
    run(hub.run(4))
    b.lies = True
    a.edit(ticket, status="closed")
    run(hub.run(3))
    assert len(letters(hub, "b", "NotTaken")) == 1
    b.lies = False
    [copy] = b.live()
    b.edit(copy["id"], status="pending")  # a person's edit in b
    run(hub.run(4))
    assert a.held(ticket) == {"status": "pending", "title": "printer"}
    assert b.live()[0]["status"] == "pending"


def test_every_update_is_verified_by_a_read_after_it() -> None:
    """An answer with a new version is no proof either (an API can make one up): every
    update costs the read it is decided on and the read that verifies it."""
    a, b = twin("a"), twin("b")
    hub = Hub({"a": a, "b": b})
    ticket = a.put(status="open", title="printer")
    run(hub.run(4))
    fetches = b.calls["fetch"]
    a.edit(ticket, status="closed")
    run(hub.run(3))
    assert b.calls["fetch"] == fetches + 2
    assert b.live()[0]["status"] == "closed"
    assert letters(hub, "b", "NotTaken") == []


def test_an_update_answered_without_the_record_is_verified_by_the_connectors_read() -> None:
    """With ``answer: none`` the connector reads the record after the write itself: that read
    is verified (a lying API is caught), and the lane does not read it a third time."""
    config = EntityEndpointConfig.model_validate(
        {"path": "/ticket", "since": {"param": "since"},
         "update": {"method": "PATCH", "answer": "none"}})
    a, b = twin("a"), twin("b", config=config)
    hub = Hub({"a": a, "b": b})
    ticket = a.put(status="open", title="printer")
    run(hub.run(4))
    fetches = b.calls["fetch"]
    b.forges = True
    a.edit(ticket, status="closed")
    run(hub.run(3))
    assert b.calls["fetch"] == fetches + 1  # the read the write is decided on
    assert b.live()[0]["status"] == "open"
    assert letters(hub, "b", "NotTaken") == [
        "system b does not keep field status of ticket 1 (wrote 'closed', it holds 'open')"]


def test_the_record_event_and_the_status_command_say_what_is_not_kept() -> None:
    a, b = twin("a"), twin("b", drops={"status": "new"})
    hub = Hub({"a": a, "b": b})
    a.put(status="open", title="printer")
    run(hub.run(4))
    [state] = hub.records.values()
    event = RecordEvent.of(state)
    assert event.not_kept == {"b": {"status": NotTaken(wrote="open", holds="new")}}
    assert codec.decode(codec.encode(event), (RecordEvent,)) == event

    code, out = hub_status(hub)
    assert code == 1
    assert "NOT KEPT" in out
    assert ("system b does not keep field status of ticket 1 (wrote 'open', it holds 'new')"
            in out)


def undoing_each_others_writes() -> tuple[Hub, MemoryConnector, MemoryConnector]:
    """Two systems that keep every write (the read after it shows it) and then put the old
    values back themselves (two automations fighting), after an edit and 60 rounds."""
    a, b = twin("a", reverts=True), twin("b", reverts=True)
    hub = Hub({"a": a, "b": b})
    ticket = a.put(status="open", title="printer")
    run(hub.run(4))
    a.edit(ticket, status="closed")
    run(hub.run(60))
    return hub, a, b


def test_a_system_that_undoes_the_writes_later_ends_in_the_loop_breaker() -> None:
    """Only the next read shows a write undone: the hub would write both systems again and
    again; the loop breaker stops it."""
    hub, a, b = undoing_each_others_writes()
    bound = a.config.loop_bound
    assert hub.updates("a") + hub.updates("b") <= 2 * bound + 2
    [why] = hub.lanes["b"].status()["loop_breakers"].values()
    assert "loop breaker open" in why
    assert len(letters(hub, "b", "LoopBreakerOpen")) == 1
    assert hub.metrics.loop_breakers_open.labels("b", "ticket")._value.get() == 1
    before = len(a.writes) + len(b.writes)
    run(hub.run(10))
    assert len(a.writes) + len(b.writes) == before


def test_the_status_command_is_not_ok_while_a_loop_breaker_is_open() -> None:
    hub, _, _ = undoing_each_others_writes()
    code, out = hub_status(hub)
    assert code == 1
    assert "LOOP STOPPED" in out and "loop breaker open" in out


def test_the_status_command_is_ok_when_every_write_took() -> None:
    a, b = twin("a"), twin("b")
    hub = Hub({"a": a, "b": b})
    a.put(status="open", title="printer")
    run(hub.run(4))
    code, out = hub_status(hub)
    assert code == 0, out


def hub_status(hub: Hub) -> tuple[int, str]:
    """``syncline status`` of a worker running the hub's lanes."""
    return status_command({"lanes": {f"{name}/ticket": lane.status()
                                     for name, lane in hub.lanes.items()}})


def status_command(body: dict[str, Any]) -> tuple[int, str]:
    """``syncline status`` against a web server answering ``/status`` with ``body``."""
    payload = json.dumps({"roles": ["lanes"], **body}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        result = CliRunner().invoke(cli, ["status", "--url",
                                          f"http://127.0.0.1:{server.server_port}"])
    finally:
        server.shutdown()
        thread.join()
        server.server_close()
    return result.exit_code, result.output


def test_writes_that_held_clear_the_loop_count() -> None:
    """Writes undone now and then, with writes that held in between, never open it."""
    a = twin("a")
    b = twin("b", forms={"title": str.upper}, echoes=True)
    hub = Hub({"a": a, "b": b})
    ticket = a.put(status="open", title="PRINTER")
    run(hub.run(3))
    bound = a.config.loop_bound
    for number in range(bound - 1):  # each undone by b's next read: bound - 1 strikes
        a.edit(ticket, title=f"printer {number}")
        run(hub.run(3))
    for value in ("closed", "open"):  # writes b keeps: the count starts again
        a.edit(ticket, status=value)
        run(hub.run(3))
    for number in range(2):
        a.edit(ticket, title=f"scanner {number}")
        run(hub.run(3))
    assert hub.lanes["b"].status()["loop_breakers_open"] == 0
    assert b.live()[0]["title"] == "SCANNER 1"


async def test_over_http_a_field_the_simulated_crm_does_not_keep_is_reported_not_taken(
        ) -> None:
    """The lane with the real connector, against the simulated CRM told to drop a field."""
    entity = EntityConfig.model_validate(
        yaml.safe_load(EXAMPLE.read_text())["entities"]["contact"],
        context={"systems": ["crm", "helpdesk"]})
    async with run_crm(token=ENV["CRM_TOKEN"]) as running, \
            httpx.AsyncClient(base_url=running.url, timeout=5) as admin:
        made = await admin.post("/_admin/edit/contacts", json={
            "op": "create", "fields": {"email": "ann@x.org", "full_name": "Ann"}})
        record_id = str(made.json()["record"]["id"])
        await admin.post("/_admin/faults", json={"ignore_fields": ["full_name"]})
        rest = connector("crm", running.url)
        journal = MemoryJournal("crm", "contact")
        lane = Lane(rest, entity.mapping("contact", "crm"), journal, match_on=("email",))
        journal.send(WriteIntent(
            intent_id="c1/crm#1", canonical_id="c1", entity="contact", system="crm",
            op="update", external_id=record_id, values={"name": "Bob"},
            expected={"name": "Ann"}, native_version=None, clock={}, attempt=1))
        await lane.execute_intents()
        await rest.client.aclose()
        [outcome] = [e for e in journal.observations if isinstance(e, Written)]
        assert outcome.not_taken == {"name": NotTaken(wrote="Bob", holds="Ann")}
        assert [letter.reason for _, letter in journal.dead_letters] == [
            "system crm does not keep field name of contact "
            f"{record_id} (wrote 'Bob', it holds 'Ann')"]
        held = await admin.get("/_admin/records/contacts")
        assert [r["full_name"] for r in held.json()["records"]] == ["Ann"]
