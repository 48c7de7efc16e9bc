"""Field mapping: a system's record to canonical field values and back.

A lane reads a record from a system (a JSON dict as its API returned it) and needs the
canonical values of the entity's fields; it writes canonical values back in the system's
shape. This module is that translation, and only that: pure functions of their arguments,
no I/O, no asyncio.

In the configuration file each canonical field names, per system, where it lives there::

    fields:
      email:  {crm: email, helpdesk: contact.email_address, transform: email}
      status:
        crm: lifecycle
        helpdesk: {path: state, map: {open: new, pending: new, closed: done},
                   write_default: open}
      age:    {crm: {path: age, cast: integer}}            # the CRM keeps "42" as text
      seen:   {crm: {path: last_seen, date: unix_ms}}

A system's entry is a dotted path or a :class:`SystemField`; ``write_path:`` writes the field
elsewhere than ``path:`` reads it (an API that answers ``status: {id: 2, name: ...}`` but
takes ``status_id: 2``: ``{path: status.id, write_path: status_id}``). Reading applies, in
order: the system's representation (``cast`` or ``date``), the value ``map``, then the ``transform``
normalisations (the field's own first, then the system's; ``sort`` last). Writing runs the
same steps backwards; the transforms run first on the canonical value, so what is written is
already normal. ``null`` passes every step unchanged.

The round-trip law (``tests/daemon/test_mapping.py``): for a canonical value ``v`` a system
can hold, ``to_canonical(to_system({f: v})).values[f] == normalise(v)``, and writing what was
read writes the same thing again, so the hub never takes its own write for an edit.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Self, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from conflict import FieldSpec, FieldType
from conflict.state import Json
from conflict.values import value_key
from daemon.errors import DaemonError

MAPPING_ERROR = "field_mapping"
"""The type of the :class:`PydanticCustomError` raised here; the config loader shows its
message verbatim."""

Transform = Literal["lower", "upper", "strip", "collapse_whitespace", "email", "phone", "sort"]
"""An idempotent normalisation of canonical values (string ones also apply to each element of
a list of strings; ``sort`` sorts a list and drops repeats)."""

CastType = Literal["string", "integer", "number", "boolean"]
Direction = Literal["both", "read", "write"]

DATE_FORMATS = ("iso", "iso_ms", "unix", "unix_ms", "date")
"""The named date formats; anything else with a ``%`` in it is a strftime pattern."""

TRANSFORMS: tuple[str, ...] = get_args(Transform)
_CAST_TYPES: tuple[str, ...] = get_args(CastType)
_PATH = re.compile(r"[^.\s]+(\.[^.\s]+)*")


def _error(message: str, **values: Any) -> PydanticCustomError:
    return PydanticCustomError(MAPPING_ERROR, message, values)


class MappingError(DaemonError):
    """Canonical values that cannot be written to a system.

    Attributes:
        entity: the entity.
        system: the system the values were for.
        problems: field -> why its value cannot be written (the value included).
    """

    def __init__(self, entity: str, system: str, problems: Mapping[str, str]) -> None:
        self.entity = entity
        self.system = system
        self.problems = dict(problems)
        detail = "; ".join(f"{name}: {why}" for name, why in self.problems.items())
        super().__init__(f"cannot write {entity} to {system}: {detail}")


class _Unfit(Exception):
    """One value does not fit one step; its message says why (internal)."""


# -- the configuration of one field in one system ---------------------------------------------
class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class Cast(_Frozen):
    """A value kept as text on one side and typed on the other.

    ``cast: integer`` is short for ``cast: {system: string, canonical: integer}``: the system
    stores ``"42"``, the canonical value is ``42``. The long form turns it round
    (``{system: integer, canonical: string}``). Exactly one side is ``string``.
    """

    system: CastType = "string"
    """The type the system keeps the value as."""
    canonical: CastType = Field(examples=['integer'])
    """The canonical type (exactly one of the two is ``string``)."""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, str):
            if data not in _CAST_TYPES:
                raise _error("expected one of {types}, or system: and canonical:, got {value}",
                             types=", ".join(_CAST_TYPES), value=repr(data))
            return {"system": "string", "canonical": data}
        return data

    @model_validator(mode="after")
    def _one_side_is_text(self) -> Self:
        if (self.system == "string") == (self.canonical == "string"):
            raise _error("exactly one of system: and canonical: must be string (the side "
                         "that keeps the value as text), got {system} and {canonical}",
                         system=self.system, canonical=self.canonical)
        return self

    @property
    def typed(self) -> CastType:
        """The type of the side that is not text."""
        return self.canonical if self.system == "string" else self.system


class SystemField(_Frozen):
    """Where and how a canonical field lives in one system's records.

    Written in the file as a dotted path (``address.city``) or a mapping with ``path:`` and
    the optional keys below.
    """

    path: str = Field(examples=['address.city'])
    """Where reads find the value (a dotted path)."""
    write_path: str | None = Field(None, examples=["status_id"])
    """Where writes put it, when not at ``path`` (read ``status.id``, write ``status_id``)."""
    transform: tuple[Transform, ...] = Field((), examples=['email'])
    """This system's normalisations, after the field's own."""
    map: dict[Any, Any] | None = Field(
        None, examples=[{"new": "open", "done": "closed"}])
    """Value map, **system value -> canonical value** (reads map left to right; writes use the
    inverse). Two system values for one canonical value need ``write_default``."""
    write_default: tuple[Any, ...] = Field((), examples=["open"])
    """Per canonical value that several system values map to, the system value to write (one, or
    a list)."""
    cast: Cast | None = Field(None, examples=['integer'])
    """A value kept as text on one side and typed on the other (``integer`` is short for
    ``{system: string, canonical: integer}``)."""
    date: str | None = Field(None, examples=['unix_ms'])
    """The system's date form: ``iso``, ``iso_ms``, ``unix``, ``unix_ms``, ``date``, or a
    strftime pattern; canonical dates are ISO-8601 with ms."""
    direction: Direction = "both"
    """``both``, ``read`` (never written to this system) or ``write`` (never read from it)."""
    ref: str | None = Field(None, examples=["company"])
    """The field holds the id of a record of this entity (translated between systems' ids)."""

    @model_validator(mode="before")
    @classmethod
    def _from_path(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"path": data}
        if not isinstance(data, Mapping):
            raise _error("expected the field's path there (a string such as address.city) "
                         "or a mapping with path:, got {value}", value=_shown(data))
        return data

    @field_validator("path", "write_path")
    @classmethod
    def _dotted_path(cls, path: str | None) -> str | None:
        if path is not None and not _PATH.fullmatch(path):
            raise _error("expected a dotted path such as address.city (no spaces, no empty "
                         "parts), got {value}", value=repr(path))
        return path

    @field_validator("transform", mode="before")
    @classmethod
    def _transforms(cls, value: Any) -> Any:
        return _transform_names(value)

    @field_validator("map")
    @classmethod
    def _scalars(cls, value: dict[Any, Any] | None) -> dict[Any, Any] | None:
        if value is None:
            return None
        if not value:
            raise _error("expected at least one system_value: canonical_value")
        for key, canonical in value.items():
            for what, item in (("system value", key), ("canonical value", canonical)):
                if not _is_scalar(item):
                    raise _error("expected a string, number or boolean as {what}, got "
                                 "{value}", what=what, value=_shown(item))
        return value

    @field_validator("write_default", mode="before")
    @classmethod
    def _one_or_more(cls, value: Any) -> Any:
        return tuple(value) if isinstance(value, list | tuple) else (value,)

    @field_validator("date")
    @classmethod
    def _date_format(cls, value: str | None) -> str | None:
        if value is not None:
            _date_codec(value)  # raises with what is expected
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.write_path is not None and self.direction == "read":
            raise _error("write_path: is where the field is written, but it has direction: "
                         "read")
        if self.ref is not None and (self.map is not None or self.date is not None
                                     or self.transform):
            raise _error("a ref: field holds another record's id: no map:, date: or "
                         "transform: (cast: is allowed, for ids that are numbers)")
        if self.cast is not None and self.date is not None:
            raise _error("cast: and date: cannot both be set (date: unix and unix_ms also "
                         "read numbers written as text)")
        if self.map is not None and self.date is not None:
            raise _error("a date field cannot have a value map")
        if self.write_default and self.map is None:
            raise _error("write_default: says which system value to write for a canonical "
                         "value of map:, but there is no map:")
        if self.map is None:
            return self
        if self.cast is not None:
            cast = _CastCodec(self.cast)
            for key in self.map:
                try:
                    fits = _key(cast.read(key)) == _key(key)
                except _Unfit:
                    fits = False
                if not fits:
                    raise _error("the keys of map: are the values cast: reads, so {key} "
                                 "should be {a}", key=_shown(key), a=_A[self.cast.canonical])
        value_map = _ValueMap(self.map, self.write_default)  # raises if write_default is wrong
        if self.direction == "write" and value_map.inverse is None:
            raise _error("direction: write, but map: cannot be inverted ({why}); name the "
                         "system value to write in write_default:", why=value_map.ambiguity)
        return self


def _transform_names(value: Any) -> tuple[str, ...]:
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list | tuple) or not all(n in TRANSFORMS for n in names):
        raise _error("expected one of {names}, or a list of them, got {value}",
                     names=", ".join(TRANSFORMS), value=_shown(value))
    return tuple(names)


