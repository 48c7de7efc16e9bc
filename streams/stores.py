"""A stage's state: one table per partition, each backed by a compacted changelog topic.

:class:`Store` keeps it in memory; :class:`RocksStore` in RocksDB (rocksdict), for more
records than fit in memory. Both hand the stage a mutable mapping per partition, remember
which keys changed, and give those changes as changelog records when the runner writes the
changelog (:meth:`Store.changes`).

**Kept RocksDB files.** As Kafka Streams does under exactly-once, a :class:`RocksStore` keeps
a partition's files when the runner gives it up cleanly (every transaction it handed out
committed): it flushes them and writes a checkpoint file, ``partition-N.checkpoint``, with
the changelog offset the files agree with (:class:`Kept`). The next owner in the same
directory takes the file (:meth:`RocksStore.take_kept`, which deletes it before anything is
written) and restores only the changelog from that offset on (:mod:`streams.restore`). A
crash leaves no checkpoint file (it was deleted when the partition was assigned), so the files
are then wiped and the whole changelog read again. The memory store keeps nothing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import orjson

V = TypeVar("V")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Kept:
    """What a partition's kept RocksDB files agree with: the changelog (name and partition
    count) and the offset from which its records are not in them yet; and the last checkpoint
    marker before that offset (:mod:`streams.checkpoint`), which the files alone do not say.

    The offset may be below the changelog's end as it was when the files were kept: records
    read again from an earlier offset leave the same state (each key ends at its latest value).
    """

    changelog: str
    partitions: int
    offset: int
    marker: tuple[int, int] | None = None

    def unusable(self, changelog: str, partitions: int, start: int, end: int) -> str | None:
        """Why the files cannot be trusted with the changelog as it is now, if they cannot."""
        if changelog != self.changelog:
            return f"kept for changelog {self.changelog!r}"
        if partitions != self.partitions:
            return f"kept when the changelog had {self.partitions} partitions, not {partitions}"
        if self.offset > end:
            return f"kept at offset {self.offset}, past the changelog's end {end} (recreated?)"
        if self.offset < start:
            return f"kept at offset {self.offset}, before the changelog's start {start}"
        return None

    def to_bytes(self) -> bytes:
        return orjson.dumps({"changelog": self.changelog, "partitions": self.partitions,
                             "offset": self.offset, "marker": self.marker})

    @classmethod
    def from_bytes(cls, data: bytes) -> Kept:
        raw = orjson.loads(data)
        marker = raw["marker"]
        return cls(str(raw["changelog"]), int(raw["partitions"]), int(raw["offset"]),
                   None if marker is None else (int(marker[0]), int(marker[1])))


class _Tracked(MutableMapping[str, V]):
    """One partition of a store; remembers which keys changed since the last commit.

    Restored values stay encoded (``encoded``) until first read: a restore then costs no
    decoding (~80 µs a record state), and a record never read again costs its bytes only.
    """

    def __init__(self, data: dict[str, V], encoded: dict[str, bytes], dirty: set[str],
                 decode: Callable[[bytes], V]) -> None:
        self._data = data
        self._encoded = encoded
        self._dirty = dirty
        self._decode = decode

    def __getitem__(self, key: str) -> V:
        try:
            return self._data[key]
        except KeyError:
            raw = self._encoded.pop(key)  # KeyError when absent
        value = self._data[key] = self._decode(raw)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        value = self._data.get(key, _MISSING)
        if value is not _MISSING:
            return value
        if not self._encoded:
            return default
        raw = self._encoded.pop(key, None)
        if raw is None:
            return default
        value = self._data[key] = self._decode(raw)
        return value

    def __setitem__(self, key: str, value: V) -> None:
        self._data[key] = value
        if self._encoded:
            self._encoded.pop(key, None)
        self._dirty.add(key)

    def __delitem__(self, key: str) -> None:
        if key in self._data:
            del self._data[key]
        else:
            del self._encoded[key]
        self._dirty.add(key)

    def __contains__(self, key: object) -> bool:
        return key in self._data or key in self._encoded

    def __iter__(self) -> Iterator[str]:
        yield from self._data
        yield from self._encoded

    def __len__(self) -> int:
        return len(self._data) + len(self._encoded)


_MISSING: Any = object()


@dataclass
class Store(Generic[V]):
    """A stage's state: one dict per partition, backed by a compacted changelog topic."""

    encode: Callable[[V], bytes]
    decode: Callable[[bytes], V]
    partitions: dict[int, dict[str, V]] = field(default_factory=dict)
    encoded: dict[int, dict[str, bytes]] = field(default_factory=dict)  # restored, not read
    _dirty: dict[int, set[str]] = field(default_factory=dict)
    keeps = False  # nothing outlives the process (see RocksStore)

    def partition(self, p: int) -> _Tracked[V]:
        """The mutable view of partition ``p``."""
        return _Tracked(self.partitions.setdefault(p, {}), self.encoded.setdefault(p, {}),
                        self._dirty.setdefault(p, set()), self.decode)

    def restore(self, p: int, key: str, value: bytes | None) -> None:
        """Apply one changelog record while restoring partition ``p``."""
        self.restore_many(p, [(key.encode(), value)])

    def restore_many(self, p: int, records: Iterable[tuple[bytes, bytes | None]]) -> None:
        """Apply changelog records (raw keys) while restoring partition ``p``; values are
        decoded when first read."""
        data = self.partitions.setdefault(p, {})
        encoded = self.encoded.setdefault(p, {})
        for raw_key, value in records:
            key = raw_key.decode()
            if data:
                data.pop(key, None)
            if value is None:
                encoded.pop(key, None)
            else:
                encoded[key] = value

    def take_kept(self, p: int) -> Kept | None:
        """Nothing: memory is not kept (see :meth:`RocksStore.take_kept`)."""
        return None

    def keep(self, p: int, kept: Kept) -> None:
        """Forget partition ``p``: memory is not kept."""
        self.drop(p)

    def changes(self, p: int) -> list[tuple[str, bytes | None]]:
        """The changed entries of partition ``p`` since the last call, as changelog records."""
        dirty = self._dirty.get(p)
        if not dirty:
            return []
        data = self.partitions[p]
        out = [(key, self.encode(data[key]) if key in data else None) for key in sorted(dirty)]
        dirty.clear()
        return out

    def drop(self, p: int) -> None:
        """Forget partition ``p`` (revoked, or to be restored again)."""
        self.partitions.pop(p, None)
        self.encoded.pop(p, None)
        self._dirty.pop(p, None)

    def size(self, p: int) -> int:
        """How many keys partition ``p`` holds."""
        return len(self.partitions.get(p, {})) + len(self.encoded.get(p, {}))

    def estimated_size(self, p: int) -> int:
        """How many keys partition ``p`` holds (see :meth:`RocksStore.estimated_size`)."""
        return self.size(p)


