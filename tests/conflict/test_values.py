"""``same`` is JSON's equality, whatever shortcuts it takes: checked against a plain
definition of it over random JSON values that mix booleans, integers and floats."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from conflict import same
from conflict.values import value_key

_LEAVES = st.one_of(st.none(), st.booleans(), st.sampled_from([0, 1, 2, 0.0, 1.0, 2.5]),
                    st.integers(), st.floats(allow_nan=False), st.sampled_from(["", "1", "a"]),
                    st.text(max_size=3))
JSON = st.recursive(_LEAVES, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from("abc"), inner, max_size=3)),
    max_leaves=8)


def reference(a: Any, b: Any) -> bool:
    """JSON equality, written plainly: a boolean is never a number, ``1`` is ``1.0``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, list) or isinstance(b, list):
        return (isinstance(a, list) and isinstance(b, list) and len(a) == len(b)
                and all(reference(x, y) for x, y in zip(a, b, strict=True)))
    if isinstance(a, dict) or isinstance(b, dict):
        return (isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys()
                and all(reference(a[k], b[k]) for k in a))
    return bool(a == b)


def _twin(value: Any) -> Any:
    """An equal value built again (other objects), numbers written the other way."""
    if isinstance(value, list):
        return [_twin(v) for v in value]
    if isinstance(value, dict):
        return {k: _twin(v) for k, v in value.items()}
    if type(value) is int and abs(value) < 2**53:
        return float(value)
    if type(value) is str:
        return "".join(value)
    return value


@given(JSON, JSON)
def test_same_is_json_equality(a: Any, b: Any) -> None:
    assert same(a, b) is reference(a, b)
    assert same(a, b) is (value_key(a) == value_key(b))


@given(JSON)
def test_a_value_is_the_same_as_its_twin_and_not_as_it_with_a_boolean_for_a_number(
        a: Any) -> None:
    assert same(a, _twin(a)) and same(_twin(a), a)
    assert not same([a, 1], [a, True]) and not same({"k": 0}, {"k": False})
    assert not same([a], [a, None]) and not same({"k": a}, {"k": a, "l": None})
