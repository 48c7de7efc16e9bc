"""Field mapping: a system's records to canonical values and back (daemon/mapping.py).

The examples at the top document what each key does; the properties below prove the
round-trip law the hub relies on to tell its own writes from edits.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.mapping import EntityMapping, FieldMapper, MappingError, Reading, SystemField


def mapping(**fields: Any) -> EntityMapping:
    """``name=(type, system entry)`` or ``name=(type, system entry, field transforms)``."""
    mappers = []
    for name, (field_type, entry, *transforms) in fields.items():
        system_field = SystemField.model_validate(entry)
        mappers.append(FieldMapper.compile(name, field_type, system_field, *transforms))
    return EntityMapping("contact", "crm", mappers)


def same(a: Any, b: Any) -> bool:
    """Equal as JSON, types included (``True`` is not ``1``, ``1`` is not ``1.0``)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


# -- examples --------------------------------------------------------------------------------
def test_a_dotted_path_reads_nested_values_and_writes_nested_dicts() -> None:
    m = mapping(city=("string", "address.city"), zip=("string", "address.zip"),
                name=("string", "full_name"))

    reading = m.to_canonical({"full_name": "Ada", "address": {"city": "Paris"}})

    assert reading.values == {"name": "Ada", "city": "Paris"}  # no zip: not present
    assert m.to_system({"city": "Oslo", "zip": "0150", "name": None}) == {
        "address": {"city": "Oslo", "zip": "0150"}, "full_name": None}


def test_null_is_a_value_and_a_null_on_the_way_is_a_null_value() -> None:
    m = mapping(city=("string", "address.city"), name=("string", "full_name"))

    assert m.to_canonical({"full_name": None, "address": None}).values == {
        "name": None, "city": None}
    assert m.to_canonical({"address": "Paris"}).problems == {
        "city": "expected a mapping at address, got 'Paris'"}


def test_transforms_normalise_reading_and_writing() -> None:
    m = mapping(email=("string", {"path": "email", "transform": "email"}),
                phone=("string", {"path": "phone", "transform": "phone"}),
                name=("string", {"path": "name", "transform": "collapse_whitespace"}),
                tags=("list", {"path": "labels", "transform": "sort"}, ["lower"]))

    record = {"email": "  Ada@Example.COM ", "phone": "+1 (555) 010-0000",
              "name": "  Ada \t Lovelace ", "labels": ["VIP", "b", "vip"]}
    reading = m.to_canonical(record)

    assert reading.values == {"email": "ada@example.com", "phone": "+15550100000",
                              "name": "Ada Lovelace", "tags": ["b", "vip"]}
    assert m.to_system({"email": "X@Y.org", "tags": ["Z", "a"]}) == {
        "email": "x@y.org", "labels": ["a", "z"]}


def test_a_value_map_translates_both_ways() -> None:
    m = mapping(status=("string", {"path": "state", "map": {"open": "new", "closed": "done"}}))

    assert m.to_canonical({"state": "closed"}).values == {"status": "done"}
    assert m.to_system({"status": "new"}) == {"state": "open"}
    assert m.writable == {"status"} and m.one_way == {}


def test_a_map_that_cannot_be_inverted_makes_the_field_read_only() -> None:
    m = mapping(status=("string", {"path": "state",
                                   "map": {"open": "new", "pending": "new", "closed": "done"}}))

    assert m.to_canonical({"state": "pending"}).values == {"status": "new"}
    assert m.readable == {"status"} and m.writable == frozenset()
    assert "value map not invertible ('new' comes from 'open' and 'pending'" in m.one_way[
        "status"]
    assert m.to_system({"status": "new"}) == {}  # never written


def test_write_default_says_which_system_value_to_write() -> None:
    m = mapping(status=("string", {"path": "state", "write_default": "open",
                                   "map": {"open": "new", "pending": "new", "closed": "done"}}))

    assert m.writable == {"status"}
    assert m.to_system({"status": "new"}) == {"state": "open"}


def test_a_value_with_no_entry_in_the_map_is_a_problem_of_that_field_only() -> None:
    m = mapping(status=("string", {"path": "state", "map": {"open": "new"}}),
                name=("string", "name"))

    reading = m.to_canonical({"state": "archived", "name": "Ada"})

    assert reading.values == {"name": "Ada"}
    assert reading.problems == {
        "status": "'archived' has no entry in the value map (system values: 'open')"}
    with pytest.raises(MappingError) as raised:
        m.to_system({"status": "gone", "name": "Ada"})
    assert raised.value.problems == {
        "status": "'gone' has no entry in the value map (canonical values: 'new')"}
    assert "status: 'gone'" in str(raised.value)


