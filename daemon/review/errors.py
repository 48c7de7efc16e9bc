"""Errors raised by :mod:`daemon.review`.

They derive from the daemon's root, so the CLI reports them as one line and exit code 2::

    DaemonError                     (daemon.errors)
    └── ReviewError                 a request about conflicts that cannot be carried out
        ├── NotFound                no such conflict or record (or a prefix that is ambiguous)
        └── NotResolvable           the conflict is not open, the system is not one of its
                                    candidates, or the value does not fit the field

None of them is retriable: the person has to change what they asked for.
"""

from __future__ import annotations

from daemon.errors import DaemonError


class ReviewError(DaemonError):
    """A request about conflicts that cannot be carried out."""


class NotFound(ReviewError):
    """No such conflict or record, or a prefix that names more than one."""


class NotResolvable(ReviewError):
    """The resolution asked for cannot be made (not open, not a candidate, a bad value)."""
