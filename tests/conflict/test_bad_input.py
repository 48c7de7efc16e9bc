"""Inputs the fold rejects: a typed error from conflict's own tree, and no state changed."""

from __future__ import annotations

import pytest

from conflict import (
    ConflictError,
    EntitySpec,
    FieldSpec,
    FieldType,
    FieldTypeError,
    InputError,
    LinkMismatch,
    Manual,
    Observed,
    RecordState,
    Resolve,
    SpecError,
    UnknownConflict,
    UnknownField,
    UnknownIntent,
    UnknownSystem,
    WriteStale,
    Written,
    fold,
    parse_policy,
)
from conflict.inputs import Input

SPEC = EntitySpec.build("contact", ["crm", "helpdesk"], [
    FieldSpec("email", FieldType.STRING),
    FieldSpec("age", FieldType.INTEGER),
    FieldSpec("phone", FieldType.STRING, systems=frozenset({"crm"})),
], default_policy=Manual())


def seeded() -> RecordState:
    state = RecordState("c1", "contact")
    step = fold(SPEC, state, Observed("crm", 1, "c-1", {"email": "a@x", "age": 30},
                                      source_ts=1))
    (create,) = step.intents
    state = fold(SPEC, step.state, Written("helpdesk", 1, create.intent_id, "h-1")).state
    # Both edit the email without seeing each other: an open conflict (policy manual).
    state = fold(SPEC, state, Observed("crm", 2, "c-1", {"email": "c@x"}, source_ts=2)).state
    return fold(SPEC, state, Observed("helpdesk", 2, "h-1", {"email": "b@x"},
                                      source_ts=2)).state


@pytest.mark.parametrize(("inp", "error", "words"), [
    (Observed("crm", 9, "c-1", {"age": "thirty"}), FieldTypeError, "expected integer"),
    (Observed("crm", 9, "c-1", {"age": True}), FieldTypeError, "'age'"),
    (Observed("crm", 9, "c-1", {"colour": "red"}), UnknownField, "'colour'"),
    (Observed("helpdesk", 9, "h-1", {"phone": "555"}), UnknownField, "'phone'"),
    (Observed("erp", 1, "e-1", {"email": "a@x"}), UnknownSystem, "'erp'"),
    (Observed("review", 1, "r", {"email": "a@x"}), UnknownSystem, "'review'"),
    (Observed("crm", 9, "c-2", {"email": "a@x"}), LinkMismatch, "'c-2'"),
    (Written("crm", 9, "c1/crm#7"), UnknownIntent, "c1/crm#7"),
    (Written("crm", 9, "other/crm#1"), UnknownIntent, "other/crm#1"),
    (WriteStale("erp", 9, "c1/erp#1"), UnknownSystem, "'erp'"),
    (Resolve("r1", "c1/name/crm:9", "dana", 5, take="crm"), UnknownConflict, "c1/name/crm:9"),
])
def test_rejected_input_raises_a_typed_error_and_changes_nothing(
        inp: Input, error: type[InputError], words: str) -> None:
    state = seeded()
    before = state.to_dict()
    with pytest.raises(error, match=words.replace("(", r"\(")) as raised:
        fold(SPEC, state, inp)
    assert isinstance(raised.value, ConflictError) and not raised.value.retriable
    assert state.to_dict() == before


def test_resolution_naming_a_system_without_a_candidate_is_rejected() -> None:
    state = seeded()
    (conflict,) = state.open_conflicts()
    with pytest.raises(InputError, match="no candidate from 'shop'"):
        fold(SPEC, state, Resolve("r1", conflict.conflict_id, "dana", 5, take="shop"))
    with pytest.raises(FieldTypeError):
        fold(SPEC, state, Resolve("r1", conflict.conflict_id, "dana", 5, value=12))
    with pytest.raises(InputError, match="only a delete conflict"):
        fold(SPEC, state, Resolve("r1", conflict.conflict_id, "dana", 5, delete=True))


def test_a_record_of_another_entity_is_rejected() -> None:
    with pytest.raises(InputError, match="is a 'ticket'"):
        fold(SPEC, RecordState("t1", "ticket"), Observed("crm", 1, "c-1", {}))


@pytest.mark.parametrize(("build", "words"), [
    (lambda: EntitySpec.build("c", [], ["a"]), "non-empty"),
    (lambda: EntitySpec.build("c", ["crm", "crm"], ["a"]), "without repeats"),
    (lambda: EntitySpec.build("c", ["review"], ["a"]), "reserved"),
    (lambda: EntitySpec.build("c", ["crm"], [FieldSpec("a", systems=frozenset({"x"}))]),
     "unknown systems x"),
    (lambda: EntitySpec.build("c", ["crm"], ["a"], default_policy=parse_policy({"owner": "x"})),
     "owner 'x'"),
    (lambda: EntitySpec.build("c", ["crm"], [FieldSpec("a", FieldType.STRING,
                                                       policy=parse_policy("union"))]),
     "union needs a list"),
    (lambda: parse_policy("newest"), "unknown policy 'newest'"),
    (lambda: parse_policy({"custom": "no.such.module.fn"}), "cannot import"),
    (lambda: parse_policy({"custom": "json.no_such_function"}), "no callable"),
])
def test_a_spec_that_cannot_work_fails_when_built(build: object, words: str) -> None:
    with pytest.raises(SpecError, match=words):
        build()  # type: ignore[operator]
