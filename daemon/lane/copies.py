"""Finding the copy an earlier try of a create made, so that a create never makes two.

A create may land without its outcome being committed: the process dies between the POST and
the commit, or the answer is lost or unreadable. So a create without an idempotency key is
**journalled before its request**: an :class:`Entry` (the lane's cursor then) is committed,
the POST is sent, and its outcome is committed at once with the entry marked ``made`` — the
window in which a create can be lost is the round trip, not a batch. When the create runs
again, the entry says what may have happened:

- no entry: the request was never sent; the create is made;
- ``made``: the outcome is committed; nothing is done again;
- an entry without ``made``: the request may have landed. Before creating again, the lane
  looks for the copy: an API with idempotent creates is asked with the same key, one with a
  match key is looked up by it (:mod:`daemon.lane.writing`); otherwise the copy is searched
  among the records changed since the entry's cursor (the request was sent after it, so its
  copy is there):

- by the canonical id, where the config names a field the create wrote it to
  (``create.canonical_id_field``);
- else by content: a record the lane has never reported whose mapped values equal every value
  the create wrote. A record the lane reported is someone's, never a lost copy.

A copy found is claimed for the lane's life, so two equal creates never adopt one record.
The entries are forgotten when the batch that ran the create commits; one that ran past the
batch's intents offset (an earlier intent waited) is kept in the journal's ``ran`` instead,
so it is never run again when it is handed out again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from daemon.connector.rest import RemoteRecord
from daemon.lane.decide import Done, decide_found
from daemon.lane.ports import Connector, Journal
from daemon.lane.references import References
from streams import WriteIntent

log = logging.getLogger(__name__)


def marked(body: Mapping[str, Any], path: Sequence[str], canonical_id: str) -> dict[str, Any]:
    """``body`` with ``canonical_id`` at ``path`` (nested objects made as needed)."""
    out = dict(body)
    target = out
    for part in path[:-1]:
        inner = target.get(part)
        target[part] = target = dict(inner) if isinstance(inner, Mapping) else {}
    target[path[-1]] = canonical_id
    return out


def held_at(data: Mapping[str, Any], path: Sequence[str]) -> Any:
    """The value at ``path`` in a record (``None`` when it has none)."""
    value: Any = data
    for part in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


@dataclass(frozen=True)
class Entry:
    """A create's journal entry: the cursor when it was journalled; its copy, once made.

    It also carries what settling the create needs without its intent (an intent can expire
    from the ``intents`` topic while a lane is down): the intent itself, its offset there,
    and when the entry was written. Entries written before these were kept lack them.
    """

    since: float | None
    made: str | None = None
    intent: bytes | None = None  # the intent's bytes, as the merge stage published them
    offset: int | None = None  # its offset in the intents (None: it came from parked ones)
    at: float | None = None  # when it was journalled (seconds since the epoch)

    def encode(self) -> bytes:
        return orjson.dumps({"since": self.since, "made": self.made, "offset": self.offset,
                             "at": self.at,
                             "intent": None if self.intent is None else self.intent.decode()})

    @classmethod
    def decode(cls, raw: bytes) -> Entry:
        data = orjson.loads(raw)
        intent = data.get("intent")
        return cls(data.get("since"), data.get("made"),
                   intent.encode() if isinstance(intent, str) else None,
                   data.get("offset"), data.get("at"))


class Copies:
    """Finds the copies of one lane's creates (see the module's docstring)."""

    def __init__(self, connector: Connector, journal: Journal, references: References
                 ) -> None:
        self.connector = connector
        self.journal = journal
        self.references = references
        field = connector.config.create.canonical_id_field
        self.path: tuple[str, ...] | None = tuple(field.split(".")) if field else None
        self.claimed: set[str] = set()  # external ids adopted as a copy by this process

    def body(self, intent: WriteIntent, body: Mapping[str, Any]) -> dict[str, Any]:
        """What a create sends: ``body``, with the canonical id where the config says."""
        if self.path is None:
            return dict(body)
        return marked(body, self.path, intent.canonical_id)

    def entry(self, intent: WriteIntent) -> Entry | None:
        """The journal entry of ``intent`` (``None``: it was never sent)."""
        raw = self.journal.creating.get(intent.intent_id)
        return None if raw is None else Entry.decode(raw)

    async def find(self, intent: WriteIntent, since: float | None) -> RemoteRecord | None:
        """The copy an earlier try of ``intent`` made after ``since``, if the system holds
        one."""
        async for page in self.connector.changes(since):
            for record in page.records:
                if (not isinstance(record, RemoteRecord) or record.deleted
                        or record.id in self.claimed):
                    continue
                if self.path is not None:
                    if held_at(record.data, self.path) != intent.canonical_id:
                        continue
                elif record.id in self.journal.index:
                    continue  # reported before: someone's record, not a lost copy
                else:
                    held = (await self.references.read(record)).values
                    if not isinstance(decide_found(held, intent.values), Done):
                        continue
                self.claimed.add(record.id)
                log.info("%s/%s: %s found the copy %s an earlier try made",
                         self.connector.system, self.connector.entity, intent.intent_id,
                         record.id, extra={"correlation_id": intent.correlation_id,
                                           "intent_id": intent.intent_id,
                                           "external_id": record.id})
                return record
        return None
