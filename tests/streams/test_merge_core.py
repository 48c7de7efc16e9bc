"""The two stream stages without Kafka: routing to canonical ids, folding, outputs."""

from __future__ import annotations

import base64

import pytest

import conflict
from streams import codec
from streams.errors import InvalidEvent
from streams.events import Observed, RecordEvent, Resolution, WriteIntent, WriteStale, Written
from streams.identity import canonical_id
from streams.kafka import ConsumedRecord
from streams.merge import (
    REJECTED,
    EntityModel,
    Merger,
    Output,
    Router,
    UnknownEntity,
    dead_letter,
    decode_merge_input,
)

SPEC = conflict.EntitySpec.build("contact", ["crm", "helpdesk"], ["email", "name"],
                                 default_policy=conflict.Manual())
CATALOG = {"contact": EntityModel(SPEC, match_on=("email",))}


def read(system: str, seq: int, ext: str, **fields: object) -> Observed:
    return Observed(system=system, entity="contact", seq=seq, external_id=ext,
                    observed_at=seq, source_ts=seq, fields=fields)


def test_the_same_person_in_two_systems_gets_one_canonical_id() -> None:
    links: dict[str, str] = {}
    router = Router(CATALOG)
    a = router.route(read("crm", 1, "c-1", email="Ann@Example.com ", name="Ann"), links)
    b = router.route(read("helpdesk", 1, "h-9", email="ann@example.com", name="Ann"), links)
    assert a.key == b.key == canonical_id("contact", ["email"], {"email": "ann@example.com"},
                                          "x", None)
    assert links == {"crm/contact/c-1": a.key, "helpdesk/contact/h-9": a.key}
    # The link wins over a changed match key: the record does not move.
    c = router.route(read("crm", 2, "c-1", email="ann.lee@example.com"), links)
    assert c.key == a.key
    assert c.event.canonical_id == a.key  # type: ignore[attr-defined]


def test_a_record_without_a_match_key_is_identified_by_where_it_first_appeared() -> None:
    links: dict[str, str] = {}
    out = Router(CATALOG).route(read("crm", 1, "c-1", name="No Email"), links)
    assert out.key == canonical_id("contact", [], {}, "crm", "c-1")


def test_a_write_outcome_links_the_record_the_hub_created() -> None:
    links: dict[str, str] = {}
    written = Written(system="helpdesk", entity="contact", seq=3, external_id="h-5",
                      canonical_id="cid-1", observed_at=3, intent_id="cid-1/helpdesk#1",
                      source_ts=3)
    assert Router(CATALOG).route(written, links).key == "cid-1"
    assert links == {"helpdesk/contact/h-5": "cid-1"}


def test_merge_folds_and_says_what_to_produce() -> None:
    links: dict[str, str] = {}
    records: dict[str, conflict.RecordState] = {}
    router, merger = Router(CATALOG), Merger(CATALOG)
    routed = router.route(read("crm", 1, "c-1", email="a@x", name="Ann"), links)
    outputs = merger.apply(routed.event, records)  # type: ignore[arg-type]
    assert [o.role for o in outputs] == ["records", "intents"]
    intent = codec.decode(codec.encode(outputs[1].event), (WriteIntent,))  # as a lane reads it
    assert outputs[1].key == "helpdesk/contact"
    assert intent.op == "create" and intent.values == {"email": "a@x", "name": "Ann"}
    # Replayed: nothing to produce, nothing changed.
    state = records[routed.key]
    assert merger.apply(routed.event, records) == []  # type: ignore[arg-type]
    assert records[routed.key] is state

    # The helpdesk's copy is made, then both edit the name: an open conflict, then resolved.
    done = Written(system="helpdesk", entity="contact", seq=1, external_id="h-1",
                   canonical_id=routed.key, observed_at=2, intent_id=intent.intent_id,
                   source_ts=2)
    merger.apply(router.route(done, links).event, records)  # type: ignore[arg-type]
    for system, ext in (("crm", "c-1"), ("helpdesk", "h-1")):
        event = router.route(read(system, 5, ext, name=f"Ann ({system})"), links).event
        outputs = merger.apply(event, records)  # type: ignore[arg-type]
    conflicts = [o.event for o in outputs if o.role == "conflicts"]
    assert len(conflicts) == 1 and conflicts[0].status == "open"  # type: ignore[attr-defined]
    resolution = Resolution(resolution_id="r1", canonical_id=routed.key, entity="contact",
                            conflict_id=conflicts[0].conflict_id,  # type: ignore[attr-defined]
                            by="dana", at=9, via="cli", take="helpdesk")
    outputs = merger.apply(resolution, records)
    assert {o.role for o in outputs} == {"records", "intents", "conflicts"}
    assert records[routed.key].values["name"] == "Ann (helpdesk)"


