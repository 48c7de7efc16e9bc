"""Fold bugs found by the model in ``test_model.py``, each as the smallest schedule that shows it.

Every test plays one schedule by hand on the model of ``tests/conflict/model.py`` (systems,
lanes and the real fold) with every known-bug workaround switched off, so the model's
invariant checks fire exactly where the fold goes wrong. They are marked ``xfail(strict=True)``
and expect one named invariant to break. Once the fold is fixed a test starts passing, strict
xfail turns that into a failure, and the marker (and the matching entry of
``model.KNOWN_BUGS``, which the random schedules step around until then) can go.

The schedules read top to bottom as what happens in the world: users (``create``, ``edit``,
``delete``), lanes (``read``, ``run_intent``), the hub getting an observation (``deliver``),
reviewers (``resolve``). ``settle`` drains everything and checks convergence.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from conflict import DELETE_FIELD, DeletePolicy
from tests.conflict.model import KNOWN_BUGS, Config, InvariantViolation, World


def world(**options: object) -> World:
    """A model with no workaround: every known fold bug can show."""
    return World(Config(**options))  # type: ignore[arg-type]


def synced(w: World, creator: str = "crm") -> World:
    """``creator`` creates the record and the hub copies it everywhere."""
    w.create(creator)
    w.settle()
    return w


@contextmanager
def breaks(*invariants: str) -> Iterator[None]:
    """The block must break one of ``invariants``; any other failure is another problem."""
    try:
        yield
    except InvariantViolation as exc:
        if exc.invariant not in invariants:
            raise AssertionError(f"expected {list(invariants)}, got: {exc}") from exc
        raise


@pytest.mark.xfail(strict=True, raises=InvariantViolation,
                   reason="delete intents carry no expected values")
def test_a_delete_intent_does_not_delete_over_an_edit_the_hub_has_not_seen() -> None:
    """A delete intent must let the lane see that the copy changed since the hub looked.

    crm and helpdesk share the record. A crm user deletes it; a helpdesk user edits the name
    at the same time. The hub learns of the delete first and plans ``delete`` for helpdesk
    with ``expected == {}``: a lane that re-reads and compares (DESIGN "writes") has nothing
    to compare, so it deletes the copy -- and the helpdesk user's edit with it, before any
    read showed it to the hub. No silent loss breaks (the stale check cannot work); the edit
    should instead make the delete stale and then meet the delete as a conflict.
    Fix: give a delete intent the shadow as ``expected`` (every field the system carries).
    """
    w = synced(world())
    w.delete("crm")
    w.read("crm")
    w.edit("helpdesk", "name")
    w.deliver("crm")  # hub plans r1/helpdesk#2 delete, expecting {}
    with breaks("no silent loss"):
        w.run_intent("helpdesk")


@pytest.mark.xfail(strict=True, raises=InvariantViolation,
                   reason="a merged value carries the incoming system's dot")
def test_a_merge_is_not_fast_forwarded_by_the_system_whose_edit_was_merged() -> None:
    """The system whose edit was merged has not seen the merge, whatever its knowledge says.

    crm and helpdesk both create the contact, with tags ``[crm.tags.4]`` and
    ``[helpdesk.tags.8]``. The hub reads crm, then helpdesk: ``tags`` (policy union) is a
    conflict, merged to both tags, and the merged value gets helpdesk's dot ``helpdesk:1``,
    which helpdesk's knowledge covers. Before the merge reaches helpdesk, its user adds a
    tag; the next read of helpdesk is taken as a fast-forward over the merge (helpdesk
    "had seen" ``helpdesk:1``) and crm's tag is dropped from the canonical record without a
    conflict. No silent loss breaks.
    Fix: a merged value needs a dot nobody has seen yet (or helpdesk's knowledge must not
    cover it until the merge has been written there).
    """
    w = world(tags=True)
    w.create("crm")
    w.create("helpdesk")
    w.read("crm")
    w.read("helpdesk")
    w.deliver("crm")
    w.deliver("helpdesk")  # tags merged under dot helpdesk:1
    w.edit("helpdesk", "tags")
    w.read("helpdesk")
    with breaks("no silent loss"):
        w.deliver("helpdesk")


@pytest.mark.xfail(strict=True, raises=InvariantViolation,
                   reason="a resolution of a conflict no longer open is applied")
def test_a_late_resolution_does_not_revert_a_later_edit() -> None:
    """A resolution that arrives after its conflict was superseded must not undo the newer edit.

    crm and helpdesk create the contact with different names; ``name`` is ``manual``, so the
    conflict stays open and the canonical name stays crm's. A reviewer picks helpdesk's
    name on the review page; the resolution waits on the resolutions topic. Meanwhile a crm
    user, looking at the canonical name, types a new one: it supersedes the open conflict.
    Then the resolution arrives and the fold applies it anyway: the name goes back to
    helpdesk's old value, and the crm user's later edit is gone without a conflict (the
    reviewer never saw it). No silent loss breaks.
    Fix: a resolution of a conflict that is no longer open changes nothing (or opens a new
    conflict against the current value).
    """
    w = world(field_policies=("manual", "default", "default"))
    w.create("crm")
    w.create("helpdesk")
    w.settle()
    w.resolve(0, take_current=False, deliver=False)  # take helpdesk's name, later
    w.edit("crm", "name")
    w.read("crm")
    w.deliver("crm")  # supersedes the open conflict
    with breaks("no silent loss"):
        w.deliver_resolution(0)


@pytest.mark.xfail(strict=True, raises=InvariantViolation,
                   reason="keeping the record rewrites the fields with the conflict's values")
def test_keeping_a_deleted_record_does_not_revert_later_edits() -> None:
    """Resolving a delete-vs-update conflict by keeping the record must keep today's values.

    crm and helpdesk share the record. A crm user deletes it while a helpdesk user edits
    the name; the hub sees the edit, then the delete: with the default delete policy
    (manual) the record stays alive and a ``_deleted`` conflict is opened, with helpdesk's
    name as the update's candidate. Delete conflicts are never superseded, so it stays open
    while a helpdesk user edits the name again. A reviewer then chooses to keep the record
    (take helpdesk): the fold restores the candidate's values and the name goes back to the
    older edit; the newer one is gone without a trace. No silent loss breaks.
    Fix: keeping the record should restore it (a new dot for the record) without rewriting
    fields that changed after the conflict; or later edits should supersede the conflict.
    """
    w = synced(world())
    w.delete("crm")
    w.edit("helpdesk", "name")
    w.read("helpdesk")
    w.deliver("helpdesk")
    w.read("crm")
    w.deliver("crm")  # conflict r1/_deleted/crm:2 open; the record stays alive
    w.edit("helpdesk", "name")
    w.read("helpdesk")
    w.deliver("helpdesk")
    with breaks("no silent loss"):
        w.resolve(0, take_current=True)  # keep the record: take helpdesk's update


@pytest.mark.xfail(strict=True, raises=InvariantViolation,
                   reason="a create's outcome with a new external id raises LinkMismatch")
def test_a_create_after_the_old_copy_was_deleted_is_linked() -> None:
    """The Written of the hub's own create must be accepted even if it names a new copy.

    crm and helpdesk both create the contact. The hub reads crm first and plans a create
    for helpdesk (it has not seen helpdesk's copy yet). Then it gets helpdesk's read and
    links ``helpdesk-1``. A helpdesk user deletes ``helpdesk-1``; the lane runs the create,
    its lookup by match key finds nothing and it makes ``helpdesk-2``. The fold of HEAD
    rejects ``Written(external_id="helpdesk-2")`` with LinkMismatch: the outcome goes to
    the dead-letter topic, the write stays in flight for ever and helpdesk is never planned
    again (no convergence). The same happens to the next poll, which reports
    ``helpdesk-1`` deleted. A fold that takes the create's outcome as the new link must
    still take that poll as helpdesk's delete of the record the hub had seen alive -- not
    drop it as "a copy no longer linked" (that loses the delete: no silent loss; and a step
    reported ``applied=False`` must not change the state: idempotence).
    Fix: a create's outcome is authoritative for the link; a copy reported deleted under
    the old id is that system's delete.
    """
    w = world()
    w.create("crm")
    w.create("helpdesk")
    w.read("helpdesk")
    w.read("crm")
    w.deliver("crm")  # hub plans r1/helpdesk#1 create
    w.deliver("helpdesk")  # links helpdesk-1
    w.delete("helpdesk")
    w.run_intent("helpdesk")  # creates helpdesk-2
    with breaks("valid input accepted", "no silent loss", "idempotence"):
        w.deliver("helpdesk")  # Written(helpdesk-2)
        w.read("helpdesk")  # reports helpdesk-1 deleted, then helpdesk-2
        w.deliver("helpdesk")


@pytest.mark.xfail(strict=True, raises=InvariantViolation,
                   reason="a delete of the hub's own create, before its outcome, is ignored")
def test_a_delete_of_a_copy_the_hub_just_created_is_not_undone() -> None:
    """A user who deletes the copy the hub just created must not see it come back.

    crm creates the contact; the hub plans a create for helpdesk. The helpdesk lane creates
    ``helpdesk-1`` and crashes before reporting it. A helpdesk user deletes the new copy.
    The restarted lane reads the copy deleted and runs the create again: its lookup finds
    nothing, so it creates ``helpdesk-2``. The hub had ignored ``helpdesk-1 deleted`` ("the
    delete of a copy never seen") although its own create for helpdesk was in flight, so
    the user's delete is silently undone and the record is written twice into helpdesk for
    one accepted edit: the write bound of no echo breaks (and the delete is lost).
    Fix: a delete reported for an unknown copy while a create for that system is in flight
    is that system's delete of the hub's copy (join the create's clock into knowledge).
    """
    w = world()
    w.create("crm")
    w.read("crm")
    w.deliver("crm")  # hub plans r1/helpdesk#1 create
    w.run_intent("helpdesk", "crash")
    w.delete("helpdesk")
    w.read("helpdesk")
    w.deliver("helpdesk")  # ignored
    with breaks("no echo"):
        w.run_intent("helpdesk")  # creates the copy again


@pytest.mark.xfail(strict=True, raises=InvariantViolation,
                   reason="a write that landed, then failed on the re-run, comes back as an edit")
def test_a_write_that_landed_before_a_crash_is_no_edit_when_the_rerun_fails() -> None:
    """A write reported failed may still have landed; when it comes back it is not an edit.

    crm and helpdesk share the record. A crm user edits the name; the hub plans an update
    for helpdesk. The helpdesk lane writes it and crashes before reporting it. A crm user
    edits the name again and the hub takes it (helpdesk's write is in flight, so nothing
    new is planned). The restarted helpdesk lane re-runs the intent, the API fails until
    the retry budget is spent: ``WriteFailed``. The fold clears the write in flight, plans
    the newer name, and the next read of helpdesk shows the first write -- a value the hub
    itself wrote, neither in the shadow nor pending any more -- which the fold takes as a
    helpdesk edit with a new dot. No echo breaks (and the echo then meets crm's newer name
    as a false conflict).
    Fix: a failed write's values stay "possibly landed" until a read settles it (treat a
    read that shows them like a read that shows a pending write).
    """
    w = synced(world())
    w.edit("crm", "name")
    w.read("crm")
    w.deliver("crm")  # hub plans r1/helpdesk#2 update
    w.run_intent("helpdesk", "crash")
    w.edit("crm", "name")
    w.read("crm")
    w.deliver("crm")
    w.run_intent("helpdesk", "fail")
    w.deliver("helpdesk")  # WriteFailed; hub plans the newer name
    w.read("helpdesk")
    with breaks("no echo"):
        w.deliver("helpdesk")


@pytest.mark.xfail(strict=True, raises=InvariantViolation,
                   reason="a write that landed, then failed twice, comes back as an edit")
def test_a_write_that_landed_is_no_edit_even_after_a_second_failed_write() -> None:
    """Every failed write may have landed, not only the last one.

    crm creates the contact; the hub plans a create for helpdesk. The helpdesk lane makes
    ``helpdesk-1`` and crashes before reporting it; the re-run fails (``WriteFailed``).
    Meanwhile a crm user changes the name, so the hub plans a second create with the new
    name, and that one fails too, without writing anything. The next read of helpdesk shows
    the first create's values -- the hub's own write -- and the fold takes them as a
    helpdesk edit with a new dot: no echo breaks. (A fold that remembers only the values of
    the latest failed write per field has the same hole.)
    Fix: keep every value a failed write may have landed until a read settles it.
    """
    w = world(tags=False)
    w.create("crm")
    w.read("crm")
    w.deliver("crm")  # hub plans r1/helpdesk#1 create
    w.run_intent("helpdesk", "crash")  # helpdesk-1 made, Written lost
    w.run_intent("helpdesk", "fail")
    w.edit("crm", "name")
    w.read("crm")
    w.deliver("crm")
    w.deliver("helpdesk")  # WriteFailed: hub plans r1/helpdesk#2 with the new name
    w.run_intent("helpdesk", "fail")
    w.deliver("helpdesk")  # WriteFailed again
    w.read("helpdesk")
    with breaks("no echo"):
        w.deliver("helpdesk")


@pytest.mark.xfail(strict=True, raises=InvariantViolation,
                   reason="a system with no known copy is 'caught up' with a deleted record")
def test_a_copy_the_hub_has_not_read_yet_is_concurrent_with_a_delete() -> None:
    """The hub must not credit a system with seeing a delete because it holds no copy it knows.

    crm and helpdesk both create the contact; ``delete_wins``. The hub reads crm and plans a
    create for helpdesk, which fails. A crm user deletes the record; the hub takes the delete
    (tombstone ``crm:2``). Then the WriteFailed arrives: canonical is deleted and helpdesk,
    as far as the hub knows, holds nothing -- "caught up", so its knowledge becomes the
    clock, tombstone included. When helpdesk's own copy is finally read, the fold takes it
    as made after the delete was seen and brings the record back with no conflict: crm's
    delete is lost and ``delete_wins`` never applied. No silent loss breaks. (Later the
    forged knowledge also lets helpdesk's edits fast-forward over values it never held.)
    Fix: a system the hub never saw a copy of has seen nothing; only a copy that was in step
    (or the outcome of a write) may make its knowledge the clock.
    """
    w = world(delete_policy=DeletePolicy.DELETE_WINS)
    w.create("crm")
    w.create("helpdesk")
    w.read("crm")
    w.deliver("crm")  # hub plans r1/helpdesk#1 create
    w.run_intent("helpdesk", "fail")
    w.delete("crm")
    w.read("crm")
    w.deliver("crm")  # tombstone crm:2
    w.deliver("helpdesk")  # WriteFailed: helpdesk "caught up" with the deleted record
    w.read("helpdesk")
    with breaks("no silent loss"):
        w.deliver("helpdesk")


@pytest.mark.xfail(strict=True, raises=InvariantViolation,
                   reason="a replayed resolution of a pruned conflict raises UnknownConflict")
def test_a_replayed_resolution_changes_nothing_after_its_conflict_was_pruned() -> None:
    """A resolution delivered twice is a replay, even when its conflict is no longer kept.

    crm and helpdesk create the contact with different names and emails; ``email`` is
    manual (an open conflict), ``name`` is latest (an auto-resolved, closed conflict). The
    record keeps ``closed_conflicts_kept=1`` closed conflict. A reviewer resolves the email
    conflict; it is now the oldest closed conflict and is pruned in the same step, and with
    it the only trace that this resolution was applied. Folding the same resolution again
    (a duplicate on the resolutions topic, a replay after a restart) raises UnknownConflict
    instead of changing nothing: idempotence breaks (the duplicate goes to the dead-letter
    topic). With the default of 16 kept it takes 16 later closed conflicts on the record.
    Fix: remember applied resolution ids apart from the pruned conflicts (or never prune a
    conflict in the step that closes it, and treat unknown resolved ids as replays).
    """
    w = world(field_policies=("latest", "manual", "default"), closed_conflicts_kept=1)
    w.create("crm")
    w.create("helpdesk")
    w.settle()
    with breaks("idempotence"):
        w.resolve(0, take_current=False)


@pytest.mark.xfail(strict=True, raises=InvariantViolation,
                   reason="a delete conflict is not superseded by a later delete")
def test_resolving_a_delete_conflict_after_a_later_delete() -> None:
    """A later delete that saw the update decides a delete conflict; a resolution is late.

    crm and helpdesk share the record. A crm user deletes it while a helpdesk user edits
    the name; with the default delete policy (manual) the record stays alive and the
    ``_deleted`` conflict is open. Then the helpdesk user, who made the update, deletes the
    record too: no conflict this time (helpdesk had seen everything), the record is deleted
    (tombstone ``helpdesk:2``) -- but the delete conflict stays open, because only field
    conflicts are ever superseded. A reviewer now resolves it by keeping the record (take
    helpdesk). The fold of HEAD brings the record back, undoing helpdesk's later delete that
    the reviewer never saw (no silent loss breaks); a fold that no longer restores on "keep"
    records the conflict as resolved with ``deleted=False`` while the record stays deleted
    (conflict records break).
    Fix: a delete conflict is superseded by a later delete (or write) that saw its update
    side, like field conflicts; a resolution of it is then a no-op.
    """
    w = synced(world())
    w.delete("crm")
    w.edit("helpdesk", "name")
    w.read("helpdesk")
    w.deliver("helpdesk")
    w.read("crm")
    w.deliver("crm")  # conflict r1/_deleted/crm:2 open; the record stays alive
    w.delete("helpdesk")
    w.read("helpdesk")
    w.deliver("helpdesk")  # tombstone helpdesk:2; the conflict stays open
    with breaks("no silent loss", "conflict records"):
        w.resolve(0, take_current=True)  # keep the record: take helpdesk's update


def test_with_expected_values_a_delete_meets_the_concurrent_edit_as_a_conflict() -> None:
    """The first schedule above as it should go once fixed (the model emulates the fix).

    Also guards the regression tests against blaming the fold for a broken model: with the
    delete intent carrying the values the hub believes helpdesk holds, the lane finds the
    edit, reports the write stale, and the hub meets the edit as a delete-vs-update conflict.
    """
    w = synced(World(Config(workarounds=KNOWN_BUGS)))  # DELETE_WITHOUT_EXPECTED among them
    w.delete("crm")
    w.read("crm")
    w.edit("helpdesk", "name")
    w.deliver("crm")
    assert w.run_intent("helpdesk") == "stale"
    w.settle()
    (conflict,) = w.hub.open_conflicts()
    assert conflict.field == DELETE_FIELD
    assert w.hub.deleted is None


def test_a_delete_conflict_under_delete_wins_still_deletes() -> None:
    """A sanity check of the model on a path that works: delete_wins after a concurrent edit."""
    w = synced(world(delete_policy=DeletePolicy.DELETE_WINS))
    w.edit("helpdesk", "name")
    w.read("helpdesk")
    w.deliver("helpdesk")
    w.delete("crm")
    w.read("crm")
    w.deliver("crm")
    w.settle()
    assert w.hub.deleted is not None
    assert all(w.dbs[s].record is None for s in w.systems)
