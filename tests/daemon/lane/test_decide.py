"""The write decision: examples first, then the laws it keeps for any record and intent."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from conflict.values import same
from daemon.lane.decide import (
    Done,
    Stale,
    Write,
    decide_delete,
    decide_found,
    decide_update,
)

# -- examples --------------------------------------------------------------------------------


def test_a_field_still_holding_the_expected_value_is_written() -> None:
    assert decide_update({"name": "Ann", "tier": "gold"}, {"name": "Ann Lee"},
                         {"name": "Ann"}) == Write({"name": "Ann Lee"})


def test_a_field_holding_the_intended_value_is_done_already() -> None:
    assert decide_update({"name": "Ann Lee"}, {"name": "Ann Lee"}, {"name": "Ann"}) == Done()


def test_a_field_holding_anything_else_makes_the_whole_write_stale() -> None:
    decision = decide_update({"name": "Ann (person)", "tier": "gold"},
                             {"name": "Ann Lee", "tier": "platinum"},
                             {"name": "Ann", "tier": "gold"})
    assert decision == Stale(["name"])  # and tier is not written either


def test_a_field_missing_from_the_record_or_the_expectation_is_null() -> None:
    assert decide_update({}, {"phone": "123"}, {}) == Write({"phone": "123"})
    assert decide_update({"phone": "9"}, {"phone": "123"}, {}) == Stale(["phone"])


def test_a_delete_goes_ahead_only_if_nothing_changed_since_the_hub_saw_it() -> None:
    assert decide_delete({"name": "Bo", "email": "bo@x"}, {"name": "Bo"}) == Write()
    assert decide_delete({"name": "Bo!", "email": "bo@"}, {"name": "Bo", "email": "bo@x"}
                         ) == Stale(["email", "name"])


def test_a_record_found_before_a_create_is_its_own_only_with_every_intended_value() -> None:
    assert decide_found({"email": "e@x", "name": "Eve", "extra": 1},
                        {"email": "e@x", "name": "Eve"}) == Done()
    assert decide_found({"email": "e@x", "name": "Eva"}, {"email": "e@x", "name": "Eve"}
                        ) == Stale(["name"])


# -- laws ------------------------------------------------------------------------------------



def _nested(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    # Named, not a lambda: Hypothesis misreads a lambda's source now and then when it checks
    # that the function uses its argument (a spurious deprecation error).
    return st.lists(inner, max_size=2) | st.dictionaries(st.sampled_from("xy"), inner,
                                                         max_size=2)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from(["a", "b", ""]),
    _nested, max_leaves=4)
names = st.sampled_from(["email", "name", "phone", "tier"])
records = st.dictionaries(names, json_values, max_size=4)


def _held(record: dict[str, Any], name: str) -> Any:
    return record.get(name)


@given(records, records, records)
def test_the_decision_sorts_every_intended_field_into_exactly_one_outcome(
        held: dict[str, Any], intended: dict[str, Any], expected: dict[str, Any]) -> None:
    done = {n for n, v in intended.items() if same(_held(held, n), v)}
    todo = {n for n, v in intended.items()
            if n not in done and same(_held(held, n), expected.get(n))}
    changed = set(intended) - done - todo
    decision = decide_update(held, intended, expected)
    if changed:
        assert decision == Stale(sorted(changed))
    elif todo:
        assert decision == Write({n: intended[n] for n in todo})
    else:
        assert decision == Done()


@given(records, records, records)
def test_a_write_done_is_done_when_decided_again(
        held: dict[str, Any], intended: dict[str, Any], expected: dict[str, Any]) -> None:
    """A retried intent never writes twice: after its write, the same intent is done."""
    decision = decide_update(held, intended, expected)
    if isinstance(decision, Write):
        after = {**held, **decision.values}
        assert decide_update(after, intended, expected) == Done()


@given(records, records, records)
def test_nothing_is_written_over_a_value_the_hub_did_not_expect(
        held: dict[str, Any], intended: dict[str, Any], expected: dict[str, Any]) -> None:
    decision = decide_update(held, intended, expected)
    if isinstance(decision, Write):
        assert decision.values
        for name, value in decision.values.items():
            assert same(_held(held, name), expected.get(name))
            assert same(intended[name], value)


@given(records, records)
def test_a_record_as_the_hub_expects_it_is_written_whole(
        expected: dict[str, Any], intended: dict[str, Any]) -> None:
    held = dict(expected)
    decision = decide_update(held, intended, expected)
    assert not isinstance(decision, Stale)
    assert decide_delete(held, expected) == Write()


@given(records, records)
def test_a_delete_is_stale_exactly_when_an_expected_field_differs(
        held: dict[str, Any], expected: dict[str, Any]) -> None:
    differ = sorted(n for n, v in expected.items() if not same(_held(held, n), v))
    assert decide_delete(held, expected) == (Stale(differ) if differ else Write())


@given(records, records)
def test_a_found_record_is_the_creates_own_exactly_when_it_holds_every_intended_value(
        held: dict[str, Any], intended: dict[str, Any]) -> None:
    verdict = decide_found(held, intended)
    assert isinstance(verdict, Done) == all(
        same(_held(held, n), v) for n, v in intended.items())
