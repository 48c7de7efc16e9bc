"""Whether a system's lanes are running somewhere: a consumer group that says so.

A lane keeps its offset in its own state and reads its intents without a consumer group, and
its transactional producer leaves nothing to see once idle. So a worker running lanes also
keeps, per system, a member in the consumer group ``<prefix>.lanes.<system>``
(:class:`LanesPresence`): it subscribes to the ``lanes`` topic, pauses every partition it is
given (it reads nothing) and waits in a fetch, which keeps it a member while the process
lives. The broker drops it within the session timeout once the process dies.

:func:`running_lanes` asks the broker which of those groups have members, and where they run
(``syncline check --write-probe`` refuses to create a scratch record a running worker could
copy).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from typing import Any

import aiokafka.errors as kafka_errors
from aiokafka import ConsumerRebalanceListener
from aiokafka.protocol.admin import (
    DescribeGroupsRequest,
    DescribeGroupsRequest_v0,
    DescribeGroupsRequest_v1,
    DescribeGroupsRequest_v2,
)

from streams.errors import KafkaRequestFailed
from streams.kafka import KafkaSettings, new_admin, new_group_consumer, retried, translated
from streams.topics import Topics

log = logging.getLogger(__name__)

IDLE_FETCH_MS = 30_000
"""How long one idle fetch waits; a member that fetches stays a member."""


class _DescribeGroups(DescribeGroupsRequest):  # type: ignore[misc]
    """DescribeGroups up to version 2: aiokafka 0.14 reads a version 3 answer with the
    version 2 schema (``RESPONSE_TYPE``), which fails on the field version 3 adds."""


_DescribeGroups._CLASSES = (
    DescribeGroupsRequest_v0, DescribeGroupsRequest_v1, DescribeGroupsRequest_v2)


def lanes_group(topics: Topics, system: str) -> str:
    """The consumer group whose members are the workers running ``system``'s lanes."""
    return f"{topics.prefix}.lanes.{system}"


class _PauseAll(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, consumer: Any) -> None:
        self.consumer = consumer

    async def on_partitions_revoked(self, revoked: Any) -> None:
        return None

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self.consumer.pause(*assigned)


class LanesPresence:
    """A member of ``system``'s lanes group for as long as it is started (see the module)."""

    def __init__(self, settings: KafkaSettings, topics: Topics, system: str) -> None:
        self.settings = settings
        self.topics = topics
        self.system = system
        self.group = lanes_group(topics, system)
        self._consumer: Any = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        consumer = new_group_consumer(self.settings, self.group)
        consumer.subscribe([self.topics.name("lanes")], listener=_PauseAll(consumer))
        with translated(self.settings, f"join consumer group {self.group}"):
            await consumer.start()
        self._consumer = consumer
        self._task = asyncio.create_task(self._stay(), name=f"presence {self.group}")

    async def _stay(self) -> None:
        consumer = self._consumer
        while True:
            try:
                await consumer.getmany(timeout_ms=IDLE_FETCH_MS)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker away: the coordinator rejoins by itself
                log.warning("consumer group %s: %s", self.group, exc)
                await asyncio.sleep(1.0)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()  # leaves the group at once


async def running_lanes(settings: KafkaSettings, topics: Topics, systems: list[str]
                        ) -> dict[str, list[str]]:
    """The systems of ``systems`` whose lanes group has members: each member's
    ``client id@host``.

    A broker that cannot tell yet (no group coordinator: a broker just started makes its
    offsets topic on the first question; or one loading it) is asked again for a while, then
    the error is raised: not knowing is never "no worker runs them".
    """
    operation = "describe the lanes' consumer groups"
    admin = new_admin(settings)
    groups = {lanes_group(topics, system): system for system in systems}

    async def describe(group_id: str) -> Any:
        with translated(settings, operation):
            node = await admin.find_coordinator(group_id)
            response = await admin._send_request(_DescribeGroups([group_id]), node)
        for group in response.groups:
            if group[0]:
                error = kafka_errors.for_code(group[0])
                raise KafkaRequestFailed(operation, error.message,
                                         f"{error.description} ({group_id})",
                                         retriable=bool(error.retriable))
        return response

    found: dict[str, list[str]] = {}
    with translated(settings, operation):
        await admin.start()
    try:
        responses = [await retried(functools.partial(describe, group_id), attempts=40)
                     for group_id in groups]
    finally:
        await admin.close()
    for response in responses:
        for group in response.groups:
            group_id, state, members = group[1], group[2], group[5]
            if group_id in groups and members and state != "Dead":
                found[groups[group_id]] = sorted(f"{m[1]}@{m[2]}" for m in members)
    return found


__all__ = ["LanesPresence", "lanes_group", "running_lanes"]
