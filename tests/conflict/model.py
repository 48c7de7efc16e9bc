"""A model of syncline's data flow for one record, to check the fold against its invariants.

The model plays N systems, each a small database that holds one copy of the record; their
lanes (one sequence of reads and writes per system, an outbox of observations that reach
the hub late, a queue of write intents); the hub (the real :func:`conflict.fold`, with its
state committed after every input); and people: users who create, edit and delete the record
in any system, reviewers who resolve conflicts. Every action is a method of :class:`World`.
The Hypothesis state machine in ``test_model.py`` calls them in random order; the regression
tests in ``test_model_regressions.py`` call them by hand, so a schedule reads like a story.

Ground truth
------------
The hub sees only observations; the model also knows what really happened:

* Every user edit writes a value nobody else ever writes (``"crm.name.3"``), so a value *is*
  the id of the edit that made it. An edit of the ``tags`` list appends one such unique tag,
  so a list's content is the set of edits in it. A user delete has an id too
  (``"crm.delete.4"``). The *content* of a value is the set of edit ids in it.
* For every system and field, ``seen`` is the causal past of that field's copy: every id it
  has held, plus everything the authors of those values had seen. An edit's ``saw`` is its
  field's ``seen`` when it was made; a user delete saw the ``seen`` of every field its system
  carries. A person who resolves a conflict saw its two candidates (and their pasts).
* ``hub_seen`` is every id the hub has been shown: the content of every applied observation.

Identity (``Config.values``)
----------------------------
With small value sets (``VALUE_POOLS``: ``true``/``1``/``false``, ``1``/``2``/``1.0``,
``open``/``pending``/`` Open``, read through a ``strip, lower`` transform) values repeat, so a
value is no longer an edit's id. A copy then holds edit ids and a lane reads their values
(``value_of``); every dot the hub takes is named by the id its read showed in each field
(``dot_ids``), so the canonical content is the id its field's dot took, a conflict's sides are
the ids of their dots, and a write carries the ids of the canonical values it writes. "No
silent loss" keeps working by id: an edit the hub reverts as its own echo leaves its id
behind, whatever its value. Three things are no loss by id, because nobody can see them as
one: an id replaced by another of the same value (two edits that agree); an id replaced by a
person whose copy showed its value after it was made (``SystemDb.shown``: the hub's caught-up
rule -- a copy holding the canonical value has seen it); and an edit undone before anyone
read it (``1 -> true -> 1``). One is exempt as a known limit (docs/DECISIONS.md): a person's
value equal to the hub's write in flight to that copy is taken for the write.

**Policy decision** -- every conflict an input raises is decided as its policy says for its
two candidates (the model's own ``_pick``), and an edit equal to the canonical value leaves
the field remembering the edit the policy would pick (the new one when its system had seen
the field's dot): a flipped ``latest`` comparison, or a fold that keeps an older agreeing
edit's time, breaks it.

Invariants
----------
Each check raises :class:`InvariantViolation` naming its law, with the schedule so far.

After every input the hub applies (``_apply``):

* **Valid input accepted** -- the fold never rejects an input the model made (every one is
  a well-formed observation of a real system, or a resolution of a conflict the record has).
* **Determinism (round trip)** -- ``RecordState.from_dict(s.to_dict()) == s``.
* **Idempotence** -- folding the input again gives ``applied=False`` and the same state;
  every replay (lane replay, hub restart) gives ``applied=False`` and the same state.
* **One write in flight** -- an intent goes only to a lane whose intent queue is empty.
* **No echo (dots)** -- a write outcome that does not carry the record (``WriteStale``,
  ``WriteFailed``, a bare ``Written``) takes no dot and changes no canonical value. An
  observation from system S (a read, or a ``Written`` carrying the record) takes at most
  one dot of actor S (plus, if it merged values, one of a non-system actor for the merge),
  and only when it shows the hub something a user of S did that the hub had not been
  shown: an edit id not in ``hub_seen``, or a user delete (a delete a lane made does not
  count), or an edit counted as shown only because a write went over it unread
  (``written_over``: a read made before that write still shows it to the hub). So the
  dots of S never outnumber the user edits, creates and deletes made in S, and the hub's
  own writes coming back never make a dot.
* **No silent loss (hub side)** -- (a) every id an observation shows for the first time
  ends up in the canonical content of its field or in a candidate of a conflict this input
  recorded; a first-seen user delete ends as the tombstone or a candidate (or finds the
  record already deleted, or deletes a copy the hub never knew, or meets a delete the hub
  has in flight to that system: the same delete twice). (b) Every id that leaves
  the canonical content (replaced, merged away, deleted) was seen by whoever replaced it --
  the system whose read replaced it (its ``seen``; a delete also removes the fields its
  system does not carry), or the person whose resolution did (the candidates and their
  past) -- or is a candidate of a conflict this input recorded. (c) A read brings a deleted
  record back without recording a conflict with the delete only if its author had seen
  that delete (a user who deleted the record, then edited the copy the hub made again).
* **No false conflict** -- a field conflict whose incoming side is this read's edit is
  raised only if that edit's author had not seen the current value. (Exempt: owner reverts,
  which are recorded on purpose; a current value written by a resolution, which is a new
  write of an old value; and systems whose lane lost a ``Written`` in a crash, where the hub
  cannot know whether the user saw the write.)
* **Conflict records tell the truth** -- a conflict recorded open or decided by this input
  holds the canonical value (or deletion) the fold actually kept.

After every write a lane makes:

* **No silent loss (system side)** -- every id the write removes from the system's copy
  (overwritten or deleted) is in ``hub_seen``: the hub never overwrites an edit it has not
  been shown. This is what the lane's stale check guarantees. (Exempt, with repeated
  values: an id in a field that shows what the write expected -- an edit and its undo, or a
  person putting back the value the hub's own write replaced before a crash lost its
  outcome: nobody reading the copy can tell it from no change.)
* **Write bound (no echo)** -- ``writes <= (N - 1) * dots + rejected + resolutions +
  undone``.
  ``writes`` counts lane writes that changed a system (a create, an update that changed a
  field, a delete; stale and failed writes, and re-runs that find the values already there,
  change nothing). ``dots`` is the sum of the hub's clock: every accepted user change and
  every resolution. ``rejected`` counts the dots whose value was not taken as it stood (the
  incoming side of a conflict decided ``current``, ``merged`` or held ``open``, an owner's
  revert, the update or delete that lost a delete conflict): each costs one write back to
  its own system. A resolution may have to write every system, the chosen side's included
  (``manual`` had reverted it), hence one more. ``undone`` counts the writes over a
  person's change that the exemption above lets through (a write of the hub landed, a
  crash lost its outcome, a person put the old value back, and the re-run finds the copy
  as the write expected it and writes again): the person's change was not taken, like a
  rejected dot, and costs one write back. Why it holds: a write to T follows a canonical
  change T had not caught up with (at most one write per other system per dot), a dot of T
  that was not taken as it stood, or a change of T that nobody could tell from none (one
  write back each). "At most N - 1 writes per edit" is the case without conflicts.

At quiescence (``settle`` stops users, delivers everything, runs every intent without
failures or crashes, reads every system, and repeats until nothing changes):

* **Convergence** -- canonical deleted (or never seen): no system holds the record; alive:
  every system holds it, with exactly the canonical value of every field it carries. The
  hub's view agrees with the systems: every peer exists as its system does, its shadow
  equals its system's copy, it has no write in flight, and if it holds the record its
  knowledge covers the dot of every canonical field. (The knowledge of a system in step
  "becomes the clock" only for the systems an input touched; the dots the others then miss
  changed no canonical value, so only coverage is required.)
* **Determinism (replay)** -- folding every input the hub was given, in order, into a fresh
  state rebuilds ``to_dict()`` exactly.
* **No silent loss (final)** -- every user edit, create and delete is in ``hub_seen`` (the hub
  was shown it, and the per-input checks above then held), or was seen by a later user edit
  or delete (superseded in its own system by someone who saw it). Exempt: the delete of a
  copy the hub never saw alive and did not create, and a delete the hub made at the same
  time (its lane found the copy already gone: the same delete twice).

Known bugs and limitations
--------------------------
``Config.workarounds`` names triggers the random schedules step around, so that they keep
finding new bugs: ``KNOWN_BUGS`` (fold bugs; none open now) and ``LIMITATIONS`` (what no fold
or lane can do against some APIs); ``test_model_regressions.py`` shows each with its
smallest schedule. A workaround avoids exactly the trigger. Remove a bug's name once its
regression test passes.
"""

from __future__ import annotations

