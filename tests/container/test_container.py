"""The worker's image, run here: it syncs the simulated systems through the broker, stops
cleanly on `docker stop`, converges after `docker kill -s KILL` and a restart, and two
workers split the partitions. The stack is deploy/compose.yaml's demo (conftest.py): the
`lanes` service (`syncline run --role lanes`) and the `worker` one (`--role route --role merge`)."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.container.conftest import MEASURED
from tests.container.stack import Stack, docker, eventually

# The first test's time includes building the images (minutes, cold).
pytestmark = [pytest.mark.container, pytest.mark.slow, pytest.mark.timeout(3600)]

STOP_DEADLINE = 30
"""Seconds `docker stop` gives the worker before SIGKILL (compose.yaml's stop_grace_period)."""


def test_the_demo_story_plays_against_the_containers(stack: Stack) -> None:
    [story] = stack.containers("story")
    output = stack.logs(story)
    assert stack.story_exit == 0, output
    assert "4 contacts in both systems; Ann linked, not duplicated" in output
    assert "an open conflict on Ann's name, waiting for review" in output
    assert "done: 3 contacts in the CRM, 3 in the helpdesk" in output  # Cy was deleted


def test_the_worker_runs_the_compiled_fold_as_non_root_healthy(stack: Stack) -> None:
    worker = stack.one("worker")
    assert "the fold: compiled by mypyc" in stack.logs(worker)
    for container in stack.syncline():
        eventually("the healthcheck passes", lambda c=container: stack.healthy(c))
        assert docker("exec", container, "id", "-un").strip() == "syncline"
        # No compiler and no mypy in the final stage.
        assert docker("exec", container, "sh", "-c",
                      "command -v cc gcc mypy mypyc || echo none").strip() == "none"
        # PID 1 is the worker itself (exec form): SIGTERM from `docker stop` reaches it.
        pid1 = docker("exec", container, "cat", "/proc/1/cmdline").replace("\0", " ")
        assert "/opt/syncline/bin/syncline run" in pid1
    image = stack.inspect(worker, "{{.Image}}")
    size = int(docker("image", "inspect", "--format", "{{.Size}}", image))
    MEASURED["worker image size"] = f"{size / 1e6:.0f} MB"


def test_a_change_syncs_both_ways_through_the_broker(stack: Stack) -> None:
    domain = f"sync-{uuid.uuid4().hex[:6]}.example"
    stack.create("crm", f"from-crm@{domain}", "From Crm")
    stack.create("helpdesk", f"from-helpdesk@{domain}", "From Helpdesk")
    expected = {f"from-crm@{domain}", f"from-helpdesk@{domain}"}
    eventually("both contacts in both systems", lambda: stack.in_both(domain, expected))


def json_lines(output: str) -> list[dict[str, Any]]:
    """Every line of a container's log as JSON (a line that is not JSON fails the test)."""
    lines = []
    for number, line in enumerate(output.splitlines(), 1):
        if line.strip():
            try:
                lines.append(json.loads(line))
            except ValueError:
                pytest.fail(f"log line {number} is not JSON: {line[:300]!r}")
    return lines


def test_the_logs_are_json_lines_with_the_correlation_id_and_no_secret(stack: Stack) -> None:
    name = f"Logged {uuid.uuid4().hex[:8]}"
    domain = f"log-{uuid.uuid4().hex[:6]}.example"
    stack.create("crm", f"logged@{domain}", name)
    eventually("the contact in both systems", lambda: stack.in_both(domain, {f"logged@{domain}"}))
    lanes, worker = stack.one("lanes"), stack.one("worker")

    def trail() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]] | None:
        lane_lines = json_lines(stack.logs(lanes))
        read = next((line for line in lane_lines if line.get("system") == "crm"
                     and " read " in line["event"]
                     and (line.get("fields") or {}).get("name") == name), None)
        if read is None:
            return None
        cid = read["correlation_id"]
        fold = next((line for line in json_lines(stack.logs(worker))
                     if line.get("correlation_id") == cid), None)
        wrote = next((line for line in lane_lines if line.get("correlation_id") == cid
                      and line.get("system") == "helpdesk" and " wrote " in line["event"]), None)
        return (read, fold, wrote) if fold and wrote else None

    read, fold, wrote = eventually("the change's trail in the containers' logs", trail)
    assert len(read["correlation_id"]) == 32 and wrote["op"] == "create"
    assert fold["logger"] == "streams.merge"  # the fold's decision, in the other container
    assert read["fields"]["email"] == "[redacted]"  # logging.redact_fields in the config
    compose = yaml.safe_load((Path(__file__).resolve().parents[2] / "deploy" /
                              "compose.yaml").read_text(encoding="utf-8"))
    secrets = compose["services"]["worker"]["environment"].values()
    for container in stack.syncline():
        raw = stack.logs(container)
        for secret in secrets:
            assert str(secret) not in raw, f"the secret {secret!r} is in {container}'s log"
        assert f"logged@{domain}" not in raw


