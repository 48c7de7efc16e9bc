"""A stage's state: one table per partition, each backed by a compacted changelog topic.

:class:`Store` keeps it in memory; :class:`RocksStore` in RocksDB (rocksdict), for more
records than fit in memory. Both hand the stage a mutable mapping per partition, remember
which keys changed, and give those changes as changelog records when the runner writes the
changelog (:meth:`Store.changes`). A partition is dropped and restored from its changelog
whenever it is assigned (:mod:`streams.restore`), so the files of a RocksDB store never need
to agree with a committed offset.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

V = TypeVar("V")


class _Tracked(MutableMapping[str, V]):
    """One partition of a store; remembers which keys changed since the last commit."""

    def __init__(self, data: dict[str, V], dirty: set[str]) -> None:
        self._data = data
        self._dirty = dirty

    def __getitem__(self, key: str) -> V:
        return self._data[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def __setitem__(self, key: str, value: V) -> None:
        self._data[key] = value
        self._dirty.add(key)

    def __delitem__(self, key: str) -> None:
        del self._data[key]
        self._dirty.add(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


@dataclass
class Store(Generic[V]):
    """A stage's state: one dict per partition, backed by a compacted changelog topic."""

    encode: Callable[[V], bytes]
    decode: Callable[[bytes], V]
    partitions: dict[int, dict[str, V]] = field(default_factory=dict)
    _dirty: dict[int, set[str]] = field(default_factory=dict)

    def partition(self, p: int) -> _Tracked[V]:
        """The mutable view of partition ``p``."""
        return _Tracked(self.partitions.setdefault(p, {}), self._dirty.setdefault(p, set()))

    def restore(self, p: int, key: str, value: bytes | None) -> None:
        """Apply one changelog record while restoring partition ``p``."""
        data = self.partitions.setdefault(p, {})
        if value is None:
            data.pop(key, None)
        else:
            data[key] = self.decode(value)

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
        self._dirty.pop(p, None)

    def size(self, p: int) -> int:
        """How many keys partition ``p`` holds."""
        return len(self.partitions.get(p, {}))


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


class RocksStore(Generic[V]):
    """A stage's state in RocksDB (rocksdict), for more records than fit in memory.

    Values are decoded on every read and encoded once per commit (the changelog needs the
    bytes anyway). Changes stay in memory until :meth:`changes` takes them for the commit.
    A partition is wiped and restored from the changelog whenever it is assigned, as with
    the in-memory store, so the files never need to agree with a committed offset.
    """

    def __init__(self, directory: Path, encode: Callable[[V], bytes],
                 decode: Callable[[bytes], V]) -> None:
        from rocksdict import Rdict  # optional dependency: pip install 'syncline[rocksdb]'

        self._rdict = Rdict
        self.directory = directory
        self.encode = encode
        self.decode = decode
        self._dbs: dict[int, Any] = {}
        self.pending: dict[int, dict[str, Any]] = {}

    def db(self, p: int) -> Any:
        """The RocksDB of partition ``p``."""
        db = self._dbs.get(p)
        if db is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            db = self._dbs[p] = self._rdict(str(self.directory / f"partition-{p}"))
        return db

    def partition(self, p: int) -> _RocksView[V]:
        """The mutable view of partition ``p``."""
        return _RocksView(self, p)

    def restore(self, p: int, key: str, value: bytes | None) -> None:
        """Apply one changelog record while restoring partition ``p``."""
        db = self.db(p)
        if value is None:
            db.delete(key.encode())
        else:
            db[key.encode()] = value

    def changes(self, p: int) -> list[tuple[str, bytes | None]]:
        """The changed entries of partition ``p``, written to disk, as changelog records."""
        pending = self.pending.get(p)
        if not pending:
            return []
        db = self.db(p)
        out: list[tuple[str, bytes | None]] = []
        for key in sorted(pending):
            value = pending[key]
            if value is _ABSENT:
                db.delete(key.encode())
                out.append((key, None))
            else:
                raw = self.encode(value)
                db[key.encode()] = raw
                out.append((key, raw))
        pending.clear()
        return out

    def drop(self, p: int) -> None:
        """Forget partition ``p``: close and delete its files."""
        self.pending.pop(p, None)
        db = self._dbs.pop(p, None)
        path = str(self.directory / f"partition-{p}")
        if db is not None:
            db.close()
        if (self.directory / f"partition-{p}").exists():
            self._rdict.destroy(path)

    def size(self, p: int) -> int:
        """How many keys partition ``p`` holds."""
        on_disk = self.db(p).keys()  # an Rdict itself is not iterable
        return sum(1 for _ in on_disk)


AnyStore = Store[Any] | RocksStore[Any]