def parse_transforms(value: Any) -> tuple[Transform, ...]:
    """Read a ``transform:`` value: one name or a list of names (raises PydanticCustomError)."""
    return _transform_names(value)  # type: ignore[return-value]


# -- reading and writing one field ------------------------------------------------------------
class _Codec:
    """One step between the system's representation (``write`` output) and the canonical."""

    def read(self, value: Json) -> Json:
        return value

    def write(self, value: Json) -> Json:
        return value

    def canonical(self, value: Json) -> Json:
        """The normal form of a canonical value, as reading it back would give."""
        return value


class _CastCodec(_Codec):
    def __init__(self, cast: Cast) -> None:
        self.typed = cast.typed
        self.text_is_canonical = cast.canonical == "string"

    def _parse(self, value: Json) -> Json:
        """The typed value, from the typed form or its text."""
        kind = self.typed
        if isinstance(value, str):
            text = value.strip()
            if kind == "integer" and _INTEGER.fullmatch(text):
                return int(text)
            if kind == "number" and _NUMBER.fullmatch(text):
                number = int(text) if _INTEGER.fullmatch(text) else float(text)
                if math.isfinite(number):
                    return number
            if kind == "boolean" and text.lower() in _BOOLEANS:
                return _BOOLEANS[text.lower()]
        elif kind == "boolean" and isinstance(value, bool):
            return value
        elif _is_number(value) and math.isfinite(value):
            if kind == "number":
                return value
            if kind == "integer" and float(value).is_integer():
                return int(value)
        raise _Unfit(f"expected {_A[kind]} (or its text), got {_shown(value)}")

    def _emit(self, value: Json, as_text: bool) -> Json:
        if not as_text:
            return value
        if isinstance(value, bool):
            return "true" if value else "false"
        return repr(value) if isinstance(value, float) else str(value)

    def read(self, value: Json) -> Json:
        return self._emit(self._parse(value), self.text_is_canonical)

    def write(self, value: Json) -> Json:
        return self._emit(self._parse(value), not self.text_is_canonical)

    def canonical(self, value: Json) -> Json:
        return self.read(value)