class _RocksView(MutableMapping[str, V]):
    """One partition of a :class:`RocksStore`: uncommitted values in memory, the rest on disk."""

    def __init__(self, store: RocksStore[V], p: int) -> None:
        self._store = store
        self._db = store.db(p)
        self._pending = store.pending.setdefault(p, {})

    def __getitem__(self, key: str) -> V:
        if key in self._pending:
            value = self._pending[key]
            if value is _ABSENT:
                raise KeyError(key)
            return value  # type: ignore[no-any-return]
        raw = self._db.get(key.encode())
        if raw is None:
            raise KeyError(key)
        return self._store.decode(raw)

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __setitem__(self, key: str, value: V) -> None:
        self._pending[key] = value

    def __delitem__(self, key: str) -> None:
        self._pending[key] = _ABSENT

    def __iter__(self) -> Iterator[str]:
        on_disk = self._db.keys()  # an Rdict itself is not iterable
        keys = {k.decode() for k in on_disk} | set(self._pending)
        return iter(sorted(k for k in keys if self._pending.get(k) is not _ABSENT))

    def __len__(self) -> int:
        return sum(1 for _ in self)


_ABSENT: Any = object()

BLOCK_CACHE_BYTES = 64 * 1024 * 1024
"""One block cache for every RocksDB of a process (RocksDB's default: 32 MiB per DB, plus
index and filter blocks outside any cache). Memtables are charged to it as well (see
:data:`MEMTABLE_BYTES`), so RocksDB's own memory stays near this figure however many
partitions a worker owns (docs/DECISIONS.md)."""

