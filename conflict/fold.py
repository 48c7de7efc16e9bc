"""The fold: one record state plus one input gives the next state and what must happen next.

``fold(spec, state, input) -> Step`` is pure and total over valid inputs: it never mutates
``state``, reads no clock, draws no randomness, and raises an :class:`~conflict.errors.InputError`
(leaving nothing changed) for an input it rejects. The algorithm (docs/ARCHITECTURE.md, "The
merge"):

* a read from system S is filtered against S's shadow (the hub's own writes coming back are
  not edits), the edited fields get one new dot ``(S, n)``, and each is a fast-forward when S
  had seen the write it replaces, or a conflict decided by the field's policy when not;
* a write's outcome updates the shadow and knowledge of the written system (or leaves it
  behind when the write was stale or failed);
* a person's resolution is a write by the actor ``review``;
* after every input, each system whose copy differs from the canonical record, and that has
  no write in flight for it, gets a :class:`~conflict.state.WriteIntent` with exactly the
  differing fields.

Observations carry their lane's sequence number; one that is not newer than the last applied
for that record and system is a replay and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from conflict.clock import Dot, VClock
from conflict.errors import (
    FieldTypeError,
    InputError,
    LinkMismatch,
    UnknownConflict,
    UnknownField,
    UnknownIntent,
    UnknownSystem,
)
from conflict.inputs import Input, Observed, Resolve, WriteFailed, WriteStale, Written
from conflict.policy import agreeing, decide
from conflict.spec import MERGE, REVIEW, DeletePolicy, EntitySpec, Owner
from conflict.state import (
    DELETE_FIELD,
    Candidate,
    Change,
    ConflictRecord,
    ConflictStatus,
    Decision,
    FieldState,
    HistoryEntry,
    Json,
    PeerState,
    RecordState,
    ReplacedCopy,
    ResolutionInfo,
    Tombstone,
    WriteIntent,
    WriteOp,
    intent_number,
)
from conflict.values import same

_NO_VALUES: Mapping[str, Json] = {}
_UNKNOWN = object()


class Step(NamedTuple):
    """The result of folding one input."""

    state: RecordState
    intents: tuple[WriteIntent, ...] = ()
    conflicts: tuple[ConflictRecord, ...] = ()  # conflict records created or changed
    changed: tuple[str, ...] = ()  # canonical fields that changed (DELETE_FIELD: deletion)
    new_dots: tuple[Dot, ...] = ()  # dots accepted by this input
    applied: bool = True  # False when the input was a replay or changed nothing at all

    @property
    def record_changed(self) -> bool:
        """Whether the canonical record (values or deletion) changed."""
        return bool(self.changed)


def fold(spec: EntitySpec, state: RecordState, inp: Input) -> Step:
    """Apply one input to one record's state."""
    apply = _APPLY.get(type(inp))
    if apply is None:
        raise InputError(f"not an input of the fold: {type(inp).__name__}")
    return apply(_Fold(spec, state), inp)


