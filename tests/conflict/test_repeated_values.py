"""Stories where a value comes back: fields repeat their values, and no edit may be lost to it.

A status goes open -> pending -> open, a flag true -> false -> true. The fold must tell a
person's edit from the hub's own write coming back, and decide concurrent edits, even when
the person's value is one the hub has seen (or is writing) itself. Each story below is an
edit that an older fold lost (issue 13); ``tests/conflict/model.py`` plays the same rules over
random schedules with small value sets.
"""

from __future__ import annotations

from conflict import (
    Change,
    ConflictStatus,
    Decision,
    EntitySpec,
    FieldSpec,
    FieldType,
    same,
)
from tests.conflict.test_examples import Hub


def status_spec(*systems: str) -> EntitySpec:
    return EntitySpec.build("ticket", list(systems), [FieldSpec("status", FieldType.STRING)])


def test_a_person_who_reverts_to_the_value_the_hub_is_writing_is_not_an_echo() -> None:
    """Story 1: a revert is not the echo of a write that would have been stale.

    The helpdesk sets ``pending``; the hub plans to write it to the CRM, which it believes
    holds ``open``. Before the lane runs, a CRM user sets ``closed`` (newer: it wins), then
    changes it back to ``pending``. The CRM's read shows ``pending``, the value of the write
    in flight -- but that write expected ``open``, and the hub knows the CRM has held
    ``closed`` since: the lane would have found the write stale, so ``pending`` is the CRM
    user's edit. An older fold took it for its own write's echo and wrote ``closed``
    everywhere, reverting the person's last edit without a conflict.
    """
    hub = Hub(status_spec("crm", "helpdesk"))
    (create,) = hub.read("crm", "c-1", 100, status="open").intents
    hub.written(create, ext="h-1", ts=101)

    (to_crm,) = hub.read("helpdesk", "h-1", 200, status="pending").intents
    assert (to_crm.values, to_crm.expected) == ({"status": "pending"}, {"status": "open"})
    step = hub.read("crm", "c-1", 210, status="closed")
    assert step.conflicts[0].decision is Decision.INCOMING  # latest: 210 beats 200
    assert hub.values() == {"status": "closed"}

    step = hub.read("crm", "c-1", 220, status="pending")  # the CRM user's revert
    assert len(step.new_dots) == 1 and step.new_dots[0].actor == "crm"
    assert hub.values() == {"status": "pending"}
    assert hub.state.history[-1].change is Change.EDIT
    # The lane finds the CRM holding the write's value and reports it written: nothing
    # changes back, and nothing writes "closed" to the CRM again.
    step = hub.written(to_crm, ts=221)
    assert hub.values() == {"status": "pending"}
    assert step.intents == () and hub.state.peers["crm"].in_flight is None


def test_an_edit_equal_to_the_canonical_value_keeps_its_own_time() -> None:
    """Story 2: two systems agreeing on a value still count as two edits.

    Three systems hold ``new``. The CRM sets ``open`` (the hub's writes of it stay in
    flight), then ``pending`` at t=200. The shop sets ``closed`` at t=300, read later. The
    helpdesk, which never saw ``pending``, sets ``pending`` too, at t=400: it agrees with the
    canonical value, so there is nothing to decide -- but it is the newest edit. When the
    shop's ``closed`` arrives, ``latest`` must compare it with the helpdesk's ``pending`` at
    t=400 and keep ``pending``. An older fold kept the CRM's dot and time (t=200) for the
    agreeing edit, so ``closed`` won and the helpdesk's edit left no trace.
    """
    hub = Hub(status_spec("crm", "helpdesk", "shop"))
    step = hub.read("crm", "c-1", 100, status="new")
    for create in step.intents:
        hub.written(create, ext=f"{create.system[0]}-1", ts=101)
    hub.read("crm", "c-1", 150, status="open")  # writes of "open" in flight to both
    hub.read("crm", "c-1", 200, status="pending")
    assert hub.state.fields["status"].source_ts == 200

    step = hub.read("helpdesk", "h-1", 400, status="pending")  # concurrent, and equal
    assert step.conflicts == ()  # nothing to decide
    assert hub.values() == {"status": "pending"}
    assert hub.state.fields["status"].source_ts == 400

    step = hub.read("shop", "s-1", 300, status="closed")
    (conflict,) = step.conflicts
    assert (conflict.current.system, conflict.current.source_ts) == ("helpdesk", 400)
    assert conflict.decision is Decision.CURRENT
    assert conflict.status is ConflictStatus.AUTO_RESOLVED
    assert hub.values() == {"status": "pending"}


def test_true_and_one_are_different_values() -> None:
    """Story 3, in the fold: ``true`` is not ``1`` (JSON), but ``1`` is ``1.0``.

    The lane half of the story (the lane compared with Python's ``==``, where ``True == 1``)
    is in ``tests/daemon/test_value_equality.py``.
    """
    spec = EntitySpec.build("ticket", ["crm", "helpdesk"], [FieldSpec("flag")])  # type any
    hub = Hub(spec)
    (create,) = hub.read("crm", "c-1", 100, flag=True).intents
    hub.written(create, ext="h-1", ts=101)

    step = hub.read("helpdesk", "h-1", 200, flag=1)
    assert len(step.new_dots) == 1  # an edit: true became 1
    (to_crm,) = step.intents
    assert to_crm.values == {"flag": 1} and to_crm.values["flag"] is not True
    hub.written(to_crm, ts=201)

    step = hub.read("crm", "c-1", 202, flag=1.0)  # the same number, written another way
    assert step.new_dots == () and step.intents == ()
    assert same(1, 1.0) and not same(True, 1) and not same([True], [1])
    assert same({"a": [1, {"b": 2.0}]}, {"a": [1.0, {"b": 2}]})
    assert not same({"a": 1}, {"a": 1, "b": None}) and not same("1", 1)