def test_map_keys_keep_booleans_apart_from_numbers() -> None:
    m = mapping(flag=("string", {"path": "f", "map": {True: "yes", 2: "two"}}))

    assert m.to_canonical({"f": True}).values == {"flag": "yes"}
    assert m.to_canonical({"f": 2.0}).values == {"flag": "two"}
    assert "1 has no entry" in m.to_canonical({"f": 1}).problems["flag"]
    assert same(m.to_system({"flag": "yes"}), {"f": True})


@pytest.mark.parametrize(("cast", "system", "canonical"), [
    ("integer", "42", 42),
    ("number", "4.5", 4.5),
    ("number", "1e+16", 1e16),
    ("boolean", "true", True),
    ({"system": "integer", "canonical": "string"}, 42, "42"),
    ({"system": "boolean", "canonical": "string"}, False, "false"),
])
def test_cast_converts_text_and_back(cast: Any, system: Any, canonical: Any) -> None:
    m = mapping(v=("any", {"path": "v", "cast": cast}))

    assert same(m.to_canonical({"v": system}).values, {"v": canonical})
    assert same(m.to_system({"v": canonical}), {"v": system})


def test_cast_reads_the_typed_form_too_and_says_what_it_expected() -> None:
    m = mapping(age=("integer", {"path": "age", "cast": "integer"}),
                score=("number", "score"))

    assert m.to_canonical({"age": 42}).values == {"age": 42}
    assert m.to_canonical({"age": " 7 "}).values == {"age": 7}
    assert m.to_canonical({"age": "abc", "score": "abc"}).problems == {
        "age": "expected an integer (or its text), got 'abc'",
        "score": "expected a number, got 'abc'"}


@pytest.mark.parametrize(("fmt", "system", "canonical"), [
    ("iso", "2024-05-01T14:34:56.789+02:00", "2024-05-01T12:34:56.789Z"),
    ("iso", "2024-05-01T12:34:56Z", "2024-05-01T12:34:56Z"),
    ("iso_ms", "2024-05-01T12:34:56.000Z", "2024-05-01T12:34:56Z"),
    ("unix", 1714566896, "2024-05-01T12:34:56Z"),
    ("unix", 1714566896.789, "2024-05-01T12:34:56.789Z"),
    ("unix_ms", 1714566896789, "2024-05-01T12:34:56.789Z"),
    ("date", "2024-05-01", "2024-05-01T00:00:00Z"),
    ("%d/%m/%Y %H:%M", "01/05/2024 12:34", "2024-05-01T12:34:00Z"),
])
def test_dates_become_iso_utc_and_go_back_in_the_systems_format(
        fmt: str, system: Any, canonical: str) -> None:
    m = mapping(seen=("string", {"path": "seen", "date": fmt}))

    assert m.to_canonical({"seen": system}).values == {"seen": canonical}
    assert m.to_canonical(m.to_system({"seen": canonical})).values == {"seen": canonical}


def test_unix_dates_also_read_numbers_written_as_text() -> None:
    m = mapping(seen=("string", {"path": "seen", "date": "unix_ms"}))

    assert m.to_canonical({"seen": "1714566896789"}).values == {
        "seen": "2024-05-01T12:34:56.789Z"}
    assert m.to_canonical({"seen": "soon"}).problems == {
        "seen": "expected milliseconds since 1970-01-01 (a number), got 'soon'"}


def test_direction_limits_reading_or_writing() -> None:
    m = mapping(score=("integer", {"path": "score", "direction": "read"}),
                note=("string", {"path": "note", "direction": "write"}))

    assert m.to_canonical({"score": 3, "note": "x"}).values == {"score": 3}
    assert m.to_system({"score": 4, "note": "y"}) == {"note": "y"}
    assert m.one_way == {"score": "direction: read", "note": "direction: write"}


def test_a_wrong_type_is_a_problem_when_read_and_an_error_when_written() -> None:
    m = mapping(age=("integer", "age"), name=("string", "name"))

    assert m.to_canonical({"age": "old", "name": "Ada"}) == Reading(
        values={"name": "Ada"}, problems={"age": "expected an integer, got 'old'"})
    with pytest.raises(MappingError, match="age: expected an integer, got 'old'"):
        m.to_system({"age": "old"})


def test_fields_not_carried_or_not_writable_are_left_out() -> None:
    m = mapping(name=("string", "name"))

    assert m.to_system({"name": "Ada", "colour": "red"}) == {"name": "Ada"}


