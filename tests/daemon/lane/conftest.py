"""A lane wired to in-memory twins: the system's entity, the journal, the links, the clock.

Everything but the edges is real: the lane, the field mapping built from an entity config,
the write decision. Tests drive the lane by hand (``poll``, ``execute_intents``, ``round``)
and look at what the lane committed (``rig.reported()``) and what the system holds.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest

from daemon.config import EntityConfig
from daemon.connector.config import EntityEndpointConfig
from daemon.lane import Lane
from daemon.lane.memory import MemoryConnector, MemoryJournal
from streams.events import DeadLetter, Event, Observed, WriteIntent

CONTACT = EntityConfig.model_validate(
    {"match_on": ["email"],
     "fields": {"email": {"crm": "email", "type": "string", "transform": "email"},
                "name": {"crm": "full_name", "type": "string"},
                "company": {"crm": {"path": "company_id", "ref": "company"},
                            "type": "string"}}},
    context={"systems": ["crm"]})

LOOKUP = {"path": "/contacts", "params": {"email": "{email}"}}
IDEMPOTENT = {"method": "POST", "idempotency_header": "Idempotency-Key"}


def endpoint(**changes: Any) -> EntityEndpointConfig:
    """The contact endpoint's settings: a since filter, a lookup by email, and ``changes``."""
    return EntityEndpointConfig.model_validate(
        {"path": "/contacts", "since": {"param": "since"}, "lookup": LOOKUP, **changes})


class Clock:
    """The lane's wall clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class LinkTable:
    """Which record of each system each canonical record is (the links view, in a dict)."""

    def __init__(self) -> None:
        self.changed = asyncio.Event()
        self._external: dict[tuple[str, str], str] = {}
        self._canonical: dict[tuple[str, str, str], str] = {}

    def link(self, entity: str, canonical_id: str, system: str, external_id: str) -> None:
        self._external[(canonical_id, system)] = external_id
        self._canonical[(entity, system, external_id)] = canonical_id
        self.changed.set()

    def canonical(self, entity: str, system: str, external_id: str) -> str | None:
        return self._canonical.get((entity, system, external_id))

    def external(self, canonical_id: str, system: str) -> str | None:
        return self._external.get((canonical_id, system))


@dataclass
class Rig:
    """One lane and its world."""

    system: MemoryConnector
    journal: MemoryJournal
    links: LinkTable = field(default_factory=LinkTable)
    clock: Clock = field(default_factory=Clock)
    lane: Lane = field(init=False)
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.lane = self._lane()

    def _lane(self) -> Lane:
        return Lane(self.system, CONTACT.mapping("contact", "crm"), self.journal,
                    match_on=("email",), links=self.links, clock=self.clock, **self.options)

    def restart(self) -> Lane:
        """A new process takes the lane over from what was committed (the old one died)."""
        self.journal = self.journal.restart()
        self.lane = self._lane()
        return self.lane

    def intent(self, op: str, external_id: str | None = None, *,
               values: dict[str, Any] | None = None, expected: dict[str, Any] | None = None,
               attempt: int = 1) -> WriteIntent:
        """An intent for this lane, sent to its journal."""
        made = WriteIntent(intent_id=uuid.uuid4().hex, canonical_id="c-" + uuid.uuid4().hex[:8],
                           entity="contact", system="crm", op=op,  # type: ignore[arg-type]
                           external_id=external_id, values=values or {},
                           expected=expected or {}, native_version=None, clock={},
                           attempt=attempt)
        self.journal.send(made)
        return made

    def reported(self) -> list[Event]:
        """Every event the lane committed, in order."""
        return list(self.journal.observations)

    def kinds(self) -> list[str]:
        """The committed events as short strings: ``Observed``, ``Observed-deleted``, ..."""
        return [type(e).__name__ + ("-deleted" if isinstance(e, Observed) and e.deleted
                                    else "") for e in self.journal.observations]

    def letters(self) -> list[DeadLetter]:
        return [letter for _, letter in self.journal.dead_letters]


def make_rig(config: EntityEndpointConfig | None = None, *, page_size: int = 50,
             required: tuple[str, ...] = (), unique: tuple[str, ...] = (),
             **options: Any) -> Rig:
    system = MemoryConnector("crm", "contact", config or endpoint(), page_size=page_size,
                             required=required, unique=unique)
    return Rig(system, MemoryJournal("crm", "contact"), options=options)


@pytest.fixture
def rig() -> Rig:
    """A lane over a CRM whose contacts can be looked up by email, creates not idempotent."""
    return make_rig()
