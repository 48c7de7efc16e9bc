"""The records of a simulated system, in SQLite, and the queries its API is built from.

One table holds every resource. A row is a record's current state; a delete leaves a tombstone
row (``deleted_ms`` set), so an API can report deletes and ids are never reused (unless the
store is made with ``reuse_ids``: then a create takes the id of the newest deleted record, and
its tombstone is gone, as some real systems do). The store
knows nothing about HTTP or the clock: the caller passes ``now_ms`` into every write.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from daemon.sandbox.errors import (
    DuplicateKey,
    InvalidRecord,
    NotFound,
    PreconditionFailed,
    SandboxError,
)

FieldKind = Literal["text", "text_list", "choice", "ref"]
ChangeKind = Literal["created", "updated", "deleted"]

#: Fields a client may send back unchanged (e.g. after a GET) and that a write ignores.
READ_ONLY_FIELDS = frozenset({"id", "created_at", "updated_at", "version", "url"})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sequences (resource TEXT PRIMARY KEY, last_key INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    resource   TEXT    NOT NULL,
    key        INTEGER NOT NULL,
    version    INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    deleted_ms INTEGER,
    data       TEXT    NOT NULL,
    PRIMARY KEY (resource, key)
);
CREATE INDEX IF NOT EXISTS records_by_update ON records (resource, updated_ms, key);
CREATE INDEX IF NOT EXISTS records_by_delete ON records (resource, deleted_ms, key);
"""

_COLUMNS = "key, version, created_ms, updated_ms, deleted_ms, data"


class StoreError(SandboxError):
    """The database file cannot be used (e.g. it belongs to another simulated system)."""


@dataclass(frozen=True)
class FieldSpec:
    """One field of a resource, as the API names it.

    Attributes:
        name: the field's name in request and response bodies.
        kind: ``text`` (string or null), ``text_list`` (list of strings), ``choice`` (one of
            ``choices``) or ``ref`` (the id of a live record of resource ``ref``, or null).
        required: must hold a non-null value.
        default: the value a create (or a full replace) gives a field the body leaves out
            (a tuple stands for a list).
        unique: no two live records hold the same value (compared case-insensitively).
        nullify_on_delete: for a ``ref``: deleting the referenced record sets this to null.
    """

    name: str
    kind: FieldKind = "text"
    required: bool = False
    default: Any = None
    choices: tuple[str, ...] = ()
    ref: str | None = None
    unique: bool = False
    nullify_on_delete: bool = False


@dataclass(frozen=True)
class ResourceSpec:
    """A kind of record the API serves (``contacts``, ``users``).

    Attributes:
        name: plural, as in the URL path.
        singular: as in envelopes and webhook event names (``contact``).
        fields: the writable fields.
        id_prefix: ids are strings ``<prefix><8 digits>`` (sorting like creation order);
            ``None`` makes ids plain integers.
        lookup: the field a key lookup (search) matches on.
    """

    name: str
    singular: str
    fields: tuple[FieldSpec, ...]
    id_prefix: str | None = None
    lookup: str | None = None

    def external_id(self, key: int) -> str | int:
        """The id the API shows for the record with internal key ``key``."""
        return key if self.id_prefix is None else f"{self.id_prefix}{key:08d}"

    def parse_id(self, raw: object) -> int | None:
        """The internal key for an id from a URL or a body, or ``None`` if it is not one."""
        if self.id_prefix is None:
            if isinstance(raw, bool):
                return None
            if isinstance(raw, int):
                return raw if raw > 0 else None
            if isinstance(raw, str) and raw.isdecimal() and raw.isascii():
                return int(raw) if int(raw) > 0 else None
            return None
        if not isinstance(raw, str) or not raw.startswith(self.id_prefix):
            return None
        digits = raw[len(self.id_prefix) :]
        if len(digits) != 8 or not (digits.isdecimal() and digits.isascii()):
            return None
        return int(digits)

    def field(self, name: str) -> FieldSpec | None:
        """The spec of field ``name``, if the resource has one."""
        return next((f for f in self.fields if f.name == name), None)


@dataclass(frozen=True)
class StoredRecord:
    """A record as the store holds it; each API renders it in its own shape."""

    resource: ResourceSpec
    key: int
    version: int
    created_ms: int
    updated_ms: int
    deleted_ms: int | None
    fields: dict[str, Any]

    @property
    def id(self) -> str | int:
        """The id the API shows."""
        return self.resource.external_id(self.key)


@dataclass(frozen=True)
class Change:
    """One record that a write created, changed or deleted."""

    kind: ChangeKind
    record: StoredRecord


@dataclass(frozen=True)
class WriteResult:
    """The record after a write, and every change the write made (none for a no-op)."""

    record: StoredRecord
    changes: list[Change] = field(default_factory=list)