_INTEGER = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
_BOOLEANS = {"true": True, "false": False, "yes": True, "no": False, "1": True, "0": False}
_A = {"string": "a string", "integer": "an integer", "number": "a number",
      "boolean": "a boolean", "list": "a list", "object": "a mapping"}

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def _ms(moment: datetime) -> int:
    """Milliseconds since the epoch (a moment without a zone is UTC); finer is truncated."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MS


def _moment(ms: int) -> datetime:
    try:
        return _EPOCH + timedelta(milliseconds=ms)
    except OverflowError:
        raise _Unfit(f"{ms} ms from 1970-01-01 is outside years 1 to 9999") from None


def _iso(ms: int, *, always_ms: bool) -> str:
    t = _moment(ms)
    text = (f"{t.year:04d}-{t.month:02d}-{t.day:02d}"
            f"T{t.hour:02d}:{t.minute:02d}:{t.second:02d}")
    fraction = t.microsecond // 1000
    return f"{text}.{fraction:03d}Z" if fraction or always_ms else f"{text}Z"


def _parse_iso(value: Json) -> int:
    if isinstance(value, str):
        try:
            return _ms(datetime.fromisoformat(value.strip()))
        except ValueError:
            pass
    raise _Unfit(f"expected an ISO-8601 date and time, got {_shown(value)}")


def _seconds(value: Json, per_second: int) -> int:
    """Milliseconds from a count of seconds (1) or milliseconds (1000), maybe as text."""
    number: float | None = None
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        number = float(value)
    elif _is_number(value):
        number = value
    if number is not None and math.isfinite(number):
        return round(number * (1000 // per_second))
    unit = "seconds" if per_second == 1 else "milliseconds"
    raise _Unfit(f"expected {unit} since 1970-01-01 (a number), got {_shown(value)}")


class _DateCodec(_Codec):
    """System: the format's representation; canonical: ``YYYY-MM-DDTHH:MM:SS[.fff]Z``, UTC."""

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt

    def _from_system(self, value: Json) -> int:
        fmt = self.fmt
        if fmt in ("iso", "iso_ms"):
            return _parse_iso(value)
        if fmt in ("unix", "unix_ms"):
            return _seconds(value, 1 if fmt == "unix" else 1000)
        if fmt == "date":
            ms = _parse_iso(value)
            return ms - ms % 86_400_000
        if isinstance(value, str):
            try:
                return _ms(datetime.strptime(value, fmt))
            except ValueError:
                pass
        raise _Unfit(f"expected a date and time like {_sample(fmt)!r}, got {_shown(value)}")

    def _to_system(self, ms: int) -> Json:
        fmt = self.fmt
        if fmt in ("iso", "iso_ms"):
            return _iso(ms, always_ms=fmt == "iso_ms")
        if fmt == "unix":
            return ms // 1000 if ms % 1000 == 0 else ms / 1000
        if fmt == "unix_ms":
            return ms
        if fmt == "date":
            return _iso(ms, always_ms=False)[:10]
        return _moment(ms).strftime(fmt)

    def read(self, value: Json) -> Json:
        return _iso(self._from_system(value), always_ms=False)

    def write(self, value: Json) -> Json:
        return self._to_system(_parse_iso(value))

    def canonical(self, value: Json) -> Json:
        # Through the system's format: it may hold less than milliseconds (date, patterns).
        return self.read(self.write(value))


