"""Two (or more) lanes and the fold, in memory: a whole sync without Kafka.

Each system is a :class:`MemoryConnector` with its lane and :class:`MemoryJournal`; the hub
routes the lanes' observations to records (by link, else a new canonical id), folds them with
the real fold, and sends the intents it plans to the lanes' journals — what the route and
merge stages do over Kafka, without their batching.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import conflict
from conflict.fold import fold
from daemon.config import EntityConfig
from daemon.lane import Lane
from daemon.lane.memory import MemoryConnector, MemoryJournal
from daemon.metrics import Metrics
from streams.events import ObservationEvent, WriteIntent

TICKET = EntityConfig.model_validate(
    {"fields": {"status": {"a": "status", "b": "status", "type": "string"},
                "title": {"a": "title", "b": "title", "type": "string"}}},
    context={"systems": ["a", "b"]})


class Hub:
    """Lanes for ``systems`` (name -> twin) and the fold between them."""

    def __init__(self, systems: Mapping[str, MemoryConnector],
                 entity: EntityConfig = TICKET) -> None:
        self.systems = dict(systems)
        self.spec = entity.spec("ticket", list(systems))
        self.metrics = Metrics(process=False)
        self.journals = {name: MemoryJournal(name, "ticket") for name in systems}
        self.lanes = {name: Lane(twin, entity.mapping("ticket", name), self.journals[name],
                                 metrics=self.metrics, clock=lambda: 2_000_000.0)
                      for name, twin in systems.items()}
        self.records: dict[str, conflict.RecordState] = {}
        self.links: dict[tuple[str, str], str] = {}
        self._folded = dict.fromkeys(systems, 0)
        self._made = 0

    def fold_new(self) -> None:
        """Fold every observation the lanes committed since the last call."""
        for name, journal in self.journals.items():
            events = journal.observations[self._folded[name]:]
            self._folded[name] = len(journal.observations)
            for event in events:
                assert isinstance(event, ObservationEvent)
                cid = self.links.get((name, event.external_id or "")) or event.canonical_id
                if cid is None:
                    self._made += 1
                    cid = f"t{self._made}"
                if event.external_id is not None:
                    self.links[(name, event.external_id)] = cid
                state = self.records.get(cid) or conflict.RecordState(cid, "ticket")
                step = fold(self.spec, state, event.to_input())  # type: ignore[attr-defined]
                self.records[cid] = step.state
                for intent in step.intents:
                    self.journals[intent.system].send(WriteIntent.of(intent))

    async def round(self) -> None:
        """Every lane polls, then every lane runs its intents; the hub folds after each."""
        for lane in self.lanes.values():
            await lane.poll()
            self.fold_new()
        for lane in self.lanes.values():
            await lane.execute_intents()
            self.fold_new()

    async def run(self, rounds: int, each: Callable[[int], Any] | None = None) -> None:
        for number in range(rounds):
            if each is not None:
                each(number)
            await self.round()

    def updates(self, system: str) -> int:
        """The lane's updates to ``system`` (PATCHes sent)."""
        return sum(1 for op, _ in self.systems[system].writes if op == "update")