class Store:
    """SQLite-backed records of one simulated system.

    Args:
        path: a database file (created if missing) or ``":memory:"``.
        system: the simulated system's name; a file made by another system is refused.
        resources: the resources the system serves.
        tick_ms: timestamp resolution; ``updated_at`` values are multiples of it (1000 makes
            the second-resolution timestamps that collide).
        strictly_ordered: give every write an ``(updated_ms, key)`` position beyond every
            earlier write's, by moving ``updated_ms`` up one tick when the clock has not
            moved past the newest position. A keyset cursor over that order then never skips
            a record changed during a walk. Equal timestamps still happen (records with
            increasing keys written in one tick).
    """

    def __init__(
        self,
        path: str,
        *,
        system: str,
        resources: Sequence[ResourceSpec],
        tick_ms: int = 1,
        strictly_ordered: bool = False,
        reuse_ids: bool = False,
    ) -> None:
        self.resources = {spec.name: spec for spec in resources}
        self._reuse_ids = reuse_ids
        self._tick_ms = tick_ms
        self._strictly_ordered = strictly_ordered
        try:
            self._db = sqlite3.connect(path)
            if path != ":memory:":
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            with self._db:
                self._db.execute(
                    "INSERT OR IGNORE INTO meta (name, value) VALUES ('system', ?)", (system,)
                )
            (owner,) = self._db.execute("SELECT value FROM meta WHERE name = 'system'").fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot use database {path!r}: {exc}") from exc
        if owner != system:
            self._db.close()
            raise StoreError(f"database {path!r} belongs to the {owner} sandbox, not {system}")

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def spec(self, resource: str) -> ResourceSpec:
        """The spec of a resource this store holds."""
        return self.resources[resource]

    # -- reads ------------------------------------------------------------------------------

    def get(self, resource: str, key: int) -> StoredRecord | None:
        """The live record with ``key``, or ``None`` (also for a deleted one)."""
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM records WHERE resource = ? AND key = ? AND deleted_ms IS NULL",
            (resource, key),
        ).fetchone()
        return None if row is None else self._record(resource, row)

    def require(self, resource: str, key: int) -> StoredRecord:
        """The live record with ``key``.

        Raises:
            NotFound: there is none (or it was deleted).
        """
        record = self.get(resource, key)
        if record is None:
            spec = self.spec(resource)
            raise NotFound(f"{spec.singular} {spec.external_id(key)} not found")
        return record

    def changed_since(
        self,
        resource: str,
        *,
        since_ms: int,
        after: tuple[int, int] | None,
        limit: int,
    ) -> list[StoredRecord]:
        """Live records with ``updated_ms >= since_ms``, ordered by ``(updated_ms, key)``,
        starting after the position ``after`` (keyset pagination)."""
        return self._keyset(resource, "deleted_ms IS NULL", "updated_ms", since_ms, after, limit)

    def page_since(
        self, resource: str, *, since_ms: int, offset: int, limit: int
    ) -> tuple[list[StoredRecord], int]:
        """One page of live records with ``updated_ms >= since_ms`` ordered by
        ``(updated_ms, key)`` (offset pagination), and how many match in all."""
        (total,) = self._db.execute(
            "SELECT count(*) FROM records"
            " WHERE resource = ? AND deleted_ms IS NULL AND updated_ms >= ?",
            (resource, since_ms),
        ).fetchone()
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM records"
            " WHERE resource = ? AND deleted_ms IS NULL AND updated_ms >= ?"
            " ORDER BY updated_ms, key LIMIT ? OFFSET ?",
            (resource, since_ms, limit, offset),
        ).fetchall()
        return [self._record(resource, row) for row in rows], int(total)

    def deleted_since(
        self,
        resource: str,
        *,
        since_ms: int,
        after: tuple[int, int] | None,
        limit: int,
    ) -> list[StoredRecord]:
        """Tombstones with ``deleted_ms >= since_ms``, ordered by ``(deleted_ms, key)``,
        starting after the position ``after``."""
        return self._keyset(resource, "deleted_ms IS NOT NULL", "deleted_ms", since_ms, after,
                            limit)

    def _keyset(self, resource: str,
                which: Literal["deleted_ms IS NULL", "deleted_ms IS NOT NULL"],
                time: Literal["updated_ms", "deleted_ms"], since_ms: int,
                after: tuple[int, int] | None, limit: int) -> list[StoredRecord]:
        """The records ``which`` (live or deleted) with ``time >= since_ms``, ordered by
        ``(time, key)``, starting after the position ``after``. ``which`` and ``time`` go into
        the SQL as they are: fixed words, never a caller's."""
        after_ms, after_key = after if after is not None else (since_ms - 1, 0)
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM records"
            f" WHERE resource = ? AND {which} AND {time} >= ?"
            f" AND ({time} > ? OR ({time} = ? AND key > ?))"
            f" ORDER BY {time}, key LIMIT ?",
            (resource, since_ms, after_ms, after_ms, after_key, limit),
        ).fetchall()
        return [self._record(resource, row) for row in rows]

    def find(self, resource: str, field_name: str, value: object) -> list[StoredRecord]:
        """Live records whose ``field_name`` equals ``value`` (text compared case-insensitively)."""
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM records"
            " WHERE resource = ? AND deleted_ms IS NULL"
            " AND lower(json_extract(data, ?)) = lower(?) ORDER BY key",
            (resource, f"$.{field_name}", value),
        ).fetchall()
        return [self._record(resource, row) for row in rows]

    def live(self, resource: str) -> list[StoredRecord]:
        """Every live record of ``resource``, ordered by id."""
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM records"
            " WHERE resource = ? AND deleted_ms IS NULL ORDER BY key",
            (resource,),
        ).fetchall()
        return [self._record(resource, row) for row in rows]

    # -- writes -----------------------------------------------------------------------------

    def create(self, resource: str, values: Mapping[str, object], now_ms: int) -> WriteResult:
        """Create a record from ``values``; absent fields take their defaults."""
        spec = self.spec(resource)
        fields = self._validated(spec, values, base=None, key=None)
        with self._db:
            reused = self._db.execute(
                "SELECT key FROM records WHERE resource = ? AND deleted_ms IS NOT NULL"
                " ORDER BY deleted_ms DESC, key DESC LIMIT 1",
                (resource,),
            ).fetchone() if self._reuse_ids else None
            if reused is not None:  # the newest deleted record's id, its tombstone dropped
                (key,) = reused
                self._db.execute("DELETE FROM records WHERE resource = ? AND key = ?",
                                 (resource, key))
            else:
                (key,) = self._db.execute(
                    "INSERT INTO sequences (resource, last_key) VALUES (?, 1)"
                    " ON CONFLICT (resource) DO UPDATE SET last_key = last_key + 1"
                    " RETURNING last_key",
                    (resource,),
                ).fetchone()
            stamp = self._stamp(resource, key, now_ms)
            self._db.execute(
                "INSERT INTO records (resource, key, version, created_ms, updated_ms, data)"
                " VALUES (?, ?, 1, ?, ?, ?)",
                (resource, key, stamp, stamp, _dump(fields)),
            )
        record = StoredRecord(spec, key, 1, stamp, stamp, None, fields)
        return WriteResult(record, [Change("created", record)])

    def update(
        self,
        resource: str,
        key: int,
        values: Mapping[str, object],
        now_ms: int,
        *,
        replace: bool = False,
        expect_versions: Collection[int] | None = None,
    ) -> WriteResult:
        """Change the fields in ``values`` (or, with ``replace``, every field: absent ones
        take their defaults). A write that changes nothing keeps version and ``updated_at``.

        Raises:
            NotFound: no live record with ``key``.
            PreconditionFailed: ``expect_versions`` is given and holds not the current version.
        """
        current = self._current(resource, key, expect_versions)
        spec = current.resource
        fields = self._validated(spec, values, base=None if replace else current.fields, key=key)
        if fields == current.fields:
            return WriteResult(current)
        return self._rewrite(current, fields, now_ms)

    def delete(
        self,
        resource: str,
        key: int,
        now_ms: int,
        *,
        expect_versions: Collection[int] | None = None,
    ) -> WriteResult:
        """Delete a record (leaving a tombstone) and null the references that ask for it.

        Raises:
            NotFound: no live record with ``key``.
            PreconditionFailed: ``expect_versions`` is given and holds not the current version.
        """
        current = self._current(resource, key, expect_versions)
        with self._db:
            stamp = self._stamp(resource, key, now_ms)
            self._db.execute(
                "UPDATE records SET version = ?, updated_ms = ?, deleted_ms = ?"
                " WHERE resource = ? AND key = ?",
                (current.version + 1, stamp, stamp, resource, key),
            )
        gone = StoredRecord(
            current.resource, key, current.version + 1, current.created_ms, stamp, stamp,
            current.fields,
        )  # fmt: skip
        changes = [Change("deleted", gone)]
        changes.extend(self._nullify_references_to(current, now_ms))
        return WriteResult(gone, changes)

    def reset(self) -> None:
        """Remove every record and tombstone; ids already handed out are never reused."""
        with self._db:
            self._db.execute("DELETE FROM records")

    # -- internals --------------------------------------------------------------------------

    def _current(
        self, resource: str, key: int, expect_versions: Collection[int] | None
    ) -> StoredRecord:
        current = self.require(resource, key)
        spec = current.resource
        if expect_versions is not None and current.version not in expect_versions:
            raise PreconditionFailed(
                f"{spec.singular} {current.id} is at version {current.version}",
                current_version=current.version,
            )
        return current

    def _rewrite(self, current: StoredRecord, fields: dict[str, Any], now_ms: int) -> WriteResult:
        resource = current.resource.name
        with self._db:
            stamp = self._stamp(resource, current.key, now_ms)
            self._db.execute(
                "UPDATE records SET version = ?, updated_ms = ?, data = ?"
                " WHERE resource = ? AND key = ?",
                (current.version + 1, stamp, _dump(fields), resource, current.key),
            )
        record = StoredRecord(
            current.resource, current.key, current.version + 1, current.created_ms, stamp, None,
            fields,
        )  # fmt: skip
        return WriteResult(record, [Change("updated", record)])

    def _nullify_references_to(self, target: StoredRecord, now_ms: int) -> Iterable[Change]:
        for spec in self.resources.values():
            for ref_field in spec.fields:
                if ref_field.ref != target.resource.name or not ref_field.nullify_on_delete:
                    continue
                for holder in self.find(spec.name, ref_field.name, target.id):
                    fields = {**holder.fields, ref_field.name: None}
                    yield from self._rewrite(holder, fields, now_ms).changes

    def _stamp(self, resource: str, key: int, now_ms: int) -> int:
        now = now_ms - now_ms % self._tick_ms
        if not self._strictly_ordered:
            return now
        newest = self._db.execute(
            "SELECT updated_ms, key FROM records WHERE resource = ?"
            " ORDER BY updated_ms DESC, key DESC LIMIT 1",
            (resource,),
        ).fetchone()
        if newest is None or (now, key) > tuple(newest):
            return now
        newest_ms, newest_key = newest
        return int(newest_ms) if key > newest_key else int(newest_ms) + self._tick_ms

    def _validated(
        self,
        spec: ResourceSpec,
        values: Mapping[str, object],
        *,
        base: Mapping[str, Any] | None,
        key: int | None,
    ) -> dict[str, Any]:
        """The record's fields after applying ``values`` to ``base`` (``None``: the defaults)."""
        problems: dict[str, str] = {}
        fields: dict[str, Any] = (
            dict(base) if base is not None else {f.name: _copy(f.default) for f in spec.fields}
        )
        for name, value in values.items():
            if name in READ_ONLY_FIELDS:
                continue
            field_spec = spec.field(name)
            if field_spec is None:
                problems[name] = "unknown field"
                continue
            unchanged = base is not None and base.get(name) == value
            # A reference left as it was stays valid even if its target has gone since.
            problem = None if unchanged else self._problem(field_spec, value)
            if problem is not None:
                problems[name] = problem
            else:
                fields[name] = _copy(value)
        for field_spec in spec.fields:
            if field_spec.required and fields.get(field_spec.name) is None:
                problems.setdefault(field_spec.name, "is required")
        if problems:
            listed = ", ".join(f"{name}: {why}" for name, why in problems.items())
            raise InvalidRecord(f"invalid {spec.singular}: {listed}", details=problems)
        for field_spec in spec.fields:
            value = fields[field_spec.name]
            if not field_spec.unique or value is None:
                continue
            for other in self.find(spec.name, field_spec.name, value):
                if other.key != key:
                    raise DuplicateKey(
                        f"a {spec.singular} with {field_spec.name} {value!r} exists: {other.id}",
                        field=field_spec.name,
                        existing_id=other.id,
                    )
        return fields

    def _problem(self, spec: FieldSpec, value: object) -> str | None:
        if value is None:
            return "is required" if spec.required else None
        if spec.kind == "text":
            return None if isinstance(value, str) else "must be a string"
        if spec.kind == "text_list":
            ok = isinstance(value, list) and all(isinstance(item, str) for item in value)
            return None if ok else "must be a list of strings"
        if spec.kind == "choice":
            return None if value in spec.choices else f"must be one of {', '.join(spec.choices)}"
        target = self.spec(spec.ref or "")
        key = target.parse_id(value)
        if key is None:
            return f"must be a {target.singular} id"
        if self.get(target.name, key) is None:
            return f"{target.singular} {value} does not exist"
        return None

    def _record(self, resource: str, row: tuple[Any, ...]) -> StoredRecord:
        key, version, created_ms, updated_ms, deleted_ms, data = row
        spec = self.resources[resource]
        stored = json.loads(data)
        # In the spec's field order; a field added to the spec since the row was written
        # reads as its default.
        fields = {f.name: stored.get(f.name, _copy(f.default)) for f in spec.fields}
        return StoredRecord(spec, key, version, created_ms, updated_ms, deleted_ms, fields)


def _dump(fields: Mapping[str, Any]) -> str:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"))


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list | tuple) else value