import itertools
import json
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from conflict import (
    DELETE_FIELD,
    REVIEW,
    Candidate,
    ConflictError,
    ConflictRecord,
    ConflictStatus,
    Decision,
    DeletePolicy,
    Dot,
    EntitySpec,
    FieldSpec,
    FieldType,
    Input,
    Latest,
    Manual,
    Observed,
    Owner,
    Policy,
    Prefer,
    RecordState,
    Resolve,
    Step,
    Union,
    VClock,
    WriteFailed,
    WriteIntent,
    WriteOp,
    WriteStale,
    Written,
    fold,
    same,
)

Json = Any

RECORD_ID = "r1"
ENTITY = "contact"
SYSTEM_NAMES = ("crm", "helpdesk", "hris", "shop")
STRING_FIELDS = ("name", "email", "phone")
TAGS = "tags"
PARTIAL_FIELD = "phone"  # carried by every system but the second one
HUB_DELETE = "hub"  # ``SystemDb.deleted_by`` when a lane deleted the copy
# Small value sets (``Config.values``): per string field, the values a user picks from (the
# first 2 or 3). Fields are then of type ``any``; a lane reads strings through a ``strip,
# lower`` transform, so `` Open`` is ``open`` to the hub. ``true`` is not ``1``; ``1.0`` is ``1``.
VALUE_POOLS: dict[str, tuple[Json, ...]] = {
    "name": (True, 1, False),
    "email": (1, 2, 1.0),
    "phone": ("open", "pending", " Open"),
}

# Known fold bugs (Config.workarounds): the tests in test_model_regressions.py show each one.
# Each comment says how the random schedules step around it.
# no delete racing a create in a system without idempotent creates
DELETE_BEFORE_CREATE_OUTCOME = "delete-before-create-outcome"
OLD_COPY_DELETE_ECHO = "old-copy-delete-echo"  # polls skip old copies a lane reported deleted
FAILED_CREATE_LANDED = "failed-create-landed"  # a create that landed before a crash won't fail
FAILED_DELETE_LANDED = "failed-delete-landed"  # a delete that landed before a crash won't fail
KNOWN_BUGS: frozenset[str] = frozenset()
# What no fold or lane can do against an API that lacks something: a user's delete of the
# copy the hub just created, between the create and the lane's commit (a crash there), when
# the API has no idempotent creates (Config.idempotent_creates): nothing tells "never
# landed" from "landed and deleted", and the re-run creates the copy again
# (docs/DECISIONS.md; the regression tests show it both ways).
LIMITATIONS = frozenset({DELETE_BEFORE_CREATE_OUTCOME})
# What a lane promises beyond the data flow, because the fold cannot work it out: the model's
# lanes keep these promises by default (daemon/lane/ keeps them; tests/daemon/lane/ and
# tests/daemon/test_lane.py).
# - a delete that landed is never reported failed: the lane reads the copy before it gives
#   up, and reports the delete written when the copy is gone (a read cannot tell the hub's
#   own delete from a person's, docs/DECISIONS.md).
LANE_CONTRACT = frozenset({FAILED_DELETE_LANDED})


class InvariantViolation(AssertionError):
    """An invariant broken by the fold (or by the model's lanes, when switched off)."""

    def __init__(self, invariant: str, message: str, trace: Iterable[str] = ()) -> None:
        self.invariant = invariant
        lines = list(trace)
        schedule = "\n".join(f"  {i:3}. {line}" for i, line in enumerate(lines, 1))
        super().__init__(f"[{invariant}] {message}\nschedule:\n{schedule}")


class ModelError(Exception):
    """The model was asked to do something its rules do not allow (a bug in the test)."""


def content(value: Json) -> frozenset[str]:
    """The edit ids in a value: a string, a list of tags, or a delete conflict's values."""
    if value is None:
        return frozenset()
    if isinstance(value, list):
        return frozenset(value)
    if isinstance(value, Mapping):
        return frozenset().union(*(content(v) for v in value.values()))
    return frozenset([value])


# -- configuration ---------------------------------------------------------------------------
POLICY_KINDS = ("default", "latest", "manual", "prefer", "owner")


@dataclass(frozen=True)
class Config:
    """One simulated deployment: systems, policies, and which lane behaviours are on."""

    n_systems: int = 2
    default_policy: str = "latest"  # one of POLICY_KINDS but "default"
    field_policies: tuple[str, ...] = ("default", "default", "default")  # per STRING_FIELDS
    rotation: int = 0  # picks the prefer order and the owner among the systems
    delete_policy: DeletePolicy = DeletePolicy.MANUAL
    tags: bool = True  # whether the record has the ``tags`` list field (policy union)
    conditional: frozenset[str] = frozenset()  # systems whose API takes If-Match writes
    returns_record: frozenset[str] = frozenset()  # systems that answer a write with the record
    # Whether a lane's lookup before a create also sees a copy deleted since its last read
    # (and reports that delete first); if not, its next read does.
    lookup_sees_deleted: bool = False
    # Systems whose API runs a create once per idempotency key (the intent's id): a create
    # re-run after a crash gets the first create's copy, which the lane then reads.
    idempotent_creates: frozenset[str] = frozenset()
    stale_check: bool = True  # the lane's check; off only to show that the model catches it
    # 0: every edit writes a value nobody else writes; 2 or 3: values come from VALUE_POOLS
    values: int = 0
    closed_conflicts_kept: int = 16
    # Known fold bugs the random schedules step around, so that they keep looking for new
    # ones; each has a failing example in test_model_regressions.py. Empty it to see them.
    workarounds: frozenset[str] = frozenset()

    @property
    def systems(self) -> tuple[str, ...]:
        return SYSTEM_NAMES[: self.n_systems]

    def _policy(self, kind: str, carriers: tuple[str, ...]) -> Policy | None:
        if kind == "default":
            return None
        if kind == "latest":
            return Latest()
        if kind == "manual":
            return Manual()
        r = self.rotation % len(carriers)
        if kind == "prefer":
            return Prefer(carriers[r:] + carriers[:r])
        if kind == "owner":
            return Owner(carriers[r])
        raise ModelError(f"unknown policy kind {kind!r}")

    def spec(self) -> EntitySpec:
        systems = self.systems
        fields: list[FieldSpec] = []
        for name, kind in zip(STRING_FIELDS, self.field_policies, strict=True):
            carriers = systems
            if name == PARTIAL_FIELD:
                carriers = tuple(s for i, s in enumerate(systems) if i != 1)
            fields.append(FieldSpec(
                name, FieldType.ANY if self.values else FieldType.STRING,
                systems=None if carriers == systems else frozenset(carriers),
                policy=self._policy(kind, carriers)))
        if self.tags:
            fields.append(FieldSpec(TAGS, FieldType.LIST, policy=Union()))
        default = self._policy(self.default_policy, systems)
        assert default is not None
        return EntitySpec.build(ENTITY, systems, fields, default_policy=default,
                                delete_policy=self.delete_policy,
                                closed_conflicts_kept=self.closed_conflicts_kept)


# -- the pieces ------------------------------------------------------------------------------
@dataclass
class SystemDb:
    """One system's database: its copy of the record (``None``: absent) and its history."""

    name: str
    fields: tuple[str, ...]  # the fields this system carries
    record: dict[str, Json] | None = None
    external_id: str | None = None
    creates: int = 0
    version: int = 0  # the native version (an ETag), bumped by every change
    updated_at: float = 0.0  # the record-level "updated at" the API reports
    deleted_by: str | None = None  # the user delete id, or HUB_DELETE
    gone: dict[str, str | None] = field(default_factory=dict)  # older copies deleted, unread
    delete_read: bool = False  # whether a read has reported the current copy deleted
    seen: dict[str, frozenset[str]] = field(default_factory=dict)  # causal past per field
    # per field, every value the copy showed, with when: a person who saw a value saw
    # every edit of it made before (what the hub's caught-up rule assumes)
    shown: dict[str, list[tuple[float, Json]]] = field(default_factory=dict)

    def seen_all(self) -> frozenset[str]:
        return frozenset().union(*(self.seen.get(f, frozenset()) for f in self.fields))


