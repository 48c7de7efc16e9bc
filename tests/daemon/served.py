"""A small aiohttp application served on a free loopback port, for tests of odd APIs, and the
REST system "people" such an application plays (:class:`PeopleApi`), configured by YAML
alone."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import yaml
from aiohttp import web

from daemon.config import EntityConfig
from daemon.connector.config import SystemConfig
from daemon.connector.rest import RestEntity, build_client
from daemon.lane import Lane
from streams.kafka import KafkaSettings
from streams.lanelog import LaneLog
from streams.topics import Topics

PEOPLE_SYSTEM = """
base_url: {url}
auth: {{type: api_key, key_env: PEOPLE_KEY, query: key}}
entities:
  contact:
    path: /v1/people
    records_at: items
    id: pid
    updated: modified
    since: {{param: changed_since, format: unix}}
    pagination: {{style: offset, param: offset, size_param: limit, size: {page_size}}}
    update: {{method: PUT}}
retry: {{attempts: 2, base_seconds: 0.01}}
"""
"""People under ``/v1/people`` with offset paging, an ``items`` envelope and Unix
``modified`` times, behind an API key in the query (``key=k-123``)."""


class PeopleApi:
    """The people of :data:`PEOPLE_SYSTEM`, with JSON fields of any type (the simulated systems
    keep text only), and its mood: it can answer an HTML page, pad every page with junk
    records, and fail every delete."""

    def __init__(self) -> None:
        self.people: list[dict[str, Any]] = []
        self.writes = 0  # updates it was sent
        self.html = False
        self.pad = 0  # extra junk records per page, to make a page gigantic
        self.delete_does_nothing = False

    def _find(self, request: web.Request) -> dict[str, Any] | None:
        return next((p for p in self.people if str(p.get("pid")) == request.match_info["pid"]),
                    None)

    async def list(self, request: web.Request) -> web.Response:
        if request.query.get("key") != "k-123":
            return web.json_response({"error": "no key"}, status=401)
        if self.html:
            return web.Response(text="<html><body>Down for maintenance</body></html>",
                                content_type="text/html")
        since = float(request.query.get("changed_since", "0"))
        offset, limit = int(request.query["offset"]), int(request.query["limit"])
        chosen = [p for p in self.people if float(p.get("modified") or 0) >= since
                  or "modified" not in p]
        page = chosen[offset:offset + limit] + [{"junk": i} for i in range(self.pad)]
        return web.json_response({"items": page, "total": len(chosen)})

    async def one(self, request: web.Request) -> web.Response:
        person = self._find(request)
        if person is None:
            return web.json_response({"error": "not found"}, status=404)
        return web.json_response(person)

    async def update(self, request: web.Request) -> web.Response:
        person = self._find(request)
        if person is None:
            return web.json_response({"error": "not found"}, status=404)
        self.writes += 1
        person.update(await request.json())
        person["modified"] += 1
        return web.json_response(person)

    async def delete(self, request: web.Request) -> web.Response:
        """Deletes, then fails to say so: every answer a 502."""
        if not self.delete_does_nothing:
            self.people = [p for p in self.people
                           if str(p.get("pid")) != request.match_info["pid"]]
        return web.json_response({"error": "bad gateway"}, status=502)


@contextlib.asynccontextmanager
async def people_api() -> AsyncIterator[tuple[PeopleApi, str]]:
    """A :class:`PeopleApi` served; it and its base URL, until the block ends."""
    people = PeopleApi()
    app = web.Application()
    app.router.add_get("/v1/people", people.list)
    app.router.add_get("/v1/people/{pid}", people.one)
    app.router.add_put("/v1/people/{pid}", people.update)
    app.router.add_delete("/v1/people/{pid}", people.delete)
    async with served(app) as url:
        yield people, url


@contextlib.asynccontextmanager
async def served(app: web.Application) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1 and a free port; its base URL, until the block ends."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def people_system(url: str, page_size: int, **contact: Any) -> SystemConfig:
    """:data:`PEOPLE_SYSTEM` at ``url``; ``contact`` adds settings to its entity."""
    data = yaml.safe_load(PEOPLE_SYSTEM.format(url=url, page_size=page_size))
    data["entities"]["contact"].update(contact)
    return SystemConfig.model_validate(data, context={"env": {"PEOPLE_KEY": "k-123"}})


@contextlib.asynccontextmanager
async def people_lane(settings: KafkaSettings, topics: Topics, system: SystemConfig,
                      entity: EntityConfig) -> AsyncIterator[Lane]:
    """The lane of the people system's contacts on ``topics``, its log started; stopped and
    its client closed when the block ends."""
    lane_log = LaneLog(settings, topics, "people", "contact")
    await lane_log.start()
    connector = RestEntity(build_client("people", system), "people", "contact",
                           system.entities["contact"])
    try:
        yield Lane(connector, entity.mapping("contact", "people"), lane_log)
    finally:
        await lane_log.stop()
        await connector.client.aclose()
