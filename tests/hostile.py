"""Shared by the hostile-input tests: how many examples to run, and the counts they print.

``make test`` runs a few examples of each; ``make fuzz`` sets ``SYNCLINE_FUZZ_EXAMPLES`` for
many more. Every test adds what it saw to :data:`TALLY` (examples run, dead letters, refusals);
the counts are printed at the end of the session (``pytest_terminal_summary`` in conftest).
"""

from __future__ import annotations

import os
from collections import Counter

from hypothesis import settings

TALLY: Counter[str] = Counter()
"""``"<test area>: <what>" -> count`` over the whole session."""


def examples(default: int, most: int | None = None) -> settings:
    """Hypothesis settings running ``default`` examples, or ``SYNCLINE_FUZZ_EXAMPLES`` (at
    most ``most``, for tests whose every example starts processes or a deployment)."""
    wanted = int(os.environ.get("SYNCLINE_FUZZ_EXAMPLES", "0") or 0) or default
    return settings(max_examples=min(wanted, most or wanted), deadline=None, database=None)


def count(area: str, what: str, n: int = 1) -> None:
    """Add ``n`` to the count of ``what`` in ``area``."""
    TALLY[f"{area}: {what}"] += n