def test_two_written_fields_cannot_share_a_path() -> None:
    with pytest.raises(ValueError, match="fields a and b would both be written at x"):
        mapping(a=("any", "x"), b=("any", "x.y"))
    mapping(a=("any", "x"), b=("any", {"path": "x.y", "direction": "read"}))  # fine


def test_a_field_can_be_written_elsewhere_than_it_is_read() -> None:
    # Redmine-like: reads answer status: {id, name}, writes take status_id.
    m = mapping(status=("integer", {"path": "status.id", "write_path": "status_id"}),
                subject=("string", "subject"))

    assert m.to_canonical({"status": {"id": 2, "name": "Open"}, "subject": "S"}).values == {
        "status": 2, "subject": "S"}
    assert m.to_system({"status": 3, "subject": "T"}) == {"status_id": 3, "subject": "T"}


def test_write_paths_are_what_must_not_clash() -> None:
    with pytest.raises(ValueError, match="fields a and b would both be written at x"):
        mapping(a=("any", {"path": "a", "write_path": "x"}), b=("any", "x"))
    # read at the same place, written apart: fine
    mapping(a=("any", "x.id"), b=("any", {"path": "x.id", "write_path": "x_id"}))
    with pytest.raises(ValueError, match="write_path: is where the field is written, but it "
                                         "has direction: read"):
        SystemField.model_validate({"path": "a", "write_path": "b", "direction": "read"})


# -- the round-trip law ----------------------------------------------------------------------
def _canonical_moment(moment: datetime) -> str:
    """The canonical text of a UTC moment, written out independently of the module."""
    ms = moment.microsecond // 1000
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{ms:03d}" if ms else "") + "Z"


_MOMENTS = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1))
_MS_MOMENTS = _MOMENTS.map(lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000))
_SECONDS = _MOMENTS.map(lambda d: d.replace(microsecond=0))
_DAYS = st.dates(min_value=datetime(1900, 1, 1).date(), max_value=datetime(2200, 1, 1).date())
_NUMBERS = st.integers() | st.floats(allow_nan=False, allow_infinity=False)


def _nested(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    # A named function, not a lambda: Hypothesis reads a lambda's source to check that it
    # uses its argument, and misreads it here now and then (a spurious deprecation error).
    return st.lists(inner) | st.dictionaries(st.text(), inner)


_JSON = st.recursive(st.none() | st.booleans() | _NUMBERS | st.text(), _nested, max_leaves=8)
_STATUS = {"open": "new", "closed": "done", 3: "three", True: "flagged"}

# (field type, system entry, field transforms, canonical values in normal form)
CASES: dict[str, tuple[str, Any, list[str], st.SearchStrategy[Any]]] = {
    "plain": ("any", "a.b.c", [], _JSON),
    "email": ("string", "email", ["email"], st.text().map(lambda s: s.strip().lower())),
    "upper_strip": ("string", {"path": "x", "transform": ["strip", "upper"]}, [],
                    st.text().map(lambda s: s.strip().upper())),
    "words": ("string", {"path": "x", "transform": "collapse_whitespace"}, [],
              st.lists(st.text(alphabet="abcé", min_size=1)).map(" ".join)),
    "phone": ("string", {"path": "x", "transform": "phone"}, [],
              st.from_regex(r"\+?[0-9]{0,15}", fullmatch=True)),
    "tags": ("list", {"path": "x", "transform": "sort"}, ["lower"],
             st.sets(st.text().map(str.lower)).map(lambda s: sorted(
                 s, key=lambda t: json.dumps(t)))),
    "status": ("string", {"path": "x", "map": _STATUS}, [], st.sampled_from(
        sorted(_STATUS.values()))),
    "integer": ("integer", {"path": "x", "cast": "integer"}, [], st.integers()),
    "number": ("number", {"path": "x", "cast": "number"}, [], _NUMBERS),
    "boolean": ("boolean", {"path": "x", "cast": "boolean"}, [], st.booleans()),
    "id": ("string", {"path": "x", "cast": {"system": "integer", "canonical": "string"}}, [],
           st.integers().map(str)),
    "iso": ("string", {"path": "x", "date": "iso"}, [], _MS_MOMENTS.map(_canonical_moment)),
    "iso_ms": ("string", {"path": "x", "date": "iso_ms"}, [],
               _MS_MOMENTS.map(_canonical_moment)),
    "unix": ("string", {"path": "x", "date": "unix"}, [], _MS_MOMENTS.map(_canonical_moment)),
    "unix_ms": ("string", {"path": "x", "date": "unix_ms"}, [],
                _MS_MOMENTS.map(_canonical_moment)),
    "date": ("string", {"path": "x", "date": "date"}, [],
             _DAYS.map(lambda d: f"{d.isoformat()}T00:00:00Z")),
    "pattern": ("string", {"path": "x", "date": "%Y-%m-%d %H:%M:%S"}, [],
                _SECONDS.map(_canonical_moment)),
}


MAPPINGS = {name: mapping(f=(field_type, entry, transforms))
            for name, (field_type, entry, transforms, _) in CASES.items()}


@st.composite
def case_and_value(draw: st.DrawFn) -> tuple[EntityMapping, Any]:
    name = draw(st.sampled_from(sorted(CASES)))
    return MAPPINGS[name], draw(CASES[name][3] | st.none())


@given(case_and_value())
def test_a_canonical_value_the_system_can_hold_comes_back_unchanged(
        case: tuple[EntityMapping, Any]) -> None:
    m, value = case
    written = m.to_system({"f": value})

    reading = m.to_canonical(written)

    assert reading.problems == {}
    assert same(reading.values, {"f": value})
    assert same(m.normalise({"f": value}), {"f": value})
    assert same(m.to_system(reading.values), written)  # no echo: the same write again


_ROUGH_TEXT = st.text(alphabet=" \t\nAbCdé+()-0123456789ß", max_size=20)
_OFFSETS = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes)))
_ISO_TEXT = st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(2200, 1, 1),
                         timezones=_OFFSETS | st.just(UTC)).map(datetime.isoformat)
