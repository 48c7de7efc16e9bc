"""Dots and version vectors.

A :class:`Dot` names one accepted write: ``(actor, counter)``. A :class:`VClock` is a version
vector ``{actor: counter}``, the join of every dot a record or a system's copy has seen.
Both are immutable and hashable; every operation returns a new value. Actors missing from a
clock count as zero, so ``{}`` and ``{"crm": 0}`` are the same clock (zeros are never stored).
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from typing import NamedTuple


class Dot(NamedTuple):
    """The identity of one accepted write: the actor that made it and its counter."""

    actor: str
    counter: int

    def __str__(self) -> str:
        return f"{self.actor}:{self.counter}"

    @classmethod
    def parse(cls, text: str) -> Dot:
        """Read the ``actor:counter`` form written by ``str(dot)``."""
        actor, _, counter = text.rpartition(":")
        return cls(actor, int(counter))


class Order(enum.Enum):
    """How two clocks relate."""

    EQUAL = "equal"
    BEFORE = "before"  # the left clock is strictly dominated by the right one
    AFTER = "after"  # the left clock strictly dominates the right one
    CONCURRENT = "concurrent"


class VClock(Mapping[str, int]):
    """An immutable version vector."""

    __slots__ = ("_entries", "_hash")

    _entries: dict[str, int]
    _hash: int | None

    def __init__(self, entries: Mapping[str, int] | None = None) -> None:
        clean: dict[str, int] = {}
        if entries:
            for actor, counter in entries.items():
                if not isinstance(counter, int) or isinstance(counter, bool) or counter < 0:
                    raise ValueError(f"clock counter for {actor!r} must be a non-negative int")
                if counter:
                    clean[actor] = counter
        self._entries = clean
        self._hash = None

    @classmethod
    def _trusted(cls, entries: dict[str, int]) -> VClock:
        # Internal fast path: entries already clean and owned by the new clock.
        clock = object.__new__(cls)
        clock._entries = entries
        clock._hash = None
        return clock

    # -- Mapping -------------------------------------------------------------------------
    def __getitem__(self, actor: str) -> int:
        return self._entries[actor]

    def get(self, actor: str, default: int = 0) -> int:  # type: ignore[override]
        """The counter of ``actor``; zero when it never wrote."""
        return self._entries.get(actor, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, actor: object) -> bool:
        return actor in self._entries

    # -- value semantics -----------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if isinstance(other, VClock):
            return self._entries == other._entries
        return NotImplemented

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._entries.items()))
        return self._hash

    def __repr__(self) -> str:
        inner = ", ".join(f"{a}:{n}" for a, n in sorted(self._entries.items()))
        return f"VClock({{{inner}}})"

    # -- operations ----------------------------------------------------------------------
    def increment(self, actor: str) -> tuple[VClock, Dot]:
        """The clock with ``actor`` advanced by one, and the new dot."""
        entries = dict(self._entries)
        counter = entries.get(actor, 0) + 1
        entries[actor] = counter
        return VClock._trusted(entries), Dot(actor, counter)

    def add(self, dot: Dot) -> VClock:
        """The clock that has also seen ``dot``."""
        if self._entries.get(dot.actor, 0) >= dot.counter:
            return self
        entries = dict(self._entries)
        entries[dot.actor] = dot.counter
        return VClock._trusted(entries)

    def join(self, other: VClock) -> VClock:
        """The least clock that has seen everything either clock has seen."""
        if not other._entries:
            return self
        if not self._entries:
            return other
        entries = dict(self._entries)
        changed = False
        for actor, counter in other._entries.items():
            if entries.get(actor, 0) < counter:
                entries[actor] = counter
                changed = True
        return VClock._trusted(entries) if changed else self

    def covers(self, dot: Dot) -> bool:
        """Whether this clock has seen ``dot``."""
        return self._entries.get(dot.actor, 0) >= dot.counter

    def dominates(self, other: VClock) -> bool:
        """Whether this clock has seen everything ``other`` has (``>=``, equal included)."""
        mine = self._entries
        return all(mine.get(actor, 0) >= n for actor, n in other._entries.items())

    def compare(self, other: VClock) -> Order:
        """How this clock relates to ``other``."""
        ge = self.dominates(other)
        le = other.dominates(self)
        if ge and le:
            return Order.EQUAL
        if ge:
            return Order.AFTER
        if le:
            return Order.BEFORE
        return Order.CONCURRENT

    # -- stable serialised form ----------------------------------------------------------
    def to_dict(self) -> dict[str, int]:
        """A plain dict with sorted keys; ``VClock(clock.to_dict()) == clock``."""
        return dict(sorted(self._entries.items()))

    def entries(self) -> dict[str, int]:
        """A plain dict of the counters in no particular order, for a form serialised with
        sorted keys (``RecordState.to_compact``): :meth:`to_dict` without the sort."""
        return dict(self._entries)


EMPTY = VClock()
