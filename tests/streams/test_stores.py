"""The two table stores behave alike: memory (default) and RocksDB (``--state-dir``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from streams.stores import RocksStore, Store


def stores(tmp_path: Path) -> list[Any]:
    return [Store(encode=str.encode, decode=bytes.decode),
            RocksStore(tmp_path / "rocks", str.encode, bytes.decode)]


@pytest.mark.parametrize("kind", [0, 1], ids=["memory", "rocksdb"])
def test_changes_are_what_the_changelog_needs_and_restore_rebuilds(tmp_path: Path,
                                                                   kind: int) -> None:
    store = stores(tmp_path)[kind]
    view = store.partition(0)
    view["a"] = "1"
    view["b"] = "2"
    assert view.get("a") == "1" and view.get("zz") is None
    assert store.changes(0) == [("a", b"1"), ("b", b"2")]
    assert store.changes(0) == []  # taken once, for one commit
    view = store.partition(0)
    del view["a"]
    view["b"] = "3"
    assert "a" not in view and sorted(view) == ["b"] and len(view) == 1
    assert store.changes(0) == [("a", None), ("b", b"3")]
    assert store.size(0) == 1

    # A partition restored from changelog records holds their latest values.
    store.drop(0)
    assert store.size(0) == 0
    for key, value in [("x", b"1"), ("y", b"2"), ("x", None), ("y", b"5")]:
        store.restore(0, key, value)
    assert dict(store.partition(0)) == {"y": "5"}
    assert store.partition(1).get("y") is None  # partitions are separate


@pytest.mark.parametrize("kind", [0, 1], ids=["memory", "rocksdb"])
def test_restored_entries_can_be_read_changed_and_deleted_before_they_are_read(
        tmp_path: Path, kind: int) -> None:
    store = stores(tmp_path)[kind]
    store.restore_many(0, [(b"a", b"1"), (b"b", b"2"), (b"c", b"3"), (b"d", b"4"),
                           (b"d", None)])
    view = store.partition(0)
    assert "a" in view and "d" not in view and len(view) == 3
    view["b"] = "20"  # replaced before it was ever read
    del view["c"]  # deleted before it was ever read
    assert view.get("a") == "1" and view["b"] == "20" and view.get("c") is None
    assert sorted(view) == ["a", "b"]
    assert store.changes(0) == [("b", b"20"), ("c", None)]
    assert store.size(0) == 2
    store.restore_many(0, [(b"a", None)])
    assert dict(store.partition(0)) == {"b": "20"}
