"""Acceptance: kill -9 during a burst of creates duplicates nothing, in either system.

The entity has no match key, the APIs take no idempotency key and hold no unique field: a
create re-run after the crash can only find the copy it made before by its content. The
daemon is killed several times while the copies are made, at different points of the burst.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from streams.kafka import KafkaSettings
from tests.e2e.harness import eventually, stack

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(600)]

PER_SYSTEM = 100
# Copies made (of 200) when the daemon is killed; none: the same burst's pace without kills.
KILLS = [(30, 90, 150), (5, 60, 120, 185), ()]


def no_keys(data: dict[str, Any]) -> None:
    """No match key, no lookup, no idempotency key: nothing but content tells a copy."""
    data["entities"]["contact"]["match_on"] = []
    for system in data["systems"].values():
        contact = system["entities"]["contact"]
        contact.pop("lookup", None)
        contact["create"] = {"method": contact["create"]["method"]}


@pytest.mark.parametrize("kill_at", KILLS)
async def test_kill_9_during_a_burst_of_creates_without_any_key_duplicates_nothing(
        kafka_settings: KafkaSettings, tmp_path: Path, kill_at: tuple[int, ...]) -> None:
    async with stack(tmp_path, kafka_settings, customize=no_keys,
                     options={"unique": False}) as s:
        await s.start()
        started = time.monotonic()  # the people's creates start the burst
        expected: dict[str, dict[str, object]] = {}
        for i in range(PER_SYSTEM):
            for system in ("crm", "helpdesk"):
                email = f"{system}{i}@example.com"
                await s.create(system, email, f"{system.title()} {i}")
                expected[email] = {"email": email, "name": f"{system.title()} {i}",
                                   "phone": None, "tags": []}

        async def copies() -> int:
            held = [len(await s.raw(name)) for name in s.systems]
            return sum(held) - 2 * PER_SYSTEM

        for at in kill_at:
            async def reached(at: int = at) -> bool:
                return await copies() >= at

            await eventually(reached, 180, f"{at} copies")
            await s.kill()
            await asyncio.sleep(0.3)
            await s.start()
        await s.converged(expected, within=240)  # asserts no email twice in a system
        took = time.monotonic() - started
        print(f"\n200 creates (100 each way) with {len(kill_at)} kill -9: the last copy made "
              f"{took:.1f} s after the first person's create ({2 * PER_SYSTEM / took:.1f} "
              "creates/s, restarts included)")
        for name in s.systems:
            assert len(await s.raw(name)) == 2 * PER_SYSTEM, name
        assert await s.writes() == {"crm": PER_SYSTEM, "helpdesk": PER_SYSTEM}