def test_a_record_event_says_when_a_copy_is_linked_and_not_when_an_echo_is_read() -> None:
    """A record event carries the record's links: a write outcome that links a new copy
    changes no field but produces one; the echo of that write, read back, produces none."""
    links: dict[str, str] = {}
    records: dict[str, conflict.RecordState] = {}
    router, merger = Router(CATALOG), Merger(CATALOG)
    routed = router.route(read("crm", 1, "c-1", email="a@x", name="Ann"), links)
    (_, intent) = merger.apply(routed.event, records)  # type: ignore[arg-type]
    done = Written(system="helpdesk", entity="contact", seq=1, external_id="h-1",
                   canonical_id=routed.key, observed_at=2,
                   intent_id=intent.event["intent_id"],  # type: ignore[index]
                   source_ts=2)
    (linked,) = merger.apply(router.route(done, links).event, records)  # type: ignore[arg-type]
    assert linked.role == "records"
    event = codec.decode(linked.encoded(), (RecordEvent,))
    assert event.links == {"crm": "c-1", "helpdesk": "h-1"} and event.changed == []
    echo = router.route(read("helpdesk", 2, "h-1", email="a@x", name="Ann"), links)
    assert merger.apply(echo.event, records) == []  # type: ignore[arg-type]


def test_rejected_inputs_become_dead_letters_with_the_original_bytes() -> None:
    with pytest.raises(UnknownEntity, match="'ticket' is not configured"):
        Router(CATALOG).route(Observed(system="crm", entity="ticket", seq=1, external_id="t",
                                       observed_at=1, source_ts=1), {})
    records: dict[str, conflict.RecordState] = {}
    bad = read("crm", 1, "c-1", email=5).model_copy(update={"canonical_id": "cid"})
    with pytest.raises(conflict.FieldTypeError) as raised:
        Merger({"contact": EntityModel(conflict.EntitySpec.build(
            "contact", ["crm"], [conflict.FieldSpec("email", conflict.FieldType.STRING)]))}
        ).apply(bad, records)
    assert isinstance(raised.value, REJECTED) and records == {}

    raw = b'{"schema": "syncline.observed/1", "seq": -1}'
    with pytest.raises(InvalidEvent) as decode_error:
        decode_merge_input(raw)
    out = dead_letter("merge", "syncline.merge", 2, 41, b"cid", raw, decode_error.value, 7.0)
    assert out.role == "dlq" and out.key == "cid"
    letter = codec.decode(codec.encode(out.event))
    assert base64.b64decode(letter.value_b64 or "") == raw  # type: ignore[attr-defined]
    assert (letter.topic, letter.partition, letter.offset) == (  # type: ignore[attr-defined]
        "syncline.merge", 2, 41)
    assert "seq" in letter.reason  # type: ignore[attr-defined]


def test_handle_takes_an_input_s_bytes_and_gives_its_outputs_or_its_dead_letter() -> None:
    router, merger = Router(CATALOG), Merger(CATALOG)
    links: dict[str, str] = {}
    records: dict[str, conflict.RecordState] = {}
    good = read("crm", 1, "c-1", email="ann@example.com", name="Ann")
    consumed = ConsumedRecord("syncline.observations", 0, 5, b"crm/contact",
                              codec.encode(good), 0)

    (routed,) = router.handle(consumed, links, clock=lambda: 7.0)
    outputs = merger.handle(ConsumedRecord("syncline.merge", 1, 9, routed.key.encode(),
                                           routed.encoded(), 0), records, clock=lambda: 7.0)

    assert routed.role == "merge" and list(records) == [routed.key]
    assert [out.role for out in outputs] == ["records", "intents"]
    for stage, handle in (("route", router.handle), ("merge", merger.handle)):
        bad = ConsumedRecord(f"syncline.{stage}", 2, 41, b"k", b"not json", 0)
        (letter,) = handle(bad, {}, clock=lambda: 7.0)  # type: ignore[operator]
        assert letter.role == "dlq"
        event = codec.decode(codec.encode(letter.event))
        assert (event.stage, event.offset, event.at) == (stage, 41, 7.0)  # type: ignore[attr-defined]


