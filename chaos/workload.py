"""The people: creates, edits and deletes in the systems' UIs, and the log of what they did.

A person looks at a record and changes it in one step (the system's own write path, what its
``/_admin/edit`` UI route runs, with no await in between), so the log knows exactly what each
person saw when they acted: that is the causality the lost-edit check needs. Every value
written is unique in the run (``N 17``, ``+15550000017``), so a value names the edit that
made it, wherever it turns up — in a system, a snapshot or a conflict report.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from daemon.mapping import EntityMapping
from daemon.sandbox import RunningSystem
from daemon.sandbox.store import StoredRecord

EDITED = ("name", "phone")
"""The fields people edit (both under the ``latest`` policy in the chaos configuration)."""

RAW = {"crm": {"email": "email", "name": "full_name", "phone": "phone"},
       "helpdesk": {"email": "email_address", "name": "name", "phone": "phone"}}
RESOURCE = {"crm": "contacts", "helpdesk": "users"}


def kind(system: str) -> str:
    """``crm`` or ``helpdesk``: which simulated API a system name (``crm2``) runs."""
    return "helpdesk" if system.startswith("helpdesk") else "crm"


@dataclass(frozen=True)
class Action:
    """One thing a person did: ``op`` is create, edit or delete.

    ``values``: the canonical values the person set (a create's fields, an edit's one field).
    ``saw``: the canonical values of the record as the person saw it just before (nothing
    for a create).
    """

    step: int
    at: float
    op: str
    system: str
    email: str
    values: dict[str, Any] = field(default_factory=dict)
    saw: dict[str, Any] = field(default_factory=dict)
    concurrent: bool = False


class People:
    """Acts on the running systems and keeps the log.

    Args:
        systems: the running systems by name.
        mappings: each system's mapping of the contact (to read records canonically).
        seed: the seed of the run (the workload has its own stream of draws).
    """

    def __init__(self, systems: dict[str, RunningSystem], mappings: dict[str, EntityMapping],
                 seed: int, prefix: str) -> None:
        self.systems = systems
        self.mappings = mappings
        self.rng = random.Random(f"workload-{seed}")
        self.prefix = prefix
        self.log: list[Action] = []
        self.emails: list[str] = []  # the people not deleted by anyone yet
        self.people = 0
        self.counter = 0
        self.skipped = 0

    # -- what a person sees --------------------------------------------------------------------
    def find(self, system: str, email: str) -> StoredRecord | None:
        """The live record with this email in ``system`` (the first, if there are several)."""
        found = self.systems[system].system.store.find(
            RESOURCE[kind(system)], RAW[kind(system)]["email"], email)
        return found[0] if found else None

    def canonical(self, system: str, record: StoredRecord) -> dict[str, Any]:
        """A stored record in canonical fields, with its id."""
        running = self.systems[system].system
        raw = running.render(record)
        values = dict(self.mappings[system].to_canonical(raw).values)
        values["id"] = raw["id"]
        return values

    def records(self, system: str) -> list[dict[str, Any]]:
        """Every live record of ``system``, canonically (duplicates included)."""
        store = self.systems[system].system.store
        return [self.canonical(system, r) for r in store.live(RESOURCE[kind(system)])]

    # -- what a person does ----------------------------------------------------------------------
    def fresh(self, name: str) -> Any:
        """A value never used before in this run, for field ``name``."""
        self.counter += 1
        if name == "name":
            return f"N {self.counter}"
        return f"+1555{self.counter:07d}"

    def create(self, at: float, system: str, email: str | None = None,
               concurrent: bool = False) -> Action:
        """A new person in ``system``."""
        if email is None:
            email = f"{self.prefix}{self.people}@chaos.example"
            self.people += 1
            self.emails.append(email)
        values = {"email": email, "name": self.fresh("name"), "phone": self.fresh("phone")}
        running = self.systems[system].system
        spec = running.store.spec(RESOURCE[kind(system)])
        raw = {RAW[kind(system)][k]: v for k, v in values.items()}
        running.create(spec, raw, None)
        return self._logged(Action(len(self.log), at, "create", system, email, values,
                                   concurrent=concurrent))

    def edit(self, at: float, system: str, email: str, name: str,
             concurrent: bool = False) -> Action | None:
        """Look at the record in ``system`` and change field ``name`` (None: not there)."""
        record = self.find(system, email)
        if record is None:
            return None
        saw = self.canonical(system, record)
        value = self.fresh(name)
        running = self.systems[system].system
        spec = running.store.spec(RESOURCE[kind(system)])
        running.update(spec, record.key, {RAW[kind(system)][name]: value}, None)
        return self._logged(Action(len(self.log), at, "edit", system, email, {name: value},
                                   saw, concurrent))

    def delete(self, at: float, system: str, email: str) -> Action | None:
        """Look at the record in ``system`` and delete it (None: not there)."""
        record = self.find(system, email)
        if record is None:
            return None
        saw = self.canonical(system, record)
        running = self.systems[system].system
        running.delete(running.store.spec(RESOURCE[kind(system)]), record.key, None)
        return self._logged(Action(len(self.log), at, "delete", system, email, saw=saw))

    def _logged(self, action: Action) -> Action:
        self.log.append(action)
        return action

    # -- the workload ----------------------------------------------------------------------------
    def seed_records(self, count: int, concurrent_share: float) -> None:
        """``count`` people created before the edits start, some in two systems at once."""
        names = sorted(self.systems)
        for _ in range(count):
            first = self.rng.choice(names)
            action = self.create(0.0, first)
            if self.rng.random() < concurrent_share:
                other = self.rng.choice([n for n in names if n != first])
                self.create(0.0, other, action.email, concurrent=True)

    def step(self, at: float, create_share: float, delete_share: float,
             concurrent_share: float) -> int:
        """One person's action (and, now and then, someone else's at the same moment on the
        same field elsewhere); the number of field edits it made."""
        names = sorted(self.systems)
        draw = self.rng.random()
        if draw < create_share or not self.emails:
            self.create(at, self.rng.choice(names))
            return 0
        email = self.rng.choice(self.emails)
        order = self.rng.sample(names, len(names))
        if draw < create_share + delete_share:
            for system in order:
                if self.delete(at, system, email) is not None:
                    self.emails.remove(email)
                    if self.rng.random() < concurrent_share:  # someone edits it elsewhere
                        for other in order[order.index(system) + 1:]:
                            name = self.rng.choice(EDITED)
                            if self.edit(at, other, email, name, concurrent=True):
                                return 1
                    return 0
            self.skipped += 1
            return 0
        name = self.rng.choice(EDITED)
        concurrent = self.rng.random() < concurrent_share
        made = 0
        for system in order:
            if self.edit(at, system, email, name) is not None:
                made = 1
                if concurrent:
                    for other in order[order.index(system) + 1:]:
                        if self.edit(at, other, email, name, concurrent=True) is not None:
                            made += 1
                            break
                break
        if not made:
            self.skipped += 1
        return made
