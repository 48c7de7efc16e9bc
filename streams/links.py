"""Which record is which in every system: a view of the links of the canonical records
(and of their open conflicts, for /metrics).

Reference fields (a contact's company, a ticket's requester) hold another record's id, which
differs in every system; the hub holds canonical ids. Lanes translate with this view: system
A's external id → canonical id when reading, canonical id → system B's external id when
writing (and a write waits while the referenced record is not linked in B yet).

The view follows the ``records`` topic (compacted, read_committed) from its beginning, for
as long as it runs: each :class:`~streams.events.RecordEvent` carries the record's links.
"""

from __future__ import annotations

import asyncio
import contextlib

from streams import codec
from streams.errors import DecodeError
from streams.events import RecordEvent
from streams.kafka import ConsumedRecord, KafkaSettings, follow
from streams.topics import Topics


class LinksView:
    """External ids by canonical id and back, for every entity and system."""

    def __init__(self, settings: KafkaSettings, topics: Topics) -> None:
        self.settings = settings
        self.topics = topics
        self._external: dict[tuple[str, str], str] = {}  # (canonical id, system) -> ext id
        self._canonical: dict[tuple[str, str, str], str] = {}  # (entity, system, ext) -> cid
        self._links: dict[str, dict[str, str]] = {}  # canonical id -> its links now
        self._open: dict[str, tuple[str, int]] = {}  # canonical id -> entity, open conflicts
        self.caught_up = asyncio.Event()
        self.changed = asyncio.Event()  # set whenever a link appears; waiters clear it

    def canonical(self, entity: str, system: str, external_id: str) -> str | None:
        """The canonical id of ``system``'s record ``external_id`` of ``entity``, if linked."""
        return self._canonical.get((entity, system, external_id))

    def external(self, canonical_id: str, system: str) -> str | None:
        """``system``'s id of the record ``canonical_id``, if it is linked there."""
        return self._external.get((canonical_id, system))

    def open_conflicts(self) -> dict[str, int]:
        """Conflicts open now (waiting for a person), by entity."""
        out: dict[str, int] = {}
        for entity, count in self._open.values():
            out[entity] = out.get(entity, 0) + count
        return out

    def apply(self, event: RecordEvent) -> None:
        """Take the links (and the count of open conflicts) of one record event."""
        if event.open_conflicts:
            self._open[event.canonical_id] = (event.entity, event.open_conflicts)
        else:
            self._open.pop(event.canonical_id, None)
        before = self._links.get(event.canonical_id, {})
        if before == event.links:
            return
        for system, external_id in before.items():
            if event.links.get(system) != external_id:
                self._external.pop((event.canonical_id, system), None)
                self._canonical.pop((event.entity, system, external_id), None)
        for system, external_id in event.links.items():
            self._external[(event.canonical_id, system)] = external_id
            self._canonical[(event.entity, system, external_id)] = event.canonical_id
        self._links[event.canonical_id] = dict(event.links)
        self.changed.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the records topic until ``stop`` is set."""
        await follow(self.settings, [self.topics.records], self._take, stop, self.caught_up,
                     f"follow {self.topics.records} for the links view")

    def _take(self, record: ConsumedRecord) -> None:
        if record.value is None:
            return
        with contextlib.suppress(DecodeError):  # the merge's dead letters have it
            self.apply(codec.decode(record.value, (RecordEvent,)))
