"""The safety nets against the real APIs' behaviours, end to end (issue 15): the simulated
systems are switched to behave like the real APIs that broke syncline (a field silently
dropped, bare bodies wanted, a value stored in another form, 200 to everything, updated-at
null until the first edit, nested reads with a flat write field, whole seconds), and over the
real broker, with the daemon as its own process, each run must show: no write loop (syncline's
writes bounded), no person's value overwritten, ``syncline status`` not ok where a field does
not take, and one dead letter per distinct error. Checked through the systems' own APIs.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from streams import codec
from streams.events import DeadLetter
from streams.kafka import KafkaSettings, read_to_end
from tests.e2e.harness import Stack, eventually, stack

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(300)]

QUIET_S = 6.0
"""How long a run is watched for writes that should not come (six helpdesk polls)."""


def person(name: str, phone: str | None = None) -> dict[str, object]:
    return {"email": f"{name.split()[0].lower()}@example.com", "name": name, "phone": phone,
            "tags": []}


async def started_with(s: Stack, system: str, email: str, name: str) -> None:
    """One person made in ``system``, then ``syncline run`` started and the person in every
    system."""
    await s.create(system, email, name)
    await s.start()
    await s.converged({email: person(name)})


async def letters(s: Stack) -> list[DeadLetter]:
    return [codec.decode(r.value, (DeadLetter,)) for r in await read_to_end(s.kafka, s.topics.dlq)]


async def quiet_writes(s: Stack) -> dict[str, int]:
    """The writes syncline made, once they stopped changing for :data:`QUIET_S`."""
    last = await s.writes()
    while True:
        await asyncio.sleep(QUIET_S)
        now = await s.writes()
        if now == last:
            return now
        last = now


def one_letter_per_error(found: list[DeadLetter]) -> None:
    repeated = {k: n for k, n in Counter((d.stage, d.error, d.reason) for d in found).items()
                if n > 1}
    assert repeated == {}, repeated


async def test_a_field_the_helpdesk_drops_never_overwrites_the_persons_value(
        kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    async with stack(tmp_path, kafka_settings) as s:
        await s.fault("helpdesk", ignore_fields=["phone"])
        await s.start()
        await s.create("crm", "ann@example.com", "Ann", phone="5550")

        async def crossed() -> bool:
            return "ann@example.com" in (await s.contacts())["helpdesk"]

        await eventually(crossed, 60, "Ann in the helpdesk")
        await s.update("crm", "ann@example.com", phone="5551")
        writes = await quiet_writes(s)

        contacts = await s.contacts()
        assert contacts["crm"]["ann@example.com"]["phone"] == "5551"  # the person's value
        assert contacts["helpdesk"]["ann@example.com"]["phone"] is None
        assert writes == {"crm": 0, "helpdesk": 2}  # the create and the edit, once each
        code, out = await s.status()
        assert code == 1, out
        assert "does not keep field phone" in out
        found = [d for d in await letters(s) if d.error == "NotTaken"]
        assert len(found) == 2, found  # '5550' and '5551'
        one_letter_per_error(await letters(s))


async def test_a_helpdesk_that_wants_bare_bodies_gets_no_empty_duplicates(
        kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    async with stack(tmp_path, kafka_settings) as s:
        await started_with(s, "helpdesk", "bo@example.com", "Bo")
        before = await s.writes()
        # Now it wants bare bodies; the config still wraps writes in {"user": ...}.
        await s.fault("helpdesk", bare_writes=True)
        await s.create("crm", "cy@example.com", "Cy")
        await s.update("crm", "bo@example.com", phone="7000")
        writes = await quiet_writes(s)

        contacts = await s.contacts()
        assert set(contacts["helpdesk"]) == {"bo@example.com"}  # no empty records
        assert len(await s.raw("helpdesk")) == 1
        assert contacts["crm"]["bo@example.com"]["phone"] == "7000"
        assert contacts["crm"]["cy@example.com"]["name"] == "Cy"
        assert writes["crm"] == before["crm"]
        # The update (not kept) and the create's attempts, bounded.
        assert writes["helpdesk"] - before["helpdesk"] <= 1 + 5
        code, out = await s.status()
        assert code == 1, out
        one_letter_per_error(await letters(s))


async def test_bare_bodies_configured_as_such_sync(
        kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    def bare(data: dict[str, Any]) -> None:
        data["systems"]["helpdesk"]["entities"]["contact"]["envelope"] = {"read": "user"}

    async with stack(tmp_path, kafka_settings, customize=bare) as s:
        await s.fault("helpdesk", bare_writes=True)
        await started_with(s, "crm", "di@example.com", "Di")
        await s.update("crm", "di@example.com", phone="123")
        await s.converged({"di@example.com": person("Di", phone="123")})
        assert await quiet_writes(s) == {"crm": 0, "helpdesk": 2}
        code, out = await s.status()
        assert code == 0, out


async def test_a_name_stored_lowercased_is_not_fought_over(
        kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    async with stack(tmp_path, kafka_settings) as s:
        await s.fault("helpdesk", normalise_fields={"name": "lower"})
        await s.start()
        await s.create("crm", "eve@example.com", "Eve Ray")

        async def crossed() -> bool:
            return "eve@example.com" in (await s.contacts())["helpdesk"]

        await eventually(crossed, 60, "Eve in the helpdesk")
        writes = await quiet_writes(s)

        contacts = await s.contacts()
        assert contacts["crm"]["eve@example.com"]["name"] == "Eve Ray"
        assert contacts["helpdesk"]["eve@example.com"]["name"] == "eve ray"
        assert writes == {"crm": 0, "helpdesk": 1}  # the create, and nothing after it


async def lied_to(s: Stack, how: str = "lie_on_writes"
                  ) -> tuple[dict[str, int], dict[str, int]]:
    """Flo synced, then the helpdesk answers every write as done and keeps nothing (``how``:
    at the old version, or ``forge_versions``: with a new one made up) while Flo's phone is
    edited in the CRM three times: syncline's writes before and after."""
    await started_with(s, "crm", "flo@example.com", "Flo")
    before = await s.writes()
    await s.fault("helpdesk", **{how: True})
    for phone in ("1", "2", "3"):
        await s.update("crm", "flo@example.com", phone=phone)
        await asyncio.sleep(1.5)
    return before, await quiet_writes(s)