@dataclass(frozen=True)
class ReadTruth:
    """What the model knew about a system when its lane read it."""

    seen: Mapping[str, frozenset[str]]
    delete_id: str | None  # who deleted the copy, when the read found it deleted
    ids: Mapping[str, Json] = field(default_factory=dict)  # per field, the edit ids it held
    shown: Mapping[str, tuple[tuple[float, Json], ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Pending:
    """An observation in a lane's outbox (or a replay of one), with its ground truth."""

    inp: Input
    truth: ReadTruth | None = None
    replay: bool = False


@dataclass
class Lane:
    """A system's connector loop: its sequence counter, outbox and intent queue."""

    seq: int = 0
    outbox: deque[Pending] = field(default_factory=deque)
    delivered: list[Pending] = field(default_factory=list)
    intents: deque[WriteIntent] = field(default_factory=deque)

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq


@dataclass(frozen=True)
class UserAction:
    """An edit, create or delete a person made in a system."""

    id: str
    system: str
    field: str | None  # None: a delete
    at: float
    external_id: str | None = None  # the copy a delete removed


# -- the world -------------------------------------------------------------------------------
class World:
    """N systems, their lanes, the hub and the ground truth, for one record."""

    def __init__(self, config: Config, fold_fn: Callable[..., Step] = fold) -> None:
        self.config = config
        self.fold = fold_fn
        self.spec = config.spec()
        self.systems = self.spec.systems
        self.n = len(self.systems)
        self.dbs = {s: SystemDb(s, self.spec.system_fields[s]) for s in self.systems}
        self.lanes = {s: Lane() for s in self.systems}
        self.hub = RecordState(RECORD_ID, ENTITY)
        self.log: list[Input] = []  # every input the hub was given, in order
        self.now = 0.0
        self.trace: list[str] = []
        self._ids = itertools.count(1)
        # ground truth
        self.saw: dict[str, frozenset[str]] = {}
        self.actions: list[UserAction] = []
        self.hub_seen: set[str] = set()
        self.seen_alive: set[str] = set()  # external ids the hub was shown a live copy of
        self.hub_created: set[str] = set()  # external ids of copies the lanes created
        self.created_by: dict[str, str] = {}  # create intent id -> the copy it made
        self.same_delete: set[str] = set()  # user deletes that met the hub's own delete
        self.delete_truth: dict[Dot, frozenset[str]] = {}  # per delete dot: what it saw
        self.delete_ids: dict[Dot, str] = {}  # per delete dot: the user delete it was
        self.conflicts: dict[str, ConflictRecord] = {}  # every conflict, latest version
        self.pending_resolutions: list[tuple[Resolve, frozenset[str]]] = []
        self.resolution_truth: dict[str, frozenset[str]] = {}
        self.writes = 0
        self.rejected: set[Dot] = set()  # dots whose value was not taken as it stood
        # writes over a person's change that put back what the write expected (an undo of
        # the hub's own write whose outcome a crash lost): each costs one write back
        self.undone = 0
        # ids counted as shown only because a write went over a copy showing what it
        # expected (above): no read had shown them to the hub, so a read made before that
        # write may still show them as a person's edit (not an echo) when it arrives
        self.written_over: set[str] = set()
        self.checked_concurrent: set[str] = set()
        self.crashed: set[str] = set()  # systems whose lane lost a Written in a crash
        self.landed_before_crash: set[str] = set()  # intents written, then their lane crashed
        self.quiet = False  # settle: users stop, writes neither fail nor crash
        # Identity, when values repeat: a copy holds edit ids; ``value_of`` says what value
        # each id stands for, ``made_at`` when it was made.
        self.value_of: dict[str, Json] = {}
        self.made_at: dict[str, float] = {}
        self.dot_ids: dict[tuple[Dot, str], str] = {}  # (dot, field) -> the id it took
        self.intent_ids: dict[str, dict[str, Json]] = {}  # intent -> the ids it writes
        self.checked_policy: set[str] = set()
        self.candidate_cache: dict[tuple[str, Dot], frozenset[str]] = {}

    # -- helpers ---------------------------------------------------------------------------
    def _tick(self) -> float:
        self.now += 1.0
        return self.now

    def _note(self, line: str) -> None:
        self.trace.append(line)

    def fail(self, invariant: str, message: str) -> InvariantViolation:
        return InvariantViolation(invariant, message, self.trace)

    def _closure(self, ids: Iterable[str]) -> frozenset[str]:
        out = set(ids)
        for i in list(out):
            out |= self.saw.get(i, frozenset())
        return frozenset(out)

    def _hold(self, db: SystemDb, name: str, value: Json) -> None:
        """``db``'s copy of ``name`` now holds ``value``: its causal past grows."""
        db.seen[name] = db.seen.get(name, frozenset()) | self._closure(content(value))
        if name != TAGS:
            db.shown.setdefault(name, []).append((self.now, self.value(name, value)))

    @staticmethod
    def _shown(db: SystemDb) -> dict[str, tuple[tuple[float, Json], ...]]:
        return {n: tuple(v) for n, v in db.shown.items()}

    def dots(self) -> int:
        return sum(self.hub.clock.values())

    # -- identity --------------------------------------------------------------------------
    def value(self, name: str, held: Json) -> Json:
        """What a lane reads for the id (or tag list) a copy holds in field ``name``."""
        if held is None or name == TAGS:
            return held
        v = self.value_of[held]
        if self.config.values and isinstance(v, str):
            v = v.strip().lower()  # the system's transform
        return v

    def read_record(self, record: Mapping[str, Json]) -> dict[str, Json]:
        return {n: self.value(n, x) for n, x in record.items()}

    def canonical_ids(self, state: RecordState) -> dict[str, frozenset[str]]:
        """The canonical content: per field, the edit ids it holds (nothing when deleted).

        A string field's value is the edit that set it: the id its field's dot took.
        """
        if state.deleted is not None:
            return {}
        return {name: self._field_ids(name, fs.value, fs.dot) for name, fs in state.fields.items()}

    def _field_ids(self, name: str, value: Json, dot: Dot) -> frozenset[str]:
        if value is None:
            return frozenset()
        if name == TAGS:
            return content(value)
        eid = self.dot_ids.get((dot, name))
        if eid is None:
            raise ModelError(f"no edit id known for {name} of dot {dot}")
        return frozenset([eid])

    def candidate_ids(self, c: ConflictRecord, cand: Candidate, state: RecordState,
                      fresh: Iterable[Dot] = ()) -> frozenset[str]:
        """The edit ids in one side of a conflict (``state``: the record when it was made,
        ``fresh``: the dots the input that made it took)."""
        if cand.deleted or cand.value is None:
            return frozenset()
        if c.field != DELETE_FIELD:
            return self._field_ids(c.field, cand.value, cand.dot)
        key = (c.conflict_id, cand.dot)
        known = self.candidate_cache.get(key)
        if known is not None:
            return known
        out: set[str] = set()
        for n, v in cand.value.items():
            fs = state.fields.get(n)
            if n == TAGS:
                out |= content(v)
            elif cand.dot in fresh or fs is None:  # an update read while deleted: its own
                out.add(self.dot_ids[(cand.dot, n)])
            else:  # canonical fields the delete had not seen
                out |= self._field_ids(n, v, fs.dot)
        self.candidate_cache[key] = frozenset(out)
        return self.candidate_cache[key]

    def _name_dots(self, before: RecordState, step: Step, inp: Input,
                   truth: ReadTruth | None) -> None:
        """Remember which edit id each new dot took, per field."""
        for d in step.new_dots:
            if isinstance(inp, Resolve):
                c = before.conflict(inp.conflict_id)
                if c is None or c.field == DELETE_FIELD:
                    continue
                cand = c.incoming if c.incoming.system == inp.take else c.current
                if (cand.dot, c.field) in self.dot_ids:
                    self.dot_ids[(d, c.field)] = self.dot_ids[(cand.dot, c.field)]
            elif truth is not None and d.actor == inp.system:
                for n, held in truth.ids.items():
                    if n != TAGS:
                        self.dot_ids[(d, n)] = held

    def _name_intent(self, intent: WriteIntent) -> None:
        """The ids an intent writes: those of the canonical values it carries."""
        ids: dict[str, Json] = {}
        for n, v in intent.values.items():
            if n == TAGS:
                ids[n] = _copy(v)
                continue
            (eid,) = self._field_ids(n, v, self.hub.fields[n].dot)
            if not same(self.value(n, eid), v):
                raise ModelError(f"{intent.intent_id}: {n} = {v!r} but its id {eid} reads "
                                 f"{self.value(n, eid)!r}")
            ids[n] = eid
        self.intent_ids[intent.intent_id] = ids

    def never_had_record(self) -> list[str]:
        """Systems where a user may create the record now (it never had a copy)."""
        return [s for s in self.systems if self.dbs[s].external_id is None]

    def holding(self) -> list[str]:
        return [s for s in self.systems if self.dbs[s].record is not None]

    def deletable(self) -> list[str]:
        """Systems where a user may delete the copy now."""
        out = self.holding()
        if DELETE_BEFORE_CREATE_OUTCOME in self.config.workarounds:
            # Not a copy the hub may still be creating, or may create again over: only one
            # it has been shown alive, with no create of the lane in the way; or, where
            # creates are idempotent, the copy the create at the head of the lane made.
            out = [s for s in out if self._may_delete(s)]
        return out

    def _may_delete(self, system: str) -> bool:
        db, intents = self.dbs[system], self.lanes[system].intents
        creating = bool(intents) and intents[0].op is WriteOp.CREATE
        if creating and system in self.config.idempotent_creates and \
                self.created_by.get(intents[0].intent_id) == db.external_id:
            return True  # the race an idempotency key settles
        return db.external_id in self.seen_alive and not creating

    def readable(self) -> list[str]:
        return [s for s in self.systems if self.dbs[s].external_id is not None]

    # -- users -----------------------------------------------------------------------------
    def create(self, system: str) -> dict[str, Json]:
        """A user creates the record in a system that never had it (all fields it carries)."""
        db = self.dbs[system]
        if db.external_id is not None:
            raise ModelError(f"{system} already had the record")
        at = self._tick()
        db.creates += 1
        db.external_id = f"{system}-{db.creates}"
        record: dict[str, Json] = {}
        for name in db.fields:
            n = next(self._ids)
            eid = f"{system}.{name}.{n}"
            self.saw[eid] = db.seen.get(name, frozenset())
            record[name] = [eid] if name == TAGS else eid
            self.value_of[eid] = VALUE_POOLS[name][n % self.config.values] \
                if self.config.values and name != TAGS else eid
            self.made_at[eid] = at
            self._hold(db, name, record[name])
            self.actions.append(UserAction(eid, system, name, at))
        db.record = record
        db.deleted_by = None
        db.version += 1
        db.updated_at = at
        self._note(f"user creates the record in {system} as {db.external_id}: {record}")
        return record

    def edit(self, system: str, name: str, pick: int = 0) -> str | None:
        """A user edits one field: a unique value (for tags: appends a unique tag), or with
        ``Config.values`` the ``pick``-th of the field's values that differs from the copy's
        (None, and nothing happens, when none does)."""
        db = self.dbs[system]
        if db.record is None or name not in db.fields:
            raise ModelError(f"{system} cannot edit {name}")
        raw: Json = None
        if self.config.values and name != TAGS:
            pool = VALUE_POOLS[name][:self.config.values]
            shown = self.value(name, db.record.get(name))
            for k in range(len(pool)):
                raw = pool[(pick + k) % len(pool)]
                if not same(raw.strip().lower() if isinstance(raw, str) else raw, shown):
                    break
            else:
                return None
        at = self._tick()
        eid = f"{system}.{name}.{next(self._ids)}"
        self.value_of[eid] = eid if raw is None else raw
        self.made_at[eid] = at
        self.saw[eid] = db.seen.get(name, frozenset())
        if name == TAGS:
            value: Json = [*db.record.get(TAGS, []), eid]
        else:
            value = eid
        db.record = {**db.record, name: value}
        self._hold(db, name, value)
        db.version += 1
        db.updated_at = at
        self.actions.append(UserAction(eid, system, name, at))
        shown = f" ({self.value_of[eid]!r})" if raw is not None else ""
        self._note(f"user edits {system}.{name} = {value!r}{shown}")
        return eid

    def delete(self, system: str) -> str:
        """A user deletes the record in a system."""
        db = self.dbs[system]
        if db.record is None:
            raise ModelError(f"{system} holds no record to delete")
        at = self._tick()
        did = f"{system}.delete.{next(self._ids)}"
        self.saw[did] = db.seen_all()
        self.made_at[did] = at
        for name in db.fields:  # whatever the system holds later comes after this delete
            db.seen[name] = db.seen.get(name, frozenset()) | {did}
        db.record = None
        db.deleted_by = did
        db.delete_read = False
        db.version += 1
        db.updated_at = at
        self.actions.append(UserAction(did, system, None, at, db.external_id))
        self._note(f"user deletes the record in {system} ({did})")
        return did

    # -- lanes -----------------------------------------------------------------------------
    def _observe(self, system: str) -> Pending:
        db = self.dbs[system]
        seq = self.lanes[system].next_seq()
        truth = ReadTruth(dict(db.seen), db.deleted_by if db.record is None else None,
                          dict(db.record or {}), self._shown(db))
        if db.record is None:
            db.delete_read = True
            obs = Observed(system, seq, db.external_id, deleted=True,
                           native_version=str(db.version), source_ts=db.updated_at)
        else:
            obs = Observed(system, seq, db.external_id, self.read_record(db.record),
                           native_version=str(db.version), source_ts=db.updated_at)
        return Pending(obs, truth)

    def read(self, system: str) -> Observed | None:
        """The lane reads the record (nothing to read where it never existed).

        Like a poll of everything changed since its cursor, the read first reports any older
        copy deleted since the last read (the lane made a new copy after it was deleted).
        """
        db = self.dbs[system]
        if db.external_id is None:
            return None
        for ext, deleted_by in db.gone.items():
            seq = self.lanes[system].next_seq()
            gone = Pending(Observed(system, seq, ext, deleted=True, source_ts=db.updated_at),
                           ReadTruth(dict(db.seen), deleted_by, {}, self._shown(db)))
            self.lanes[system].outbox.append(gone)
            self._note(f"lane {system} reads: {_show(gone.inp)}")
        db.gone.clear()
        pending = self._observe(system)
        self.lanes[system].outbox.append(pending)
        self._note(f"lane {system} reads: {_show(pending.inp)}")
        assert isinstance(pending.inp, Observed)
        return pending.inp

    def _lane_decision(self, db: SystemDb, intent: WriteIntent) -> str:
        """``done`` (already holds it), ``write`` or ``stale``, after re-reading the record."""
        record = None if db.record is None else self.read_record(db.record)
        values = intent.values
        if intent.op is WriteOp.CREATE:
            if record is None:
                return "write"
            # The lane's lookup by match key found a copy.
            if all(same(record.get(n), v) for n, v in values.items()):
                return "done"
            return "stale"
        if intent.op is WriteOp.DELETE:
            if record is None or db.external_id != intent.external_id:
                return "done"
        elif record is None:
            return "stale"
        elif db.external_id != intent.external_id:
            raise ModelError(f"update of {intent.external_id} but {db.name} holds "
                             f"{db.external_id}")
        assert record is not None
        if intent.op is WriteOp.UPDATE and all(
                same(record.get(n), v) for n, v in values.items()):
            return "done"
        if db.name in self.config.conditional and intent.native_version is not None:
            return "write" if intent.native_version == str(db.version) else "stale"
        for n, v in values.items():
            held = record.get(n)
            if not same(held, v) and not same(held, intent.expected.get(n)):
                return "stale"
        if intent.op is WriteOp.DELETE and intent.expected:
            for n in db.fields:  # the copy must be exactly what the hub believes it holds
                if not same(record.get(n), intent.expected.get(n)):
                    return "stale"
        return "write"

    def run_intent(self, system: str, outcome: str = "ok") -> str:
        """The lane executes the intent at the head of its queue.

        ``outcome``: ``ok``; ``fail`` (the API failed after the retry budget: nothing written,
        WriteFailed); ``crash`` (the lane dies right after the write: the write is in the
        system, its Written is lost, the intent stays at the head of the queue).
        Returns what happened: done, written, stale, failed, crashed.
        """
        lane = self.lanes[system]
        db = self.dbs[system]
        intent = lane.intents[0]
        if outcome == "fail" and intent.intent_id in self.landed_before_crash and (
                (intent.op is WriteOp.CREATE and FAILED_CREATE_LANDED in self.config.workarounds)
                or (intent.op is WriteOp.DELETE and
                    FAILED_DELETE_LANDED in self.config.workarounds)):
            outcome = "ok"
        if outcome == "fail" and intent.op is WriteOp.CREATE and \
                system in self.config.idempotent_creates:
            # With an idempotency key the API's answer is the truth: a refusal means nothing
            # was created (a create that landed is answered again), and an answer that does
            # not come is waited for like an outage: such a lane never reports it failed.
            outcome = "ok"
        if outcome == "fail":
            lane.intents.popleft()
            lane.outbox.append(Pending(WriteFailed(system, lane.next_seq(), intent.intent_id,
                                                   "model: 503 after retries")))
            self._note(f"lane {system} fails {_show_intent(intent)}")
            return "failed"
        replayed = self.created_by.get(intent.intent_id)
        if replayed is not None and db.record is None and \
                system in self.config.idempotent_creates:
            # A re-run of a create that made a copy a user deleted since: no lookup finds it,
            # but the API answers the repeated key with it, and the lane's read of it finds
            # it gone: the create is reported written, then the user's delete.
            assert db.external_id == replayed, (db.external_id, replayed)
            if outcome == "crash":
                self._note(f"lane {system} crashes before re-running {_show_intent(intent)}")
                return "crashed"
            lane.intents.popleft()
            lane.outbox.append(Pending(Written(system, lane.next_seq(), intent.intent_id,
                                               external_id=replayed)))
            lane.outbox.append(self._observe(system))
            self._note(f"lane {system} re-runs {_show_intent(intent)}: the API answers "
                       f"{replayed}, read deleted")
            return "done"
        decision = self._lane_decision(db, intent)
        if decision == "stale" and not self.config.stale_check and db.record is not None:
            decision = "write"  # the broken lane of a sanity test: writes over anything
        if decision == "stale":
            if outcome == "crash":
                self._note(f"lane {system} crashes before running {_show_intent(intent)}")
                return "crashed"
            lane.intents.popleft()
            lane.outbox.append(self._observe(system))
            lane.outbox.append(Pending(WriteStale(system, lane.next_seq(), intent.intent_id)))
            self._note(f"lane {system} finds {_show_intent(intent)} stale: "
                       f"reads {_show(lane.outbox[-2].inp)}")
            return "stale"
        if decision == "write":
            if intent.op is WriteOp.CREATE and db.record is None and \
                    db.external_id is not None and self.config.lookup_sees_deleted:
                # The lookup saw the old copy deleted: report that before making a new one.
                lane.outbox.append(self._observe(system))
                self._write(db, intent, reported_gone=True)
            else:
                self._write(db, intent)
        if outcome == "crash":
            self.crashed.add(system)
            if decision == "write":
                self.landed_before_crash.add(intent.intent_id)
            self._note(f"lane {system} {'writes' if decision == 'write' else 'finds done'} "
                       f"{_show_intent(intent)} and crashes before reporting it")
            return "crashed"
        lane.intents.popleft()
        ext = intent.external_id if intent.op is WriteOp.DELETE else db.external_id
        if intent.op is WriteOp.DELETE:
            if decision == "done" and db.deleted_by not in (None, HUB_DELETE):
                # A user deleted the copy just before the hub's delete: the same delete twice.
                self.same_delete.add(db.deleted_by)
            if OLD_COPY_DELETE_ECHO in self.config.workarounds:
                db.delete_read = True  # polls skip the copy the hub was told it deleted
        # Only a version that is exactly our write is reported: a create's, or a conditional
        # (If-Match) write's. After an unconditional write, or a re-run that found the values
        # already there, the record's version may include edits the hub has not seen, and a
        # later If-Match on it would overwrite them.
        conditional = system in self.config.conditional and intent.native_version is not None
        ours = decision == "write" and (intent.op is WriteOp.CREATE or conditional)
        version = str(db.version) if ours else None
        if system in self.config.returns_record and db.record is not None:
            # The API answers the write with the record as it now is.
            lane.outbox.append(Pending(
                Written(system, lane.next_seq(), intent.intent_id, external_id=ext,
                        native_version=str(db.version), source_ts=db.updated_at,
                        fields=self.read_record(db.record)),
                ReadTruth(dict(db.seen), None, dict(db.record), self._shown(db))))
        else:
            # The hub takes what the copy holds in the written fields for its own write (a
            # person's equal value included, which nothing can tell apart): shown to it.
            held = {n: db.record[n] for n in intent.values if db.record and n in db.record}
            lane.outbox.append(Pending(Written(system, lane.next_seq(), intent.intent_id,
                                               external_id=ext, native_version=version),
                                       ReadTruth(dict(db.seen), None, held)))
        verb = "writes" if decision == "write" else "finds already done"
        self._note(f"lane {system} {verb} {_show_intent(intent)}")
        return "written" if decision == "write" else "done"

    def _write(self, db: SystemDb, intent: WriteIntent, *, reported_gone: bool = False) -> None:
        before = {n: content((db.record or {}).get(n)) for n in db.fields}
        # A copy that shows what the hub believes it holds was not changed, for all anyone
        # can tell (an edit and its undo, true -> 1 -> true): its ids are as good as shown.
        shown_before = self.read_record(db.record or {})
        undone = False  # a person's change nobody can tell from none, written over
        for n in intent.expected:
            if n in shown_before and n != TAGS and same(shown_before[n], intent.expected[n]):
                unshown = before.get(n, frozenset()) - self.hub_seen
                if unshown and not same(shown_before[n], intent.values.get(n)):
                    undone = True
                self.written_over |= unshown
                self.hub_seen |= unshown
        held = self.intent_ids.get(intent.intent_id, {})
        at = self._tick()
        if intent.op is WriteOp.DELETE:
            db.record = None
            db.deleted_by = HUB_DELETE
            db.delete_read = False
        elif intent.op is WriteOp.CREATE and db.record is None:
            if db.external_id is not None and not reported_gone and not db.delete_read:
                db.gone[db.external_id] = db.deleted_by  # the next read reports it
            db.creates += 1
            db.external_id = f"{db.name}-{db.creates}"
            self.hub_created.add(db.external_id)
            self.created_by[intent.intent_id] = db.external_id
            db.record = {n: _copy(v) for n, v in held.items()}
            db.deleted_by = None
        else:
            assert db.record is not None
            shown = self.read_record(db.record)
            # Like the lane, write only what the copy does not hold already.
            held = {n: v for n, v in held.items()
                    if not same(shown.get(n), intent.values[n])}
            db.record = {**db.record, **{n: _copy(v) for n, v in held.items()}}
        for n, v in held.items():
            self._hold(db, n, v)
        db.version += 1
        db.updated_at = at
        self.writes += 1
        if undone:
            self.undone += 1
        # No silent loss, system side: the hub never overwrites what it has not been shown.
        after = {n: content((db.record or {}).get(n)) for n in db.fields}
        for n in db.fields:
            lost = before[n] - after[n] - self.hub_seen
            if lost:
                raise self.fail("no silent loss", f"the write {_show_intent(intent)} removed "
                                f"{sorted(lost)} from {db.name}.{n} before the hub saw it")
        reviews = self.hub.clock.get(REVIEW)
        bound = (self.n - 1) * self.dots() + len(self.rejected) + reviews + self.undone
        if self.writes > bound:
            raise self.fail("no echo", f"{self.writes} lane writes exceed (N-1) x {self.dots()} "
                            f"dots + {len(self.rejected)} rejected dots + {reviews} "
                            f"resolutions + {self.undone} undone = {bound}")

    def replay(self, system: str, k: int) -> int:
        """The lane sends the last ``k`` observations the hub already got again."""
        lane = self.lanes[system]
        again = lane.delivered[-k:] if k > 0 else []
        for p in again:
            lane.outbox.append(Pending(p.inp, p.truth, replay=True))
        if again:
            self._note(f"lane {system} replays its last {len(again)} observations")
        return len(again)

    # -- the hub ---------------------------------------------------------------------------
    def deliver(self, system: str) -> Step:
        """The next observation in ``system``'s outbox reaches the hub."""
        lane = self.lanes[system]
        p = lane.outbox.popleft()
        self._note(f"hub gets {'replayed ' if p.replay else ''}{_show(p.inp)}")
        step = self._apply(p.inp, p.truth, replay=p.replay)
        if not p.replay:
            lane.delivered.append(p)
        return step

    def deliver_all(self) -> bool:
        """Every outbox drained, round robin over the systems; whether anything arrived."""
        any_ = False
        while True:
            moved = False
            for s in self.systems:
                if self.lanes[s].outbox:
                    self.deliver(s)
                    moved = any_ = True
            if not moved:
                return any_

    def restart_hub(self, k: int) -> None:
        """The hub restarts from its committed state; the last ``k`` inputs arrive again."""
        self._note(f"hub restarts; its last {k} inputs are delivered again")
        self.hub = RecordState.from_dict(self.hub.to_dict())  # from the table's changelog
        for inp in self.log[-k:] if k > 0 else []:
            self._apply(inp, None, replay=True)

    def resolve(self, which: int, take_current: bool, *, deliver: bool = True) -> Resolve:
        """A person resolves an open conflict by taking one of its candidates.

        With ``deliver=False`` the resolution waits on the resolutions topic until
        :meth:`deliver_resolution`.
        """
        open_ = self.hub.open_conflicts()
        c = open_[which % len(open_)]
        candidate = c.current if take_current else c.incoming
        at = self._tick()
        r = Resolve(f"res{next(self._ids)}", c.conflict_id, "reviewer", at,
                    take=candidate.system)
        truth: frozenset[str] = frozenset()
        for cand in (c.current, c.incoming):
            truth |= self.delete_truth.get(cand.dot, frozenset()) if cand.deleted else \
                self._closure(self.candidate_ids(c, cand, self.hub))
        self.resolution_truth[r.resolution_id] = truth
        self._note(f"reviewer resolves {c.conflict_id} ({c.field}: "
                   f"{_show_candidate(c.current)} vs {_show_candidate(c.incoming)}) "
                   f"taking {candidate.system}")
        if deliver:
            self._apply(r, None)
        else:
            self.pending_resolutions.append((r, truth))
        return r

    def deliver_resolution(self, which: int) -> Step | None:
        r, _ = self.pending_resolutions.pop(which % len(self.pending_resolutions))
        self._note(f"hub gets resolution {r.resolution_id} of {r.conflict_id}")
        return self._apply(r, None)

    def _apply(self, inp: Input, truth: ReadTruth | None, *, replay: bool = False) -> Step:
        before = self.hub
        before_dict = before.to_dict()
        try:
            step = self.fold(self.spec, before, inp)
        except ConflictError as exc:  # every input the model makes is valid
            raise self.fail("valid input accepted", f"the fold rejected {_show(inp)}: "
                            f"{type(exc).__name__}: {exc}") from exc
        self.log.append(inp)
        if replay or not step.applied:
            if step.applied:
                raise self.fail("idempotence", f"the replay of {_show(inp)} was applied")
            if step.state.to_dict() != before_dict or step.intents or step.new_dots:
                raise self.fail("idempotence", f"{_show(inp)} was not applied but changed "
                                "the state or emitted intents")
            self.hub = step.state
            return step
        state = step.state
        self.hub = state
        self._name_dots(before, step, inp, truth)
        # Determinism: the table's changelog form gives the same state back.
        if RecordState.from_dict(state.to_dict()) != state:
            raise self.fail("determinism", "from_dict(to_dict()) does not round-trip")
        # Idempotence: the same input again changes nothing.
        try:
            again = self.fold(self.spec, state, inp)
        except ConflictError as exc:
            raise self.fail("idempotence", f"folding {_show(inp)} twice raised "
                            f"{type(exc).__name__}: {exc}") from exc
        if again.applied or again.intents or again.state.to_dict() != state.to_dict():
            raise self.fail("idempotence", f"folding {_show(inp)} twice changed the state")
        for c in step.conflicts:
            if c.conflict_id not in self.conflicts and c.decision is not Decision.INCOMING:
                self.rejected.add(c.incoming.dot)  # its system gets a write back
            self.conflicts[c.conflict_id] = c
        self._check_step(before, step, inp, truth)
        for intent in step.intents:
            lane = self.lanes[intent.system]
            if lane.intents:
                raise self.fail("one write in flight", f"{_show_intent(intent)} issued while "
                                f"{_show_intent(lane.intents[0])} is still queued")
            lane.intents.append(intent)
            self._name_intent(intent)
            self._note(f"    hub plans {_show_intent(intent)}")
        for c in step.conflicts:
            self._note(f"    conflict {c.conflict_id} {c.status.value}: "
                       f"{_show_candidate(c.current)} vs {_show_candidate(c.incoming)} "
                       f"-> {c.decision.value}")
        return step

    # -- per-input checks ------------------------------------------------------------------
    def _check_step(self, before: RecordState, step: Step, inp: Input,
                    truth: ReadTruth | None) -> None:
        after = step.state
        mentioned: set[str] = set()
        for c in step.conflicts:
            mentioned |= self.candidate_ids(c, c.current, before, step.new_dots) | \
                self.candidate_ids(c, c.incoming, before, step.new_dots)
        if isinstance(inp, Resolve):
            if len(step.new_dots) != 1 or step.new_dots[0].actor != REVIEW:
                raise self.fail("no echo", f"resolution took dots {step.new_dots}")
            seen = self.resolution_truth[inp.resolution_id]
            if after.deleted is not None and after.deleted != before.deleted:
                self.delete_truth[after.deleted.dot] = seen
            resolved = before.conflict(inp.conflict_id)
            record_level = resolved is not None and resolved.field == DELETE_FIELD
            if resolved is not None and before.deleted is not None and after.deleted is None \
                    and before.deleted.dot not in (resolved.current.dot, resolved.incoming.dot):
                raise self.fail("no silent loss", f"{_show(inp)} brought back a record deleted "
                                f"by {before.deleted.dot}, a delete the reviewer never saw")
            if not (after.deleted is not None and record_level):
                # (Deleting the record takes every field with it: nothing to compare.)
                # The reviewer saw both candidates' values, as the conflict shows them.
                shown = {} if resolved is None or record_level else {resolved.field: (
                    (inp.at, resolved.current.value), (inp.at, resolved.incoming.value))}
                self._check_replaced(before, after, inp, mentioned, lambda name: seen, shown)
            self._check_decisions(step)
            return
        if isinstance(inp, Written) and inp.external_id is not None:
            self.seen_alive.add(inp.external_id)
        reported = inp.fields if isinstance(inp, Observed | Written) else None
        deleted = isinstance(inp, Observed) and inp.deleted
        if reported is None and not deleted:
            # WriteStale, WriteFailed, or a Written that does not carry the record.
            if step.new_dots:
                raise self.fail("no echo", f"{_show(inp)} took dots {step.new_dots}")
            if self.canonical_ids(before) != self.canonical_ids(after):
                raise self.fail("no echo", f"{_show(inp)} changed the canonical record")
            if truth is not None:
                self.hub_seen |= frozenset().union(*(content(x) for x in truth.ids.values()))
            return
        assert truth is not None
        reported = reported or {}
        system = inp.system
        carried = self.spec.system_fields[system]
        # What this read shows the hub for the first time.
        shown = frozenset().union(*(content(x) for x in truth.ids.values()))
        novel = shown - self.hub_seen
        # A person's edit written over unread (``written_over``) is still one when a read
        # made before that write shows it: taking a dot for it is no echo of the hub's write.
        late = shown & self.written_over
        novel_delete = truth.delete_id if deleted and truth.delete_id not in (
            None, HUB_DELETE) and truth.delete_id not in self.hub_seen else None
        own = [d for d in step.new_dots if d.actor == system]
        merges = [d for d in step.new_dots if d.actor not in self.systems]
        merged = any(c.decision is Decision.MERGED for c in step.conflicts)
        if len(own) > 1 or len(merges) > (1 if merged else 0) or \
                len(own) + len(merges) != len(step.new_dots) or (merges and not own):
            # One dot for the system's edit; a fold may give a merged value a dot of a
            # non-system actor of its own (nobody has seen the merge yet).
            raise self.fail("no echo", f"{_show(inp)} took dots {step.new_dots}")
        if own and not novel and not late and novel_delete is None:
            raise self.fail("no echo", f"{_show(inp)} took dot {own[0]} but shows nothing a "
                            f"user of {system} did that the hub had not seen (an echo of the "
                            "hub's own write)")
        # No silent loss (a): what the hub sees for the first time is kept or recorded.
        now = self.canonical_ids(after)
        ours = self._hubs_own(before.peers.get(system), reported, isinstance(inp, Written))
        was_held = _shadow(before.peers.get(system))
        for name, held in truth.ids.items():
            dropped = (content(held) & novel) - now.get(name, frozenset()) - mentioned
            if dropped and name != TAGS and name in was_held and \
                    same(self.value(name, held), was_held[name]):
                continue  # edited and back (1 -> true -> 1): no change anyone can see
            if dropped and after.deleted is None and name in after.fields and \
                    same(self.value(name, held), after.fields[name].value):
                continue  # it agrees with the canonical value: its edit is there
            if dropped and name != TAGS and any(same(self.value(name, held), v)
                                                for v in ours.get(name, ())):
                continue  # exempt: the value of the hub's own write (see the docstring)
            if dropped:
                raise self.fail("no silent loss", f"{_show(inp)} showed {sorted(dropped)} in "
                                f"{name} for the first time; the hub neither kept it nor "
                                "recorded it in a conflict")
        ext = inp.external_id if isinstance(inp, Observed | Written) else None
        known_copy = ext is not None and (ext in self.seen_alive or ext in self.hub_created)
        peer_before = before.peers.get(system)
        deleting_too = peer_before is not None and peer_before.in_flight is not None and \
            peer_before.in_flight.op is WriteOp.DELETE  # the same delete twice
        if novel_delete is not None and known_copy and not deleting_too and \
                novel_delete not in self.same_delete:
            deleting = any(c.incoming.deleted or c.current.deleted for c in step.conflicts)
            if after.deleted is None and not deleting and before.peers.get(
                    system) is not None and before.peers[system].exists:
                raise self.fail("no silent loss", f"{_show(inp)} showed the delete "
                                f"{novel_delete}; the hub neither deleted the record nor "
                                "recorded a conflict")
        if deleted and own:
            self.delete_truth[own[0]] = frozenset().union(
                *(truth.seen.get(n, frozenset()) for n in carried))
            if truth.delete_id is not None and truth.delete_id != HUB_DELETE:
                self.delete_ids[own[0]] = truth.delete_id

        def seen_by(name: str) -> frozenset[str] | None:
            if deleted and name not in carried:
                return None  # a delete removes fields its system does not carry
            return truth.seen.get(name, frozenset())

        def acted_at(name: str) -> float:
            """When the person whose edit (or delete) this read shows made it."""
            if deleted:
                return self.made_at.get(truth.delete_id or "", float("inf"))
            held = truth.ids.get(name)
            return self.made_at.get(held, 0.0) if isinstance(held, str) else 0.0

        self._check_replaced(before, after, inp, mentioned, seen_by, truth.shown, acted_at)
        if before.deleted is not None and after.deleted is None and not any(
                c.field == DELETE_FIELD for c in step.conflicts):
            # An update brings a deleted record back without a conflict only if it was made
            # after its author saw the delete (as on a copy the hub made again later).
            did = self.delete_ids.get(before.deleted.dot)
            if did is None or not any(did in truth.seen.get(n, frozenset()) for n in carried):
                raise self.fail("no silent loss", f"{_show(inp)} brought the deleted record "
                                f"back without recording a conflict with the delete "
                                f"{before.deleted.dot}, which {system} had not seen")
        self._check_decisions(step)
        self._check_policy(before, step, inp, truth)
        self._check_concurrent(step, system, truth, before)
        if not deleted and isinstance(inp, Observed) and inp.external_id is not None:
            self.seen_alive.add(inp.external_id)
        self.hub_seen |= shown
        self.written_over -= shown
        # A delete is shown to the hub only when it is the delete of the copy the hub knows;
        # one of a copy it never heard of is ignored (it may learn of that copy later).
        if deleted and truth.delete_id is not None and truth.delete_id != HUB_DELETE and \
                peer_before is not None and peer_before.exists and \
                peer_before.external_id == ext:
            self.hub_seen.add(truth.delete_id)

    def _check_concurrent(self, step: Step, system: str, truth: ReadTruth,
                          before: RecordState) -> None:
        """A conflict is raised only when neither write had seen the other.

        Checked for field conflicts whose incoming side is this read's edit: its author must
        not have seen the current value. (An owner's revert is recorded as a conflict on
        purpose; a resolution writes an old value anew, so having seen the value is not
        having seen that write; and a lane crash that lost a Written leaves the hub unable to
        tell whether the user saw the write: all three are exempt.)
        """
        for c in step.conflicts:
            if c.field == DELETE_FIELD or c.incoming.system != system or \
                    c.status is ConflictStatus.SUPERSEDED or c.policy == "owner" or \
                    c.current.system == REVIEW:  # a resolution is a new write of a value
                continue
            if c.conflict_id in self.checked_concurrent:
                continue
            self.checked_concurrent.add(c.conflict_id)
            if system in self.crashed:
                continue
            current = self.candidate_ids(c, c.current, before)
            if current and current <= truth.seen.get(c.field, frozenset()):
                raise self.fail("no false conflict", f"conflict {c.conflict_id}: {system}'s "
                                f"{c.incoming.value!r} was made after {system} held "
                                f"{c.current.value!r}")

    @staticmethod
    def _hubs_own(peer: Any, reported: Mapping[str, Json],
                  written: bool = False) -> dict[str, tuple[Json, ...]]:
        """Per field, the values a read of this copy may show as the hub's own writes: those
        of the write in flight (while it can still land) and of failed ones that may have
        landed. A person's edit to exactly such a value is taken for the write: nothing can
        tell them apart (the lane, reading first, would find the write done as well)."""
        if peer is None:
            return {}
        out: dict[str, tuple[Json, ...]] = {k: tuple(v) for k, v in peer.landed.items()}
        flight = peer.in_flight
        if flight is not None and flight.op is not WriteOp.DELETE:
            shadow = peer.shadow if peer.exists else {}
            if written or all(same(shadow.get(n), flight.expected.get(n)) or
                              same(shadow.get(n), v) for n, v in flight.values.items()):
                for n, v in flight.values.items():
                    out[n] = (*out.get(n, ()), v)
        return out

    def _check_policy(self, before: RecordState, step: Step, inp: Input,
                      truth: ReadTruth) -> None:
        """The policy's decision, given the dots and times (the model's own reading of it).

        * A conflict this input raised is decided as its policy says for its two candidates:
          ``latest`` the newer source time (ties: the system listed first, then the larger
          JSON text), ``prefer`` the earlier listed system (neither: latest), ``owner`` the
          owner, ``manual`` nobody (open).
        * An edit equal to the canonical value (two edits that agree) decides nothing, but
          the field must remember the edit a later conflict is to be decided against: the
          new one when its system had seen the field's dot (a fast-forward), else the one
          the policy would pick of the two.
        """
        for c in step.conflicts:
            if c.field == DELETE_FIELD or c.conflict_id in self.checked_policy or \
                    c.incoming.dot not in step.new_dots or c.policy not in _DECIDED:
                continue
            self.checked_policy.add(c.conflict_id)
            want = self._pick(c.field, c.current, c.incoming)
            if c.decision is not want:
                raise self.fail("policy decision", f"{c.conflict_id} ({c.policy}): "
                                f"{_show_candidate(c.current)} at {c.current.source_ts} vs "
                                f"{_show_candidate(c.incoming)} at {c.incoming.source_ts} "
                                f"was decided {c.decision.value}, the policy says "
                                f"{want.value}")
        if not isinstance(inp, Observed | Written) or inp.fields is None or \
                before.deleted is not None or step.state.deleted is not None:
            return
        system = inp.system
        own = [d for d in step.new_dots if d.actor == system]
        if not own:
            return
        peer = before.peers.get(system)
        knowledge = VClock() if peer is None else peer.knowledge
        flight = None if peer is None else peer.in_flight
        if flight is not None and flight.op is not WriteOp.DELETE and isinstance(inp, Written):
            knowledge = knowledge.join(flight.clock)  # the write landed: it saw its clock
        ours = self._hubs_own(peer, inp.fields, isinstance(inp, Written))
        was_held = _shadow(peer)
        for name, held in truth.ids.items():
            if name == TAGS or not (content(held) - self.hub_seen):
                continue  # not an edit the hub had not been shown
            if name in was_held and same(self.value(name, held), was_held[name]):
                continue  # edited and back: no change the hub can see
            was, now = before.fields.get(name), step.state.fields.get(name)
            value = self.value(name, held)
            if was is None or now is None or not same(was.value, value) or \
                    not same(now.value, value):
                continue
            if any(same(value, v) for v in ours.get(name, ())):
                continue  # it may be the hub's own write, landed: the hub cannot tell
            incoming = Candidate(value, system, own[0], inp.source_ts)
            if knowledge.covers(was.dot):
                want, why = incoming, "it had seen the field's edit"
            else:
                current = Candidate(was.value, was.dot.actor, was.dot, was.source_ts)
                picked = self._pick(name, current, incoming, agreeing=True) is \
                    Decision.INCOMING
                want = incoming if picked else current
                why = f"the {self.spec.policy_for(name).name} policy picks {want.system}"
            if (now.dot, now.source_ts) != (want.dot, want.source_ts):
                raise self.fail("policy decision", f"{_show(inp)} agrees with canonical "
                                f"{name} ({was.dot} at {was.source_ts}); the field must "
                                f"remember {want.dot} at {want.source_ts} ({why}), it "
                                f"remembers {now.dot} at {now.source_ts}")

    def _pick(self, name: str, current: Candidate, incoming: Candidate, *,
              agreeing: bool = False) -> Decision:
        """What the field's policy decides between two candidates (see _check_policy);
        ``agreeing``: which of two equal values to remember (``manual``: the newer)."""
        policy = self.spec.policy_for(name)
        if isinstance(policy, Manual) and not agreeing:
            return Decision.OPEN
        if isinstance(policy, Owner):
            return Decision.INCOMING if incoming.system == policy.system else Decision.CURRENT
        if isinstance(policy, Prefer):
            order = list(policy.systems)
            ri = order.index(incoming.system) if incoming.system in order else len(order)
            rc = order.index(current.system) if current.system in order else len(order)
            if ri != rc:
                return Decision.INCOMING if ri < rc else Decision.CURRENT
        if incoming.source_ts != current.source_ts:
            newer = incoming.source_ts > current.source_ts
            return Decision.INCOMING if newer else Decision.CURRENT
        rank = {REVIEW: -2, "merge": -1, **{s: i for i, s in enumerate(self.systems)}}
        ri, rc = rank[incoming.system], rank[current.system]
        if ri != rc:
            return Decision.INCOMING if ri < rc else Decision.CURRENT
        larger = _json(incoming.value) > _json(current.value)
        return Decision.INCOMING if larger else Decision.CURRENT

    def _check_replaced(self, before: RecordState, after: RecordState, inp: Input,
                        mentioned: set[str],
                        seen_by: Callable[[str], frozenset[str] | None],
                        shown: Mapping[str, Iterable[tuple[float, Json]]] | None = None,
                        acted_at: Callable[[str], float] = lambda name: 0.0) -> None:
        """No silent loss (b): whatever leaves the canonical record was seen or recorded.

        With repeated values, an id may also leave for another of the same value (two edits
        that agree), and the edit that replaced it may have been made on a copy that showed
        its value after it was made, or that showed its value when the person acted on it
        (``shown``, ``acted_at``): the person saw what it said -- the hub's caught-up rule
        (a copy holding the canonical value has seen it) takes it so too.
        """
        was, now = self.canonical_ids(before), self.canonical_ids(after)
        for name, ids in was.items():
            lost = ids - now.get(name, frozenset()) - mentioned
            if not lost:
                continue
            if after.deleted is None and name in after.fields and name != TAGS and \
                    same(before.fields[name].value, after.fields[name].value):
                continue  # the value stays: an agreeing edit took its place
            seen = seen_by(name)
            if seen is None:
                continue
            unseen = lost - seen
            if shown is not None and name != TAGS:
                history = list(shown.get(name, ()))
                acted = [v for t, v in history if t < acted_at(name)][-1:]
                unseen = {x for x in unseen
                          if not _showed_since(history, self.made_at[x], self.value(name, x))
                          and not (acted and same(acted[0], self.value(name, x)))}
            if unseen:
                how = "deleted" if after.deleted is not None else "replaced"
                raise self.fail("no silent loss", f"{_show(inp)} {how} {sorted(unseen)} in "
                                f"canonical {name} without having seen it and without "
                                "recording a conflict")

    def _check_decisions(self, step: Step) -> None:
        """A conflict recorded open or decided by this input holds what the fold kept."""
        state = step.state
        for c in step.conflicts:
            if c.status not in (ConflictStatus.OPEN, ConflictStatus.AUTO_RESOLVED,
                                ConflictStatus.RESOLVED):
                continue
            if c.field == DELETE_FIELD:
                if c.deleted != (state.deleted is not None):
                    raise self.fail("conflict records", f"{c.conflict_id} says deleted="
                                    f"{c.deleted} but the record's tombstone is "
                                    f"{state.deleted}")
                continue
            fs = state.fields.get(c.field)
            if fs is None or not same(fs.value, c.value):
                raise self.fail("conflict records", f"{c.conflict_id} decided {c.value!r} "
                                f"but canonical {c.field} is {None if fs is None else fs.value!r}")

    # -- quiescence ------------------------------------------------------------------------
    def settle(self, max_rounds: int = 40) -> None:
        """Users stop; everything is delivered, every intent runs, every system is read."""
        self._note("-- settle: users stop; deliver, write and read until nothing changes --")
        while self.pending_resolutions:
            self.deliver_resolution(0)
        for _ in range(max_rounds):
            busy = self.deliver_all()
            for s in self.systems:
                ran = 0
                while self.lanes[s].intents:
                    ran += 1
                    if ran > max_rounds:
                        # Users stopped: a hub that keeps planning intents (writes that
                        # change nothing included) never quiesces -- a loop against the API.
                        raise self.fail("convergence", f"{ran} intents to {s} in one round of "
                                        "settling, and still one more")
                    self.run_intent(s)
                    busy = True
                    self.deliver_all()
            canonical = self.canonical_ids(self.hub), self.hub.clock
            for s in self.readable():
                self.read(s)
            self.deliver_all()
            if busy or any(lane.intents for lane in self.lanes.values()) or \
                    canonical != (self.canonical_ids(self.hub), self.hub.clock):
                continue
            break
        else:
            raise self.fail("convergence", f"still busy after {max_rounds} rounds of settling")
        self.check_quiescent()

    def check_quiescent(self) -> None:
        """Convergence, determinism by replay and the final no-silent-loss rule."""
        hub = self.hub
        values = hub.values
        for s in self.systems:
            db = self.dbs[s]
            peer = hub.peers.get(s)
            if hub.deleted is not None or not hub.fields:
                if db.record is not None:
                    raise self.fail("convergence", f"the record is deleted (or was never "
                                    f"seen) but {s} holds {db.record}")
            else:
                if db.record is None:
                    raise self.fail("convergence", f"the record is alive but {s} has no copy")
                for n in db.fields:
                    if not same(self.value(n, db.record.get(n)), values.get(n)):
                        raise self.fail("convergence", f"{s}.{n} = {db.record.get(n)!r}, "
                                        f"canonical {n} = {values.get(n)!r}")
            if peer is None:
                if db.record is not None:
                    raise self.fail("convergence", f"the hub never heard of {s}'s copy")
                continue
            if peer.in_flight is not None:
                raise self.fail("convergence", f"{s} still has a write in flight")
            if peer.exists != (db.record is not None):
                raise self.fail("convergence", f"the hub thinks {s} exists={peer.exists}")
            if db.record is not None and not same(dict(peer.shadow),
                                                  self.read_record(db.record)):
                raise self.fail("convergence", f"shadow of {s} is {dict(peer.shadow)}, "
                                f"{s} holds {db.record}")
            if db.record is None:
                continue  # no copy: what it has seen matters only if one comes back
            current = [fs.dot for fs in hub.fields.values()]
            unseen = [str(d) for d in current if not peer.knowledge.covers(d)]
            if unseen:
                raise self.fail("convergence", f"{s} holds the canonical record but its "
                                f"knowledge {peer.knowledge} misses the current dots {unseen}")
        rebuilt = RecordState(RECORD_ID, ENTITY)
        for inp in self.log:
            rebuilt = self.fold(self.spec, rebuilt, inp).state
        if rebuilt.to_dict() != hub.to_dict():
            raise self.fail("determinism", "replaying the log does not rebuild the state")
        superseded = frozenset().union(*self.saw.values()) if self.saw else frozenset()
        for a in self.actions:
            if a.field is None and a.external_id not in self.seen_alive and \
                    a.external_id not in self.hub_created:
                continue  # the delete of a copy the hub never knew: nothing of it to sync
            if a.id not in self.hub_seen and a.id not in superseded and \
                    a.id not in self.same_delete:
                raise self.fail("no silent loss", f"{a.id} ({a.system}, at {a.at}) was never "
                                "shown to the hub and no later user edit saw it")


# -- small helpers ---------------------------------------------------------------------------
def _copy(v: Json) -> Json:
    return list(v) if isinstance(v, list) else v


_NOTHING = object()


def _showed_since(shown: Iterable[tuple[float, Json]], since: float, value: Json) -> bool:
    """Whether a copy showed ``value`` at some time from ``since`` on (each entry holds from
    its time until the next one)."""
    entries = list(shown)
    for i, (_, v) in enumerate(entries):
        until = entries[i + 1][0] if i + 1 < len(entries) else float("inf")
        if until >= since and same(v, value):
            return True
    return False


def _shadow(peer: Any) -> Mapping[str, Json]:
    """What the hub believes a copy holds (nothing when it knows no live copy)."""
    return peer.shadow if peer is not None and peer.exists else {}
_DECIDED = frozenset({"latest", "prefer", "owner", "manual"})  # policies _pick knows


def _json(value: Json) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _show(inp: Input) -> str:
    if isinstance(inp, Observed):
        what = "deleted" if inp.deleted else dict(inp.fields)
        return f"Observed({inp.system}#{inp.seq} {inp.external_id}: {what})"
    if isinstance(inp, Written):
        what = "" if inp.fields is None else f": {dict(inp.fields)}"
        return f"Written({inp.system}#{inp.seq} {inp.intent_id}{what})"
    if isinstance(inp, WriteStale):
        return f"WriteStale({inp.system}#{inp.seq} {inp.intent_id})"
    if isinstance(inp, WriteFailed):
        return f"WriteFailed({inp.system}#{inp.seq} {inp.intent_id})"
    return f"Resolve({inp.resolution_id} of {inp.conflict_id}, take {inp.take})"


def _show_intent(intent: WriteIntent) -> str:
    what = "" if intent.op is WriteOp.DELETE else f" {dict(intent.values)}"
    expected = f" expecting {dict(intent.expected)}" if intent.expected else ""
    return f"{intent.intent_id} {intent.op.value}{what}{expected}"


def _show_candidate(c: Any) -> str:
    value = "<delete>" if c.deleted else c.value
    return f"{c.system}:{value!r}"