def test_docker_stop_ends_the_worker_cleanly_and_loses_no_write(stack: Stack) -> None:
    containers = stack.syncline()
    domain = f"stop-{uuid.uuid4().hex[:6]}.example"
    before = {f"before{i}@{domain}" for i in range(5)}
    for email in sorted(before):
        stack.create("crm", email, "Before Stop")
    eventually("the first contacts synced", lambda: stack.in_both(domain, before))
    # Changes on both sides, some of them in flight when SIGTERM arrives.
    during = {f"crm{i}@{domain}" for i in range(5)} | {f"hd{i}@{domain}" for i in range(5)}
    for i in range(5):
        stack.create("crm", f"crm{i}@{domain}", "During Stop")
        stack.create("helpdesk", f"hd{i}@{domain}", "During Stop")
    started = time.monotonic()
    docker("stop", "-t", str(STOP_DEADLINE), *containers, timeout=STOP_DEADLINE + 30)
    took = time.monotonic() - started
    MEASURED["docker stop of the lanes and the worker"] = f"{took:.1f} s"
    for container in containers:
        assert stack.inspect(container, "{{.State.ExitCode}}") == "0", \
            stack.logs(container)[-3000:]
    assert took < STOP_DEADLINE, f"docker stop took {took:.1f} s (SIGKILL after {STOP_DEADLINE})"
    # Changes made while it is down are read when it is back.
    after = {f"after{i}@{domain}" for i in range(3)}
    for email in sorted(after):
        stack.create("helpdesk", email, "While Down")
    docker("start", *containers)
    eventually("every contact in both systems, each once, after the restart",
                lambda: stack.in_both(domain, before | during | after), timeout=120)


def test_kill_9_and_a_restart_converge(stack: Stack) -> None:
    containers = stack.syncline()
    for container in containers:
        eventually("healthy", lambda c=container: stack.healthy(c), timeout=120)
    domain = f"kill-{uuid.uuid4().hex[:6]}.example"
    emails = set()
    for i in range(8):
        stack.create("crm", f"crm{i}@{domain}", "Before Kill")
        stack.create("helpdesk", f"hd{i}@{domain}", "Before Kill")
        emails |= {f"crm{i}@{domain}", f"hd{i}@{domain}"}
    # Killed mid-flight: some contacts are read, some written, some neither.
    eventually("some contacts synced", lambda: len(stack.emails("helpdesk", domain)) > 8)
    docker("kill", "-s", "KILL", *containers)
    for container in containers:
        assert stack.inspect(container, "{{.State.ExitCode}}") == "137"
    docker("start", *containers)
    eventually("every contact in both systems, each once, after kill -9 and a restart",
                lambda: stack.in_both(domain, emails), timeout=180)


def test_two_workers_split_the_partitions(stack: Stack) -> None:
    stack.compose("up", "-d", "--no-recreate", "--scale", "worker=2", "worker")
    try:
        workers = stack.containers("worker")
        assert len(workers) == 2
        for worker in workers:
            eventually("both workers healthy", lambda w=worker: stack.healthy(w), timeout=120)
        restarts = {w: stack.inspect(w, "{{.RestartCount}}") for w in workers}

        def split() -> dict[str, dict[str, list[int]]] | None:
            shared = {name: members for name, members in stack.groups().items()
                      if len(members) == 2}
            if not shared:
                return None
            for members in shared.values():
                first, second = (set(p) for p in members.values())
                if not first or not second or first & second or first | second != {0, 1, 2, 3}:
                    return None
            return shared

        shared = eventually("a consumer group whose 4 partitions two workers share", split,
                            timeout=120)
        assert shared
        # Both stay up: two merge workers do not fence each other (two `--role all`
        # workers did: each one's lanes fenced the other's, and they restarted in turn).
        assert {w: stack.inspect(w, "{{.RestartCount}}") for w in workers} == restarts
        domain = f"scale-{uuid.uuid4().hex[:6]}.example"
        emails = {f"c{i}@{domain}" for i in range(10)}
        for email in sorted(emails):
            stack.create("crm", email, "Two Workers")
        eventually("contacts synced by two workers", lambda: stack.in_both(domain, emails))
    finally:
        stack.compose("up", "-d", "--no-recreate", "--scale", "worker=1", "worker")
