"""Canonical ids: derived from the record itself, never looked up in a shared registry.

``uuid5(namespace, entity + normalized match key)`` when the record has every match key, so two
systems that create the same person concurrently land on the same id with no race; otherwise
``uuid5(namespace, system/entity/external id)`` of the record that first appeared. Once a record
of a system is linked to a canonical id, the link wins (the links table in the router), so a
later change of the match key never moves a record.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence

import orjson

from conflict.state import Json

NAMESPACE = uuid.UUID("6b1f5a4e-2c1d-5e9a-9a57-5f3c8d0b7e21")
"""The default namespace of syncline's canonical ids (configurable per deployment)."""


def normalize(value: Json) -> str:
    """A match-key value as compared: strings trimmed and lower-cased, others as JSON."""
    if isinstance(value, str):
        return " ".join(value.split()).lower()
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def match_key(match_on: Sequence[str], fields: Mapping[str, Json]) -> str | None:
    """The normalized match key of a record, or None when a key field is missing or empty."""
    if not match_on:
        return None
    parts = []
    for name in match_on:
        value = fields.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        parts.append(normalize(value))
    return "\x1f".join(parts)


def canonical_id(entity: str, match_on: Sequence[str], fields: Mapping[str, Json],
                 system: str, external_id: str | None,
                 namespace: uuid.UUID = NAMESPACE) -> str:
    """The canonical id for a record first seen in ``system`` with these fields."""
    key = match_key(match_on, fields)
    if key is not None:
        return str(uuid.uuid5(namespace, f"{entity}\x1e{key}"))
    return str(uuid.uuid5(namespace, f"{system}\x1e{entity}\x1e{external_id or ''}"))
