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
from conflict.values import same, value_key

__all__ = ["agreeing", "decide", "latest_winner", "same"]


def _order_key(value: Json) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _rank(spec: EntitySpec, c: Candidate) -> int:
    return spec.rank.get(c.system, len(spec.rank))


def latest_winner(spec: EntitySpec, current: Candidate, incoming: Candidate) -> Candidate:
    """The newer candidate; on equal timestamps the earlier system, then the larger value."""
    if incoming.source_ts != current.source_ts:
        return incoming if incoming.source_ts > current.source_ts else current
    ri, rc = _rank(spec, incoming), _rank(spec, current)
    if ri != rc:
        return incoming if ri < rc else current
    return incoming if _order_key(incoming.value) > _order_key(current.value) else current


def _union(a: Json, b: Json) -> list[Any]:
    merged: dict[Any, Any] = {}
    for side in (a, b):
        items = side if isinstance(side, list) else ([] if side is None else [side])
        for item in items:
            merged.setdefault(value_key(item), item)  # 1 and 1.0 once, true and 1 apart
    return sorted(merged.values(), key=_order_key)


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


def agreeing(spec: EntitySpec, policy: Policy, current: Candidate,
             incoming: Candidate) -> Candidate:
    """Of two concurrent edits that set the same value, the one the field remembers.

    Nothing is decided (the value is the same), but a later conflict on the field is decided
    against the field's dot, system and time: they must be those of the edit the policy
    would have picked had the two values differed, or the other edit's claim is lost (a
    newer ``pending`` losing to an older ``closed`` because the field remembered the older
    of two agreeing edits). For ``latest`` that is the newer edit, for ``prefer`` the
    preferred system's, for ``owner`` the owner's; every other policy remembers the newer.
    """
    if isinstance(policy, Owner):
        return incoming if incoming.system == policy.system else current
    if isinstance(policy, Prefer):
        decision, _ = decide(spec, policy, "", current, incoming)
        return incoming if decision is Decision.INCOMING else current
    return latest_winner(spec, current, incoming)


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