MEMTABLE_BYTES = 32 * 1024 * 1024
"""The memtables of every RocksDB of a process together, charged to the block cache: a
flush is started past it. Per DB, memtables of :data:`WRITE_BUFFER_BYTES`, two at most."""

WRITE_BUFFER_BYTES = 8 * 1024 * 1024
"""One memtable (RocksDB's default: 64 MiB, of which a DB may hold two, and 8 DBs a worker)."""

RESTORE_BATCH = 5000
"""Changelog records written to RocksDB in one write batch while restoring."""


class RocksStore(Generic[V]):
    """A stage's state in RocksDB (rocksdict), for more records than fit in memory.

    Values are decoded on every read and encoded once per commit (the changelog needs the
    bytes anyway). Changes stay in memory until :meth:`changes` takes them for the commit.
    Keys and values are stored as they are (rocksdict's raw mode), without its write-ahead
    log: the changelog is the log; files that may have lost writes to a crash carry no
    checkpoint file and are wiped (:meth:`take_kept`). Files are flushed before they are kept.
    """

    _memory: tuple[Any, Any] | None = None  # the process's block cache and buffer manager
    keeps = True  # a partition given up cleanly keeps its files (take_kept, keep)

    def __init__(self, directory: Path, encode: Callable[[V], bytes],
                 decode: Callable[[bytes], V]) -> None:
        from rocksdict import Rdict  # optional dependency: pip install 'syncline[rocksdb]'

        self._rdict = Rdict
        self.directory = directory
        self.encode = encode
        self.decode = decode
        self._dbs: dict[int, Any] = {}
        self.pending: dict[int, dict[str, Any]] = {}

    @classmethod
    def _options(cls) -> Any:
        from rocksdict import (
            BlockBasedOptions,
            Cache,
            Options,
            WriteBufferManager,
        )

        if cls._memory is None:
            cache = Cache(BLOCK_CACHE_BYTES)
            cls._memory = (cache, WriteBufferManager.new_write_buffer_manager_with_cache(
                MEMTABLE_BYTES, False, cache))
        cache, buffers = cls._memory
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        table = BlockBasedOptions()
        table.set_block_cache(cache)
        table.set_cache_index_and_filter_blocks(True)
        options.set_block_based_table_factory(table)
        options.set_write_buffer_manager(buffers)
        options.set_write_buffer_size(WRITE_BUFFER_BYTES)
        options.set_max_write_buffer_number(2)
        return options

    def _path(self, p: int) -> Path:
        return self.directory / f"partition-{p}"

    def _checkpoint_path(self, p: int) -> Path:
        return self.directory / f"partition-{p}.checkpoint"

    def db(self, p: int) -> Any:
        """The RocksDB of partition ``p``."""
        db = self._dbs.get(p)
        if db is None:
            from rocksdict import WriteOptions

            self.directory.mkdir(parents=True, exist_ok=True)
            db = self._dbs[p] = self._rdict(str(self._path(p)), self._options())
            unlogged = WriteOptions()
            unlogged.disable_wal = True  # type: ignore[method-assign,assignment]  # a property: the stub is wrong
            db.set_write_options(unlogged)
        return db

    def partition(self, p: int) -> _RocksView[V]:
        """The mutable view of partition ``p``."""
        return _RocksView(self, p)

    def restore(self, p: int, key: str, value: bytes | None) -> None:
        """Apply one changelog record while restoring partition ``p``."""
        self.restore_many(p, [(key.encode(), value)])

    def restore_many(self, p: int, records: Iterable[tuple[bytes, bytes | None]]) -> None:
        """Apply changelog records (raw keys) while restoring partition ``p``, in write
        batches of :data:`RESTORE_BATCH`."""
        from rocksdict import WriteBatch

        db = self.db(p)
        batch, size = WriteBatch(raw_mode=True), 0
        for key, value in records:
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
            size += 1
            if size == RESTORE_BATCH:
                db.write(batch)
                batch, size = WriteBatch(raw_mode=True), 0
        if size:
            db.write(batch)

    def take_kept(self, p: int) -> Kept | None:
        """Where partition ``p``'s kept files stand, if they were kept; the checkpoint file is
        deleted first, so that a crash from now on leaves none. Files without one (a crash, a
        half-done restore) are wiped."""
        path = self._checkpoint_path(p)
        kept: Kept | None = None
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            data = None
        if data is not None:
            path.unlink()
            _sync_directory(self.directory)
            try:
                kept = Kept.from_bytes(data)
            except (ValueError, KeyError, TypeError, IndexError):
                log.warning("unreadable checkpoint file %s: restoring partition %d in full",
                            path, p)
        if kept is None:
            self.drop(p)
        return kept

    def keep(self, p: int, kept: Kept) -> None:
        """Close partition ``p``, its files agreeing with the changelog up to ``kept``: its
        uncommitted changes are forgotten, the rest flushed to disk, then the checkpoint
        file written."""
        self.pending.pop(p, None)
        db = self._dbs.pop(p, None)
        if db is None:
            return
        db.flush(True)
        db.close()
        temporary = self._checkpoint_path(p).with_suffix(".tmp")
        with open(temporary, "wb") as f:
            f.write(kept.to_bytes())
            f.flush()
            os.fsync(f.fileno())
        temporary.replace(self._checkpoint_path(p))
        _sync_directory(self.directory)

    def changes(self, p: int) -> list[tuple[str, bytes | None]]:
        """The changed entries of partition ``p``, written to disk, as changelog records."""
        pending = self.pending.get(p)
        if not pending:
            return []
        from rocksdict import WriteBatch

        batch = WriteBatch(raw_mode=True)
        out: list[tuple[str, bytes | None]] = []
        for key in sorted(pending):
            value = pending[key]
            if value is _ABSENT:
                batch.delete(key.encode())
                out.append((key, None))
            else:
                raw = self.encode(value)
                batch.put(key.encode(), raw)
                out.append((key, raw))
        self.db(p).write(batch)
        pending.clear()
        return out

    def drop(self, p: int) -> None:
        """Forget partition ``p``: close and delete its files and its checkpoint file."""
        self.pending.pop(p, None)
        db = self._dbs.pop(p, None)
        if db is not None:
            db.close()
        self._checkpoint_path(p).unlink(missing_ok=True)
        if self._path(p).exists():
            self._rdict.destroy(str(self._path(p)))

    def size(self, p: int) -> int:
        """How many keys partition ``p`` holds."""
        on_disk = self.db(p).keys()  # an Rdict itself is not iterable
        return sum(1 for _ in on_disk)

    def estimated_size(self, p: int) -> int:
        """About how many keys partition ``p`` holds, without reading them (RocksDB's
        estimate: exact while no key was written twice or deleted)."""
        return int(self.db(p).property_int_value("rocksdb.estimate-num-keys") or 0)


def _sync_directory(directory: Path) -> None:
    """Make a file's creation, renaming or deletion in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


AnyStore = Store[Any] | RocksStore[Any]
