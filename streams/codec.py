"""The one place where bytes become events and events become bytes.

Encoding is orjson with sorted keys, so the same event always gives the same bytes.
Decoding reads the ``schema`` field (``"name/version"``), upcasts payloads written by older
versions to the current one (the registry :data:`UPCASTERS`, one function per step), and
validates them into the event model. Every failure is a :class:`~streams.errors.DecodeError`
that names what was wrong; the caller sends the input to the dead-letter topic.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import orjson
from pydantic import ValidationError

import conflict
from streams.errors import InvalidEvent, Undecodable, UnexpectedEvent, UnknownSchema
from streams.events import EVENT_TYPES, Event, Observed, RoutedInput, WriteStale, Written

log = logging.getLogger(__name__)

E = TypeVar("E", bound=Event)

CURRENT: dict[str, type[Event]] = {cls.schema_name(): cls for cls in EVENT_TYPES}
"""The model of every schema name, at the version this build writes."""

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
UPCASTERS: dict[tuple[str, int], Upcaster] = {}
"""``(name, n) -> f``: turns a payload of version ``n`` into one of version ``n + 1``
(including its ``schema`` field). Register a function here whenever a model's version goes up;
never change or remove one, since the event log keeps old payloads forever."""


def _written_1_to_2(payload: dict[str, Any]) -> dict[str, Any]:
    """A write outcome from before writes were verified: every field counts as kept."""
    return {**payload, "schema": "syncline.written/2", "not_taken": {}}


def _record_1_to_2(payload: dict[str, Any]) -> dict[str, Any]:
    """A record from before writes were verified: no field known not kept."""
    return {**payload, "schema": "syncline.record/2", "not_kept": {}}


def _correlated(name: str, version: int) -> Upcaster:
    """The step to the version of ``name`` that adds ``correlation_id``: an event from
    before correlation ids belongs to no known change (null)."""
    schema = f"{name}/{version + 1}"

    def step(payload: dict[str, Any]) -> dict[str, Any]:
        return {**payload, "schema": schema, "correlation_id": None}

    step.__doc__ = f"{name}/{version} to {schema}: no correlation id."
    return step


def _observed_2_to_3(payload: dict[str, Any]) -> dict[str, Any]:
    """An observation from before created-at times were read: the time is unknown."""
    return {**payload, "schema": "syncline.observed/3", "created_at": None}


UPCASTERS[("syncline.written", 1)] = _written_1_to_2
UPCASTERS[("syncline.observed", 2)] = _observed_2_to_3
UPCASTERS[("syncline.record", 1)] = _record_1_to_2
for _name, _version in (("syncline.observed", 1), ("syncline.written", 2),
                        ("syncline.write_stale", 1), ("syncline.write_failed", 1),
                        ("syncline.intent", 1)):
    UPCASTERS[(_name, _version)] = _correlated(_name, _version)


def encode(event: Event | dict[str, Any]) -> bytes:
    """The bytes of an event: JSON with sorted keys, ``schema`` included.

    A dict is a payload built by the event class itself without validation (e.g.
    :meth:`~streams.events.RecordEvent.payload` on the merge's hot path); the same bytes as
    encoding the validated model.
    """
    if isinstance(event, dict):
        return orjson.dumps(event, option=orjson.OPT_SORT_KEYS)
    return orjson.dumps(event.model_dump(by_alias=True, mode="json"),
                        option=orjson.OPT_SORT_KEYS)


def decode(data: bytes | None, accept: tuple[type[E], ...] = ()) -> E:
    """The event in ``data``; ``accept`` (if given) lists the kinds the caller can take."""
    if data is None:
        raise Undecodable("empty value (a tombstone) where an event was expected")
    try:
        payload = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise Undecodable(f"not JSON: {exc} (first bytes: {bytes(data[:40])!r})") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("schema"), str):
        raise Undecodable("not a JSON object with a 'schema' string")
    payload = upcast(payload)
    model = CURRENT[payload["schema"].partition("/")[0]]
    if accept and not issubclass(model, accept):
        wanted = ", ".join(cls.SCHEMA for cls in accept)
        raise UnexpectedEvent(f"{model.SCHEMA} where one of {wanted} was expected")
    try:
        return model.model_validate(payload)  # type: ignore[return-value]
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}"
            for err in exc.errors()[:5])
        raise InvalidEvent(f"{model.SCHEMA}: {problems}") from None


def text_key(record: Any) -> str | None:
    """The key of a record of syncline's own state topics (``records``, the changelogs,
    ``lanes``) as text; ``None``, logged with the record's place, when it has none or it is
    not UTF-8. syncline writes only text keys there, so such a record is not one of its own:
    its reader skips it rather than stop on it. ``record`` is a consumed record (aiokafka's
    or :class:`~streams.kafka.ConsumedRecord`)."""
    key: bytes | None = record.key
    if key is None:
        reason = "it has no key"
    else:
        try:
            return key.decode()
        except UnicodeDecodeError as exc:
            reason = f"its key is not UTF-8 ({exc.reason} at byte {exc.start}: {key[:60]!r})"
    log.warning("%s[%d]@%d skipped: %s", record.topic, record.partition, record.offset, reason)
    return None


def decode_routed(data: bytes | None, accept: tuple[type[E], ...]) -> E | RoutedInput:
    """An input of the merge stage, the fold's way.

    The merge topic holds only what the route stage validated and encoded itself, so its
    bulk — reads, write outcomes and stale writes at the current version — is turned into
    the fold's input straight from the JSON, after checking each field's type, without
    building the model (a tenth of the merge stage's time). Anything else, or a payload
    that is not plainly well-formed, goes through :func:`decode` and its errors.
    """
    if data is not None:
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            payload = None
        if isinstance(payload, dict):
            schema = payload.get("schema")  # any JSON: a list is no key of the table
            fast = _ROUTED.get(schema) if isinstance(schema, str) else None
            if fast is not None and (not accept or issubclass(fast[0], accept)):
                routed = fast[1](payload)
                if routed is not None:
                    return routed
    return decode(data, accept)


def _routed_observed(p: dict[str, Any]) -> RoutedInput | None:
    # Every field is present in what the route stage wrote: the same number of keys, each
    # looked up, means no unknown one.
    try:
        cid, entity, system, seq = p["canonical_id"], p["entity"], p["system"], p["seq"]
        external_id, native, fields = p["external_id"], p["native_version"], p["fields"]
        deleted, source_ts, observed_at = p["deleted"], p["source_ts"], p["observed_at"]
        correlation = p["correlation_id"]
    except KeyError:
        return None
    if (len(p) != _OBSERVED_KEYS or not (correlation is None or type(correlation) is str)
            or type(seq) is not int or seq < 0
            or type(fields) is not dict or type(deleted) is not bool
            or type(cid) is not str or type(entity) is not str or type(system) is not str
            or not (external_id is None or type(external_id) is str)
            or not (native is None or type(native) is str)
            or type(source_ts) not in _NUMBERS or type(observed_at) not in _NUMBERS):
        return None
    return RoutedInput(cid, entity, conflict.Observed(
        system, seq, external_id, fields, deleted, native, float(source_ts)), correlation)


def _routed_written(p: dict[str, Any]) -> RoutedInput | None:
    try:
        cid, entity, system, seq = p["canonical_id"], p["entity"], p["system"], p["seq"]
        external_id, native, fields = p["external_id"], p["native_version"], p["fields"]
        intent_id, source_ts, observed_at = p["intent_id"], p["source_ts"], p["observed_at"]
        not_taken, correlation = p["not_taken"], p["correlation_id"]
    except KeyError:
        return None
    kept: dict[str, tuple[Any, Any]] = {}
    if not_taken:
        if type(not_taken) is not dict:
            return None
        for name, pair in not_taken.items():
            if type(pair) is not dict or len(pair) != 2 or "wrote" not in pair \
                    or "holds" not in pair:
                return None
            kept[name] = (pair["wrote"], pair["holds"])
    if (len(p) != _WRITTEN_KEYS or not (correlation is None or type(correlation) is str)
            or type(seq) is not int or seq < 0
            or not (fields is None or type(fields) is dict) or type(intent_id) is not str
            or type(cid) is not str or type(entity) is not str or type(system) is not str
            or not (external_id is None or type(external_id) is str)
            or not (native is None or type(native) is str)
            or type(source_ts) not in _NUMBERS or type(observed_at) not in _NUMBERS):
        return None
    return RoutedInput(cid, entity, conflict.Written(
        system, seq, intent_id, external_id, native, float(source_ts), fields, kept),
        correlation)


def _routed_stale(p: dict[str, Any]) -> RoutedInput | None:
    try:
        cid, entity, system, seq = p["canonical_id"], p["entity"], p["system"], p["seq"]
        external_id, intent_id, observed_at = p["external_id"], p["intent_id"], p["observed_at"]
        changed, correlation = p["fields_changed"], p["correlation_id"]
    except KeyError:
        return None
    if (len(p) != _STALE_KEYS or not (correlation is None or type(correlation) is str)
            or type(seq) is not int or seq < 0 or type(intent_id) is not str
            or type(cid) is not str or type(entity) is not str or type(system) is not str
            or not (external_id is None or type(external_id) is str)
            or type(changed) is not list or any(type(name) is not str for name in changed)
            or type(observed_at) not in _NUMBERS):
        return None
    return RoutedInput(cid, entity, conflict.WriteStale(system, seq, intent_id), correlation)


_NUMBERS = (float, int)
_OBSERVED_KEYS = len(Observed.model_fields)  # "schema_" is written as "schema"
_WRITTEN_KEYS = len(Written.model_fields)
_STALE_KEYS = len(WriteStale.model_fields)
_ROUTED: dict[str, tuple[type[Event], Callable[[dict[str, Any]], RoutedInput | None]]] = {
    Observed.SCHEMA: (Observed, _routed_observed), Written.SCHEMA: (Written, _routed_written),
    WriteStale.SCHEMA: (WriteStale, _routed_stale)}


def upcast(payload: dict[str, Any]) -> dict[str, Any]:
    """Bring a payload of any known version of its schema to the current version."""
    name, _, version_text = payload["schema"].partition("/")
    model = CURRENT.get(name)
    if model is None:
        raise UnknownSchema(f"unknown schema {payload['schema']!r}")
    try:
        version = int(version_text)
    except ValueError:
        raise UnknownSchema(f"schema {payload['schema']!r} has no version number") from None
    current = model.schema_version()
    if version > current:
        raise UnknownSchema(f"{payload['schema']} is newer than this build reads "
                            f"({model.SCHEMA}); upgrade syncline")
    while version < current:
        step = UPCASTERS.get((name, version))
        if step is None:
            raise UnknownSchema(f"no upcaster from {name}/{version} to {name}/{version + 1}")
        payload = step(payload)
        version += 1
        if payload.get("schema") != f"{name}/{version}":
            raise UnknownSchema(f"upcaster for {name}/{version - 1} did not produce "
                                f"{name}/{version}")
    return payload
