"""Finding the copy an earlier try of a create made, so that a create never makes two.

A create may land without its outcome being committed: the process dies between the POST and
the commit, or the answer is lost or unreadable. Before such a create is made again, the lane
looks for the copy the first try made. An API with idempotent creates is asked with the same
key, and one with a match key is looked up by it (:mod:`daemon.lane.writing`); otherwise the
copy is searched among the records changed since the lane's cursor (the first try was made
after the cursor was committed, so its copy is there):

- by the canonical id, where the config names a field the create wrote it to
  (``create.canonical_id_field``);
- else by content: a record the lane has never reported whose mapped values equal every value
  the create wrote. A record the lane reported is someone's, never a lost copy.

A copy found is claimed for the lane's life, so two equal creates never adopt one record.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

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

    async def find(self, intent: WriteIntent) -> RemoteRecord | None:
        """The copy an earlier try of ``intent`` made, if the system holds one."""
        async for page in self.connector.changes(self.journal.head.cursor):
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