class _Fold:
    """The working copy of one record while one input is applied."""

    __slots__ = ("changed", "clock", "conflicts", "deleted", "fields", "history", "intents",
                 "merge_dot", "new_conflicts", "new_dots", "peers", "spec", "state")

    def __init__(self, spec: EntitySpec, state: RecordState) -> None:
        if state.entity != spec.name:
            raise InputError(f"record {state.canonical_id} is a {state.entity!r}, "
                             f"not a {spec.name!r}")
        self.spec = spec
        self.state = state
        self.clock = state.clock
        self.fields: dict[str, FieldState] | None = None  # copied on first write
        self.peers = dict(state.peers)
        self.deleted = state.deleted
        # Most inputs add nothing to these: tuples, grown by concatenation, cost no allocation
        # until something is added (the fold runs for every input, so allocations count).
        self.conflicts = state.conflicts
        self.history: tuple[HistoryEntry, ...] = ()
        self.intents: tuple[WriteIntent, ...] = ()
        self.new_conflicts: dict[str, ConflictRecord] | None = None
        self.changed: tuple[str, ...] = ()
        self.new_dots: tuple[Dot, ...] = ()
        self.merge_dot: Dot | None = None

    # -- entry points --------------------------------------------------------------------
    def observed(self, obs: Observed) -> Step:
        system = obs.system
        self._check_system(system)
        peer = self.peers.get(system)
        if peer is not None and obs.seq <= peer.last_seq:
            return self._noop()
        peer = peer.copy() if peer is not None else PeerState()
        old = peer.replaced
        if obs.deleted and obs.external_id is not None and peer.external_id is not None and \
                obs.external_id != peer.external_id and (old is None or
                                                         obs.external_id != old.external_id):
            # Another copy than the linked one, seen deleted: one the hub deleted itself (or
            # replaced and already folded). Nothing to fold but the sequence number.
            peer.last_seq = obs.seq
            self.peers[system] = peer
            return self._step()
        if obs.deleted and old is not None and obs.external_id == old.external_id:
            # The delete of the copy a create of the hub replaced: this system's user deleted
            # the record, as of what that copy held.
            peer.last_seq = obs.seq
            peer.replaced = None
            self.peers[system] = peer
            ghost = PeerState(old.external_id, True, old.knowledge, old.shadow)
            self._read_delete(system, ghost, obs.source_ts)
            peer.knowledge = peer.knowledge.join(ghost.knowledge)
            self._plan(system, retry_stalled=True)
            return self._step()
        if obs.external_id != peer.external_id:
            self._link(peer, system, obs.external_id)
        peer.last_seq = obs.seq
        if obs.native_version is not None:
            peer.native_version = obs.native_version
        self.peers[system] = peer
        if obs.deleted:
            touched = self._read_delete(system, peer, obs.source_ts)
        else:
            touched = self._read(system, peer, obs.fields, obs.source_ts)
        self._plan(system if touched else None, retry_stalled=True)
        return self._step()

    def written(self, w: Written) -> Step:
        system = w.system
        self._check_system(system)
        peer = self._outcome_peer(system, w.seq, w.intent_id)
        if peer is None:
            return self._noop()
        intent = peer.in_flight
        assert intent is not None
        peer.in_flight = None
        peer.failures = 0
        known_before = peer.knowledge
        peer.knowledge = peer.knowledge.join(intent.clock)
        if w.native_version is not None:
            peer.native_version = w.native_version
        if intent.op is WriteOp.DELETE:
            peer.exists = False
            peer.shadow = {}
        else:
            if intent.op is WriteOp.CREATE:
                new_id = w.external_id or peer.external_id
                if not peer.exists and new_id is not None and new_id == peer.external_id and \
                        not intent.clock.dominates(peer.knowledge):
                    # The copy this create made, which a read since its plan showed deleted
                    # (and the delete took its dot then): the outcome of a re-run the API
                    # answered with that copy. It landed and is gone; bringing it back in the
                    # shadow would make the next read take the same delete a second time.
                    self.peers[system] = peer
                    self._plan(system, retry_stalled=True)
                    return self._step()
                # The hub's own create is authoritative for the link: if the copy it knew was
                # deleted meanwhile (the lane's lookup found nothing), the new one replaces it.
                if peer.exists and peer.external_id is not None and new_id != peer.external_id:
                    peer.replaced = ReplacedCopy(peer.external_id, known_before, peer.shadow)
                    peer.shadow = {}
                peer.external_id = new_id
            else:
                self._link(peer, system, w.external_id or intent.external_id)
            peer.exists = True
            peer.shadow = {**peer.shadow, **intent.values}
            if w.not_taken or peer.not_kept:
                _not_kept(peer, intent.values, w.not_taken)
        self.peers[system] = peer
        if w.fields is not None and intent.op is not WriteOp.DELETE:
            self._read(system, peer, w.fields, w.source_ts)
        self._plan(system, retry_stalled=True)
        return self._step()

    def not_written(self, outcome: WriteStale | WriteFailed) -> Step:
        system = outcome.system
        self._check_system(system)
        peer = self._outcome_peer(system, outcome.seq, outcome.intent_id)
        if peer is None:
            return self._noop()
        if isinstance(outcome, WriteFailed) and peer.in_flight is not None and \
                peer.in_flight.op is not WriteOp.DELETE:
            landed = dict(peer.landed)
            for name, value in peer.in_flight.values.items():
                landed[name] = (*landed.get(name, ()), value)
            peer.landed = landed
        peer.in_flight = None
        peer.failures += 1
        self.peers[system] = peer
        self._plan(system, retry_stalled=False)
        return self._step()

    def resolve(self, r: Resolve) -> Step:
        conflict = self.state.conflict(r.conflict_id)
        if conflict is None:
            if self._pruned(r.conflict_id):
                return self._noop()  # a replay: the conflict was closed and since dropped
            raise UnknownConflict(f"record {self.state.canonical_id} has no conflict "
                                  f"{r.conflict_id!r}")
        if conflict.resolution is not None and conflict.resolution.resolution_id == \
                r.resolution_id:
            return self._noop()
        value, delete = self._chosen(conflict, r)
        if conflict.status is not ConflictStatus.OPEN:
            # Decided already: by its policy, by a person, or by a later write that saw the
            # canonical value (superseded). A late decision must not undo what came after.
            return self._noop()
        cid = conflict.conflict_id
        self.clock, dot = self.clock.increment(REVIEW)  # the decision is a write of its own
        self.new_dots += (dot,)
        if conflict.field != DELETE_FIELD:
            self._set(conflict.field, value, dot, r.at, Change.RESOLVED, cid)
        elif delete:
            self._delete(dot, r.at, cid)
        # Keeping the record after a delete conflict changes no field: an open delete
        # conflict keeps the record alive, with every field as later edits left it.
        info = ResolutionInfo(r.resolution_id, r.by, r.at, value, delete, r.note)
        self._replace_conflict(conflict.with_status(
            ConflictStatus.RESOLVED, decision=Decision.CHOSEN, value=value, deleted=delete,
            resolution=info))
        self._plan(None, retry_stalled=True, everyone=True)
        return self._step()

    def _pruned(self, conflict_id: str) -> bool:
        """Whether ``conflict_id`` names a conflict this record could have had (and dropped).

        A conflict id ends with the dot of its incoming write; the record's clock covers every
        dot it accepted, so an id whose dot it covers was one of its conflicts, since pruned.
        """
        prefix, _, dot_text = conflict_id.rpartition("/")
        if not prefix.startswith(f"{self.state.canonical_id}/"):
            return False
        try:
            return self.clock.covers(Dot.parse(dot_text))
        except ValueError:
            return False

    # -- checks --------------------------------------------------------------------------
    def _check_system(self, system: str) -> None:
        if system not in self.spec.rank or system in (REVIEW, MERGE):
            raise UnknownSystem(f"entity {self.spec.name!r} has no system {system!r} "
                                f"(systems: {', '.join(self.spec.systems)})")

    def _check_field(self, system: str, name: str, value: Json) -> None:
        check = self.spec.checks[system].get(name, _UNKNOWN)
        if check is _UNKNOWN:
            raise UnknownField(f"entity {self.spec.name!r}: system {system!r} has no "
                               f"field {name!r}")
        if check is not None and value is not None and not check(value):  # type: ignore[operator]
            raise FieldTypeError(
                f"entity {self.spec.name!r}, field {name!r} from {system!r}: expected "
                f"{self.spec.fields[name].type.value}, got {type(value).__name__} "
                f"{value!r:.80}")

    def _check_value(self, name: str, value: Json) -> None:
        spec = self.spec.fields.get(name)
        if spec is None:
            raise UnknownField(f"entity {self.spec.name!r} has no field {name!r}")
        if not spec.accepts(value):
            raise FieldTypeError(f"entity {self.spec.name!r}, field {name!r}: expected "
                                 f"{spec.type.value}, got {type(value).__name__}")

    def _link(self, peer: PeerState, system: str, external_id: str | None) -> None:
        if external_id is None:
            return
        if peer.external_id is not None and peer.external_id != external_id and peer.exists:
            raise LinkMismatch(
                f"record {self.state.canonical_id} is linked to {system} "
                f"{peer.external_id!r}; {system} reported it again as {external_id!r}")
        peer.external_id = external_id

    def _outcome_peer(self, system: str, seq: int, intent_id: str) -> PeerState | None:
        """This fold's copy of the peer an outcome is for; None when it changes nothing."""
        current = self.peers.get(system)
        if current is None:
            raise UnknownIntent(f"record {self.state.canonical_id}: no write {intent_id!r} "
                                f"was issued to {system}")
        if seq <= current.last_seq:
            return None
        flight = current.in_flight
        if flight is None or flight.intent_id != intent_id:
            number = intent_number(intent_id)
            if not intent_id.startswith(f"{self.state.canonical_id}/{system}#") or \
                    not 0 < number <= current.intents_issued:
                raise UnknownIntent(f"record {self.state.canonical_id}: no write "
                                    f"{intent_id!r} was issued to {system}")
            return None  # an outcome already settled, seen again after a lane restart
        peer = current.copy()
        peer.last_seq = seq
        return peer

    # -- reads ---------------------------------------------------------------------------
    def _read(self, system: str, peer: PeerState, reported: Mapping[str, Json],
              source_ts: float) -> bool:
        """Fold the fields ``system`` reported; ``peer`` is already this fold's copy.

        Returns whether the peer's copy, as the hub knows it, changed at all.
        """
        shadow = peer.shadow if peer.exists else _NO_VALUES
        flight = peer.in_flight
        pending = flight.values if flight is not None and flight.op is not WriteOp.DELETE \
            else _NO_VALUES
        if pending and not _may_land(flight, shadow):  # type: ignore[arg-type]
            # A read since the write was planned showed the copy holding what the write did
            # not expect: the lane finds it stale and writes nothing, so a read showing the
            # write's values is a person's edit (a revert to them), not the write's echo.
            pending = _NO_VALUES
        landed = peer.landed
        edits: list[tuple[str, Json]] = []
        news = False  # anything the shadow did not hold yet (edits, or our own write)
        for name, value in reported.items():
            held = shadow.get(name, _UNKNOWN)
            if held is value or same(held, value):
                continue
            news = True
            if name in pending and same(pending[name], value):
                continue  # our own write, seen before its outcome was observed
            if name in landed and any(same(v, value) for v in landed[name]):
                continue  # our own write that was reported failed, yet landed
            # Values equal to the shadow were checked when they first arrived.
            self._check_field(system, name, value)
            edits.append((name, value))
        if landed:  # this read settles whether those writes landed
            peer.landed = {k: v for k, v in landed.items() if k not in reported}
        if not news and peer.exists:
            return False
        peer.shadow = {**shadow, **reported}
        peer.exists = True
        if not edits:
            return True
        edits.sort()
        self.clock, dot = self.clock.increment(system)
        self.new_dots += (dot,)
        knowledge = peer.knowledge
        peer.knowledge = knowledge.add(dot)
        if self.deleted is not None and not self._update_beats_delete(
                system, knowledge, edits, dot, source_ts):
            return True
        for name, value in edits:
            self._edit(system, knowledge, name, value, dot, source_ts)
        return True

    def _edit(self, system: str, knowledge: VClock, name: str, value: Json, dot: Dot,
              source_ts: float) -> None:
        fields = self.fields if self.fields is not None else self.state.fields
        current = fields.get(name)
        if current is None:
            self._set(name, value, dot, source_ts, Change.FIRST)
            return
        policy = self.spec.policy_for(name)
        if knowledge.covers(current.dot):
            if isinstance(policy, Owner) and system != policy.system and \
                    not same(current.value, value):
                # Only the owner may change the field: the edit is reverted, but recorded.
                self._record_conflict(name, _candidate(current),
                                      Candidate(value, system, dot, source_ts), policy.name,
                                      Decision.CURRENT, current.value, ConflictStatus.AUTO_RESOLVED)
                return
            if self.conflicts:
                self._supersede_open(name, dot)
            # An edit that had seen the current value replaces it, even with an equal value:
            # it is the field's newest edit (its dot, its time) for whatever comes next.
            self._set(name, value, dot, source_ts, Change.EDIT)
            return
        incoming = Candidate(value, system, dot, source_ts)
        if same(current.value, value):
            # Two concurrent edits that agree: nothing to decide, but the field remembers the
            # one its policy would pick, so a later conflict is decided against that one
            # (docs/DECISIONS.md, "An edit equal to the canonical value").
            if agreeing(self.spec, policy, _candidate(current), incoming) is incoming:
                self._set(name, value, dot, source_ts, Change.EDIT)
            return
        decision, decided = decide(self.spec, policy, name, _candidate(current), incoming)
        status = ConflictStatus.OPEN if decision is Decision.OPEN else \
            ConflictStatus.AUTO_RESOLVED
        self._supersede_open(name, dot)
        cid = self._record_conflict(name, _candidate(current), incoming, policy.name, decision,
                                    decided, status)
        if decision is Decision.INCOMING:
            self._set(name, value, dot, source_ts, Change.CONFLICT_WON, cid)
        elif decision is Decision.MERGED:
            # Neither side has seen the merged value, the incoming one included: it gets a
            # dot of its own (one per input), which no system's knowledge covers yet.
            if self.merge_dot is None:
                self.clock, self.merge_dot = self.clock.increment(MERGE)
                self.new_dots += (self.merge_dot,)
            self._set(name, decided, self.merge_dot, max(source_ts, current.source_ts),
                      Change.MERGED, cid)

    def _update_beats_delete(self, system: str, knowledge: VClock,
                             edits: list[tuple[str, Json]], dot: Dot, source_ts: float) -> bool:
        """An update read while the record is deleted: whether the record comes back."""
        tomb = self.deleted
        assert tomb is not None
        if knowledge.covers(tomb.dot):
            self._restore(dot, source_ts, None)  # made again after the delete was seen
            return True
        deleted = Candidate(None, tomb.dot.actor, tomb.dot, tomb.source_ts, deleted=True)
        update = Candidate(dict(edits), system, dot, source_ts)
        policy = self.spec.delete_policy
        if policy is DeletePolicy.DELETE_WINS:
            self._record_conflict(DELETE_FIELD, deleted, update, policy.value, Decision.CURRENT,
                                  None, ConflictStatus.AUTO_RESOLVED, deleted=True)
            return False
        status = ConflictStatus.AUTO_RESOLVED if policy is DeletePolicy.UPDATE_WINS else \
            ConflictStatus.OPEN
        decision = Decision.INCOMING if status is ConflictStatus.AUTO_RESOLVED else Decision.OPEN
        cid = self._record_conflict(DELETE_FIELD, deleted, update, policy.value, decision,
                                    dict(edits), status, deleted=False)
        self._restore(dot, source_ts, cid)
        return True

    def _read_delete(self, system: str, peer: PeerState, source_ts: float) -> bool:
        """Fold a delete seen in ``system``; returns whether the peer's copy changed."""
        was_live = peer.exists
        held = peer.shadow
        peer.exists = False
        peer.shadow = {}
        if not was_live:
            return False  # the delete of a copy already gone (or never seen)
        flight = peer.in_flight
        if flight is not None and flight.op is WriteOp.DELETE and same(dict(held),
                                                                        dict(flight.expected)):
            # Our own delete, seen before its outcome (a lane that crashed after deleting):
            # the copy now reflects what the delete was planned on. (Had a read shown the
            # copy changed since, the lane would find the delete stale: a person deleted.)
            peer.knowledge = peer.knowledge.join(flight.clock)
            return True
        if self.deleted is not None:
            return True  # our own delete, or the same delete made twice: nothing new
        knowledge = peer.knowledge
        self.clock, dot = self.clock.increment(system)
        self.new_dots += (dot,)
        peer.knowledge = knowledge.add(dot)
        fields = self.fields if self.fields is not None else self.state.fields
        # Updates the deleting system had not seen: concurrent with the delete. Not "seen"
        # because the copy last held an equal value: that value may be older than the update
        # (1 -> true -> 1 while the copy kept the first 1, then changed unread before the
        # delete), and a delete that had not seen it must meet it as a conflict.
        unseen = {name: fs for name, fs in fields.items() if not knowledge.covers(fs.dot)}
        if not unseen:
            self._delete(dot, source_ts, None)
            return True
        newest = max(unseen.values(), key=lambda fs: (fs.source_ts, fs.dot))
        update = Candidate({n: fs.value for n, fs in sorted(unseen.items())},
                           newest.dot.actor, newest.dot, newest.source_ts)
        deleting = Candidate(None, system, dot, source_ts, deleted=True)
        policy = self.spec.delete_policy
        if policy is DeletePolicy.DELETE_WINS:
            cid = self._record_conflict(DELETE_FIELD, update, deleting, policy.value,
                                        Decision.INCOMING, None, ConflictStatus.AUTO_RESOLVED,
                                        deleted=True)
            self._delete(dot, source_ts, cid)
        elif policy is DeletePolicy.UPDATE_WINS:
            self._record_conflict(DELETE_FIELD, update, deleting, policy.value, Decision.CURRENT,
                                  update.value, ConflictStatus.AUTO_RESOLVED, deleted=False)
        else:
            self._record_conflict(DELETE_FIELD, update, deleting, policy.value, Decision.OPEN,
                                  update.value, ConflictStatus.OPEN, deleted=False)
        return True

    def _chosen(self, conflict: ConflictRecord, r: Resolve) -> tuple[Json, bool]:
        """The value (and whether it is a delete) that a resolution chose."""
        is_delete_conflict = conflict.field == DELETE_FIELD
        if r.delete:
            if not is_delete_conflict:
                raise InputError(f"conflict {conflict.conflict_id!r} is about field "
                                 f"{conflict.field!r}; only a delete conflict can be resolved "
                                 "by deleting")
            return None, True
        if r.take is not None:
            for candidate in (conflict.incoming, conflict.current):
                if candidate.system == r.take:
                    return candidate.value, candidate.deleted
            raise InputError(f"conflict {conflict.conflict_id!r} has no candidate from "
                             f"{r.take!r} (candidates: {conflict.current.system}, "
                             f"{conflict.incoming.system})")
        if is_delete_conflict:
            if not isinstance(r.value, Mapping):
                raise InputError(f"conflict {conflict.conflict_id!r}: to keep the record give "
                                 "a mapping of field values, or take a candidate")
            for name, value in r.value.items():
                self._check_value(name, value)
        else:
            self._check_value(conflict.field, r.value)
        return r.value, False

    # -- state changes -------------------------------------------------------------------
    def _set(self, name: str, value: Json, dot: Dot, source_ts: float, change: Change,
             conflict_id: str | None = None) -> None:
        if self.fields is None:
            self.fields = dict(self.state.fields)
        self.fields[name] = FieldState(value, dot, source_ts)
        self.history += (HistoryEntry(name, value, dot, source_ts, change, conflict_id),)
        if name not in self.changed:
            self.changed += (name,)

    def _delete(self, dot: Dot, source_ts: float, conflict_id: str | None) -> None:
        # A delete conflict still open is decided by this delete: resolving it later must
        # not bring back, or keep, what this delete removed.
        self._supersede_open(DELETE_FIELD, dot)
        self.deleted = Tombstone(dot, source_ts)
        self.history += (HistoryEntry(DELETE_FIELD, True, dot, source_ts, Change.DELETED,
                                      conflict_id),)
        if DELETE_FIELD not in self.changed:
            self.changed += (DELETE_FIELD,)

    def _restore(self, dot: Dot, source_ts: float, conflict_id: str | None) -> None:
        if self.deleted is None:
            return
        self.deleted = None
        self.history += (HistoryEntry(DELETE_FIELD, False, dot, source_ts, Change.RESTORED,
                                      conflict_id),)
        if DELETE_FIELD not in self.changed:
            self.changed += (DELETE_FIELD,)

    def _record_conflict(self, name: str, current: Candidate, incoming: Candidate,
                         policy: str, decision: Decision, value: Json,
                         status: ConflictStatus, *, deleted: bool = False) -> str:
        cid = f"{self.state.canonical_id}/{name}/{incoming.dot}"
        record = ConflictRecord(cid, self.state.canonical_id, self.spec.name, name, current,
                                incoming, policy, decision, value, deleted, status)
        self.conflicts += (record,)
        self._note_conflict(record)
        return cid

    def _replace_conflict(self, record: ConflictRecord) -> None:
        self.conflicts = tuple(record if c.conflict_id == record.conflict_id else c
                               for c in self.conflicts)
        self._note_conflict(record)

    def _note_conflict(self, record: ConflictRecord) -> None:
        if self.new_conflicts is None:
            self.new_conflicts = {}
        self.new_conflicts[record.conflict_id] = record

    def _supersede_open(self, name: str, dot: Dot) -> None:
        """Close the open conflict on ``name``: a later write replaced its value."""
        for c in self.conflicts:
            if c.field == name and c.status is ConflictStatus.OPEN:
                self._replace_conflict(c.with_status(ConflictStatus.SUPERSEDED,
                                                     superseded_by=dot))

    # -- planning ------------------------------------------------------------------------
    def _plan(self, changed_peer: str | None, *, retry_stalled: bool,
              everyone: bool = False) -> None:
        """Give every system that is behind, with no write in flight, one intent.

        After every fold, each system is in step, has a write in flight, or has spent its
        write budget (stalled). So only the peer this input touched (and, on
        ``retry_stalled``, the stalled ones) can be behind on any field; every other peer can
        only be behind on the canonical fields this input changed.
        """
        spec = self.spec
        peers = self.peers
        changed = self.changed
        attempts = spec.max_write_attempts
        if not (changed or everyone) and changed_peer is None:
            # Most inputs (echoes, outcomes of writes) change no canonical field: then only a
            # stalled peer can be behind.
            if not retry_stalled:
                return
            for some in peers.values():
                if some.failures >= attempts:
                    break
            else:
                return
        fields = self.fields if self.fields is not None else self.state.fields
        for system in spec.systems:
            peer = peers.get(system)
            stalled = peer is not None and peer.failures >= attempts
            touched = everyone or system == changed_peer or (retry_stalled and stalled)
            if not (touched or changed):
                continue
            if peer is not None and peer.in_flight is not None:
                continue
            if stalled and not retry_stalled:
                continue
            op: WriteOp
            values: dict[str, Json]
            expected: dict[str, Json]
            if self.deleted is not None:
                if peer is None or not peer.exists:
                    if peer is not None and peer.external_id is not None and not peer.landed:
                        self._caught_up(system, peer)  # its copy is gone, as it should be
                    # A system with no known copy has seen nothing: it may hold one the hub
                    # has not read yet (or one a create reported failed made all the same),
                    # and an edit there is concurrent with the delete.
                    continue
                # What the hub believes the copy holds: a lane that finds anything else
                # (an edit the hub has not seen) reports the delete stale, deletes nothing.
                op, values = WriteOp.DELETE, {}
                expected = dict(peer.shadow)
            elif peer is None or not peer.exists:
                writes = spec.system_writes[system]
                values = {n: fields[n].value for n in spec.system_fields[system]
                          if n in fields and n in writes}
                if not values:
                    continue
                op, expected = WriteOp.CREATE, {}
            else:
                shadow = peer.shadow
                knowledge = peer.knowledge
                values = {}
                carried = spec.system_writes[system]
                for n in spec.system_fields[system] if touched else changed:
                    if n not in carried:
                        continue
                    fs = fields.get(n)
                    if fs is None:
                        continue
                    held = shadow.get(n, _UNKNOWN)
                    value = fs.value
                    if held is value or same(held, value):
                        if not knowledge.covers(fs.dot):
                            # An equal value the copy held before this edit was made (1 ->
                            # true -> 1 at the hub): the copy has not been seen to hold it
                            # since, so the lane checks it (done, or stale and read).
                            values[n] = value
                        continue
                    kept = peer.not_kept.get(n)
                    if kept is not None and same(kept[0], value):
                        continue  # the system does not keep this value: not again
                    values[n] = value
                if not values:
                    self._caught_up(system, peer)
                    continue
                op = WriteOp.UPDATE
                expected = dict(zip(values, map(shadow.get, values), strict=True))
            self._issue(system, peer, op, values, expected)

    def _caught_up(self, system: str, peer: PeerState | None) -> None:
        """A system whose copy equals the canonical record has seen every dot."""
        if peer is not None and peer.knowledge is not self.clock and \
                peer.knowledge != self.clock:
            peer = self._own(system, peer)
            peer.knowledge = self.clock

    def _own(self, system: str, peer: PeerState) -> PeerState:
        """This fold's own copy of ``peer`` (the peer of ``system`` in ``self.peers``).

        A peer that differs from the one in the state passed in was copied by this fold
        already, so it may be changed in place; copying once per input is enough.
        """
        if peer is self.state.peers.get(system):
            peer = peer.copy()
            self.peers[system] = peer
        return peer

    def _issue(self, system: str, peer: PeerState | None, op: WriteOp,
               values: dict[str, Json], expected: dict[str, Json]) -> None:
        peer = self._own(system, peer) if peer is not None else PeerState()
        number = peer.intents_issued + 1
        cid = self.state.canonical_id
        create = op is WriteOp.CREATE
        intent = WriteIntent(  # positional: keywords cost a named tuple twice as much
            f"{cid}/{system}#{number}", cid, self.spec.name, system, op,
            None if create else peer.external_id, values, expected,
            None if create else peer.native_version, self.clock, peer.failures + 1)
        peer.intents_issued = number
        peer.in_flight = intent
        self.peers[system] = peer
        self.intents += (intent,)

    # -- results -------------------------------------------------------------------------
    def _noop(self) -> Step:
        return Step(self.state, applied=False)

    def _step(self, *, applied: bool = True) -> Step:
        spec = self.spec
        state = self.state
        history = state.history
        if self.history:
            history += self.history
            if len(history) > spec.history_limit:
                history = history[-spec.history_limit:]
        conflicts = state.conflicts
        new_conflicts: tuple[ConflictRecord, ...] = ()
        if self.new_conflicts:
            new_conflicts = tuple(self.new_conflicts.values())
            conflicts = self.conflicts
            closed = [c for c in conflicts if c.status is not ConflictStatus.OPEN]
            if len(closed) > spec.closed_conflicts_kept:
                drop = {c.conflict_id for c in closed[:len(closed) - spec.closed_conflicts_kept]}
                conflicts = tuple(c for c in conflicts if c.conflict_id not in drop)
        fields = self.fields
        return Step(RecordState(state.canonical_id, state.entity, self.clock,
                                state.fields if fields is None else fields, self.peers,
                                self.deleted, conflicts, history),
                    self.intents, new_conflicts, self.changed, self.new_dots, applied)