def _sample(fmt: str) -> str:
    return _moment(1714566896789).strftime(fmt)


def _date_codec(fmt: str) -> _DateCodec:
    if fmt not in DATE_FORMATS:
        if "%" not in fmt:
            raise _error("expected one of {names}, or a strftime pattern such as "
                         "%Y-%m-%d %H:%M:%S, got {value}",
                         names=", ".join(DATE_FORMATS), value=repr(fmt))
        codec = _DateCodec(fmt)
        try:
            codec.read(_sample(fmt))
        except (_Unfit, ValueError):
            raise _error("the pattern {value} cannot read back what it writes ({sample})",
                         value=repr(fmt), sample=repr(_sample(fmt))) from None
    return _DateCodec(fmt)


class _ValueMap(_Codec):
    """System values to canonical values and, where that can be inverted, back."""

    def __init__(self, table: Mapping[Any, Any], write_default: Sequence[Any]) -> None:
        self.forward = {_key(k): v for k, v in table.items()}
        sources: dict[tuple[str, Any], list[Any]] = {}
        for system_value, canonical in table.items():
            sources.setdefault(_key(canonical), []).append(system_value)
        chosen: dict[tuple[str, Any], Any] = {}
        for preferred in write_default:
            if _key(preferred) not in self.forward:
                raise _error("write_default {value} is not a system value of map: (expected "
                             "one of {keys})", value=_shown(preferred),
                             keys=", ".join(_shown(k) for k in table))
            target = _key(self.forward[_key(preferred)])
            if target in chosen:
                raise _error("write_default names both {a} and {b} for {canonical}",
                             a=_shown(chosen[target]), b=_shown(preferred),
                             canonical=_shown(target[1]))
            chosen[target] = preferred
        ambiguous = {k: v for k, v in sources.items() if len(v) > 1 and k not in chosen}
        self.ambiguity = "; ".join(
            f"{_shown(k[1])} comes from {' and '.join(_shown(s) for s in v)}"
            for k, v in ambiguous.items())
        if ambiguous and write_default:
            raise _error("write_default does not cover every canonical value with several "
                         "system values: {why}; name one system value for each",
                         why=self.ambiguity)
        self.inverse: dict[tuple[str, Any], Any] | None = None if ambiguous else {
            k: chosen.get(k, v[0]) for k, v in sources.items()}
        self.system_values = ", ".join(_shown(k) for k in table)
        self.canonical_values = ", ".join(_shown(k[1]) for k in sources)

    def read(self, value: Json) -> Json:
        try:
            return self.forward[_key(value)]
        except (KeyError, TypeError):
            raise _Unfit(f"{_shown(value)} has no entry in the value map (system values: "
                         f"{self.system_values})") from None

    def write(self, value: Json) -> Json:
        assert self.inverse is not None  # only writable fields are written
        try:
            return self.inverse[_key(value)]
        except (KeyError, TypeError):
            raise _Unfit(f"{_shown(value)} has no entry in the value map (canonical values: "
                         f"{self.canonical_values})") from None

    def canonical(self, value: Json) -> Json:
        self.write(value)  # a value with no entry cannot be written
        return value


