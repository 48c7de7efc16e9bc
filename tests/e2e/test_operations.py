"""Operating the worker: its log lines, and how it stops on SIGTERM.

The daemon runs as its own process with stderr piped to a file (not a terminal), against the
simulated systems; everything is checked on the bytes it wrote and through the systems' APIs.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from streams import codec
from streams.events import Written
from streams.kafka import KafkaSettings, read_to_end
from streams.worker import MergeWorker
from tests.e2e.harness import ENV, REPO, Stack, eventually, stack
from tests.e2e.test_review import open_name_conflict
from tests.streams.kafka_helpers import produce
from tests.streams.test_restore_stop import LINKS, STOP_WITHIN, fill_changelog

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(400)]


def lines_of(s: Stack) -> list[dict[str, Any]]:
    """Every line the worker wrote, each parsed as JSON (fails on one that is not)."""
    out = []
    for number, line in enumerate(s.log().splitlines(), 1):
        try:
            parsed = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise AssertionError(f"line {number} is not JSON: {line!r}") from None
        assert isinstance(parsed, dict), line
        out.append(parsed)
    return out


def with_logging(redact: list[str], shutdown: float | None = None):  # type: ignore[no-untyped-def]
    def customize(data: dict[str, Any]) -> None:
        data["logging"] = {"redact_fields": redact}
        if shutdown is not None:
            data["worker"] = {"shutdown_timeout_seconds": shutdown}
    return customize


async def test_json_lines_follow_a_change_from_its_read_to_its_write_without_secrets(
        kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    async with stack(tmp_path, kafka_settings,
                     customize=with_logging(["email", "phone"])) as s:
        await s.start()
        # A person pastes a token into a name (it happens): the log must not repeat it.
        crm_id = await s.create("crm", "ann@example.com", f"Ann {ENV['CRM_TOKEN']}",
                                phone="+1 555 0199")
        await s.converged()

        async def trail() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]] | None:
            lines = lines_of(s)
            read = next((line for line in lines if line.get("system") == "crm"
                         and line.get("external_id") == crm_id
                         and " read " in line["event"]), None)
            if read is None:
                return None
            cid = read["correlation_id"]
            fold = next((line for line in lines if line.get("correlation_id") == cid
                         and line["logger"] == "streams.merge"), None)
            wrote = next((line for line in lines if line.get("correlation_id") == cid
                          and line.get("system") == "helpdesk"
                          and " wrote " in line["event"]), None)
            return (read, fold, wrote) if fold and wrote else None

        read, fold, wrote = await eventually(trail, 30, lambda: "the change's trail in the "
                                             f"log: {s.log()[-3000:]}")
        assert read["correlation_id"] and len(read["correlation_id"]) == 32
        assert wrote["op"] == "create" and fold["writes"][0]["system"] == "helpdesk"
        raw = s.log().encode()
        for secret in ENV.values():
            assert secret.encode() not in raw, f"the secret {secret!r} is in the log"
        for personal in (b"ann@example.com", b"+15550199", b"555 0199"):
            assert personal not in raw, f"{personal!r} is in the log"
        assert read["fields"]["email"] == "[redacted]"
        # What was redacted in the log was synced all the same.
        helpdesk = (await s.contacts())["helpdesk"]["ann@example.com"]
        assert helpdesk["name"] == f"Ann {ENV['CRM_TOKEN']}"


async def burst(s: Stack, count: int) -> dict[str, str]:
    """``count`` people created in each system at once; where each was created."""
    made: dict[str, str] = {}

    async def one(system: str, i: int) -> None:
        email = f"{system[0]}{i}@example.com"
        await s.create(system, email, f"P{system}{i}")
        made[email] = system

    await asyncio.gather(*(one(system, i) for system in ("crm", "helpdesk")
                           for i in range(count)))
    return made


async def sigterm(s: Stack, within: float) -> tuple[int, float]:
    """SIGTERM to the worker; its exit code and how long it took to exit."""
    assert s.process is not None
    began = time.monotonic()
    s.process.send_signal(signal.SIGTERM)
    code = await asyncio.wait_for(s.process.wait(), within)
    return code, time.monotonic() - began


async def stats(s: Stack) -> dict[str, dict[str, Any]]:
    return {name: (await admin.get("/_admin/stats")).json()["writes"]
            for name, admin in s.admins.items()}


async def test_sigterm_under_load_stops_within_the_deadline_losing_and_doubling_nothing(
        kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    async with stack(tmp_path, kafka_settings, customize=with_logging([], shutdown=20)) as s:
        await s.start()
        made = await burst(s, 30)

        async def writing() -> bool:  # the lanes are busy copying the burst
            return sum((await s.writes()).values()) >= 5

        await eventually(writing, 30, "the first writes")
        code, took = await sigterm(s, 25)
        assert code == 0, s.log()[-3000:]
        assert took < 20
        assert any(line["event"].startswith("stopped in") for line in lines_of(s))
        # Every write that reached a system is on the log, committed: none was left in
        # flight for a restart to find again; and none doubled (contacts() fails on one).
        await s.contacts()
        recorded = {"crm": 0, "helpdesk": 0}
        for record in await read_to_end(s.kafka, s.topics.observations):
            event = codec.decode(record.value)
            if isinstance(event, Written):
                recorded[event.system] += 1
        assert recorded == await s.writes()
        await s.start()
        expected_writes = {"crm": sum(1 for w in made.values() if w == "helpdesk"),
                           "helpdesk": sum(1 for w in made.values() if w == "crm")}
        await s.converged(within=120)
        assert set((await s.contacts())["crm"]) == set(made)
        # Every copy made once: no write lost by the stop and redone, none made twice.
        assert await s.writes() == expected_writes
        for name, writes in (await stats(s)).items():
            assert writes["replayed_creates"] == {}, (name, writes)
        await asyncio.sleep(3)
        assert await s.writes() == expected_writes


async def test_a_stop_past_the_deadline_exits_1_saying_so_and_a_restart_converges(
        kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    async with stack(tmp_path, kafka_settings, customize=with_logging([], shutdown=1)) as s:
        await s.start()
        await s.fault("helpdesk", latency_ms=8000)  # every helpdesk request hangs for 8 s
        await s.create("crm", "zed@example.com", "Zed")
        await asyncio.sleep(2)  # the crm lane read it; the helpdesk lane is mid-request
        code, took = await sigterm(s, 15)
        assert code == 1
        assert took < 6
        assert any(line["level"] == "error" and line["event"].startswith(
            "did not stop within worker.shutdown_timeout_seconds (1 s)") for line in lines_of(s))
        await s.fault("helpdesk")
        await s.start()
        await s.converged({"zed@example.com": {"email": "zed@example.com", "name": "Zed",
                                               "phone": None, "tags": []}}, within=90)


async def scrape(s: Stack) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The worker's /metrics: value by sample name and labels."""
    async with httpx.AsyncClient(timeout=5) as client:
        text = (await client.get(f"http://127.0.0.1:{s.worker_port}/metrics")).text
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
          **labels: str) -> float:
    """The sum of ``name``'s samples that carry ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in samples.items() if n == name and wanted <= have)


async def test_metrics_an_operator_reads_count_real_activity(
        kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    async with stack(tmp_path, kafka_settings) as s:
        event = await open_name_conflict(s, "amy@example.com")
        # The helpdesk asks for a pause: the lane's next requests wait for it.
        await s.fault("helpdesk", burst_429=2)
        await s.create("crm", "bo@example.com", "Bo")
        # Something that is no event, on the lanes' topic: the route stage's dead letter.
        await produce(s.kafka, s.topics.observations, [(b"crm/contact", b"not an event")])
        await s.converged(within=90)

        last: list[float] = []

        async def counted() -> dict[tuple[str, frozenset[tuple[str, str]]], float] | None:
            samples = await scrape(s)
            last[:] = wanted = [
                value(samples, "syncline_observations_total", system="crm", kind="observed"),
                value(samples, "syncline_observations_total", system="helpdesk"),
                value(samples, "syncline_writes_total", system="helpdesk", op="create",
                      outcome="written"),
                value(samples, "syncline_merge_inputs_total", stage="route"),
                value(samples, "syncline_merge_inputs_total", stage="merge"),
                value(samples, "syncline_dead_letters_total", stage="route"),
                value(samples, "syncline_rate_limit_waits_total", system="helpdesk"),
                value(samples, "syncline_http_request_seconds_count", system="helpdesk"),
                value(samples, "syncline_conflicts_open", entity="contact"),
                value(samples, "syncline_conflicts_total", entity="contact", policy="manual",
                      status="open"),
            ]
            return samples if all(wanted) else None

        samples = await eventually(counted, 30, lambda: f"every metric counted: {last}")
        assert value(samples, "syncline_conflicts_open", entity="contact") == 1
        assert value(samples, "syncline_dead_letters_total", stage="route") == 1
        assert value(samples, "syncline_rate_limit_wait_seconds_total", system="helpdesk") > 0
        assert {dict(labels)["stage"] for name, labels in samples
                if name == "syncline_consumer_lag"} == {
            "route", "merge", "lane:crm/contact", "lane:helpdesk/contact"}

        # Resolved by a person: no conflict open any more.
        resolve = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "daemon", "conflicts", "resolve", event.conflict_id,
            "--take", "crm", "--config", str(s.config_path), cwd=REPO, env={**os.environ, **ENV},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await resolve.communicate()
        assert resolve.returncode == 0, out

        async def settled() -> bool:
            samples = await scrape(s)
            return (value(samples, "syncline_conflicts_open", entity="contact") == 0
                    and value(samples, "syncline_conflicts_total", policy="manual",
                              status="resolved") == 1
                    and value(samples, "syncline_consumer_lag") == 0)

        await eventually(settled, 30, lambda: "the conflict resolved in /metrics, no lag")


async def test_sigterm_while_the_stages_restore_their_state_stops_at_once(
        kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    # A worker restarted onto a large links table (RocksDB): SIGTERM 0.5 s into its restore
    # must not wait for the restore (seconds here, minutes at a million links).
    async with stack(tmp_path, kafka_settings, customize=with_logging([], shutdown=60)) as s:
        assert s.config is not None
        settings = s.config.kafka.settings()
        await MergeWorker(settings, s.topics, s.config.catalog()).ensure_topics()
        changelog = s.topics.name("links_changelog")
        await fill_changelog(settings, changelog, LINKS, settings.topics.partitions)
        s.process = await s.spawn("--state-dir", str(tmp_path / "state"),
                                  "--listen", f"127.0.0.1:{s.worker_port}")

        async def restoring() -> bool:
            return f"restoring {changelog} partition" in s.log()

        await eventually(restoring, 60, lambda: f"the restore to start: {s.log()[-3000:]}")
        await asyncio.sleep(0.5)
        code, took = await sigterm(s, 120)
        print(f"syncline run: SIGTERM during restore, exited {code} after {took:.2f}s")
        assert code == 0, s.log()[-3000:]
        assert took < 2 * STOP_WITHIN, s.log()[-3000:]
        assert f"abandoned the restore of {changelog}" in s.log()
        assert any(line["event"].startswith("stopped in") for line in lines_of(s))
