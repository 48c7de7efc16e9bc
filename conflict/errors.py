"""Errors raised by the fold. Every one is a user- or data-level problem with one input:
the caller (the merge agent) sends that input to the dead-letter topic and goes on; the
state it passed in is never changed, because the fold never mutates its input.

::

    ConflictError                  root of conflict/
    ├── SpecError                  an entity spec or policy that cannot work
    └── InputError                 one input the fold rejects (retriable = False)
        ├── UnknownSystem          a system the entity is not configured for
        ├── UnknownField           a field the entity (or that system) does not map
        ├── FieldTypeError         a value of the wrong type for its field
        ├── UnknownIntent          a write outcome for an intent never issued
        ├── UnknownConflict        a resolution for a conflict the record never had
        └── LinkMismatch           a system reports a second external id for one record
"""

from __future__ import annotations


class ConflictError(Exception):
    """Root of every error raised by :mod:`conflict`."""

    retriable: bool = False


class SpecError(ConflictError):
    """An entity spec or policy that cannot work (raised when the spec is built)."""


class InputError(ConflictError):
    """One input that the fold rejects; the state is left as it was."""


class UnknownSystem(InputError):
    """An input names a system the entity is not configured for."""


class UnknownField(InputError):
    """An input carries a field the entity, or that system's mapping, does not have."""


class FieldTypeError(InputError):
    """A value of the wrong type for its field."""


class UnknownIntent(InputError):
    """A write outcome names an intent that was never issued for that record and system."""


class UnknownConflict(InputError):
    """A resolution names a conflict the record never had."""


class LinkMismatch(InputError):
    """A system reports a record under an external id other than the one already linked."""
