"""The codec: the only place bytes become events; every failure names what was wrong."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest

import conflict
from streams import codec
from streams.errors import DecodeError, InvalidEvent, Undecodable, UnexpectedEvent, UnknownSchema
from streams.events import (
    EVENT_TYPES,
    ConflictEvent,
    DeadLetter,
    Observed,
    RecordEvent,
    Resolution,
    WriteIntent,
    Written,
    json_schemas,
)


def observed(**changes: object) -> Observed:
    data: dict[str, object] = dict(system="crm", entity="contact", seq=4, external_id="c-1",
                                   observed_at=1700000000.5, source_ts=1700000000.25,
                                   fields={"email": "a@x", "tags": ["b", "a"]})
    data.update(changes)
    return Observed.model_validate(data)


def sample_states() -> conflict.Step:
    spec = conflict.EntitySpec.build("contact", ["crm", "helpdesk"], ["email", "name"],
                                     default_policy=conflict.Manual())
    state = conflict.RecordState("c1", "contact")
    step = conflict.fold(spec, state, conflict.Observed("crm", 1, "c-1",
                                                        {"email": "a@x", "name": "Ann"},
                                                        source_ts=1))
    (create,) = step.intents
    state = conflict.fold(spec, step.state, conflict.Written("helpdesk", 1, create.intent_id,
                                                             "h-1")).state
    state = conflict.fold(spec, state, conflict.Observed("crm", 2, "c-1", {"name": "A"},
                                                         source_ts=2)).state
    return conflict.fold(spec, state, conflict.Observed("helpdesk", 2, "h-1", {"name": "B"},
                                                        source_ts=3))


def test_encoding_is_sorted_json_with_the_schema() -> None:
    data = codec.encode(observed())
    assert data.startswith(b'{"canonical_id":null,"deleted":false,"entity":"contact"')
    payload = orjson.loads(data)
    assert payload["schema"] == "syncline.observed/1"
    assert list(payload) == sorted(payload)
    assert codec.encode(codec.decode(data)) == data  # same event, same bytes


def test_every_event_kind_round_trips() -> None:
    step = sample_states()
    (conflict_record,) = step.conflicts
    events = [
        observed(),
        Written(system="helpdesk", entity="contact", seq=9, external_id="h-1",
                canonical_id="c1", observed_at=5, intent_id="c1/helpdesk#1", source_ts=5),
        WriteIntent.of(step.intents[0]) if step.intents else None,
        RecordEvent.of(step.state, step.changed),
        ConflictEvent.of(conflict_record),
        Resolution(resolution_id="r1", canonical_id="c1", entity="contact",
                   conflict_id=conflict_record.conflict_id, by="dana", at=9, via="cli",
                   take="crm"),
        DeadLetter(stage="merge", topic="t", partition=0, offset=3, key_b64=None,
                   value_b64="eyJ4Ijox", error="InvalidEvent", reason="x", at=1),
    ]
    for event in filter(None, events):
        assert codec.decode(codec.encode(event)) == event


def test_fold_types_convert_both_ways() -> None:
    step = sample_states()
    (record,) = step.conflicts
    assert ConflictEvent.of(record).to_record() == record
    spec = conflict.EntitySpec.build("contact", ["crm", "helpdesk"], ["email"])
    (intent,) = conflict.fold(spec, conflict.RecordState("c2", "contact"),
                              conflict.Observed("crm", 1, "c-2", {"email": "z@x"})).intents
    assert WriteIntent.of(intent).to_intent() == intent
    assert codec.encode(WriteIntent.payload(intent)) == codec.encode(WriteIntent.of(intent))
    assert WriteIntent.of(intent).key() == f"{intent.system}/{intent.entity}"
    event = RecordEvent.of(step.state, step.changed)
    # The merge's unvalidated payload is byte for byte the validated event.
    assert codec.encode(RecordEvent.payload(step.state, step.changed)) == codec.encode(event)
    assert event.open_conflicts == 1
    assert event.links == {"crm": "c-1", "helpdesk": "h-1"}
    assert event.provenance["email"].system == "crm"


@pytest.mark.parametrize(("data", "error", "words"), [
    (b"\x00\xffnot json", Undecodable, "not JSON"),
    (b"[1, 2]", Undecodable, "schema"),
    (b'{"schema": 3}', Undecodable, "schema"),
    (None, Undecodable, "tombstone"),
    (b'{"schema": "syncline.unheard_of/1"}', UnknownSchema, "syncline.unheard_of/1"),
    (b'{"schema": "syncline.observed/2"}', UnknownSchema, "newer than this build"),
    (b'{"schema": "syncline.observed/x"}', UnknownSchema, "no version"),
    (b'{"schema": "syncline.observed/0"}', UnknownSchema, "no upcaster"),
    (b'{"schema": "syncline.observed/1", "system": "crm"}', InvalidEvent, "entity: Field required"),
])
def test_bad_bytes_raise_a_decode_error_naming_the_problem(
        data: bytes | None, error: type[DecodeError], words: str) -> None:
    with pytest.raises(error, match=words):
        codec.decode(data)


def test_unknown_fields_are_refused() -> None:
    payload = orjson.loads(codec.encode(observed()))
    payload["colour"] = "red"
    with pytest.raises(InvalidEvent, match="colour: Extra inputs are not permitted"):
        codec.decode(orjson.dumps(payload))


def test_an_event_on_the_wrong_topic_is_refused() -> None:
    with pytest.raises(UnexpectedEvent, match=r"syncline\.observed/1 where one of "
                                              r"syncline\.resolution/1"):
        codec.decode(codec.encode(observed()), accept=(Resolution,))
    assert codec.decode(codec.encode(observed()), accept=(Observed, Written)) == observed()


@pytest.fixture
def observed_v0() -> Iterator[None]:
    """An imagined version 0 of observed, which called ``source_ts`` ``ts``."""

    def v0_to_v1(payload: dict[str, object]) -> dict[str, object]:
        payload = dict(payload)
        payload["source_ts"] = payload.pop("ts")
        payload["schema"] = "syncline.observed/1"
        return payload

    codec.UPCASTERS[("syncline.observed", 0)] = v0_to_v1
    yield
    del codec.UPCASTERS[("syncline.observed", 0)]


@pytest.mark.usefixtures("observed_v0")
def test_older_versions_are_upcast_in_one_place() -> None:
    payload = orjson.loads(codec.encode(observed()))
    payload["ts"] = payload.pop("source_ts")
    payload["schema"] = "syncline.observed/0"
    assert codec.decode(orjson.dumps(payload)) == observed()


def test_every_event_has_an_exported_json_schema() -> None:
    schemas = json_schemas()
    assert set(schemas) == {cls.SCHEMA for cls in EVENT_TYPES}
    observed_schema = schemas["syncline.observed/1"]
    assert observed_schema["properties"]["schema"]["const"] == "syncline.observed/1"
    assert observed_schema["additionalProperties"] is False
    assert "source_ts" in observed_schema["required"]
