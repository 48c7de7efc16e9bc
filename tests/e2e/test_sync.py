"""Acceptance: two-way sync as a user sees it — real Kafka, real HTTP, the daemon a process.

Every test asserts the final state of every system through the system's own API.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from streams.kafka import KafkaSettings
from tests.e2e.harness import eventually, free_port, stack

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(400)]


def person(name: str, phone: str | None = None, tags: list[str] | None = None,
           email: str | None = None) -> dict[str, object]:
    return {"email": email or f"{name.split()[0].lower()}@example.com", "name": name,
            "phone": phone, "tags": tags or []}


async def test_creates_updates_and_deletes_flow_both_ways_and_existing_records_are_linked(
        kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    async with stack(tmp_path, kafka_settings) as s:
        # Before syncline ever ran: the same person in both systems, and one in each.
        await s.create("crm", "ann@example.com", "Ann", tags=["customer"])
        await s.create("helpdesk", "ANN@Example.com", "Ann", tags=["vip"])
        await s.create("crm", "bob@example.com", "Bob")
        await s.create("helpdesk", "cy@example.com", "Cy")
        await s.start()
        await s.converged({
            "ann@example.com": person("Ann", tags=["customer", "vip"]),
            "bob@example.com": person("Bob"),
            "cy@example.com": person("Cy")})
        assert len(await s.raw("crm")) == 3 and len(await s.raw("helpdesk")) == 3

        await s.create("helpdesk", "dee@example.com", "Dee")  # created after the start
        await s.update("crm", "cy@example.com", phone="+1 555 0100")
        await s.update("helpdesk", "bob@example.com", name="Bob Brown")
        await s.delete("crm", "ann@example.com")
        await s.converged({
            "bob@example.com": person("Bob Brown"),
            "cy@example.com": person("Cy", phone="+15550100"),
            "dee@example.com": person("Dee")})
        await s.delete("helpdesk", "dee@example.com")  # found by the helpdesk's sweep
        await s.converged({"bob@example.com": person("Bob Brown"),
                           "cy@example.com": person("Cy", phone="+15550100")})


async def test_no_echo_exactly_the_writes_needed_and_then_none(
        kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    async with stack(tmp_path, kafka_settings) as s:
        await s.start()
        await s.create("crm", "eve@example.com", "Eve")
        await s.create("helpdesk", "fay@example.com", "Fay")
        await s.converged()
        await s.update("helpdesk", "eve@example.com", phone="555 0101")
        await s.update("crm", "fay@example.com", tags=["partner"])
        await s.converged({"eve@example.com": person("Eve", phone="5550101"),
                           "fay@example.com": person("Fay", tags=["partner"])})
        # Each system was behind exactly twice: one create and one update each.
        assert await s.writes() == {"crm": 2, "helpdesk": 2}
        await asyncio.sleep(6)  # several polls and a helpdesk sweep: quiet means quiet
        assert await s.writes() == {"crm": 2, "helpdesk": 2}
        # The worker counts every answer of each system's API, by status.
        async with httpx.AsyncClient(timeout=5) as client:
            text = (await client.get(f"http://127.0.0.1:{s.worker_port}/metrics")).text
        answers = {(sample.labels["system"], sample.labels["status"]): sample.value
                   for family in text_string_to_metric_families(text)
                   if family.name == "syncline_http_requests"
                   for sample in family.samples if sample.name.endswith("_total")}
        assert answers.get(("crm", "200"), 0) > 0 and answers.get(("helpdesk", "200"), 0) > 0


async def test_concurrent_edits_same_field_by_policy_different_fields_merge(
        kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    async with stack(tmp_path, kafka_settings) as s:
        await s.create("crm", "gil@example.com", "Gil", phone="1000")
        await s.start()
        await s.converged()
        # The same field on both sides at once: 'latest' picks the newer (the CRM's).
        await s.update("helpdesk", "gil@example.com", phone="2000")
        await s.update("crm", "gil@example.com", phone="3000")
        await s.converged({"gil@example.com": person("Gil", phone="3000")})

        async def phone_conflict() -> object:
            found = [c for c in (await s.conflicts()).values() if c.field == "phone"]
            return found[0] if found else None

        conflict = await eventually(phone_conflict, 30, "the phone conflict")
        assert conflict.status == "auto_resolved" and conflict.policy == "latest"
        assert {conflict.current.value, conflict.incoming.value} == {"2000", "3000"}
        assert {conflict.current.system, conflict.incoming.system} == {"crm", "helpdesk"}

        # Different fields on both sides at once: both edits kept, no conflict.
        await s.update("helpdesk", "gil@example.com", tags=["vip"])
        await s.update("crm", "gil@example.com", phone="4000")
        await s.converged({"gil@example.com": person("Gil", phone="4000", tags=["vip"])})
        assert len(await s.conflicts()) == 1


async def test_a_daemon_killed_mid_stream_loses_nothing_and_duplicates_nothing(
        kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    rng = random.Random(7)
    async with stack(tmp_path, kafka_settings) as s:
        await s.start()
        expected: dict[str, dict[str, object]] = {}
        for round_ in range(3):
            for i in range(8):
                system = rng.choice(["crm", "helpdesk"])
                name = f"P{round_}x{i}"
                await s.create(system, f"p{round_}x{i}@example.com", name)
                expected[f"p{round_}x{i}@example.com"] = person(
                    name, email=f"p{round_}x{i}@example.com")
            await asyncio.sleep(rng.uniform(0.2, 1.0))
            await s.kill()  # SIGKILL, mid-stream
            await asyncio.sleep(0.5)
            # People keep working while syncline is down.
            for email in rng.sample(sorted(expected), 3):
                # Only edit where the record already exists (it may not have been copied yet).
                now = await s.contacts()
                system = next(name for name in ("helpdesk", "crm") if email in now[name])
                phone = str(rng.randint(1000, 9999))
                await s.update(system, email, phone=phone)
                expected[email] = {**expected[email], "phone": phone}
            await s.start()
        await s.converged(expected, within=120)


async def test_a_system_down_for_a_while_catches_up_and_the_other_keeps_going(
        kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    async with stack(tmp_path, kafka_settings) as s:
        await s.create("crm", "hal@example.com", "Hal")
        await s.start()
        await s.converged()
        await s.fault("helpdesk", down=True)
        await s.create("crm", "ida@example.com", "Ida")
        await s.update("crm", "hal@example.com", phone="7000")
        await asyncio.sleep(3)
        # The helpdesk is down, the CRM side is unaffected (and nothing was lost).
        crm = (await s.contacts())["crm"]
        assert set(crm) == {"hal@example.com", "ida@example.com"}
        code, out = await s.status()
        assert code == 1
        assert "helpdesk/contact" in out and "NOT ANSWERING" in out
        await s.fault("helpdesk")  # back
        await s.converged({"hal@example.com": person("Hal", phone="7000"),
                           "ida@example.com": person("Ida")}, within=90)
        code, out = await s.status()
        assert code == 0, out
        assert "NOT ANSWERING" not in out


async def test_lanes_and_merge_stages_in_separate_processes(
        kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    async with stack(tmp_path, kafka_settings) as s:
        await s.create("crm", "lea@example.com", "Lea")
        await s.spawn("--role", "route", "--role", "merge", "--listen",
                      f"127.0.0.1:{free_port()}")
        await s.start("lanes")  # this one serves the webhooks and /ready
        await s.converged({"lea@example.com": person("Lea")})
        await s.update("helpdesk", "lea@example.com", phone="42")
        await s.converged({"lea@example.com": person("Lea", phone="42")})


async def test_three_systems_converge(kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    async with stack(tmp_path, kafka_settings, ("crm", "helpdesk", "crm2")) as s:
        await s.create("crm2", "jo@example.com", "Jo")
        await s.start()
        await s.converged({"jo@example.com": person("Jo")})
        await s.update("helpdesk", "jo@example.com", phone="123")
        await s.converged({"jo@example.com": person("Jo", phone="123")})
        await s.update("crm", "jo@example.com", tags=["a"])
        await s.create("helpdesk", "kim@example.com", "Kim")
        await s.converged({"jo@example.com": person("Jo", phone="123", tags=["a"]),
                           "kim@example.com": person("Kim")})
        await s.delete("crm2", "kim@example.com")
        await s.converged({"jo@example.com": person("Jo", phone="123", tags=["a"])})
