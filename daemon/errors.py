"""Errors raised by :mod:`daemon`.

One root; errors from :mod:`streams` keep their own root (``streams.errors.StreamsError``)
and are reported by the CLI as they are::

    DaemonError            root; ``retriable = False``
    ├── ConfigError        the configuration file is missing, unreadable, not YAML, or does
    │                      not match the schema; one line per problem, each naming the file,
    │                      the line and the path inside the file (``kafka.bootstrap``)
    └── HttpError          a request to a system's API failed; its subtree (``Unavailable``,
                           ``RateLimited``, ``PreconditionFailed`` ...) is drawn in
                           :mod:`daemon.http.errors`; ``retriable`` says whether to try again

A user's mistake is reported as its message alone (no traceback) with exit code 2.
"""

from __future__ import annotations

from collections.abc import Sequence


class DaemonError(Exception):
    """Root of everything :mod:`daemon` raises on purpose."""

    retriable: bool = False


class ConfigError(DaemonError):
    """The configuration file cannot be used.

    Attributes:
        file: the file as the user named it.
        problems: one line per problem, each already naming the file and the place in it.
    """

    def __init__(self, file: str, problems: Sequence[str]) -> None:
        self.file = file
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))
