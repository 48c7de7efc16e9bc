"""What a lane needs from the world: a connector, a journal, a field mapping, the links.

Each is a protocol, so the lane runs against the real edges (:class:`RestEntity` over HTTP,
:class:`streams.lanelog.LaneLog` over Kafka) and against their in-memory twins
(:mod:`daemon.lane.memory`) alike. The lane sees records, pages, preconditions and events,
never a Kafka or an HTTP client.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

from conflict.state import Json
from daemon.connector.config import EntityEndpointConfig
from daemon.connector.rest import ChangePage, Deletion, RemoteRecord
from daemon.http import Precondition
from streams import DeadLetter, Event


class Connector(Protocol):
    """One entity of one system: the operations the lane makes on it.

    The real one is :class:`daemon.connector.rest.RestEntity`. Every operation raises
    :class:`~daemon.http.HttpError` when the system does not answer usefully (``retriable``
    says whether asking again may help) and
    :class:`~daemon.connector.rest.ConnectorError` when its answer is not what the
    configuration describes.
    """

    @property
    def system(self) -> str: ...

    @property
    def entity(self) -> str: ...

    @property
    def config(self) -> EntityEndpointConfig:
        """The entity's endpoint settings: the lane reads its timing and its ways of
        finding deletes here."""
        ...

    @property
    def can_look_up(self) -> bool:
        """Records can be found by their match key (:meth:`lookup`)."""
        ...

    @property
    def delete_feed(self) -> bool:
        """The system lists its deletes (:meth:`deletions`)."""
        ...

    @property
    def idempotent_creates(self) -> bool:
        """A create sent again with the same key is run once; the answer is the first one's."""
        ...

    def changes(self, since: float | None) -> AsyncIterator[ChangePage]:
        """Every page of the records changed at or after ``since`` (all records for None)."""
        ...

    async def fetch(self, external_id: str) -> RemoteRecord | None:
        """The record now, or ``None`` when the system says it does not exist."""
        ...

    async def lookup(self, values: Mapping[str, Any]) -> list[RemoteRecord]:
        """The records whose match key holds ``values`` (in the system's field names)."""
        ...

    def deletions(self, since: float | None) -> AsyncIterator[list[Deletion]]:
        """Pages of the deletes the system reports at or after ``since``."""
        ...

    async def create(self, data: Mapping[str, Any], key: str | None = None
                     ) -> RemoteRecord | None:
        """Create a record (``key``: the idempotency key); it, when the answer says."""
        ...

    async def update(self, external_id: str, data: Mapping[str, Any],
                     precondition: Precondition | None, *, read_at: float | None = None,
                     read_id: str | None = None) -> RemoteRecord | None:
        """Change the fields in ``data``; the record after the write. ``read_id``: that
        read's ``RemoteRecord.read_id``, named by a write without a precondition.

        Raises :class:`~daemon.http.PreconditionFailed` when the record changed since the
        read that gave ``precondition`` (nothing was written), and its
        :class:`~daemon.http.ReadTooOld` when a write without a precondition could not be
        sent soon enough after ``read_at`` (the ``read_at`` of the record read).
        """
        ...

    async def delete(self, external_id: str, precondition: Precondition | None) -> None:
        """Delete the record; one already gone is fine."""
        ...


class Head(Protocol):
    """Where a lane is: its last sequence number, its cursors, its place in the intents."""

    seq: int
    cursor: float | None
    deletes_cursor: float | None
    intents_offset: int | None
    swept_at: float | None


class Delivered(Protocol):
    """One intent as the journal delivered it: its bytes and where they came from."""

    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...

    @property
    def key(self) -> bytes | None: ...

    @property
    def value(self) -> bytes | None: ...


class Journal(Protocol):
    """A lane's durable side: its intents in, its observations and state out.

    The real one is :class:`streams.lanelog.LaneLog` (Kafka transactions). The contract:

    - :meth:`commit` publishes the observations, the dead letters and the lane's state
      (head, index, parked changes and create entries) all together or not at all;
      :attr:`index`, :attr:`parked`, :attr:`creating` and :attr:`ran` change only when it
      returns.
    - the head may be changed in place (:meth:`next_seq`, the cursors); a change is durable
      with the next commit, and lost with the process otherwise.
    - :meth:`intents` hands out the lane's intents in their order from a position that
      :meth:`rewind_intents` can move back; a restarted lane starts at the head's
      ``intents_offset``, and :attr:`resumed_below` marks the intents that were there then;
      an intent below :meth:`intents_start` expired and is never handed out again.
    """

    @property
    def head(self) -> Head: ...

    @property
    def index(self) -> Mapping[str, str]:
        """External id -> the fingerprint of what the lane last reported for the record."""
        ...

    @property
    def parked(self) -> Mapping[str, bytes]:
        """Intent id -> an intent waiting until a record it refers to is linked."""
        ...

    @property
    def creating(self) -> Mapping[str, bytes]:
        """Intent id -> the journal entry of a create (see :mod:`daemon.lane.copies`):
        written before its request, so a create absent here was never sent."""
        ...

    @property
    def ran(self) -> Mapping[str, bytes]:
        """Intent id -> its offset (ASCII digits): an intent at or past the head's
        ``intents_offset`` whose outcome is committed (a batch's offset stays before an
        intent that waited), so one handed out again is not run again."""
        ...

    @property
    def resumed_below(self) -> int:
        """Intents below this offset were there when the lane started: they may have run."""
        ...

    async def intents(self, timeout_ms: int, max_records: int = 50) -> Sequence[Delivered]:
        """The next intents (waiting up to ``timeout_ms`` when there is none)."""
        ...

    async def intents_start(self) -> int:
        """The first offset of the intents still held: one below it expired (the topic's
        retention) and is never delivered again."""
        ...

    def rewind_intents(self, offset: int) -> None:
        """Hand out the intents again from ``offset``."""
        ...

    def next_seq(self) -> int:
        """A new sequence number (durable with the next commit)."""
        ...

    async def commit(self, observations: Sequence[Event], *,
                     index: dict[str, str | None] | None = None,
                     dead_letters: Sequence[DeadLetter] = (),
                     dead_letter_keys: Sequence[str] = (),
                     parked: dict[str, bytes | None] | None = None,
                     creating: dict[str, bytes | None] | None = None,
                     ran: dict[str, bytes | None] | None = None) -> None:
        """Publish all of it, with the head, atomically (``None`` in a map: forget it)."""
        ...


class Reading(Protocol):
    """A system's record in canonical fields (see :mod:`daemon.mapping`)."""

    @property
    def values(self) -> dict[str, Json]: ...

    @property
    def problems(self) -> dict[str, str]: ...


class FieldMapping(Protocol):
    """Translates one entity's records between a system's shape and canonical fields."""

    @property
    def refs(self) -> Mapping[str, str]:
        """Reference fields: canonical name -> the entity whose records they name."""
        ...

    def to_canonical(self, record: Mapping[str, Any]) -> Reading: ...

    def to_system(self, values: Mapping[str, Json]) -> dict[str, Any]: ...


class Links(Protocol):
    """Which record of a system each canonical record is (see :mod:`streams.links`)."""

    @property
    def changed(self) -> asyncio.Event:
        """Set whenever a link appears; whoever waits for one clears it."""
        ...

    def canonical(self, entity: str, system: str, external_id: str) -> str | None: ...

    def external(self, canonical_id: str, system: str) -> str | None: ...


Resolve = Callable[[str, str, str], Awaitable[str | None]]
"""``resolve(entity, system, external_id)``: the canonical id a record not linked yet will get
(read from the system and derived like the hub derives it), or ``None`` if it does not exist."""
