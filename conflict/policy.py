"""Conflict policies: given the canonical candidate and a concurrent incoming one, decide.

Every decision is deterministic: it depends on the candidates and the spec only, never on
the order in which events arrived.
"""

from __future__ import annotations

import json
from typing import Any

from conflict.spec import (
    Custom,
    EntitySpec,
    Latest,
    Manual,
    Max,
    Min,
    Owner,
    Policy,
    Prefer,
    Union,
)
from conflict.state import Candidate, Decision, Json


def _order_key(value: Json) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _rank(spec: EntitySpec, c: Candidate) -> int:
    return spec.rank.get(c.system, len(spec.rank))


def same(a: Json, b: Json) -> bool:
    """JSON equality: ``True`` is not ``1``, but ``1`` is ``1.0``."""
    if a is b:
        return True
    if (type(a) is bool) is not (type(b) is bool):
        return False
    return bool(a == b)


def latest_winner(spec: EntitySpec, current: Candidate, incoming: Candidate) -> Candidate:
    """The newer candidate; on equal timestamps the earlier system, then the larger value."""
    if incoming.source_ts != current.source_ts:
        return incoming if incoming.source_ts > current.source_ts else current
    ri, rc = _rank(spec, incoming), _rank(spec, current)
    if ri != rc:
        return incoming if ri < rc else current
    return incoming if _order_key(incoming.value) > _order_key(current.value) else current


def _union(a: Json, b: Json) -> list[Any]:
    merged: dict[str, Any] = {}
    for side in (a, b):
        items = side if isinstance(side, list) else ([] if side is None else [side])
        for item in items:
            merged.setdefault(_order_key(item), item)
    return [merged[k] for k in sorted(merged)]


def _extreme(a: Json, b: Json, *, largest: bool) -> Json:
    if a is None:
        return b
    if b is None:
        return a
    try:
        a_wins = bool(a > b) if largest else bool(a < b)
    except TypeError:  # mixed types: a total order on the JSON text keeps it deterministic
        ka, kb = _order_key(a), _order_key(b)
        a_wins = ka > kb if largest else ka < kb
    return a if a_wins else b


def decide(
    spec: EntitySpec, policy: Policy, field: str, current: Candidate, incoming: Candidate
) -> tuple[Decision, Json]:
    """Decide a conflict on ``field`` between two candidates whose values differ."""
    if isinstance(policy, Latest):
        win = latest_winner(spec, current, incoming)
        return (Decision.INCOMING if win is incoming else Decision.CURRENT), win.value
    if isinstance(policy, Prefer):
        order = {s: i for i, s in enumerate(policy.systems)}
        ri = order.get(incoming.system, len(order))
        rc = order.get(current.system, len(order))
        if ri == rc:  # neither (or both) preferred: fall back to latest
            win = latest_winner(spec, current, incoming)
        else:
            win = incoming if ri < rc else current
        return (Decision.INCOMING if win is incoming else Decision.CURRENT), win.value
    if isinstance(policy, Owner):
        if incoming.system == policy.system:
            return Decision.INCOMING, incoming.value
        return Decision.CURRENT, current.value
    if isinstance(policy, Manual):
        return Decision.OPEN, current.value
    if isinstance(policy, Union):
        value: Json = _union(current.value, incoming.value)
    elif isinstance(policy, Max | Min):
        value = _extreme(current.value, incoming.value, largest=isinstance(policy, Max))
    elif isinstance(policy, Custom):
        value = policy.fn(field, current, incoming)
    else:  # pragma: no cover - the Policy union is closed
        raise AssertionError(policy)
    if same(value, incoming.value):
        return Decision.INCOMING, incoming.value
    if same(value, current.value):
        return Decision.CURRENT, current.value
    return Decision.MERGED, value
