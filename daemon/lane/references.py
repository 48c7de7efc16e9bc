"""References between records: translated both ways, and intents parked until they can be.

A reference field holds the system's id of another entity's record in the system, and that
record's canonical id in the hub. Reading translates through the links view (a record not
linked yet gets the id the hub will give it); writing needs the referenced record linked in
the system already, so an intent whose reference is not is **parked** until it is, or until
it has waited long enough to be failed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from conflict.state import Json
from daemon.connector.rest import RemoteRecord
from daemon.errors import DaemonError
from daemon.lane.ports import FieldMapping, Links, Reading, Resolve


class WaitForLink(DaemonError):
    """A reference to a record not linked in the system yet: the write waits for it."""


@dataclass(frozen=True)
class _Reading:
    values: dict[str, Json]
    problems: dict[str, str]


class References:
    """Translates one lane's records between the system's ids and canonical ids."""

    def __init__(self, system: str, mapping: FieldMapping, links: Links | None,
                 resolve: Resolve | None) -> None:
        self.system = system
        self.mapping = mapping
        self.links = links
        self.resolve = resolve

    async def read(self, record: RemoteRecord) -> Reading:
        """``record`` in canonical fields, its references as canonical ids.

        A reference is translated through the links view; one not linked yet is the id the
        hub will give that record (``resolve`` reads it here and derives it); one that
        cannot be translated is a problem of that field.
        """
        reading = self.mapping.to_canonical(record.data)
        refs = self.mapping.refs
        if not refs:
            return reading
        values, problems = dict(reading.values), dict(reading.problems)
        for name, entity in refs.items():
            external_id = values.get(name)
            if external_id is None:
                continue
            cid = self.links.canonical(entity, self.system, str(external_id)) if (
                self.links is not None) else None
            if cid is None and self.resolve is not None:
                cid = await self.resolve(entity, self.system, str(external_id))
            if cid is None:
                del values[name]
                problems[name] = (f"refers to {entity} {external_id}, which {self.system} "
                                  "does not have")
            else:
                values[name] = cid
        return _Reading(values, problems)

    def to_system(self, values: Mapping[str, Json]) -> dict[str, Any]:
        """``values`` in the system's shape, references as the system's ids.

        Raises :class:`WaitForLink` when a referenced record is not linked in the system.
        """
        translated = dict(values)
        for name, entity in self.mapping.refs.items():
            cid = translated.get(name)
            if cid is None:
                continue
            external_id = self.links.external(str(cid), self.system) if (
                self.links is not None) else None
            if external_id is None:
                raise WaitForLink(f"{name} refers to {entity} {cid}, not yet linked in "
                                  f"{self.system}")
            translated[name] = external_id
        return self.mapping.to_system(translated)


class Parked:
    """The intents waiting for a link: intent id -> (the intent's bytes, since when).

    Args:
        waiting: the parked intents the journal restored.
        links: the links view, whose ``changed`` says when to try them again.
        wait: seconds an intent waits before it is failed.
        clock: seconds since the epoch.
    """

    def __init__(self, waiting: Mapping[str, bytes], links: Links | None, wait: float,
                 clock: Callable[[], float]) -> None:
        self.links = links
        self.wait = wait
        self.clock = clock
        self.intents: dict[str, tuple[bytes, float]] = {
            intent_id: (raw, clock()) for intent_id, raw in waiting.items()}

    def __len__(self) -> int:
        return len(self.intents)

    def park(self, intent_id: str, raw: bytes) -> None:
        self.intents[intent_id] = (raw, self.clock())

    def due(self) -> bool:
        """Whether to try the parked intents now: links changed, or one waited long enough."""
        if not self.intents:
            return False
        if self.links is None or self.links.changed.is_set():
            return True
        return any(self.clock() - since >= self.wait for _, since in self.intents.values())

    def waited_out(self, since: float) -> bool:
        return self.clock() - since >= self.wait

    def clear_changed(self) -> None:
        """The parked intents are being tried: the next link to appear sets it again."""
        if self.links is not None:
            self.links.changed.clear()

    def release(self, intent_ids: Iterable[str]) -> None:
        for intent_id in intent_ids:
            self.intents.pop(intent_id, None)
