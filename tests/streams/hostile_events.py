"""Hypothesis strategies for hostile bytes on the event topics, built from docs/schemas/.

:func:`valid_payload` draws a payload that the published JSON Schema of an event accepts
(a small generator of the subset of JSON Schema that pydantic writes there);
:func:`poison` draws bytes that must not pass: a payload truncated, one of its fields removed
or given a value of another type, its ``schema`` at a version no build wrote, invalid UTF-8,
random bytes, or JSON that is not an event; :data:`REFUSED`, those of them the codec refuses
(:func:`rejected`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from hypothesis import strategies as st

from streams import DecodeError, codec

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"
DOCUMENTS: dict[str, dict[str, Any]] = {
    path.stem: orjson.loads(path.read_bytes()) for path in sorted(SCHEMAS.glob("*.json"))}
"""``syncline.observed.v1 -> its JSON Schema``, every schema published."""

JSON_VALUES: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=3),
    max_leaves=6)


def from_schema(node: dict[str, Any], defs: dict[str, Any]) -> st.SearchStrategy[Any]:
    """The values a JSON Schema node accepts (the constructs pydantic's schemas use)."""
    if "$ref" in node:
        return from_schema(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
    if "const" in node:
        return st.just(node["const"])
    if "enum" in node:
        return st.sampled_from(node["enum"])
    if "anyOf" in node:
        return st.one_of([from_schema(option, defs) for option in node["anyOf"]])
    kind = node.get("type")
    if kind == "string":
        return st.text(max_size=16)
    if kind == "integer":
        return st.integers(min_value=node.get("minimum", -(2**53)), max_value=2**53)
    if kind == "number":
        return st.floats(min_value=node.get("minimum"), allow_nan=False, allow_infinity=False,
                         width=64)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        return st.lists(from_schema(node.get("items", {}), defs), max_size=3)
    if kind == "object" and "properties" in node:
        required = set(node.get("required", ()))
        properties = node["properties"]
        return st.fixed_dictionaries(
            {name: from_schema(sub, defs) for name, sub in properties.items()
             if name in required},
            optional={name: from_schema(sub, defs) for name, sub in properties.items()
                      if name not in required})
    if kind == "object":
        values = node.get("additionalProperties")
        inner = from_schema(values, defs) if isinstance(values, dict) else JSON_VALUES
        return st.dictionaries(st.text(max_size=8), inner, max_size=3)
    return JSON_VALUES  # no constraint: any JSON value


def valid_payload(name: str) -> st.SearchStrategy[dict[str, Any]]:
    """A payload the published schema ``name`` (e.g. ``syncline.observed.v1``) accepts."""
    document = DOCUMENTS[name]
    strategy: st.SearchStrategy[dict[str, Any]] = from_schema(document,
                                                              document.get("$defs", {}))
    return strategy


ANY_VALID = st.sampled_from(sorted(DOCUMENTS)).flatmap(valid_payload)


@st.composite
def mutated(draw: st.DrawFn, payload: dict[str, Any]) -> bytes:
    """``payload`` made unacceptable, one way or another."""
    data = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    how = draw(st.sampled_from(["truncated", "field removed", "wrong type", "wrong version",
                                "invalid utf-8", "not an object"]))
    name = str(payload["schema"]).partition("/")[0]
    if how == "truncated":
        return data[:draw(st.integers(0, len(data) - 1))]
    if how == "field removed":
        required = [k for k in payload if k != "schema"]
        if not required:
            return data[:-1]
        del payload[draw(st.sampled_from(sorted(required)))]
        return orjson.dumps(payload)
    if how == "wrong type":
        field = draw(st.sampled_from(sorted(payload)))
        payload[field] = draw(st.sampled_from([[1, 2], {"x": {}}, 2**70 // 2**20, True]
                                              if field != "schema" else [3, None, ["a"]]))
        return orjson.dumps(payload)
    if how == "wrong version":
        version = draw(st.sampled_from(["0", "99", "", "x", "1.5", "-1", " 1", "1/1"]))
        payload["schema"] = f"{name}/{version}"
        return orjson.dumps(payload)
    if how == "invalid utf-8":
        at = draw(st.integers(0, len(data)))
        return data[:at] + draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80"])) \
            + data[at:]
    return orjson.dumps(draw(st.sampled_from([[payload], payload["schema"], None, 7])))


POISON: st.SearchStrategy[bytes] = st.one_of(
    st.binary(max_size=64),
    ANY_VALID.flatmap(mutated),
    JSON_VALUES.map(orjson.dumps),
)
"""Bytes that are mostly no acceptable event (a field removed may have had a default, and
some fields take any JSON value: callers that need a rejection draw :data:`REFUSED`)."""


def rejected(data: bytes) -> bool:
    """Whether the codec refuses ``data`` (some mutations leave an acceptable event)."""
    try:
        codec.decode(data)
    except DecodeError:
        return True
    return False


REFUSED: st.SearchStrategy[bytes] = POISON.filter(rejected)
"""Bytes the codec refuses: :data:`POISON` without the acceptable events it drew."""
