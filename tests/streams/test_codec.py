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
    NotTaken,
    Observed,
    RecordEvent,
    Resolution,
    RoutedInput,
    WriteIntent,
    WriteStale,
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
    assert data.startswith(b'{"canonical_id":null,"correlation_id":null,"created_at":null,'
                           b'"deleted":false,'
                           b'"entity":"contact"')
    payload = orjson.loads(data)
    assert payload["schema"] == "syncline.observed/3"
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


def test_the_merge_payloads_keep_their_bytes() -> None:
    # The merge builds these payloads on its hot path: faster ways of building them must
    # give these bytes (records and intents topics are read by other services).
    step = sample_states()
    assert codec.encode(RecordEvent.payload(step.state, ("name",))) == (
        b'{"canonical_id":"c1","changed":["name"],"clock":{"crm":2,"helpdesk":1},'
        b'"deleted":false,"entity":"contact","fields":{"email":"a@x","name":"A"},'
        b'"links":{"crm":"c-1","helpdesk":"h-1"},"not_kept":{},"open_conflicts":1,"provenance":{'
        b'"email":{"change":"first","conflict_id":null,"dot":"crm:1","source_ts":1.0,'
        b'"system":"crm"},"name":{"change":"edit","conflict_id":null,"dot":"crm:2",'
        b'"source_ts":2.0,"system":"crm"}},"schema":"syncline.record/2","version":3}')
    spec = conflict.EntitySpec.build("contact", ["crm", "helpdesk"], ["email"])
    (intent,) = conflict.fold(spec, conflict.RecordState("c2", "contact"),
                              conflict.Observed("crm", 1, "c-2", {"email": "z@x"})).intents
    assert codec.encode(WriteIntent.payload(intent)) == (
        b'{"attempt":1,"canonical_id":"c2","clock":{"crm":1},"correlation_id":null,'
        b'"entity":"contact",'
        b'"expected":{},"external_id":null,"intent_id":"c2/helpdesk#1",'
        b'"native_version":null,"op":"create","schema":"syncline.intent/2",'
        b'"system":"helpdesk","values":{"email":"z@x"}}')


