"""When two values are the same value: JSON's equality, the one syncline uses everywhere.

Values are JSON (None, bool, int, float, str, list, dict with str keys), and two of them are
the same when JSON says so, which is not what Python's ``==`` says:

* ``true`` is not ``1`` and ``false`` is not ``0`` (Python: ``True == 1``): a boolean is
  never a number;
* ``1`` is ``1.0``: JSON has one kind of number, and an API that answers ``1.0`` for the
  ``1`` it was sent changed nothing;
* lists are equal element by element, in order; objects key by key; both deeply, with these
  same rules (Python: ``[True] == [1]``).

The fold (an edit or an echo, whether a copy is in step), the lane (whether a write is done
already or stale) and the field mapping (value maps, the ``sort`` transform) all decide with
:func:`same`, or group with :func:`value_key`, so no two of them can disagree about whether a
value changed (issue 13: the lane took ``1`` for ``true``, the fold did not, and the record
never converged).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any


def same(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` are the same JSON value (``true`` is not ``1``, ``1`` is ``1.0``)."""
    # The fold asks this of every field of every read (against the copy's shadow): the
    # common kinds are decided first, with one type lookup each.
    if a is b:
        return True
    kind = type(a)
    if kind is str:
        return bool(a == b)  # a string equals no boolean, number, list or object
    if kind is bool or type(b) is bool:
        return False  # not the same object, so not the same boolean (or not both booleans)
    if kind is int or kind is float:
        return bool(a == b)  # a number equals no string, list or object; 1 == 1.0
    if isinstance(a, list):
        if not isinstance(b, list) or len(a) != len(b):
            return False
        for x, y in zip(a, b, strict=True):  # noqa: SIM110 - all() over a generator is slower
            if x is not y and not same(x, y):
                return False
        return True
    if isinstance(a, dict):
        if not isinstance(b, dict) or len(a) != len(b):
            return False
        for key, x in a.items():
            y = b.get(key, _MISSING)
            if x is not y and (y is _MISSING or not same(x, y)):
                return False
        return True
    if isinstance(b, list | dict):
        return False
    return bool(a == b)


_MISSING = object()


def value_key(value: Any) -> Hashable:
    """A hashable key for ``value``: ``value_key(a) == value_key(b)`` exactly when
    ``same(a, b)``; for grouping or removing repeats (a dict keyed by values, a set)."""
    if type(value) is bool:
        return ("boolean", value)
    if isinstance(value, int | float):
        return ("number", value)  # hash(1) == hash(1.0) and 1 == 1.0: one key
    if isinstance(value, str):
        return ("string", value)
    if value is None:
        return ("null",)
    if isinstance(value, list):
        return ("list", tuple(value_key(v) for v in value))
    if isinstance(value, dict):
        return ("object", frozenset((k, value_key(v)) for k, v in value.items()))
    raise TypeError(f"not a JSON value: {type(value).__name__}")
