"""The lane's promises under any interleaving: a Hypothesis state machine over the twins.

People edit, create and delete records in the system; the hub (played here) sends intents
built from what the lane reported; the system goes down, loses answers after a write landed;
the lane crashes between a write and its commit. After every step:

- the lane never wrote over a value it had not reported (no edit the hub has not seen is
  lost), and deleted only a record whose values it had reported;
- no two live records share a match key (a create never duplicates);

and whenever the system answers again and the lane has polled and swept, what the lane
reported last for each record is what the record holds (nothing missed, nothing stale).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from daemon.errors import DaemonError
from daemon.http import HttpError
from streams import codec
from streams.events import Observed, WriteIntent, Written
from tests.daemon.lane.conftest import CONTACT, Rig, endpoint, make_rig

NAMES = st.sampled_from(["Ann", "Bo", "Cy", "Di"])
MAPPING = CONTACT.mapping("contact", "crm")


class LaneMachine(RuleBasedStateMachine):
    rig: Rig

    @initialize()
    def start(self) -> None:
        self.loop = asyncio.new_event_loop()
        # The people here may delete every record: the delete breaker (which holds a sweep
        # that finds most known records gone, tested in test_reading.py) is off, so that the
        # machine checks what the lane reports of real deletes.
        self.rig = make_rig(endpoint(deletes={"max_missing_share": 1}))
        self.emails = 0
        self.reported: dict[str, dict[str, set[Any]]] = {}  # id -> field -> values reported
        self.sent: dict[str, WriteIntent] = {}  # intent id -> the intent

    def teardown(self) -> None:
        if hasattr(self, "loop"):
            self.loop.close()

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def email(self) -> str:
        self.emails += 1
        return f"p{self.emails}@x.org"

    def live_ids(self) -> list[str]:
        return [r["id"] for r in self.rig.system.live()]

    def hub_view(self) -> dict[str, dict[str, Any] | None]:
        """What the lane last reported of each record (None: deleted)."""
        view: dict[str, dict[str, Any] | None] = {}
        for event in self.rig.journal.observations:
            if isinstance(event, Observed):
                view[event.external_id] = None if event.deleted else dict(event.fields)
            elif isinstance(event, Written):
                view[event.external_id] = (dict(event.fields) if event.fields is not None
                                           else None)
        return view

    def remember_reported(self) -> None:
        """Every value the lane ever committed for each record's fields."""
        for event in self.rig.journal.observations:
            fields = getattr(event, "fields", None) or {}
            for name, value in fields.items():
                self.reported.setdefault(event.external_id, {}).setdefault(  # type: ignore[attr-defined]
                    name, set()).add(value)

    def canonical(self) -> dict[str, dict[str, Any]]:
        return {r["id"]: MAPPING.to_canonical(r).values for r in self.rig.system.live()}

    # -- people ------------------------------------------------------------------------------
    @rule(name=NAMES)
    def person_creates(self, name: str) -> None:
        self.rig.system.put(email=self.email(), full_name=name)

    @precondition(lambda self: self.rig.system.live())
    @rule(data=st.data(), name=NAMES)
    def person_edits(self, data: st.DataObject, name: str) -> None:
        self.emails += 1  # a name never seen before: overwriting it would lose the edit
        self.rig.system.edit(data.draw(st.sampled_from(self.live_ids())),
                             full_name=f"{name} {self.emails}")

    @precondition(lambda self: self.rig.system.live())
    @rule(data=st.data())
    def person_deletes(self, data: st.DataObject) -> None:
        self.rig.system.remove(data.draw(st.sampled_from(self.live_ids())))

    # -- the hub -----------------------------------------------------------------------------
    @rule(name=NAMES)
    def hub_creates(self, name: str) -> None:
        self.rig.intent("create", values={"email": self.email(), "name": name})

    @precondition(lambda self: any(v is not None for v in self.hub_view().values()))
    @rule(data=st.data(), name=NAMES)
    def hub_updates(self, data: st.DataObject, name: str) -> None:
        known = sorted(i for i, v in self.hub_view().items() if v is not None)
        external_id = data.draw(st.sampled_from(known))
        expected = self.hub_view()[external_id]
        made = self.rig.intent("update", external_id, values={"name": name}, expected=expected)
        self.sent[made.intent_id] = made

    @precondition(lambda self: any(v is not None for v in self.hub_view().values()))
    @rule(data=st.data())
    def hub_deletes(self, data: st.DataObject) -> None:
        known = sorted(i for i, v in self.hub_view().items() if v is not None)
        external_id = data.draw(st.sampled_from(known))
        made = self.rig.intent("delete", external_id, expected=self.hub_view()[external_id])
        self.sent[made.intent_id] = made

    # -- the lane and the world --------------------------------------------------------------
    @rule()
    def lane_polls(self) -> None:
        with contextlib.suppress(HttpError):  # the system is down: the next poll reads all
            self.run(self.rig.lane.poll())

    @rule()
    def lane_executes(self) -> None:
        self.remember_reported()
        before = {r["id"]: dict(r) for r in self.rig.system.live()}
        self.run(self.rig.lane.execute_intents())
        self.check_writes(before)

    @rule()
    def lane_executes_one(self) -> None:
        """One intent: what it changed must have held exactly what the intent expected."""
        before = self.canonical()
        done = len(self.rig.journal.observations)
        self.run(self.rig.lane.execute_intents(max_records=1))
        after = self.canonical()
        for event in self.rig.journal.observations[done:]:
            intent = self.sent.get(getattr(event, "intent_id", ""))
            if not isinstance(event, Written) or intent is None:
                continue
            held = before.get(event.external_id)
            if held is None:
                continue  # gone before: nothing was overwritten
            now = after.get(event.external_id)
            changed = {n for n in set(held) | set(now or {}) if now is None
                       or held.get(n) != now.get(n)}
            assert all(held.get(n) == intent.expected.get(n) for n in changed
                       if now is None or n in intent.values), (intent, held, now)

    def check_writes(self, before: dict[str, dict[str, Any]]) -> None:
        """The lane wrote over, or deleted, only values it had reported."""
        after = {r["id"]: dict(r) for r in self.rig.system.live()}
        for external_id, record in before.items():
            held = MAPPING.to_canonical(record).values
            seen = self.reported.get(external_id, {})
            now = after.get(external_id)
            if now is None:  # the lane deleted it: only as reported
                assert all(value in seen.get(name, set()) for name, value in held.items()), (
                    external_id, held, seen)
                continue
            for name, value in MAPPING.to_canonical(now).values.items():
                if value != held.get(name):  # the lane wrote it: over a value reported
                    assert held.get(name) in seen.get(name, set()), (external_id, name, held,
                                                                     seen)

    @rule()
    def system_goes_down(self) -> None:
        self.rig.system.fail("*", "down", times=None)

    @rule()
    def system_comes_back(self) -> None:
        self.rig.system.heal()

    @rule(operation=st.sampled_from(["create", "update", "delete"]))
    def an_answer_is_lost(self, operation: Any) -> None:
        self.rig.system.fail(operation, "down", landed=True)

    @rule()
    def lane_crashes(self) -> None:
        self.rig.restart()

    @rule()
    def lane_crashes_after_a_write_before_its_commit(self) -> None:
        """The next intent runs, and the process dies before it commits what happened."""
        self.remember_reported()
        delivered = self.run(self.rig.journal.intents(0, max_records=1))
        if delivered:
            intent = codec.decode(delivered[0].value, (WriteIntent,))
            before = {r["id"]: dict(r) for r in self.rig.system.live()}
            with contextlib.suppress(DaemonError):
                self.run(self.rig.lane.execute(intent))
            self.check_writes(before)
        self.rig.restart()

    @rule()
    def everything_settles(self) -> None:
        self.rig.system.heal()
        self.run(self.rig.lane.poll())
        self.run(self.rig.lane.sweep())
        view = self.hub_view()
        alive = self.canonical()
        assert {i: v for i, v in view.items() if v is not None} == alive

    @invariant()
    def match_keys_are_unique(self) -> None:
        if hasattr(self, "rig"):
            emails = [r["email"] for r in self.rig.system.live()]
            assert len(emails) == len(set(emails))


LaneMachine.TestCase.settings = settings(max_examples=100, stateful_step_count=30)
TestLaneMachine = LaneMachine.TestCase