_ROUGH: dict[str, st.SearchStrategy[Any]] = {
    "email": _ROUGH_TEXT, "upper_strip": _ROUGH_TEXT, "words": _ROUGH_TEXT,
    "phone": _ROUGH_TEXT, "tags": st.lists(_ROUGH_TEXT),
    "id": st.integers().map(lambda i: f" 0{abs(i)}"),
    **{fmt: _ISO_TEXT for fmt in ("iso", "iso_ms", "unix", "unix_ms", "date", "pattern")},
}


@st.composite
def case_and_rough_value(draw: st.DrawFn) -> tuple[EntityMapping, Any]:
    name = draw(st.sampled_from(sorted(_ROUGH)))
    return MAPPINGS[name], draw(_ROUGH[name])


@given(case_and_rough_value())
def test_any_canonical_value_comes_back_normalised_and_then_stays(
        case: tuple[EntityMapping, Any]) -> None:
    m, value = case
    normal = m.normalise({"f": value})

    once = m.to_canonical(m.to_system({"f": value}))
    twice = m.to_canonical(m.to_system(once.values))

    assert same(once.values, normal) and once.problems == {}
    assert same(twice.values, normal)
    assert same(m.normalise(normal), normal)


# What a system might hold, per case: not necessarily what we would write.
_HELD: dict[str, st.SearchStrategy[Any]] = {
    **{name: _ROUGH[name] for name in ("email", "upper_strip", "words", "phone", "tags")},
    "integer": st.integers() | st.integers().map(lambda i: f" {i} "),
    "number": _NUMBERS | _NUMBERS.map(str),
    "boolean": st.sampled_from(["TRUE", "no", "1", "0", True]),
    "plain": _JSON,
    "status": st.sampled_from(list(_STATUS)),
    "id": st.integers() | st.integers().map(lambda i: f"0{abs(i)}"),  # text, leniently
    "iso": _ISO_TEXT, "iso_ms": _ISO_TEXT,
    "unix": st.floats(min_value=-2e9, max_value=7e9) | st.integers(-2 * 10**9, 7 * 10**9),
    "unix_ms": st.integers(-2 * 10**12, 7 * 10**12).map(lambda i: str(i)),
    "date": _DAYS.map(lambda d: d.isoformat()),
    "pattern": _MOMENTS.map(lambda d: d.strftime("%Y-%m-%d %H:%M:%S")),
}


@st.composite
def case_and_held_value(draw: st.DrawFn) -> tuple[EntityMapping, Any, str]:
    name = draw(st.sampled_from(sorted(_HELD)))
    entry = CASES[name][1]
    path = entry if isinstance(entry, str) else entry["path"]
    return MAPPINGS[name], draw(_HELD[name]), path


@given(case_and_held_value())
def test_reading_what_a_system_holds_then_writing_it_back_is_stable(
        case: tuple[EntityMapping, Any, str]) -> None:
    m, value, path = case
    record: dict[str, Any] = {}
    *outer, last = path.split(".")
    inner = record
    for part in outer:
        inner = inner.setdefault(part, {})
    inner[last] = value

    first = m.to_canonical(record)

    assert first.problems == {} and "f" in first.values
    written = m.to_system(first.values)
    assert same(m.to_canonical(written).values, first.values)
    assert same(m.to_system(m.to_canonical(written).values), written)
