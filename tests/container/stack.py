"""Drive deploy/compose.yaml (with deploy/compose.local.yaml) from a test: Compose and the
Docker client as a user runs them, the simulated systems through their admin APIs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

ROOT = Path(__file__).resolve().parents[2]
DOCKER = os.environ.get("SYNCLINE_DOCKER", "/usr/bin/docker")
COMPOSE = os.environ.get("SYNCLINE_COMPOSE", "docker-compose")
T = TypeVar("T")

# Per system: where its contacts are listed and edited, and the field holding the email.
RESOURCES = {"crm": ("contacts", "email", "full_name"),
             "helpdesk": ("users", "email_address", "name")}

GROUPS = """
import asyncio, json
import aiokafka.protocol.admin as protocol
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment as Assignment

# aiokafka 0.14 decodes a DescribeGroups v3 answer with the v2 schema and fails ("Buffer
# underrun decoding string"); v2 says all this test needs.
protocol.DescribeGroupsRequest._CLASSES = (protocol.DescribeGroupsRequest_v0,
                                           protocol.DescribeGroupsRequest_v1,
                                           protocol.DescribeGroupsRequest_v2)

async def main():
    admin = AIOKafkaAdminClient(bootstrap_servers="kafka:9092")
    await admin.start()
    try:
        names = [g[0] for g in await admin.list_consumer_groups()]
        out = {}
        for answer in await admin.describe_consumer_groups(names):
            for group in answer.to_object()["groups"]:
                hosts = out.setdefault(group["group"], {})
                for member in group["members"]:
                    partitions = Assignment.decode(member["member_assignment"]).partitions()
                    hosts.setdefault(member["client_host"], []).extend(
                        tp.partition for tp in partitions)
        print(json.dumps(out))
    finally:
        await admin.close()

asyncio.run(main())
"""
"""Run in a worker's container: per consumer group, each host's partitions (of any topic)."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def eventually(what: str, check: Callable[[], T | None], timeout: float = 90.0) -> T:
    """Poll ``check`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
        except (httpx.HTTPError, subprocess.CalledProcessError) as exc:
            last = exc
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s (last: {last!r})")
        time.sleep(0.5)


@dataclass
class Stack:
    """One Compose project of deploy/compose.yaml, on ports of its own."""

    project: str
    crm_port: int
    helpdesk_port: int
    story_exit: int | None = None

    def env(self) -> dict[str, str]:
        return {**os.environ, "SYNCLINE_CRM_PORT": str(self.crm_port),
                "SYNCLINE_HELPDESK_PORT": str(self.helpdesk_port)}

    def compose(self, *args: str, check: bool = True, timeout: float = 600
                ) -> subprocess.CompletedProcess[str]:
        command = [COMPOSE, "-p", self.project, "-f", str(ROOT / "deploy/compose.yaml"),
                   "-f", str(ROOT / "deploy/compose.local.yaml"), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              env=self.env(), check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(command)} exited {done.returncode}:\n"
                                 f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        return done

    def containers(self, service: str) -> list[str]:
        return self.compose("ps", "-q", service).stdout.split()

    def one(self, service: str) -> str:
        """The container of ``service``, which runs one."""
        ids = self.containers(service)
        assert len(ids) == 1, f"expected one {service} container, found {ids}"
        return ids[0]

    def syncline(self) -> list[str]:
        """The containers running ``syncline run``: the lanes and the merge worker."""
        return [self.one("lanes"), self.one("worker")]

    def inspect(self, container: str, template: str) -> str:
        return docker("inspect", "--format", template, container).strip()

    def wait_exit(self, service: str, timeout: float) -> int:
        [container] = self.containers(service)
        return int(docker("wait", container, timeout=timeout).strip())

    def logs(self, container: str) -> str:
        done = subprocess.run([DOCKER, "logs", container], capture_output=True, text=True,
                              timeout=60, check=False)
        return done.stdout + done.stderr

    def dump_logs_if_failed(self) -> None:
        """On a failed start, the last lines of every service (pytest shows them)."""
        if self.story_exit == 0:
            return
        done = self.compose("logs", "--no-color", "--tail", "40", check=False)
        sys.stderr.write(done.stdout[-20000:])

    def healthy(self, container: str) -> bool:
        return self.inspect(container, "{{.State.Health.Status}}") == "healthy"

    def groups(self) -> dict[str, dict[str, list[int]]]:
        """Per consumer group, each member's host and its partitions (asked of the broker)."""
        out = docker("exec", self.containers("worker")[0], "python3", "-c", GROUPS)
        result: dict[str, dict[str, list[int]]] = json.loads(out)
        return result

    # -- the simulated systems, through their admin APIs -------------------------------------
    def url(self, system: str) -> str:
        port = self.crm_port if system == "crm" else self.helpdesk_port
        return f"http://127.0.0.1:{port}"

    def contacts(self, system: str) -> list[dict[str, Any]]:
        resource, _, _ = RESOURCES[system]
        answer = httpx.get(f"{self.url(system)}/_admin/records/{resource}", timeout=10)
        answer.raise_for_status()
        records: list[dict[str, Any]] = answer.json()["records"]
        return records

    def emails(self, system: str, domain: str) -> list[str]:
        """The emails at ``domain`` in ``system``, one per record (a duplicate shows twice)."""
        _, field, _ = RESOURCES[system]
        return sorted(str(r[field]).lower() for r in self.contacts(system)
                      if str(r.get(field) or "").lower().endswith("@" + domain))

    def create(self, system: str, email: str, name: str) -> None:
        resource, email_field, name_field = RESOURCES[system]
        answer = httpx.post(f"{self.url(system)}/_admin/edit/{resource}", timeout=10,
                            json={"op": "create", "fields": {email_field: email,
                                                             name_field: name}})
        answer.raise_for_status()

    def in_both(self, domain: str, expected: set[str]) -> bool:
        """Both systems hold exactly ``expected`` at ``domain``, each once."""
        return all(self.emails(s, domain) == sorted(expected) for s in RESOURCES)


def docker(*args: str, timeout: float = 120) -> str:
    done = subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=timeout,
                          check=False)
    if done.returncode != 0:
        raise subprocess.CalledProcessError(done.returncode, [DOCKER, *args], done.stdout,
                                            done.stderr)
    return done.stdout
