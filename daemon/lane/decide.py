"""The write decision: given what a record holds now, what an intent may still write to it.

An intent carries, per field, the value the hub wants (``intended``) and the value the hub
last saw the system hold (``expected``). The lane reads the record and decides, field by field:

- it holds the intended value: done already (a retried intent, or another path got there);
- it holds the expected value: still to write;
- it holds anything else: someone edited it where the hub has not seen yet, so the write is
  **stale** and nothing at all is written (the edit goes to the hub first).

Pure: no I/O, no clock. Every comparison of a held value with an intent's value goes through
:func:`conflict.values.same`, the one equality of values the fold and the mapping use too
(JSON's: ``true`` is not ``1``, ``1`` is ``1.0``), so the lane and the fold never disagree on
whether a field changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from conflict.state import Json
from conflict.values import same


@dataclass(frozen=True, slots=True)
class Done:
    """The record holds every intended value already: nothing to write."""


@dataclass(frozen=True, slots=True)
class Stale:
    """Someone changed these fields since the hub saw them: nothing may be written."""

    changed: list[str]


@dataclass(frozen=True, slots=True)
class Write:
    """Write these fields (for a delete: go ahead and delete; ``values`` is empty)."""

    values: dict[str, Json] = field(default_factory=dict)


Decision = Done | Stale | Write


def decide_update(held: Mapping[str, Json], intended: Mapping[str, Json],
                  expected: Mapping[str, Json]) -> Decision:
    """What an update intent may write to a record that holds ``held``.

    A field missing from ``held`` or ``expected`` counts as ``None``.
    """
    todo: dict[str, Json] = {}
    changed: list[str] = []
    for name, value in intended.items():
        now = held.get(name)
        if same(now, value):
            continue
        if same(now, expected.get(name)):
            todo[name] = value
        else:
            changed.append(name)
    if changed:
        return Stale(sorted(changed))
    if not todo:
        return Done()
    return Write(todo)


def decide_delete(held: Mapping[str, Json], expected: Mapping[str, Json]) -> Stale | Write:
    """Whether a delete may go ahead: only if every field still holds what the hub expects."""
    changed = sorted(name for name, value in expected.items()
                     if not same(held.get(name), value))
    return Stale(changed) if changed else Write()


def decide_found(held: Mapping[str, Json], intended: Mapping[str, Json]) -> Done | Stale:
    """A create found a record with its match key already: is it the create's own copy?

    It is when it holds every intended value (made by this create before a crash, or by
    someone else the same way); otherwise it is someone's record that differs, and the
    create is stale.
    """
    changed = sorted(name for name, value in intended.items()
                     if not same(held.get(name), value))
    return Stale(changed) if changed else Done()
