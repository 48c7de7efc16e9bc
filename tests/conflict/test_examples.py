"""Readable examples of the fold: what happens to one contact shared by a CRM and a helpdesk.

These are the documentation of conflict/: each test tells one story of the merge
(docs/ARCHITECTURE.md, "The merge").
The property and state-machine tests next to this file check the same rules over random
schedules.
"""

from __future__ import annotations

import pytest

from conflict import (
    DELETE_FIELD,
    REVIEW,
    Change,
    ConflictStatus,
    Custom,
    Decision,
    DeletePolicy,
    Dot,
    EntitySpec,
    FieldSpec,
    FieldType,
    Manual,
    Max,
    Observed,
    Owner,
    Prefer,
    RecordState,
    Resolve,
    Step,
    Union,
    WriteFailed,
    WriteIntent,
    WriteOp,
    WriteStale,
    Written,
    fold,
)


def contact_spec(**options: object) -> EntitySpec:
    return EntitySpec.build(
        "contact",
        ["crm", "helpdesk"],
        [
            FieldSpec("email", FieldType.STRING),
            FieldSpec("name", FieldType.STRING),
            FieldSpec("tags", FieldType.LIST, policy=Union()),
            FieldSpec("score", FieldType.NUMBER, policy=Max()),
        ],
        **options,  # type: ignore[arg-type]
    )


class Hub:
    """A tiny driver: one record, the fold, and a per-system sequence counter."""

    def __init__(self, spec: EntitySpec | None = None) -> None:
        self.spec = spec or contact_spec()
        self.state = RecordState("c1", self.spec.name)
        self.seq: dict[str, int] = {}
        self.steps: list[Step] = []

    def _next(self, system: str) -> int:
        self.seq[system] = self.seq.get(system, 0) + 1
        return self.seq[system]

    def apply(self, inp: object) -> Step:
        step = fold(self.spec, self.state, inp)  # type: ignore[arg-type]
        self.state = step.state
        self.steps.append(step)
        return step

    def read(self, system: str, ext: str, ts: float, **fields: object) -> Step:
        return self.apply(Observed(system, self._next(system), ext, fields, source_ts=ts))

    def read_deleted(self, system: str, ext: str, ts: float) -> Step:
        return self.apply(Observed(system, self._next(system), ext, deleted=True, source_ts=ts))

    def written(self, intent: WriteIntent, ext: str | None = None, ts: float = 0) -> Step:
        return self.apply(Written(intent.system, self._next(intent.system), intent.intent_id,
                                  external_id=ext or intent.external_id, source_ts=ts))

    def stale(self, intent: WriteIntent) -> Step:
        return self.apply(WriteStale(intent.system, self._next(intent.system), intent.intent_id))

    def failed(self, intent: WriteIntent) -> Step:
        return self.apply(WriteFailed(intent.system, self._next(intent.system),
                                      intent.intent_id, "503"))

    def values(self) -> dict[str, object]:
        return self.state.values


def linked_hub(spec: EntitySpec | None = None) -> Hub:
    """A contact created in the CRM and copied to the helpdesk; both in step."""
    hub = Hub(spec)
    step = hub.read("crm", "c-1", 100, email="ann@example.com", name="Ann", tags=["vip"])
    (create,) = step.intents
    assert create.op is WriteOp.CREATE and create.system == "helpdesk"
    hub.written(create, ext="h-1", ts=101)
    return hub


def test_a_new_record_is_created_in_the_other_system() -> None:
    hub = Hub()
    step = hub.read("crm", "c-1", 100, email="ann@example.com", name="Ann")

    assert step.new_dots == (Dot("crm", 1),)
    assert step.changed == ("email", "name")
    (intent,) = step.intents
    assert intent.system == "helpdesk"
    assert intent.op is WriteOp.CREATE
    assert intent.values == {"email": "ann@example.com", "name": "Ann"}

    step = hub.written(intent, ext="h-1")
    assert step.intents == ()  # both systems hold the record now
    helpdesk = hub.state.peers["helpdesk"]
    assert helpdesk.external_id == "h-1"
    assert helpdesk.knowledge == hub.state.clock