@pytest.mark.parametrize(("data", "error", "words"), [
    (b"\x00\xffnot json", Undecodable, "not JSON"),
    (b"[1, 2]", Undecodable, "schema"),
    (b'{"schema": 3}', Undecodable, "schema"),
    (None, Undecodable, "tombstone"),
    (b'{"schema": "syncline.unheard_of/1"}', UnknownSchema, "syncline.unheard_of/1"),
    (b'{"schema": "syncline.observed/4"}', UnknownSchema, "newer than this build"),
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
    with pytest.raises(UnexpectedEvent, match=r"syncline\.observed/3 where one of "
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


def test_an_observation_from_before_version_3_is_upcast_without_a_created_at() -> None:
    payload = orjson.loads(codec.encode(observed()))
    del payload["created_at"]
    payload["schema"] = "syncline.observed/1"
    decoded = codec.decode(orjson.dumps(payload))
    assert decoded == observed()
    assert isinstance(decoded, Observed) and decoded.created_at is None


def test_write_outcomes_and_records_of_version_1_are_upcast() -> None:
    payload = orjson.loads(codec.encode(written()))
    del payload["not_taken"]
    payload["schema"] = "syncline.written/1"
    assert codec.decode(orjson.dumps(payload)) == written()
    assert codec.decode_routed(orjson.dumps(payload), ROUTED_TYPES).to_input() == \
        written().to_input()  # type: ignore[union-attr]
    step = sample_states()
    record = orjson.loads(codec.encode(RecordEvent.payload(step.state)))
    del record["not_kept"]
    record["schema"] = "syncline.record/1"
    assert codec.decode(orjson.dumps(record)) == RecordEvent.of(step.state)


def test_events_from_before_correlation_ids_are_upcast_with_none() -> None:
    # The version before each: what the log holds from earlier builds stays readable.
    older = {"syncline.observed/1": observed(), "syncline.written/2": written()}
    for schema, event in older.items():
        payload = orjson.loads(codec.encode(event.model_copy(update={"correlation_id": "c9"})))
        del payload["correlation_id"]
        payload["schema"] = schema
        assert codec.decode(orjson.dumps(payload)) == event
        assert codec.decode_routed(orjson.dumps(payload), ROUTED_TYPES).correlation_id is None
    spec = conflict.EntitySpec.build("contact", ["crm", "helpdesk"], ["email"])
    (intent,) = conflict.fold(spec, conflict.RecordState("c2", "contact"),
                              conflict.Observed("crm", 1, "c-2", {"email": "z@x"})).intents
    payload = WriteIntent.payload(intent)
    del payload["correlation_id"]
    payload["schema"] = "syncline.intent/1"
    assert codec.decode(orjson.dumps(payload)) == WriteIntent.of(intent)


def test_a_correlation_id_rides_the_fast_path_of_the_merge() -> None:
    event = observed().model_copy(update={"correlation_id": "c9", "canonical_id": "x1"})
    routed = codec.decode_routed(codec.encode(event), ROUTED_TYPES)
    assert isinstance(routed, RoutedInput) and routed.correlation_id == "c9"


def test_a_field_not_kept_reaches_the_fold() -> None:
    event = written(not_taken={"name": NotTaken(wrote="Ann", holds="ann")})
    assert event.to_input().not_taken == {"name": ("Ann", "ann")}


def test_every_event_has_an_exported_json_schema() -> None:
    schemas = json_schemas()
    assert set(schemas) == {cls.SCHEMA for cls in EVENT_TYPES}
    observed_schema = schemas["syncline.observed/3"]
    assert observed_schema["properties"]["schema"]["const"] == "syncline.observed/3"
    assert observed_schema["additionalProperties"] is False
    assert "source_ts" in observed_schema["required"]


# -- the merge stage's fast path: the fold's inputs without the models ----------------------
ROUTED_TYPES = (Observed, Written, WriteStale, Resolution)


def written(**changes: object) -> Written:
    data: dict[str, object] = dict(system="helpdesk", entity="contact", seq=9,
                                   external_id="7", canonical_id="cid-1", intent_id="cid-1/h#1",
                                   observed_at=1700000001.0, source_ts=1700000001,
                                   native_version="W/3", fields={"name": "Ann", "n": 1})
    data.update(changes)
    return Written(**data)  # type: ignore[arg-type]


def stale(**changes: object) -> WriteStale:
    data: dict[str, object] = dict(system="helpdesk", entity="contact", seq=10,
                                   external_id="7", canonical_id="cid-1", intent_id="cid-1/h#2",
                                   observed_at=1700000002, fields_changed=["name"])
    data.update(changes)
    return WriteStale(**data)  # type: ignore[arg-type]


@pytest.mark.parametrize("event", [
    observed(canonical_id="cid-1"),
    observed(canonical_id="cid-1", deleted=True, fields={}, external_id=None),
    observed(canonical_id="cid-1", native_version="12", fields={"x": None, "y": {"z": [1]}}),
    written(),
    written(fields=None, external_id=None, native_version=None),
    written(not_taken={"name": NotTaken(wrote="Ann", holds="ann")}),
    stale(),
    stale(external_id=None, fields_changed=[], correlation_id="c7", observed_at=2.5),
])
def test_routed_reads_and_outcomes_give_the_same_fold_input_as_the_models(event: object
                                                                          ) -> None:
    data = codec.encode(event)  # type: ignore[arg-type]
    routed = codec.decode_routed(data, ROUTED_TYPES)
    full = codec.decode(data, ROUTED_TYPES)
    assert type(routed).__name__ == "RoutedInput"
    assert (routed.canonical_id, routed.entity) == (full.canonical_id, full.entity)
    assert routed.to_input() == full.to_input()  # type: ignore[union-attr]
    assert repr(routed.to_input()) == repr(full.to_input())  # type: ignore[union-attr]


def assert_fast_path_agrees(encoded: bytes, change: dict[str, object]) -> None:
    """``encoded`` with ``change`` applied decodes on the routed fast path to what the models
    decide: the same input, or the same error."""
    payload = orjson.loads(encoded)
    payload.update(change)
    data = orjson.dumps(payload)
    try:
        expected: object = codec.decode(data, ROUTED_TYPES).to_input()  # type: ignore[union-attr]
    except DecodeError as exc:
        expected = (type(exc), str(exc))
    try:
        got: object = codec.decode_routed(data, ROUTED_TYPES).to_input()  # type: ignore[union-attr]
    except DecodeError as exc:
        got = (type(exc), str(exc))
    assert got == expected


@pytest.mark.parametrize("change", [
    {"seq": "4"},  # the model coerces it; the fast path leaves it to the model
    {"seq": -1},
    {"fields": ["a"]},
    {"canonical_id": 5},
    {"colour": "red"},  # an unknown field
    {"schema": "syncline.observed/9"},
    {"source_ts": "soon"},
])
def test_a_routed_payload_that_is_not_plainly_right_is_decided_by_the_models(
        change: dict[str, object]) -> None:
    assert_fast_path_agrees(codec.encode(observed(canonical_id="cid-1")), change)


@pytest.mark.parametrize("change", [
    {"seq": -1},
    {"fields_changed": ["name", 1]},
    {"fields_changed": "name"},
    {"intent_id": None},
    {"observed_at": True},
    {"colour": "red"},
])
def test_a_routed_stale_write_that_is_not_plainly_right_is_decided_by_the_model(
        change: dict[str, object]) -> None:
    assert_fast_path_agrees(codec.encode(stale()), change)


def test_a_routed_input_the_caller_does_not_take_is_unexpected_on_the_fast_path_too() -> None:
    with pytest.raises(UnexpectedEvent, match="write_stale/2 where one of"):
        codec.decode_routed(codec.encode(stale()), (Observed, Written))


def test_other_routed_inputs_are_models() -> None:
    resolution = Resolution(resolution_id="r1", canonical_id="cid-1", entity="contact",
                            conflict_id="k1", by="ann", at=1.0, via="cli", take="crm")
    assert codec.decode_routed(codec.encode(resolution), ROUTED_TYPES) == resolution
    with pytest.raises(Undecodable):
        codec.decode_routed(b"\x00garbage", ROUTED_TYPES)


@pytest.mark.parametrize("schema", [["a"], {"x": 1}])
def test_a_schema_that_is_not_text_is_a_decode_error_on_the_fast_path_too(
        schema: object) -> None:
    """Found by the fuzz (tests/streams/test_hostile_events.py): the merge stage's fast path
    looked an unhashable ``schema`` up in a dict and raised TypeError, not a dead letter."""
    data = orjson.dumps({"entity": "", "observed_at": 0.0, "schema": schema, "seq": 0,
                         "source_ts": 0.0, "system": "", "canonical_id": None,
                         "native_version": None})

    for decode in (codec.decode, lambda d: codec.decode_routed(d, ())):
        with pytest.raises(DecodeError):
            decode(data)
