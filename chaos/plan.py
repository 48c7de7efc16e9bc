"""The seeded schedule of a chaos run: what is injected when. Pure: a seed and the sizes in,
the same events out, every time (``Plan.build``)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

SYSTEMS = ("crm", "helpdesk", "crm2")
"""The three simulated systems: two CRMs (webhooks, versions, conditional writes) and a
helpdesk (polling only, second-resolution timestamps, deletes found by sweeps)."""

FAULTS: dict[str, dict[str, Any]] = {
    "5xx": {"error_rate": 0.3},
    "timeout": {"timeout_rate": 0.15, "timeout_ms": 12_000},
    "429": {"burst_429": 40},
    "garbled": {"malformed_rate": 0.2, "malformed_kind": "mixed"},
    "slow": {"latency_ms": 300},
}
"""The fault episodes a system goes through (settings of its ``/_admin/faults``). A timeout
holds the answer past the client's 10 s; a garbled body is HTML, cut JSON or invalid UTF-8."""


@dataclass(frozen=True)
class Params:
    """The size of a run. ``edits`` counts people's edits of fields (a create's fields not
    included); ``rate`` is people's actions per second."""

    seed: int
    records: int = 300
    edits: int = 10_000
    rate: float = 20.0
    concurrent_share: float = 0.1
    create_share: float = 0.03
    delete_share: float = 0.015
    kills: int = 12
    broker_kill: bool = True
    broker_down_seconds: float = 5.0
    down_seconds: float = 60.0
    faults: bool = True
    scale_out: bool = True
    settle_seconds: float = 900.0
    quiet_seconds: float = 25.0

    @property
    def duration(self) -> float:
        """Seconds the workload runs: every action at ``rate``."""
        per_edit = 1 + self.concurrent_share
        actions = self.edits / per_edit * (1 + self.create_share + self.delete_share)
        return actions / self.rate


@dataclass(frozen=True, order=True)
class Event:
    """One thing done to the run at ``at`` seconds after the workload starts."""

    at: float
    kind: str  # kill, broker_kill, fault, clear, down, up, scale_out, scale_in
    target: str = ""
    settings: tuple[tuple[str, Any], ...] = ()
    pick: float = 0.0  # for a kill: which running worker (a share of the sorted names)


@dataclass(frozen=True)
class Plan:
    """The events of a run, in time order."""

    params: Params
    events: tuple[Event, ...] = field(default=())

    @classmethod
    def build(cls, params: Params) -> Plan:
        """The schedule for ``params`` (its seed decides everything)."""
        rng = random.Random(f"plan-{params.seed}")
        span = params.duration
        events: list[Event] = []
        for _ in range(params.kills):
            events.append(Event(rng.uniform(0.05, 0.9) * span, "kill", pick=rng.random()))
        if params.broker_kill:
            at = rng.uniform(0.3, 0.6) * span
            events.append(Event(at, "broker_kill"))
        down_system = rng.choice(SYSTEMS)
        down_at = rng.uniform(0.1, 0.5) * span
        if params.down_seconds > 0:
            events.append(Event(down_at, "down", down_system))
            events.append(Event(down_at + params.down_seconds, "up", down_system))
        if params.scale_out:
            events.append(Event(0.2 * span, "scale_out"))
            events.append(Event(0.6 * span, "scale_in"))
        if params.faults:
            for system in SYSTEMS:
                at = rng.uniform(1, 8)
                while at < span:
                    length = rng.uniform(4, 12)
                    blocked = (system == down_system and params.down_seconds > 0
                               and at < down_at + params.down_seconds
                               and at + length > down_at)
                    kind = rng.choice(sorted(FAULTS))
                    if not blocked:
                        events.append(Event(at, "fault", system, tuple(FAULTS[kind].items()),
                                            pick=0.0))
                        events.append(Event(at + length, "clear", system))
                    at += length + rng.uniform(3, 15)
        return cls(params, tuple(sorted(events)))

    def count(self, kind: str) -> int:
        """How many events of ``kind`` the plan holds."""
        return sum(1 for event in self.events if event.kind == kind)

    def fault_counts(self) -> dict[str, int]:
        """Fault episodes planned, by kind of fault."""
        names = {tuple(settings.items()): name for name, settings in FAULTS.items()}
        out: dict[str, int] = {}
        for event in self.events:
            if event.kind == "fault":
                name = names[event.settings]
                out[name] = out.get(name, 0) + 1
        return out