def test_fast_forward_an_edit_flows_to_the_other_system() -> None:
    hub = linked_hub()
    step = hub.read("helpdesk", "h-1", 200, email="ann@example.com", name="Ann Lee",
                    tags=["vip"])

    assert step.new_dots == (Dot("helpdesk", 1),)
    assert step.conflicts == ()  # the helpdesk had seen the CRM's value: no conflict
    (intent,) = step.intents
    assert (intent.system, intent.op) == ("crm", WriteOp.UPDATE)
    assert intent.values == {"name": "Ann Lee"}  # exactly the differing fields
    assert intent.expected == {"name": "Ann"}  # what the CRM is believed to hold
    assert hub.state.history[-1].change is Change.EDIT


def test_echo_the_hubs_own_write_coming_back_is_not_an_edit() -> None:
    hub = linked_hub()
    (intent,) = hub.read("helpdesk", "h-1", 200, email="ann@example.com",
                         name="Ann Lee", tags=["vip"]).intents
    hub.written(intent, ts=201)
    clock = hub.state.clock

    # The CRM's next poll shows the value the hub wrote: nothing new, nothing to write.
    step = hub.read("crm", "c-1", 202, email="ann@example.com", name="Ann Lee", tags=["vip"])
    assert step.new_dots == ()
    assert step.intents == ()
    assert hub.state.clock == clock


def test_echo_seen_before_the_writes_outcome_is_not_an_edit() -> None:
    """A lane crashed after writing: its next poll sees the write before any outcome."""
    hub = linked_hub()
    (intent,) = hub.read("helpdesk", "h-1", 200, email="ann@example.com",
                         name="Ann Lee", tags=["vip"]).intents
    step = hub.read("crm", "c-1", 202, email="ann@example.com", name="Ann Lee", tags=["vip"])
    assert step.new_dots == ()
    # The re-run of the intent finds the value there and reports it written.
    step = hub.written(intent)
    assert step.intents == ()
    assert hub.state.peers["crm"].in_flight is None


def test_replayed_observation_changes_nothing() -> None:
    hub = linked_hub()
    edit = Observed("helpdesk", 7, "h-1", {"name": "Ann Lee"}, source_ts=200)
    first = hub.apply(edit)
    assert first.applied
    again = hub.apply(edit)
    assert not again.applied
    assert again.state is first.state
    assert again.intents == ()


def test_concurrent_edit_latest_wins_and_the_conflict_is_recorded() -> None:
    hub = linked_hub()
    hub.read("crm", "c-1", 300, name="Ann (CRM)")
    # The helpdesk edited too, later in time, without having seen the CRM's edit.
    step = hub.read("helpdesk", "h-1", 305, name="Ann (helpdesk)")

    (conflict,) = step.conflicts
    assert conflict.field == "name"
    assert conflict.policy == "latest"
    assert conflict.status is ConflictStatus.AUTO_RESOLVED
    assert conflict.decision is Decision.INCOMING
    assert (conflict.current.value, conflict.current.system) == ("Ann (CRM)", "crm")
    assert (conflict.incoming.value, conflict.incoming.system) == ("Ann (helpdesk)", "helpdesk")
    assert hub.values()["name"] == "Ann (helpdesk)"
    # The CRM's write of "Ann (CRM)" is still in flight to the helpdesk; the CRM gets the
    # winner now.
    assert [i.system for i in step.intents] == ["crm"]
    assert step.intents[0].values == {"name": "Ann (helpdesk)"}


def test_latest_tie_is_broken_by_system_order_not_arrival_order() -> None:
    for first, second in [("crm", "helpdesk"), ("helpdesk", "crm")]:
        hub = linked_hub()
        ext = {"crm": "c-1", "helpdesk": "h-1"}
        hub.read(first, ext[first], 300, name=f"from {first}")
        hub.read(second, ext[second], 300, name=f"from {second}")
        assert hub.values()["name"] == "from crm"  # crm is listed first