def _not_kept(peer: PeerState, written: Mapping[str, Json],
              not_taken: Mapping[str, tuple[Json, Json]]) -> None:
    """A write's fields the system did not keep: its shadow holds what it kept instead, and
    the marker stops the same value being planned there again; a field that took clears it."""
    kept = {n: v for n, v in peer.not_kept.items() if n not in written}
    for name, (wrote, holds) in not_taken.items():
        kept[name] = (wrote, holds)
    peer.not_kept = kept
    if not_taken:
        peer.shadow = {**peer.shadow, **{n: holds for n, (_, holds) in not_taken.items()}}


def _may_land(flight: WriteIntent, shadow: Mapping[str, Json]) -> bool:
    """Whether the write in flight can still land: the copy, as the hub last saw it, holds
    what the write expected (or what it writes) in every field it writes; a lane that finds
    anything else reports it stale."""
    expected = flight.expected
    for name, value in flight.values.items():
        held = shadow.get(name)
        if not (same(held, expected.get(name)) or same(held, value)):
            return False
    return True


def _candidate(fs: FieldState) -> Candidate:
    return Candidate(fs.value, fs.dot.actor, fs.dot, fs.source_ts)


_APPLY: dict[type, Callable[[_Fold, Any], Step]] = {
    Observed: _Fold.observed,
    Written: _Fold.written,
    WriteStale: _Fold.not_written,
    WriteFailed: _Fold.not_written,
    Resolve: _Fold.resolve,
}