def _key(value: Any) -> tuple[str, Any]:
    """A dict key that keeps ``True`` apart from ``1`` (but ``1`` and ``1.0`` together): the
    fold's equality (:func:`conflict.values.same`), so map keys and the fold agree."""
    if not isinstance(value, bool | int | float | str):
        raise TypeError(value)
    key = value_key(value)  # (kind, value) for these
    assert isinstance(key, tuple)
    return key


class _Transforms(_Codec):
    """Normalisations of the canonical value; idempotent, so reading and writing agree."""

    def __init__(self, names: Iterable[str]) -> None:
        ordered = list(dict.fromkeys(n for n in names if n != "sort"))
        self.strings = [_STRING_TRANSFORMS[n] for n in ordered]
        self.names = [*ordered, *(["sort"] if "sort" in names else [])]
        self.sort = "sort" in names

    def _apply(self, value: Json) -> Json:
        if value is None:
            return None
        if self.strings:
            if isinstance(value, str):
                value = self._string(value)
            elif isinstance(value, list) and all(isinstance(v, str) for v in value):
                value = [self._string(v) for v in value]
            else:
                raise _Unfit(f"{', '.join(n for n in self.names if n != 'sort')} needs a "
                             f"string or a list of strings, got {_shown(value)}")
        if self.sort:
            if not isinstance(value, list):
                raise _Unfit(f"sort needs a list, got {_shown(value)}")
            unique = {value_key(v): v for v in value}  # the fold's equality
            value = sorted(unique.values(), key=_order_key)
        return value

    def _string(self, text: str) -> str:
        for fn in self.strings:
            text = fn(text)
        return text

    def read(self, value: Json) -> Json:
        return self._apply(value)

    def write(self, value: Json) -> Json:
        return self._apply(value)

    def canonical(self, value: Json) -> Json:
        return self._apply(value)


def _phone(text: str) -> str:
    text = text.strip()
    digits = "".join(c for c in text if c in "0123456789")
    return f"+{digits}" if text.startswith("+") else digits


