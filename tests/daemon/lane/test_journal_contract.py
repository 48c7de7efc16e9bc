"""The journal contract, written once and run against the twin and against Kafka.

What the lane relies on from its journal: a commit is all or nothing and survives the
process; what was not committed does not; intents come in order, can be rewound, and a new
process starts where the last commit said. :class:`MemoryJournal` passes it here, in
milliseconds; :class:`streams.lanelog.LaneLog` passes it against the real broker
(``tests/daemon/test_lane.py``), so the lane suite's twin is held to what production does.
"""

from __future__ import annotations

import abc
import uuid

import pytest

from daemon.lane import Journal
from daemon.lane.memory import MemoryJournal
from streams import codec
from streams.events import Event, Observed, WriteIntent


def observed(seq: int, external_id: str) -> Observed:
    return Observed(system="crm", entity="contact", seq=seq, external_id=external_id,
                    observed_at=1.0, fields={"name": external_id}, native_version=None,
                    source_ts=1.0)


def intent(n: int) -> WriteIntent:
    return WriteIntent(intent_id=f"i-{n}-{uuid.uuid4().hex[:6]}", canonical_id=f"c-{n}",
                       entity="contact", system="crm", op="create", external_id=None,
                       values={"name": str(n)}, expected={}, native_version=None, clock={},
                       attempt=1)


class JournalContract(abc.ABC):
    """What every lane journal must do."""

    @abc.abstractmethod
    async def open(self) -> Journal:
        """The journal as a new process starting the lane finds it."""

    @abc.abstractmethod
    async def send(self, *intents: WriteIntent) -> None:
        """Intents for the lane, as the merge stage publishes them."""

    @abc.abstractmethod
    async def published(self) -> list[Event]:
        """Every observation committed, in order."""

    @abc.abstractmethod
    async def expire(self, below: int) -> None:
        """The ``intents`` retention passes: the lane's intents below ``below`` are gone."""

    async def names(self, journal: Journal, count: int = 0) -> list[str]:
        """The canonical ids of the next ``count`` intents (0: of what is there now)."""
        found = [codec.decode(d.value, (WriteIntent,)).canonical_id
                 for d in await journal.intents(0)]
        for _ in range(20):  # a broker hands a partition out in batches
            if len(found) >= count:
                break
            found += [codec.decode(d.value, (WriteIntent,)).canonical_id
                      for d in await journal.intents(500)]
        return found

    async def test_a_commit_survives_the_process_and_what_was_not_committed_does_not(
            self) -> None:
        journal = await self.open()
        assert journal.next_seq() == 1
        journal.head.cursor = 100.0
        await journal.commit([observed(1, "a")], index={"a": "fp-a", "b": "fp-b"},
                             parked={"i-9": b"raw"})
        assert dict(journal.index) == {"a": "fp-a", "b": "fp-b"}
        await journal.commit([], index={"b": None}, parked={"i-9": None, "i-8": b"raw8"},
                             creating={"i-7": b"entry7", "i-6": b"entry6"})
        await journal.commit([], creating={"i-6": None})
        assert dict(journal.creating) == {"i-7": b"entry7"}
        assert dict(journal.index) == {"a": "fp-a"}
        assert journal.next_seq() == 2
        journal.head.cursor = 200.0  # neither is committed: the process dies now
        again = await self.open()
        assert (again.head.seq, again.head.cursor) == (1, 100.0)
        assert dict(again.index) == {"a": "fp-a"}
        assert dict(again.parked) == {"i-8": b"raw8"}
        assert dict(again.creating) == {"i-7": b"entry7"}
        assert [(e.seq, e.external_id) for e in await self.published()  # type: ignore[attr-defined]
                ] == [(1, "a")]

    async def test_intents_that_ran_past_the_offset_survive_the_process(self) -> None:
        """What ran past the intents offset commits with the outcome, and is forgotten only
        by a commit."""
        journal = await self.open()
        journal.head.intents_offset = 0
        await journal.commit([observed(journal.next_seq(), "a")],
                             ran={"i-1": b"1", "i-2": b"2"})
        await journal.commit([], ran={"i-1": None})
        assert dict(journal.ran) == {"i-2": b"2"}
        await journal.commit([], ran={"i-3": b"3"}, index={"a": "fp"})
        again = await self.open()
        assert dict(again.ran) == {"i-2": b"2", "i-3": b"3"}
        assert again.head.intents_offset == 0

    async def test_intents_come_in_order_and_a_rewind_hands_them_out_again(self) -> None:
        await self.send(*(intent(n) for n in range(3)))
        journal = await self.open()
        assert journal.resumed_below == 3
        assert await self.names(journal, 3) == ["c-0", "c-1", "c-2"]
        assert await self.names(journal) == []
        journal.rewind_intents(1)
        assert await self.names(journal, 2) == ["c-1", "c-2"]

    async def test_a_new_process_starts_at_the_committed_offset(self) -> None:
        await self.send(*(intent(n) for n in range(3)))
        journal = await self.open()
        assert len(await self.names(journal, 3)) == 3
        journal.head.intents_offset = 2
        await journal.commit([])
        await self.send(intent(3))
        again = await self.open()
        assert again.resumed_below == 4
        assert await self.names(again, 2) == ["c-2", "c-3"]

    async def test_intents_that_expired_are_never_delivered_and_the_start_says_so(
            self) -> None:
        await self.send(*(intent(n) for n in range(3)))
        journal = await self.open()
        assert await journal.intents_start() == 0
        await self.expire(2)
        assert await journal.intents_start() == 2
        again = await self.open()  # its committed offset (none: the start) is gone
        assert await self.names(again, 1) == ["c-2"]


class TestMemoryJournal(JournalContract):
    @pytest.fixture(autouse=True)
    def journal(self) -> None:
        self.journal = MemoryJournal("crm", "contact")

    async def open(self) -> Journal:
        self.journal = self.journal.restart()
        return self.journal

    async def send(self, *intents: WriteIntent) -> None:
        self.journal.send(*intents)

    async def expire(self, below: int) -> None:
        self.journal.expire_intents(below)

    async def published(self) -> list[Event]:
        return list(self.journal.observations)
