"""The chaos run's checks on small hand-made histories: each violation is caught, and each
way an edit may legitimately end (final, superseded, a recorded conflict) is accepted."""

from __future__ import annotations

from typing import Any

import pytest

from chaos.plan import FAULTS, Params, Plan
from chaos.verdict import Writes, judge, needed_writes
from chaos.workload import Action

A = "a@chaos.example"


def cid(email: str) -> str:
    return f"id-{email}"


def record(name: str, phone: str = "+1", email: str = A) -> dict[str, Any]:
    return {"email": email, "name": name, "phone": phone, "tags": [], "id": 1}


def created(step: int = 0, system: str = "crm", name: str = "N 1") -> Action:
    return Action(step, 0.0, "create", system, A, {"email": A, "name": name, "phone": "+1"})


def edit(step: int, system: str, name: str, saw: str, concurrent: bool = False) -> Action:
    return Action(step, float(step), "edit", system, A, {"name": name},
                  {"email": A, "name": saw, "phone": "+1"}, concurrent)


def everywhere(*records: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {s: list(records) for s in ("crm", "helpdesk", "crm2")}


def quiet() -> dict[str, Writes]:
    return {s: Writes(made=1, unchanged=0, quiet=0, needed=5) for s in ("crm", "helpdesk")}


def conflict(field: str, current: Any, incoming: Any) -> dict[str, Any]:
    return {"canonical_id": cid(A), "field": field, "current": {"value": current},
            "incoming": {"value": incoming}}


def test_a_history_where_every_edit_is_final_or_seen_is_clean() -> None:
    log = [created(), edit(1, "helpdesk", "N 2", saw="N 1"), edit(2, "crm", "N 3", saw="N 2")]
    verdict = judge(log, everywhere(record("N 3")), [], cid, quiet())
    assert verdict.violations == []
    # Final: N 3 and the create's phone; superseded: N 1 and N 2.
    assert verdict.figures["values final"] == 2 and verdict.figures["values superseded"] == 2


def test_an_edit_nobody_saw_and_no_conflict_names_is_lost() -> None:
    log = [created(), edit(1, "helpdesk", "N 2", saw="N 1"),
           edit(2, "crm", "N 3", saw="N 1", concurrent=True)]
    verdict = judge(log, everywhere(record("N 3")), [], cid, quiet())
    assert verdict.figures["lost edits"] == 1
    assert verdict.violations == [
        "lost edit: step 1 (edit in helpdesk, t=1.0s) set a@chaos.example name='N 2'; it is "
        "'N 3' now, no later edit saw it, no conflict names it"]
    # The same history with the conflict reported: the losing side is accounted for.
    reported = judge(log, everywhere(record("N 3")), [conflict("name", "N 3", "N 2")], cid,
                     quiet())
    assert reported.violations == []
    assert reported.figures["values on the losing side of a recorded conflict"] == 1


def test_records_that_differ_and_duplicates_are_counted() -> None:
    final = everywhere(record("N 1"))
    final["crm2"] = [record("N 9")]
    final["helpdesk"] = [record("N 1"), record("N 1")]
    verdict = judge([created()], final, [], cid, quiet())
    assert verdict.figures["records that differ"] == 1
    assert verdict.figures["duplicates"] == 1
    assert "duplicate: a@chaos.example is 2 records in helpdesk" in verdict.violations


def test_a_record_missing_in_one_system_differs_and_a_lost_create_is_named() -> None:
    final = everywhere(record("N 1"))
    final["crm2"] = []
    verdict = judge([created()], final, [], cid, quiet())
    assert verdict.figures["records that differ"] == 1
    gone = judge([created()], everywhere(), [], cid, quiet())
    assert "lost create: a@chaos.example was created and is nowhere now" in gone.violations
    assert gone.figures["lost creates"] == 1 and gone.figures["lost edits"] == 2


def test_a_delete_is_kept_or_lost_unless_a_delete_conflict_was_recorded() -> None:
    delete = Action(1, 1.0, "delete", "crm", A, saw={"email": A, "name": "N 1", "phone": "+1"})
    log = [created(), delete]
    assert judge(log, everywhere(), [], cid, quiet()).violations == []
    revived = judge(log, everywhere(record("N 1")), [], cid, quiet())
    assert revived.violations == [
        "lost delete: a@chaos.example was deleted and is live again, no conflict"]
    decided = judge(log, everywhere(record("N 1")), [conflict("_deleted", None, None)], cid,
                    quiet())
    assert decided.violations == []


def test_writes_that_change_nothing_exceed_the_need_or_come_after_quiet_are_echoes() -> None:
    writes = {"crm": Writes(made=3, unchanged=1, quiet=0, needed=5),
              "helpdesk": Writes(made=7, unchanged=0, quiet=2, needed=5)}
    verdict = judge([created()], everywhere(record("N 1")), [], cid, writes)
    assert verdict.figures["echo writes"] == 1 + 2 + 2
    assert verdict.violations == [
        "echo: 1 writes to crm changed nothing",
        "echo: 7 writes to helpdesk, at most 5 needed",
        "echo: 2 writes to helpdesk after convergence"]


def test_an_action_needs_at_most_one_write_in_each_other_system() -> None:
    log = [created(), edit(1, "helpdesk", "N 2", saw="N 1"), edit(2, "crm", "N 3", saw="N 2")]
    assert needed_writes(log, ["crm", "helpdesk", "crm2"]) == {
        "crm": 1, "helpdesk": 2, "crm2": 3}


def test_the_plan_is_the_seeds_alone() -> None:
    params = Params(seed=5, edits=2000, rate=10)
    plan = Plan.build(params)
    assert plan == Plan.build(Params(seed=5, edits=2000, rate=10))
    assert plan != Plan.build(Params(seed=6, edits=2000, rate=10))
    assert plan.count("kill") == params.kills and plan.count("broker_kill") == 1
    assert set(plan.fault_counts()) == set(FAULTS)
    downs = [e for e in plan.events if e.kind in ("down", "up")]
    assert downs[1].at - downs[0].at == pytest.approx(params.down_seconds)