def test_changes_coalesced_into_one_record_event_name_every_field_they_changed() -> None:
    links: dict[str, str] = {}
    router, merger = Router(CATALOG), Merger(CATALOG)
    records: dict[str, conflict.RecordState] = {}

    def record_event(event: Observed) -> Output:
        outputs = merger.apply(router.route(event, links).event, records)  # type: ignore[arg-type]
        (out,) = [o for o in outputs if o.role == "records"]
        return out

    record_event(read("crm", 1, "c-1", email="ann@example.com", name="Ann"))
    renamed = record_event(read("crm", 2, "c-1", email="ann@example.com", name="Ann Lee"))
    moved = record_event(read("crm", 3, "c-1", email="ann@lee.example", name="Ann Lee"))
    # One transaction produces one record event per record: the last state, and what every
    # change it stands for changed (a consumer reacting to `changed` misses nothing).
    event = codec.decode(renamed.then(moved).encoded(), (RecordEvent,))
    assert event.fields == {"email": "ann@lee.example", "name": "Ann Lee"}
    assert event.changed == ["name", "email"]
    assert codec.decode(moved.encoded(), (RecordEvent,)).changed == ["email"]


def born(system: str, seq: int, ext: str, created: float | None, **fields: object
         ) -> Observed:
    """A read of ``ext`` whose created-at time is ``created``."""
    return read(system, seq, ext, **fields).model_copy(update={"created_at": created})


def routed(router: Router, event: Observed, links: dict[str, str]) -> list[Output]:
    return [*router.reused(event, links), router.route(event, links)]


def test_a_record_made_after_the_one_its_id_named_is_another_record() -> None:
    """A system reused the id of a deleted record: the new one gets its own canonical id,
    and the old copy is seen deleted (its id names another record now)."""
    links: dict[str, str] = {}
    router = Router(CATALOG)
    [first] = routed(router, born("helpdesk", 1, "7", 100.0, email="ann@x.org"), links)
    [again] = routed(router, born("helpdesk", 2, "7", 100.0, email="ann@x.org", name="A"),
                     links)
    assert again.key == first.key  # the same record, read again
    gone, new = routed(router, born("helpdesk", 3, "7", 200.0, email="bob@x.org"), links)
    assert new.key != first.key and links["helpdesk/contact/7"] == new.key
    assert gone.key == first.key
    assert isinstance(gone.event, Observed) and gone.event.deleted
    assert (gone.event.external_id, gone.event.seq) == ("7", 3)
    [later] = routed(router, born("helpdesk", 4, "7", 200.0, email="bob@x.org", name="B"),
                     links)
    assert later.key == new.key


def test_without_match_keys_a_reused_id_still_gets_a_new_canonical_id() -> None:
    links: dict[str, str] = {}
    router = Router({"contact": EntityModel(SPEC, match_on=())})
    [first] = routed(router, born("crm", 1, "c-1", 10.0, name="Ann"), links)
    gone, new = routed(router, born("crm", 2, "c-1", 11.0, name="Ann"), links)
    assert new.key != first.key and gone.key == first.key


def test_without_created_at_times_an_id_keeps_its_record() -> None:
    links: dict[str, str] = {}
    router = Router(CATALOG)
    [first] = routed(router, born("crm", 1, "c-1", None, email="ann@x.org"), links)
    [again] = routed(router, born("crm", 2, "c-1", None, email="bob@x.org"), links)
    assert again.key == first.key
    [older] = routed(router, born("crm", 3, "c-1", 5.0, email="bob@x.org"), links)
    assert older.key == first.key  # the first time known: remembered, not compared


def test_a_write_outcome_goes_to_its_own_record_even_under_a_reused_id() -> None:
    links = {"crm/contact/c-1": "cid-old"}
    written = Written(system="crm", entity="contact", seq=3, external_id="c-1",
                      canonical_id="cid-new", observed_at=3, intent_id="cid-new/crm#1",
                      source_ts=3)
    assert Router(CATALOG).route(written, links).key == "cid-new"
    assert links["crm/contact/c-1"] == "cid-new"


def test_a_stale_write_to_a_reused_id_goes_to_its_record_and_links_nothing() -> None:
    links = {"crm/contact/c-1": "cid-new"}
    stale = WriteStale(system="crm", entity="contact", seq=4, external_id="c-1",
                       canonical_id="cid-old", observed_at=4, intent_id="cid-old/crm#2")
    assert Router(CATALOG).route(stale, links).key == "cid-old"
    assert links == {"crm/contact/c-1": "cid-new"}