def test_concurrent_edit_prefer_policy() -> None:
    spec = contact_spec(default_policy=Prefer(("helpdesk", "crm")))
    hub = linked_hub(spec)
    hub.read("helpdesk", "h-1", 300, name="Helpdesk Ann")
    step = hub.read("crm", "c-1", 400, name="CRM Ann")  # newer, but the helpdesk is preferred
    assert step.conflicts[0].decision is Decision.CURRENT
    assert hub.values()["name"] == "Helpdesk Ann"


def test_owner_policy_reverts_edits_made_elsewhere_and_records_them() -> None:
    spec = EntitySpec.build("contact", ["crm", "helpdesk"],
                            ["email", "tags", FieldSpec("name", policy=Owner("crm"))])
    hub = Hub(spec)
    (create,) = hub.read("crm", "c-1", 100, email="a@x", name="Ann").intents
    hub.written(create, ext="h-1")

    step = hub.read("helpdesk", "h-1", 200, email="a@x", name="Annie")
    (conflict,) = step.conflicts
    assert conflict.policy == "owner" and conflict.decision is Decision.CURRENT
    assert conflict.incoming.value == "Annie"
    assert hub.values()["name"] == "Ann"
    (revert,) = step.intents
    assert (revert.system, revert.values) == ("helpdesk", {"name": "Ann"})


def test_union_merges_concurrent_tag_edits() -> None:
    hub = linked_hub()
    hub.read("crm", "c-1", 300, tags=["vip", "beta"])
    step = hub.read("helpdesk", "h-1", 301, tags=["vip", "churn-risk"])
    (conflict,) = step.conflicts
    assert conflict.decision is Decision.MERGED
    assert hub.values()["tags"] == ["beta", "churn-risk", "vip"]
    # Both systems are behind the merged value now.
    assert {i.system for i in step.intents} == {"crm"}  # the helpdesk has a write in flight
    assert hub.state.peers["helpdesk"].in_flight is not None


def test_max_policy_takes_the_larger_number() -> None:
    hub = linked_hub()
    hub.read("crm", "c-1", 300, score=7)
    hub.read("helpdesk", "h-1", 301, score=5)
    assert hub.values()["score"] == 7


def test_custom_policy_named_by_dotted_path() -> None:
    spec = EntitySpec.build("contact", ["crm", "helpdesk"], [
        "email", "tags", FieldSpec("name", policy=Custom("tests.conflict.test_examples._longest",
                                                         _longest))])
    hub = linked_hub(spec)
    hub.read("crm", "c-1", 300, name="Ann Marie Lee")
    step = hub.read("helpdesk", "h-1", 301, name="Annie")
    assert step.conflicts[0].policy == "custom"
    assert hub.values()["name"] == "Ann Marie Lee"


def _longest(field: str, current: object, incoming: object) -> object:
    a, b = current.value, incoming.value  # type: ignore[attr-defined]
    return a if len(a) >= len(b) else b


def test_manual_policy_keeps_the_canonical_value_and_holds_the_conflict() -> None:
    spec = contact_spec(default_policy=Manual())
    hub = linked_hub(spec)
    hub.read("crm", "c-1", 300, name="Ann (CRM)")
    step = hub.read("helpdesk", "h-1", 305, name="Ann (helpdesk)")

    (conflict,) = step.conflicts
    assert conflict.status is ConflictStatus.OPEN
    assert hub.values()["name"] == "Ann (CRM)"
    assert hub.state.open_conflicts() == (conflict,)

    # A person takes the helpdesk's value: a write by the actor "review".
    step = hub.apply(Resolve("res-1", conflict.conflict_id, by="dana", at=400,
                             take="helpdesk", note="customer asked"))
    assert step.new_dots == (Dot(REVIEW, 1),)
    assert hub.values()["name"] == "Ann (helpdesk)"
    (resolved,) = step.conflicts
    assert resolved.status is ConflictStatus.RESOLVED
    assert resolved.resolution is not None and resolved.resolution.by == "dana"
    assert hub.state.open_conflicts() == ()
    assert {i.system for i in step.intents} == {"crm"}
    # The same resolution delivered twice changes nothing.
    again = hub.apply(Resolve("res-1", conflict.conflict_id, by="dana", at=400,
                              take="helpdesk"))
    assert not again.applied


