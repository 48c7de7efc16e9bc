"""In-memory twins of the lane's edges: a system's entity, and the lane's journal.

They behave like the real ones, without HTTP or Kafka, so the lane's logic can be tested in
milliseconds and a test can play what is hard to arrange over a network: a person editing a
record between the lane's read and its write, an answer lost after a write landed, a crash
between a write and its commit.

:class:`MemoryConnector` keeps records with ids, versions, updated-at times and deletes, and
runs creates once per idempotency key when its configuration says the API does. It is driven
by the same :class:`~daemon.connector.config.EntityEndpointConfig` as the REST connector: a
lookup, a delete feed, tombstones, conditional writes and idempotent creates exist when the
configuration has them.

:class:`MemoryJournal` keeps what a lane committed, with the same commit (all or nothing) and
rewind semantics as :class:`streams.lanelog.LaneLog`; :meth:`MemoryJournal.restart` is a new
process starting the lane from what was committed.

Contract tests hold both to the real edges (``tests/daemon/lane/test_connector_contract.py``,
``tests/daemon/lane/test_journal_contract.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeVar

from daemon.connector.config import EntityEndpointConfig
from daemon.connector.rest import (
    FRESH_READ_SECONDS,
    BadRecord,
    ChangePage,
    Deletion,
    RemoteRecord,
)
from daemon.http import (
    Conflict,
    HttpError,
    MalformedResponse,
    NotFound,
    Precondition,
    PreconditionFailed,
    ReadTooOld,
    Rejected,
    Unavailable,
)
from streams import DeadLetter, Event, StreamsError, WriteIntent, apply_changes, codec

Operation = Literal["changes", "fetch", "lookup", "deletions", "create", "update", "delete"]
Failure = Literal["down", "garbled", "refused"]
_METHOD = {"changes": "GET", "fetch": "GET", "lookup": "GET", "deletions": "GET",
           "create": "POST", "update": "PATCH", "delete": "DELETE"}
T = TypeVar("T")


@dataclass
class _Stored:
    id: str
    data: dict[str, Any]
    version: int
    updated: float
    deleted_at: float | None = None


@dataclass
class _Fault:
    failure: Failure
    landed: bool  # the operation happened, then its answer was lost
    times: int | None  # None: until healed
    after: int = 0  # calls that pass before it starts


class MemoryConnector:
    """One entity of one system, in memory (see the module's docstring).

    Args:
        system: the system's name.
        entity: the entity's name.
        config: the entity's endpoint settings (only what changes behaviour is read: the
            lookup's fields, matched exactly; deletes; conditional writes; idempotent
            creates; the since filter).
        page_size: records per page of a listing.
        required: fields a create must have (else 422, like an API's validation).
        unique: fields no two live records may share (else a create gets 409).
        drops: fields the API silently does not keep on writes, with the value a created
            record gets instead (its default): a write of them is answered 200 and ignored.
        forms: fields the API keeps in its own form: the function it applies on writes.
        ignores_writes: updates keep nothing at all (as an API that wants its body wrapped
            ignores an unwrapped one) and are answered with the record as it is.
        echoes: writes are answered with the body that was sent laid over the record,
            whatever was kept (an API that answers 200 to everything).
        lies: updates are answered with the body that was sent laid over the record and
            change nothing, not even its version or updated-at (an API that answers 200 to
            everything and stores nothing: the sandbox's ``lie_on_writes``).
        forges: as ``lies``, but the answer claims a new version and a later updated-at
            (the sandbox's ``forge_versions``).
        reverts: an update is kept, and undone by the system itself before the next listing
            (an automation putting the old values back): only a later read shows it.
        read_latency: seconds each read of one record (:meth:`fetch`) takes, as an API far
            away: reads made at once overlap (``most_reads_at_once`` counts how many).

    The last seven apply to the lane's writes, not to a person's edits (:meth:`put`,
    :meth:`edit`).
    """

    def __init__(self, system: str, entity: str, config: EntityEndpointConfig | None = None,
                 *, page_size: int = 50, required: Sequence[str] = (),
                 unique: Sequence[str] = (), drops: Mapping[str, Any] | None = None,
                 forms: Mapping[str, Callable[[Any], Any]] | None = None,
                 ignores_writes: bool = False, echoes: bool = False,
                 lies: bool = False, forges: bool = False, reverts: bool = False,
                 read_latency: float = 0.0) -> None:
        self.system = system
        self.entity = entity
        self.config = config or EntityEndpointConfig.model_validate(
            {"path": f"/{entity}", "since": {"param": "since"}})
        self.page_size = page_size
        self.required = tuple(required)
        self.unique = tuple(unique)
        self.drops = dict(drops or {})
        self.forms = dict(forms or {})
        self.ignores_writes = ignores_writes
        self.echoes = echoes
        self.lies = lies
        self.forges = forges
        self.reverts = reverts
        self._undo: list[tuple[str, dict[str, Any]]] = []  # (id, values) ``reverts`` puts back
        self.read_latency = read_latency
        self._reading = 0  # reads of one record in flight
        self.most_reads_at_once = 0
        self.now = 1_000.0  # the system's clock: one second passes per write
        # The lane's clock as the connector keeps it (``RemoteRecord.read_at``): it moves
        # only when a test says the lane was held (:meth:`hold`).
        self.elapsed = 0.0
        self.records: dict[str, _Stored] = {}
        self.broken: list[BadRecord] = []  # listed on the first page of every listing
        self.unlisted: set[str] = set()  # ids a listing leaves out (as an API's filter may)
        # Every listing empty and every read "not found": a token that lost its rights, on an
        # API that hides what it may not show rather than refusing.
        self.blind = False
        self.writes: list[tuple[str, str]] = []  # (create|update|delete, id) made by the lane
        self.calls: Counter[str] = Counter()  # requests made, by operation (a page is one)
        self._last_id = 0
        self._answers: dict[str, RemoteRecord] = {}  # idempotency key -> the first answer
        self._faults: dict[str, list[_Fault]] = {}  # operation (or *) -> faults in turn
        self._before: dict[str, Callable[[], None]] = {}

    # -- what the system's people do -----------------------------------------------------
    def put(self, **data: Any) -> str:
        """A person creates a record with these fields; its id."""
        return self._insert(data).id

    def edit(self, external_id: str, **data: Any) -> None:
        """A person changes these fields of a record."""
        self._change(self._live(external_id), data)

    def remove(self, external_id: str) -> None:
        """A person deletes a record."""
        self._drop(self._live(external_id))

    def held(self, external_id: str) -> dict[str, Any] | None:
        """The fields a live record holds (``None``: it does not exist)."""
        stored = self.records.get(external_id)
        return None if stored is None or stored.deleted_at is not None else dict(stored.data)

    def live(self) -> list[dict[str, Any]]:
        """Every live record's fields, with its ``id``, in id order."""
        return [{"id": s.id, **s.data} for s in sorted(self.records.values(),
                                                        key=lambda s: int(s.id))
                if s.deleted_at is None]

    # -- what goes wrong -----------------------------------------------------------------
    def fail(self, operation: Operation | Literal["*"], failure: Failure = "down", *,
             landed: bool = False, times: int | None = 1, after: int = 0) -> None:
        """Make the next ``times`` calls of ``operation`` fail (``None``: until healed).

        ``down``: 503 (retriable); ``garbled``: an answer that is not JSON; ``refused``: 422.
        ``landed``: the operation happens and its answer is lost. ``after``: that many calls
        pass first (a listing's third page, say). Faults of one operation come in the order
        they were asked for.
        """
        self._faults.setdefault(operation, []).append(_Fault(failure, landed, times, after))

    def heal(self) -> None:
        """Every operation answers again."""
        self._faults.clear()

    def hold(self, seconds: float) -> None:
        """The lane is held ``seconds`` (the rate limit's pause, a slow process): a write
        without a precondition decided on a read from before is then too old to send
        (:data:`~daemon.connector.rest.FRESH_READ_SECONDS`), as the real connector has it."""
        self.elapsed += seconds

    def before(self, operation: Operation, action: Callable[[], None]) -> None:
        """Run ``action`` once, just before the next ``operation`` (a person's edit racing
        the lane, say)."""
        self._before[operation] = action

    # -- capabilities --------------------------------------------------------------------
    @property
    def can_look_up(self) -> bool:
        return self.config.lookup is not None

    @property
    def delete_feed(self) -> bool:
        return self.config.deletes.feed is not None

    @property
    def idempotent_creates(self) -> bool:
        return self.config.create.idempotency_header is not None

    # -- the connector's operations ------------------------------------------------------
    async def changes(self, since: float | None) -> AsyncGenerator[ChangePage, None]:
        """Pages by offset, each listed when it is asked for (as an API does): a record that
        changes during the walk moves to the end, and the records after it shift."""
        for external_id, values in self._undo:
            self._change(self.records[external_id], values)
        self._undo.clear()
        filtered = since is not None and self.config.since is not None
        tombstones = self.config.deletes.tombstone is not None
        number, start = 1, 0
        while True:
            self._enter("changes")  # each page is another request
            chosen = sorted((s for s in self.records.values()
                             if (s.deleted_at is None or tombstones) and s.id not in self.unlisted
                             and not self.blind
                             and (not filtered or s.updated >= (since or 0.0))),
                            key=lambda s: (s.updated, int(s.id)))
            records: list[RemoteRecord | BadRecord] = [*self.broken,
                                                       *(self._remote(s) for s in chosen)]
            yield ChangePage(number, f"memory://{self.system}/{self.entity}?page={number}",
                             records[start:start + self.page_size])
            if start + self.page_size >= len(records):
                return
            number, start = number + 1, start + self.page_size

    async def fetch(self, external_id: str) -> RemoteRecord | None:
        if self.read_latency > 0:
            self._reading += 1
            self.most_reads_at_once = max(self.most_reads_at_once, self._reading)
            try:
                await asyncio.sleep(self.read_latency)
            finally:
                self._reading -= 1
        fault = self._enter("fetch")
        stored = self.records.get(external_id)
        if stored is None or stored.deleted_at is not None or self.blind:
            return self._leave("fetch", None, fault)
        return self._leave("fetch", replace(self._remote(stored), read_at=self.elapsed),
                           fault)

    async def lookup(self, values: Mapping[str, Any]) -> list[RemoteRecord]:
        fault = self._enter("lookup")
        lookup = self.config.lookup
        if lookup is None:
            return []
        names = lookup.fields()
        found = [self._remote(s) for s in self.records.values() if s.deleted_at is None
                 and all(s.data.get(name) == values.get(name) for name in names)]
        return self._leave("lookup", found, fault)

    async def deletions(self, since: float | None) -> AsyncGenerator[list[Deletion], None]:
        if self.config.deletes.feed is None:
            return
        self._enter("deletions")
        yield [Deletion(s.id, s.deleted_at) for s in sorted(
            self.records.values(), key=lambda s: (s.deleted_at or 0.0, int(s.id)))
               if s.deleted_at is not None and (since is None or s.deleted_at >= since)]

    async def create(self, data: Mapping[str, Any], key: str | None = None
                     ) -> RemoteRecord | None:
        fault = self._enter("create")
        idempotent = self.idempotent_creates and key is not None
        if idempotent and key in self._answers:
            return self._leave("create", self._answers[key], fault)
        missing = [name for name in self.required if data.get(name) in (None, "")]
        if missing:
            raise self._error(Rejected, f"missing {', '.join(missing)}", 422, "POST")
        for name in self.unique:
            if data.get(name) is not None and any(
                    s.deleted_at is None and s.data.get(name) == data.get(name)
                    for s in self.records.values()):
                raise self._error(Conflict, f"{name} {data.get(name)!r} is taken", 409, "POST")
        stored = self._insert({**self._kept(data), **self.drops})
        self.writes.append(("create", stored.id))
        answer = self._answer(stored, data)
        if idempotent and key is not None:
            self._answers[key] = answer
        return self._leave("create", answer, fault)

    async def update(self, external_id: str, data: Mapping[str, Any],
                     precondition: Precondition | None, *, read_at: float | None = None,
                     read_id: str | None = None) -> RemoteRecord | None:
        fault = self._enter("update")
        if (self.config.conditional != "etag" and read_at is not None
                and self.elapsed - read_at > FRESH_READ_SECONDS):
            raise ReadTooOld("not sent: the read is too old by now", method="PATCH",
                             url=f"memory://{self.system}/{self.entity}/{external_id}")
        stored = self.records.get(external_id)
        if stored is None or stored.deleted_at is not None:
            raise self._error(NotFound, "no such record", 404, "PATCH", external_id)
        self._check(stored, precondition, "PATCH")
        self.writes.append(("update", external_id))
        if self.lies or self.forges:
            told = self._remote(stored)
            if self.forges:  # a version and a time made up for the answer, none stored
                made_up = {"version": stored.version + 1, "updated_at": self.now + 1.0}
                told = replace(told, data={**told.data, **made_up},
                               version=str(made_up["version"]), updated=made_up["updated_at"])
            answer = replace(told, data={**told.data, **data})
        else:
            if self.reverts:
                self._undo.append((external_id, {n: stored.data.get(n) for n in data}))
            self._change(stored, {} if self.ignores_writes else self._kept(data))
            answer = self._answer(stored, data)
        if self.config.update.answer != "record":
            answer = self._remote(stored)  # no record in the answer: the connector reads it
        return self._leave("update", answer, fault)

    async def delete(self, external_id: str, precondition: Precondition | None) -> None:
        fault = self._enter("delete")
        stored = self.records.get(external_id)
        if stored is not None and stored.deleted_at is None:
            self._check(stored, precondition, "DELETE")
            self._drop(stored)
            self.writes.append(("delete", external_id))
        self._leave("delete", None, fault)

    # -- inside --------------------------------------------------------------------------
    def _kept(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """What the system keeps of a write's ``data``."""
        return {name: self.forms[name](value) if name in self.forms else value
                for name, value in data.items() if name not in self.drops}

    def _answer(self, stored: _Stored, sent: Mapping[str, Any]) -> RemoteRecord:
        answer = self._remote(stored)
        if self.echoes:
            answer = replace(answer, data={**answer.data, **sent})
        return answer

    def _insert(self, data: dict[str, Any]) -> _Stored:
        self._last_id += 1
        self.now += 1.0
        stored = _Stored(str(self._last_id), dict(data), 1, self.now)
        self.records[stored.id] = stored
        return stored

    def _change(self, stored: _Stored, data: Mapping[str, Any]) -> None:
        self.now += 1.0
        stored.data.update(data)
        stored.version += 1
        stored.updated = self.now

    def _drop(self, stored: _Stored) -> None:
        self.now += 1.0
        stored.deleted_at = stored.updated = self.now
        stored.version += 1

    def _live(self, external_id: str) -> _Stored:
        stored = self.records.get(external_id)
        if stored is None or stored.deleted_at is not None:
            raise KeyError(f"{self.system} {self.entity} has no record {external_id}")
        return stored

    def _remote(self, stored: _Stored) -> RemoteRecord:
        data = {**stored.data, "id": stored.id, "updated_at": stored.updated,
                "version": stored.version}
        tombstone = self.config.deletes.tombstone
        if tombstone is not None:
            data[tombstone] = stored.deleted_at is not None
        conditional = self.config.conditional == "etag"
        return RemoteRecord(stored.id, data, stored.updated, str(stored.version),
                            Precondition(etag=f'"{stored.version}"') if conditional else None,
                            deleted=stored.deleted_at is not None)

    def _check(self, stored: _Stored, precondition: Precondition | None, method: str) -> None:
        if (self.config.conditional == "etag" and precondition is not None
                and precondition.etag != f'"{stored.version}"'):
            raise self._error(PreconditionFailed, "the record changed", 412, method, stored.id)

    def _enter(self, operation: Operation) -> _Fault | None:
        """Before an operation: a racing action, or a fault that stops it happening.

        Returns the fault that will lose the operation's answer, if one will.
        """
        self.calls[operation] += 1
        action = self._before.pop(operation, None)
        if action is not None:
            action()
        fault = self._fault(operation)
        if fault is None:
            return None
        if fault.after > 0:
            fault.after -= 1
            return None
        self._spend(operation)
        if not fault.landed:
            raise self._failure(fault.failure, operation)
        return fault

    def _leave(self, operation: Operation, answer: T, fault: _Fault | None) -> T:
        """After an operation happened: its answer, or the fault that loses it."""
        if fault is not None:
            raise self._failure(fault.failure, operation)
        return answer

    def _fault(self, operation: Operation) -> _Fault | None:
        faults = self._faults.get(operation) or self._faults.get("*")
        return faults[0] if faults else None

    def _spend(self, operation: Operation) -> None:
        name = operation if self._faults.get(operation) else "*"
        faults = self._faults[name]
        if faults[0].times is not None:
            faults[0].times -= 1
            if faults[0].times <= 0:
                faults.pop(0)

    def _failure(self, failure: Failure, operation: Operation) -> HttpError:
        method = _METHOD[operation]
        if failure == "down":
            return self._error(Unavailable, "service unavailable", 503, method)
        if failure == "garbled":
            return self._error(MalformedResponse, "expected JSON, got an HTML page", 200,
                               method)
        return self._error(Rejected, "refused", 422, method)

    def _error(self, kind: type[HttpError], reason: str, status: int, method: str,
               external_id: str = "") -> HttpError:
        return kind(reason, method=method, url=f"memory://{self.system}/{self.entity}/"
                    f"{external_id}", status=status)


@dataclass
class JournalHead:
    """Where a lane is (the fields of :class:`streams.lanelog.LaneHead`)."""

    seq: int = 0
    cursor: float | None = None
    deletes_cursor: float | None = None
    intents_offset: int | None = None
    swept_at: float | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """One intent in the journal's intents."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass
class _Committed:
    """What survives a restart: the intents, and everything committed."""

    intents: list[Delivery] = field(default_factory=list)
    head: JournalHead = field(default_factory=JournalHead)
    index: dict[str, str] = field(default_factory=dict)
    parked: dict[str, bytes] = field(default_factory=dict)
    creating: dict[str, bytes] = field(default_factory=dict)
    ran: dict[str, bytes] = field(default_factory=dict)
    observations: list[Event] = field(default_factory=list)
    dead_letters: list[tuple[str, DeadLetter]] = field(default_factory=list)
    commits: int = 0
    start: int = 0  # the first intent still held (the ones below it expired)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)


class MemoryJournal:
    """A lane's journal in memory (see the module's docstring).

    ``observations`` and ``dead_letters`` are what was committed, in order; what a lane
    reported and did not commit is nowhere, as with Kafka's ``read_committed``.
    """

    def __init__(self, system: str, entity: str, *, _committed: _Committed | None = None
                 ) -> None:
        self.system = system
        self.entity = entity
        self.name = f"{system}/{entity}"
        self._log = _committed or _Committed()
        self.head = replace(self._log.head)
        self.index: dict[str, str] = dict(self._log.index)
        self.parked: dict[str, bytes] = dict(self._log.parked)
        self.creating: dict[str, bytes] = dict(self._log.creating)
        self.ran: dict[str, bytes] = dict(self._log.ran)
        self.resumed_below = len(self._log.intents)
        self._position = self.head.intents_offset or 0
        self.fail_commits = False  # the broker refuses: every commit raises, nothing lands
        # Commits that still land before the process dies (``None``: it does not): each one
        # after that raises, as every commit would after a kill -9.
        self.commits_left: int | None = None
        # Fetches of intents that come back empty although intents wait (a broker handing a
        # partition out late after a restart).
        self.empty_fetches = 0

    @property
    def observations(self) -> list[Event]:
        return self._log.observations

    @property
    def dead_letters(self) -> list[tuple[str, DeadLetter]]:
        """``(key, letter)`` of every dead letter committed."""
        return self._log.dead_letters

    @property
    def commits(self) -> int:
        return self._log.commits

    def restart(self) -> MemoryJournal:
        """The journal as a new process starting this lane finds it: only what committed."""
        return MemoryJournal(self.system, self.entity, _committed=self._log)

    def send(self, *intents: WriteIntent) -> None:
        """Add intents for the lane (as the merge stage does)."""
        for intent in intents:
            self.send_raw(codec.encode(intent), key=intent.key().encode())

    def expire_intents(self, below: int) -> None:
        """The ``intents`` retention passes: the intents below offset ``below`` are gone."""
        self._log.start = max(self._log.start, below)

    def send_raw(self, value: bytes | None, key: bytes | None = None) -> None:
        """Add bytes to the intents, whatever they hold."""
        self._log.intents.append(Delivery("intents", 0, len(self._log.intents), key, value))
        self._log.arrived.set()

    # -- the journal protocol ------------------------------------------------------------
    async def intents(self, timeout_ms: int, max_records: int = 50) -> list[Delivery]:
        if self.empty_fetches > 0:
            self.empty_fetches -= 1
            return []
        # A position below the first intent held starts at it (auto_offset_reset=earliest).
        self._position = max(self._position, self._log.start)
        if self._position >= len(self._log.intents) and timeout_ms > 0:
            self._log.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._log.arrived.wait(), timeout_ms / 1000)
        found = self._log.intents[self._position:self._position + max_records]
        self._position += len(found)
        return found

    async def intents_start(self) -> int:
        return self._log.start

    def rewind_intents(self, offset: int) -> None:
        self._position = offset

    def next_seq(self) -> int:
        self.head.seq += 1
        return self.head.seq

    async def commit(self, observations: Sequence[Event], *,
                     index: dict[str, str | None] | None = None,
                     dead_letters: Sequence[DeadLetter] = (),
                     dead_letter_keys: Sequence[str] = (),
                     parked: dict[str, bytes | None] | None = None,
                     creating: dict[str, bytes | None] | None = None,
                     ran: dict[str, bytes | None] | None = None) -> None:
        if self.commits_left is not None:
            if self.commits_left <= 0:
                self.fail_commits = True
            self.commits_left -= 1
        if self.fail_commits:
            raise StreamsError(f"commit lane {self.name}: the broker is not answering")
        log = self._log
        log.observations.extend(observations)
        for i, letter in enumerate(dead_letters):
            key = dead_letter_keys[i] if i < len(dead_letter_keys) else self.name
            log.dead_letters.append((key, letter))
        for index_map in (log.index, self.index):
            apply_changes(index_map, index)
        for target in (log.parked, self.parked):
            apply_changes(target, parked)
        for target in (log.creating, self.creating):
            apply_changes(target, creating)
        for target in (log.ran, self.ran):
            apply_changes(target, ran)
        log.head = replace(self.head)
        log.commits += 1