_STRING_TRANSFORMS: dict[str, Callable[[str], str]] = {
    "lower": str.lower,
    "upper": str.upper,
    "strip": str.strip,
    "collapse_whitespace": lambda text: " ".join(text.split()),
    "email": lambda text: text.strip().lower(),
    "phone": _phone,
}


def _order_key(value: Json) -> str:
    # The order of conflict's union policy, so a sorted list is what a union would make.
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class FieldMapper:
    """One canonical field in one system, compiled: its path and its steps.

    ``steps`` are ordered from the system's side to the canonical side.
    """

    name: str
    path: tuple[str, ...]
    type: FieldType
    steps: tuple[_Codec, ...]
    readable: bool
    writable: bool
    one_way: str | None  # why the field goes one way only, if it does
    ref: str | None = None  # the entity whose records' ids the field holds
    write_path: tuple[str, ...] = ()  # where writes put it; () = at ``path``

    @property
    def written_at(self) -> tuple[str, ...]:
        """Where a write puts the field's value."""
        return self.write_path or self.path

    @classmethod
    def compile(cls, name: str, field_type: FieldType | str, mapping: SystemField | str,
                transforms: Iterable[str] = ()) -> FieldMapper:
        """Compile ``mapping``, with the field's own ``transforms`` applied before its own."""
        if isinstance(mapping, str):
            mapping = SystemField(path=mapping)
        steps: list[_Codec] = []
        if mapping.cast is not None:
            steps.append(_CastCodec(mapping.cast))
        if mapping.date is not None:
            steps.append(_date_codec(mapping.date))
        one_way: str | None = None
        invertible = True
        if mapping.map is not None:
            value_map = _ValueMap(mapping.map, mapping.write_default)
            steps.append(value_map)
            if value_map.inverse is None:
                invertible = False
                one_way = f"value map not invertible ({value_map.ambiguity}; name the system " \
                          "value to write in write_default)"
        names = [*transforms, *mapping.transform]
        if names:
            steps.append(_Transforms(names))
        readable = mapping.direction != "write"
        writable = mapping.direction != "read" and invertible
        if mapping.direction == "read":
            one_way = "direction: read"
        elif mapping.direction == "write":
            one_way = "direction: write"
        write_path = tuple(mapping.write_path.split(".")) if mapping.write_path else ()
        return cls(name, tuple(mapping.path.split(".")), FieldType(field_type), tuple(steps),
                   readable, writable, one_way, mapping.ref, write_path)

    def read(self, value: Json) -> Json:
        """The canonical value of the system's ``value`` (raises ``_Unfit``)."""
        for step in self.steps:
            if value is not None:
                value = step.read(value)
        self._check_type(value)
        return value

    def write(self, value: Json) -> Json:
        """The system's value for the canonical ``value`` (raises ``_Unfit``)."""
        self._check_type(value)
        for step in reversed(self.steps):
            if value is not None:
                value = step.write(value)
        return value

    def normalise(self, value: Json) -> Json:
        """The canonical value that writing ``value`` and reading it back gives."""
        self._check_type(value)
        # From the canonical side towards the system's; a value map hides what lies beyond.
        for step in reversed(self.steps):
            if value is not None:
                value = step.canonical(value)
            if isinstance(step, _ValueMap):
                break
        for step in self.steps[-1:]:
            if isinstance(step, _Transforms) and value is not None:
                value = step.canonical(value)
        return value

    def _check_type(self, value: Json) -> None:
        if not FieldSpec(self.name, self.type).accepts(value):
            raise _Unfit(f"expected {_A[self.type.value]}, got {_shown(value)}")


# -- a whole record ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Reading:
    """The canonical values read from one record of a system.

    Attributes:
        values: field -> canonical value, for the fields present in the record (``None``
            where the record holds null).
        problems: field -> why the record's value could not be read.
    """

    values: dict[str, Json] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)


