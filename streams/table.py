"""The records table: every canonical record's state, as the merge stage's changelog holds it.

The changelog (``records_changelog``, compacted) maps a canonical id to its state's bytes
(:func:`encode_state`); a key's latest value is its state, a tombstone a record forgotten.
The merge stage also writes a checkpoint marker per partition there (see
:mod:`streams.checkpoint`): it is not a record, and says which ``merge`` offset the
partition's states reflect. :class:`RecordsTable` is the one reader of it, used three ways:
:func:`read_table` reads it once (``syncline replay``, the review CLI), and a running worker
follows it with :func:`streams.kafka.follow`, handing each record to
:meth:`RecordsTable.apply` (the review page).
"""

from __future__ import annotations

import logging

import orjson

import conflict
from streams.checkpoint import CHECKPOINT_KEY, decode_checkpoint
from streams.codec import text_key
from streams.kafka import ConsumedRecord, KafkaSettings, read_to_end
from streams.topics import Topics

log = logging.getLogger(__name__)

_MARKER = CHECKPOINT_KEY.encode()
_UNREADABLE = (ValueError, KeyError, IndexError, TypeError)


def encode_state(state: conflict.RecordState) -> bytes:
    """A record state as changelog bytes: its compact form (a JSON array, sorted keys in the
    dicts it holds), so the same state always gives the same bytes."""
    return orjson.dumps(state.to_compact(), option=orjson.OPT_SORT_KEYS)


def decode_state(data: bytes) -> conflict.RecordState:
    """Changelog bytes as a record state: the compact form, or the ``to_dict`` form (a JSON
    object) that changelogs written before the compact one hold."""
    payload = orjson.loads(data)
    if isinstance(payload, list):
        return conflict.RecordState.from_compact(payload)
    return conflict.RecordState.from_dict(payload)


class RecordsTable:
    """The latest state of every record and each partition's checkpoint, from the changelog.

    States are kept as bytes and decoded when asked for, once per new value.
    """

    def __init__(self) -> None:
        self.raw: dict[str, bytes] = {}
        self.checkpoints: dict[int, int] = {}  # partition -> the merge offset it reflects
        self.skipped = 0  # records without a text key: not syncline's (logged)
        self._decoded: dict[str, tuple[bytes, conflict.RecordState]] = {}

    def apply(self, record: ConsumedRecord) -> None:
        """Take one record of the changelog, in the order of its partition; one whose key
        is missing or not UTF-8 is skipped and counted (:attr:`skipped`)."""
        if record.key == _MARKER:
            if record.value is not None:
                self.checkpoints[record.partition] = decode_checkpoint(record.value)[0]
            return
        key = text_key(record)
        if key is None:
            self.skipped += 1
            return
        if record.value is None:
            self.raw.pop(key, None)
            self._decoded.pop(key, None)
        else:
            self.raw[key] = record.value

    def state(self, canonical_id: str) -> conflict.RecordState | None:
        """The state of one record (``None`` if it has none).

        Raises:
            ValueError, KeyError, IndexError, TypeError: the bytes are not a record state.
        """
        raw = self.raw.get(canonical_id)
        if raw is None:
            return None
        cached = self._decoded.get(canonical_id)
        if cached is None or cached[0] is not raw:
            cached = self._decoded[canonical_id] = (raw, decode_state(raw))
        return cached[1]

    def states(self, ids: set[str] | None = None) -> tuple[dict[str, conflict.RecordState], int]:
        """The states of ``ids`` (default: every record) that can be read, and how many
        could not (logged; the merge's dead letters are where such inputs are dealt with)."""
        out: dict[str, conflict.RecordState] = {}
        unreadable = 0
        for cid in sorted(self.raw if ids is None else ids & self.raw.keys()):
            try:
                state = self.state(cid)
            except _UNREADABLE as exc:
                unreadable += 1
                log.warning("record %s: undecodable record state: %s", cid, exc)
                continue
            if state is not None:
                out[cid] = state
        return out, unreadable


async def read_table(settings: KafkaSettings, topics: Topics) -> RecordsTable:
    """The records table as its changelog holds it now."""
    table = RecordsTable()
    for record in await read_to_end(settings, topics.name("records_changelog")):
        table.apply(record)
    return table
