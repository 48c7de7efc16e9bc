"""One syncline worker process: the merge stages, the lanes and the web server, together.

``syncline run`` builds a :class:`Worker` from the configuration. By default one process runs
everything; ``roles`` splits the work for scale-out (``route``, ``merge``, ``lanes``): the
parts share nothing but Kafka topics. A lane exists for every system and entity that the
config maps (the entity has fields in that system and the system describes the entity).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web as aiohttp_web

from daemon.config import Config
from daemon.connector.rest import RestEntity, build_client
from daemon.lane import Lane
from daemon.metrics import Metrics
from daemon.review.live import LiveView
from daemon.review.page import mount as mount_review
from daemon.web import WebhookSpec, WebServer
from streams import (
    LaneLog,
    LanesPresence,
    LinksView,
    MergeWorker,
    Topics,
    canonical_id,
)

log = logging.getLogger(__name__)

ROLES = ("route", "merge", "lanes")


@dataclass
class Worker:
    """Everything one process runs.

    Args:
        config: the loaded configuration.
        roles: which parts run here.
        state_dir: keep the merge tables in RocksDB here instead of in memory.
        host, port: where the web server listens (port 0: any free port).
    """

    config: Config
    roles: Sequence[str] = ROLES
    state_dir: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    metrics: Metrics = field(default_factory=Metrics)
    lanes: dict[str, Lane] = field(default_factory=dict)
    web: WebServer | None = None
    links: LinksView | None = None
    review: LiveView | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event)

    def lane_specs(self) -> list[tuple[str, str]]:
        """``(system, entity)`` of every lane this config calls for, in the file's order."""
        out = []
        for system, system_config in self.config.systems.items():
            for entity, entity_config in self.config.entities.items():
                carried = any(system in f.names for f in entity_config.fields.values())
                if carried and entity in system_config.entities:
                    out.append((system, entity))
        return out

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set."""
        config = self.config
        settings = config.kafka.settings()
        topics = Topics(config.kafka.topic_prefix)
        merge = MergeWorker(settings, topics, config.catalog(), state_dir=self.state_dir)
        await merge.ensure_topics()
        exported = self.metrics.stages
        if "route" in self.roles:
            exported.stages["route"] = merge.route_stage.stats
        if "merge" in self.roles:
            exported.stages["merge"] = merge.merge_stage.stats
            exported.conflicts = merge.merger.conflicts
        async with contextlib.AsyncExitStack() as stack:
            if "lanes" in self.roles:
                self.links = LinksView(settings, topics)
                exported.open_conflicts = self.links.open_conflicts
                for system, entity in self.lane_specs():
                    self.lanes[f"{system}/{entity}"] = await self._lane(
                        stack, topics, system, entity)
                # Say where each system's lanes run (`syncline check --write-probe` asks).
                for system in dict.fromkeys(system for system, _ in self.lane_specs()):
                    presence = LanesPresence(settings, topics, system)
                    await presence.start()
                    stack.push_async_callback(presence.stop)
            self.web = WebServer(host=self.host, port=self.port, metrics=self.metrics,
                                 ready=self._waiting_for, webhooks=self._webhooks() or None,
                                 on_trigger=self._trigger)
            self.web.add_routes([aiohttp_web.get("/status", self._status)])
            if config.review is not None:
                self.review = LiveView(settings, topics)
            mount_review(self.web, config,
                         load=self.review.load if self.review is not None else None)
            await stack.enter_async_context(self.web)
            log.info("worker listening on %s: roles %s, lanes %s", self.web.url,
                     ", ".join(self.roles), ", ".join(self.lanes) or "none")
            self.started.set()
            async with asyncio.TaskGroup() as group:
                stages = tuple(r for r in self.roles if r in ("route", "merge"))
                if stages:
                    group.create_task(merge.run(stop, stages))
                if self.links is not None:
                    group.create_task(self.links.run(stop))
                if self.review is not None:
                    group.create_task(self.review.run(stop))
                for lane in self.lanes.values():
                    group.create_task(lane.run(stop))

    async def _lane(self, stack: contextlib.AsyncExitStack, topics: Topics, system: str,
                    entity: str) -> Lane:
        config = self.config
        system_config = config.systems[system]
        entity_config = config.entities[entity]
        answers, metrics = self.metrics.http_requests, self.metrics
        client = build_client(system, system_config,
                              on_answer=lambda status: answers.labels(system, status).inc(),
                              on_wait=lambda seconds: metrics.count_wait(system, seconds),
                              on_latency=metrics.http_request_seconds.labels(system).observe)
        stack.push_async_callback(client.aclose)
        connector = RestEntity(client, system, entity, system_config.entities[entity])
        mapping = entity_config.mapping(entity, system)
        for name, reason in sorted(mapping.one_way.items()):
            log.warning("%s.%s is one-way for %s: %s", entity, name, system, reason)
        lane_log = LaneLog(config.kafka.settings(), topics, system, entity)
        await lane_log.start()
        self.metrics.stages.lanes[f"lane:{system}/{entity}"] = lane_log.intents_lag
        stack.push_async_callback(lane_log.stop)
        return Lane(connector, mapping, lane_log, match_on=tuple(entity_config.match_on),
                    max_write_attempts=entity_config.max_write_attempts, metrics=self.metrics,
                    links=self.links, resolve=self._resolve)

    async def _resolve(self, entity: str, system: str, external_id: str) -> str | None:
        """The canonical id the hub gives ``system``'s record ``external_id`` of ``entity``.

        For a reference to a record the hub has not linked yet: read it through that
        entity's lane and derive its id as the route stage does (docs/ARCHITECTURE.md, "Identity").
        """
        lane = self.lanes.get(f"{system}/{entity}")
        if lane is None:
            return None
        record = await lane.connector.fetch(external_id)
        if record is None:
            return None
        values = lane.mapping.to_canonical(record.data).values
        return canonical_id(entity, tuple(self.config.entities[entity].match_on), values,
                            system, external_id)

    def _webhooks(self) -> dict[str, WebhookSpec]:
        return webhook_specs(self.config)

    def _trigger(self, system: str, entity: str, external_id: str, deleted_hint: bool) -> None:
        lane = self.lanes.get(f"{system}/{entity}")
        if lane is not None:
            lane.request_read(external_id, deleted_hint)

    async def _status(self, request: aiohttp_web.Request) -> aiohttp_web.Response:
        """``GET /status``: the roles and every lane's state (``syncline status`` shows it)."""
        return aiohttp_web.json_response({
            "roles": list(self.roles),
            "lanes": {name: lane.status() for name, lane in self.lanes.items()},
            "links_view": None if self.links is None else {
                "caught_up": self.links.caught_up.is_set()},
        })

    def _waiting_for(self) -> list[str]:
        return [f"lane {name}" for name, lane in self.lanes.items() if lane.polls == 0]


def webhook_specs(config: Config) -> dict[str, WebhookSpec]:
    """How the receiver checks and reads each system's webhooks (systems that send some)."""
    specs = {}
    for system, system_config in config.systems.items():
        hooks = system_config.webhooks
        if hooks is None:
            continue
        entities = {e.webhook_event: name for name, e in system_config.entities.items()
                    if e.webhook_event}
        specs[system] = WebhookSpec(
            secret=hooks.secret_value, entities=entities,
            routed=frozenset(system_config.entities), scheme=hooks.scheme,
            secret_header=hooks.secret_header, secret_param=hooks.secret_param,
            events=hooks.events, signature_header=hooks.signature_header,
            timestamp_header=hooks.timestamp_header, tolerance_s=hooks.tolerance_seconds,
            id_at=hooks.id_at, event_at=hooks.event_at)
    return specs