def test_stale_write_leaves_the_system_behind_and_plans_again() -> None:
    hub = linked_hub()
    (intent,) = hub.read("helpdesk", "h-1", 200, name="Ann Lee").intents
    # The CRM's user edited the name before the write: the lane wrote nothing, read the
    # record (the edit arrives first), then reported the write stale.
    step = hub.read("crm", "c-1", 201, name="Ann L.")
    assert step.conflicts[0].decision is Decision.INCOMING  # latest: 201 beats 200
    assert [i.system for i in step.intents] == ["helpdesk"]  # the helpdesk gets the winner
    step = hub.stale(intent)
    assert hub.values()["name"] == "Ann L."
    assert [i.system for i in step.intents] == []  # the CRM holds the winner already
    assert hub.state.peers["crm"].in_flight is None


def test_failed_write_is_planned_again_until_the_budget_then_waits() -> None:
    hub = linked_hub(contact_spec(max_write_attempts=2))
    (intent,) = hub.read("helpdesk", "h-1", 200, name="Ann Lee").intents
    (again,) = hub.failed(intent).intents
    assert again.attempt == 2 and again.values == intent.values
    assert hub.failed(again).intents == ()  # budget spent: behind, no new write
    assert hub.state.peers["crm"].in_flight is None
    # The next read of the record tries again.
    step = hub.read("helpdesk", "h-1", 300, name="Ann Lee")
    assert [i.system for i in step.intents] == ["crm"]


def test_delete_flows_to_the_other_system() -> None:
    hub = linked_hub()
    step = hub.read_deleted("crm", "c-1", 300)
    assert hub.state.deleted is not None
    (intent,) = step.intents
    assert (intent.system, intent.op, intent.external_id) == ("helpdesk", WriteOp.DELETE, "h-1")
    hub.written(intent)
    # The helpdesk's delete feed reports it: an echo, nothing new.
    step = hub.read_deleted("helpdesk", "h-1", 301)
    assert step.new_dots == () and step.intents == ()


def test_delete_concurrent_with_update_is_held_for_review_by_default() -> None:
    hub = linked_hub()
    (update,) = hub.read("helpdesk", "h-1", 300, name="Ann Lee").intents  # CRM not told yet
    step = hub.read_deleted("crm", "c-1", 301)

    (conflict,) = step.conflicts
    assert conflict.field == DELETE_FIELD
    assert conflict.status is ConflictStatus.OPEN
    assert conflict.incoming.deleted and conflict.incoming.system == "crm"
    assert conflict.current.value == {"name": "Ann Lee"}
    assert hub.state.deleted is None  # nothing is destroyed until a person decides
    # The update sent to the CRM finds no record there: stale. The CRM gets the record back.
    (recreate,) = hub.stale(update).intents
    assert (recreate.system, recreate.op) == ("crm", WriteOp.CREATE)
    assert recreate.values["name"] == "Ann Lee"

    # A person decides for the delete after all.
    step = hub.apply(Resolve("res-1", conflict.conflict_id, by="dana", at=400, take="crm"))
    assert hub.state.deleted is not None
    assert step.conflicts[0].status is ConflictStatus.RESOLVED


@pytest.mark.parametrize(("policy", "deleted"), [(DeletePolicy.DELETE_WINS, True),
                                                 (DeletePolicy.UPDATE_WINS, False)])
def test_delete_concurrent_with_update_by_policy(policy: DeletePolicy, deleted: bool) -> None:
    hub = linked_hub(contact_spec(delete_policy=policy))
    hub.read("helpdesk", "h-1", 300, name="Ann Lee")
    step = hub.read_deleted("crm", "c-1", 301)
    assert step.conflicts[0].status is ConflictStatus.AUTO_RESOLVED
    assert (hub.state.deleted is not None) is deleted