class EntityMapping:
    """An entity's fields in one system: read its records, write canonical values to it.

    Build it once at start-up (``EntityConfig.mapping(system)``); it is immutable.
    """

    def __init__(self, entity: str, system: str, fields: Iterable[FieldMapper]) -> None:
        self.entity = entity
        self.system = system
        self.fields: dict[str, FieldMapper] = {f.name: f for f in fields}
        self.readable = frozenset(n for n, f in self.fields.items() if f.readable)
        self.writable = frozenset(n for n, f in self.fields.items() if f.writable)
        self.one_way: dict[str, str] = {
            n: f.one_way for n, f in self.fields.items() if f.one_way is not None}
        # Reference fields: their values are the system's ids of another entity's records
        # here, canonical ids in the hub; the lane translates between the two.
        self.refs: dict[str, str] = {
            n: f.ref for n, f in self.fields.items() if f.ref is not None}
        clash = overlapping_paths(self.fields.values())
        if clash:
            raise ValueError(clash)

    def to_canonical(self, record: Mapping[str, Any]) -> Reading:
        """The canonical values of ``record``; a field that cannot be read is a problem."""
        reading = Reading()
        for name, mapper in self.fields.items():
            if not mapper.readable:
                continue
            try:
                found, value = _get(record, mapper.path)
                if found:
                    reading.values[name] = mapper.read(value)
            except _Unfit as exc:
                reading.problems[name] = str(exc)
        return reading

    def to_system(self, values: Mapping[str, Json]) -> dict[str, Any]:
        """The system's (nested) record for ``values``; fields it does not write are left out.

        Raises:
            MappingError: a value cannot be written (wrong type, no entry in a value map,
                not a date ...); every such field is named, with its value.
        """
        record: dict[str, Any] = {}
        problems: dict[str, str] = {}
        for name, value in values.items():
            mapper = self.fields.get(name)
            if mapper is None or not mapper.writable:
                continue
            try:
                _put(record, mapper.written_at, mapper.write(value))
            except _Unfit as exc:
                problems[name] = str(exc)
        if problems:
            raise MappingError(self.entity, self.system, problems)
        return record

    def normalise(self, values: Mapping[str, Json]) -> dict[str, Json]:
        """The canonical values that writing ``values`` and reading them back gives.

        Raises:
            MappingError: as :meth:`to_system`.
        """
        out: dict[str, Json] = {}
        problems: dict[str, str] = {}
        for name, value in values.items():
            mapper = self.fields.get(name)
            if mapper is None or not mapper.writable:
                continue
            try:
                out[name] = mapper.normalise(value)
            except _Unfit as exc:
                problems[name] = str(exc)
        if problems:
            raise MappingError(self.entity, self.system, problems)
        return out

    def __repr__(self) -> str:
        return f"EntityMapping({self.entity!r}, {self.system!r}, {sorted(self.fields)})"


def overlapping_paths(fields: Iterable[FieldMapper]) -> str | None:
    """Why the written fields cannot all be written, if two share a path or nest."""
    written = sorted((f.written_at, f.name) for f in fields if f.writable)
    for (path_a, a), (path_b, b) in itertools.pairwise(written):
        if path_b[:len(path_a)] == path_a:
            return (f"fields {a} and {b} would both be written at {'.'.join(path_a)} (set "
                    "direction: read on one of them)")
    return None


def _get(record: Mapping[str, Any], path: Sequence[str]) -> tuple[bool, Any]:
    """(found, value) at ``path``; a null on the way is a null value, a gap is not found."""
    value: Any = record
    for depth, part in enumerate(path):
        if value is None:
            return True, None
        if not isinstance(value, Mapping):
            raise _Unfit(f"expected a mapping at {'.'.join(path[:depth]) or 'the top'}, "
                         f"got {_shown(value)}")
        if part not in value:
            return False, None
        value = value[part]
    return True, value


def _put(record: dict[str, Any], path: Sequence[str], value: Json) -> None:
    for part in path[:-1]:
        record = record.setdefault(part, {})
    record[path[-1]] = value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | bool) or (_is_number(value) and math.isfinite(value))


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