async def test_a_helpdesk_that_answers_200_to_everything_loops_never(
        kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    async with stack(tmp_path, kafka_settings) as s:
        before, writes = await lied_to(s)

        assert (await s.contacts())["helpdesk"]["flo@example.com"]["phone"] is None
        # At most one per edit, and the loop breaker's bound.
        assert writes["helpdesk"] - before["helpdesk"] <= 3 + 5
        assert writes["crm"] - before["crm"] <= 5
        one_letter_per_error(await letters(s))


@pytest.mark.parametrize("how", ["lie_on_writes", "forge_versions"])
async def test_a_helpdesk_that_answers_200_to_everything_overwrites_no_persons_value(
        kafka_settings: KafkaSettings, tmp_path: Path, how: str) -> None:
    """The lying answer is at the version read before the write, or at a new version it
    made up: either way the lane reads the record again, finds the phone not kept, and the
    helpdesk's old phone is no edit there."""
    async with stack(tmp_path, kafka_settings) as s:
        await lied_to(s, how)

        code, out = await s.status()
        contacts = await s.contacts()
        assert contacts["crm"]["flo@example.com"]["phone"] == "3"  # the person's value
        assert contacts["helpdesk"]["flo@example.com"]["phone"] is None  # it kept nothing
        assert code == 1, out
        assert "does not keep field phone" in out, out
        found = [d for d in await letters(s) if d.error == "NotTaken"]
        assert 1 <= len(found) <= 3, found  # one per value not kept ('1', '2', '3')
        one_letter_per_error(await letters(s))


async def test_records_without_an_updated_at_are_observed(
        kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    async with stack(tmp_path, kafka_settings) as s:
        await s.fault("crm", null_updated_until_edit=True)
        await s.create("crm", "gus@example.com", "Gus")
        await s.start()
        await s.create("crm", "hal@example.com", "Hal")
        await s.converged({"gus@example.com": person("Gus"), "hal@example.com": person("Hal")})
        await s.update("crm", "hal@example.com", phone="9")
        await s.converged({"gus@example.com": person("Gus"),
                           "hal@example.com": person("Hal", phone="9")})
        assert await quiet_writes(s) == {"crm": 0, "helpdesk": 3}
        assert await letters(s) == []
        code, out = await s.status()
        assert code == 0, out


STAGE = {"path": "lifecycle_stage.id", "write_path": "lifecycle_stage_id"}


@pytest.mark.parametrize("flat", [True, False], ids=["write-path", "one-path"])
async def test_a_nested_read_with_a_flat_write_field(
        kafka_settings: KafkaSettings, tmp_path: Path, flat: bool) -> None:
    def stage(data: dict[str, Any]) -> None:
        field = STAGE if flat else {k: v for k, v in STAGE.items() if k != "write_path"}
        fields = data["entities"]["contact"]["fields"]
        for each in fields.values():
            each.pop("helpdesk", None)
        fields["stage"] = {"crm": field, "crm2": field, "type": "integer"}

    async with stack(tmp_path, kafka_settings, ("crm", "crm2"), customize=stage) as s:
        for name in s.systems:
            await s.fault(name, nested_fields=["lifecycle_stage"])
        made = await s.create("crm", "ivy@example.com", "Ivy")
        await s.start()
        await s.converged()
        await s.edit("crm", "update", id=made, fields={"lifecycle_stage": "customer"})
        writes = await quiet_writes(s)

        held = {name: {r["email"]: r["lifecycle_stage"]["name"] for r in await s.raw(name)}
                for name in s.systems}
        assert held["crm"]["ivy@example.com"] == "customer"  # the person's value, kept
        code, out = await s.status()
        if flat:
            assert held["crm2"]["ivy@example.com"] == "customer"
            assert writes == {"crm": 0, "crm2": 2}
            assert code == 0, out
        else:
            assert held["crm2"]["ivy@example.com"] == "lead"  # dropped, and said so
            assert writes["crm"] == 0 and writes["crm2"] <= 2
            assert code == 1, out
            assert "does not keep field stage" in out, out
        one_letter_per_error(await letters(s))


async def test_whole_second_timestamps_lose_no_edit_and_echo_nothing(
        kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    def seconds(data: dict[str, Any]) -> None:
        data["systems"]["crm"]["entities"]["contact"]["timestamp_resolution"] = 1
        data["systems"]["crm"]["entities"]["contact"]["poll_every_seconds"] = 1

    async with stack(tmp_path, kafka_settings, customize=seconds) as s:
        await s.fault("crm", whole_seconds=True)
        await s.start()
        for n in range(4):  # several edits within the same second
            await s.create("crm", f"j{n}@example.com", f"J{n}")
            await s.update("crm", f"j{n}@example.com", phone=str(n))
        await s.converged({f"j{n}@example.com": {**person(f"J{n}", phone=str(n)),
                                                "email": f"j{n}@example.com"}
                           for n in range(4)})
        writes = await quiet_writes(s)
        assert writes["crm"] == 0
        assert writes["helpdesk"] <= 8  # a create and at most one update each
        code, out = await s.status()
        assert code == 0, out