def test_first_sighting_in_a_second_system_links_and_decides_differences() -> None:
    """Both systems had the contact before syncline ran: linked by match key, not copied."""
    hub = Hub()
    hub.read("crm", "c-1", 100, email="ann@example.com", name="Ann")
    step = hub.read("helpdesk", "h-9", 90, email="ann@example.com", name="Ann Lee")

    assert hub.state.peers["helpdesk"].external_id == "h-9"
    (conflict,) = step.conflicts  # equal emails agree; differing names had no common history
    assert conflict.field == "name" and conflict.decision is Decision.CURRENT  # crm is newer
    assert hub.values()["name"] == "Ann"


def test_three_systems_a_change_in_one_reaches_the_other_two() -> None:
    spec = EntitySpec.build("contact", ["crm", "helpdesk", "shop"], ["email", "name"])
    hub = Hub(spec)
    step = hub.read("shop", "s-1", 100, email="a@x", name="Ann")
    creates = {i.system: i for i in step.intents}
    assert set(creates) == {"crm", "helpdesk"}
    hub.written(creates["crm"], ext="c-1")
    hub.written(creates["helpdesk"], ext="h-1")

    step = hub.read("helpdesk", "h-1", 200, email="a@x", name="Ann Lee")
    updates = {i.system: i for i in step.intents}
    assert set(updates) == {"crm", "shop"}
    for intent in updates.values():
        assert intent.values == {"name": "Ann Lee"}
        hub.written(intent)
    # Everyone is in step and knows every dot.
    for system in spec.systems:
        assert hub.state.peers[system].knowledge == hub.state.clock
    # A chain: the shop edits after seeing the helpdesk's value: a fast-forward, no conflict.
    step = hub.read("shop", "s-1", 300, email="a@x", name="Ann Lee-Smith")
    assert step.conflicts == ()
    assert {i.system for i in step.intents} == {"crm", "helpdesk"}


def test_record_history_says_who_set_each_field_when_and_why() -> None:
    hub = linked_hub()
    hub.read("crm", "c-1", 300, name="Ann (CRM)")
    hub.read("helpdesk", "h-1", 305, name="Ann (helpdesk)")
    name_history = [h for h in hub.state.history if h.field == "name"]
    assert [(h.dot.actor, h.source_ts, h.change) for h in name_history] == [
        ("crm", 100, Change.FIRST),
        ("crm", 300, Change.EDIT),
        ("helpdesk", 305, Change.CONFLICT_WON),
    ]
    assert name_history[-1].conflict_id is not None


def test_state_round_trips_through_its_serialised_form() -> None:
    hub = linked_hub(contact_spec(default_policy=Manual()))
    hub.read("crm", "c-1", 300, name="Ann (CRM)")
    hub.read("helpdesk", "h-1", 305, name="Ann (helpdesk)")
    data = hub.state.to_dict()
    assert RecordState.from_dict(data) == hub.state
    assert RecordState.from_dict(data).to_dict() == data


def test_a_field_read_only_in_a_system_flows_from_it_and_is_never_written_to_it() -> None:
    """The helpdesk reports a status its value map cannot write back: it is only ever read."""
    spec = EntitySpec.build("contact", ["crm", "helpdesk"], [
        FieldSpec("email", FieldType.STRING),
        FieldSpec("status", FieldType.STRING, read_only=frozenset({"helpdesk"}))])
    hub = Hub(spec)
    [create] = hub.read("crm", "c-1", 100, email="a@example.com", status="lead").intents
    assert create.system == "helpdesk" and dict(create.values) == {"email": "a@example.com"}
    hub.written(create, "h-1")
    # The helpdesk's status is news to the hub, and flows to the CRM ...
    [update] = hub.read("helpdesk", "h-1", 200, email="a@example.com", status="open").intents
    assert update.system == "crm" and dict(update.values) == {"status": "open"}
    hub.written(update)
    # ... but a CRM edit of it is never written to the helpdesk.
    assert hub.read("crm", "c-1", 300, email="a@example.com", status="won").intents == ()
    assert hub.values()["status"] == "won"
