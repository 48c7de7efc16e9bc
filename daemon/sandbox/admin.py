"""The admin routes every simulated system has: faults, "user" edits, counters, the clock.

They need no credentials and are never subject to faults or the rate limit; edits made here
are what a person does in the system's UI, so they are not counted as API writes (but they do
bump ``updated_at`` and the version, and send webhooks, like any edit).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Protocol

from aiohttp import web

from daemon.sandbox.clock import SimClock, format_iso_ms, parse_iso
from daemon.sandbox.errors import ApiError, BadRequest, NotFound
from daemon.sandbox.faults import FaultInjector
from daemon.sandbox.journal import Journal
from daemon.sandbox.params import query_int, read_json_object
from daemon.sandbox.ratelimit import RateLimit
from daemon.sandbox.stats import Stats
from daemon.sandbox.store import ResourceSpec, Store, StoredRecord, WriteResult
from daemon.sandbox.webhooks import WebhookSender, WebhookTarget


class AdminTarget(Protocol):
    """What the admin routes use of the system they serve: a
    :class:`~daemon.sandbox.system.SimulatedSystem` (which registers them, so this module
    names it by what it does rather than importing it back)."""

    sends_webhooks: ClassVar[bool]
    clock: SimClock
    store: Store
    faults: FaultInjector
    stats: Stats
    journal: Journal
    webhooks: WebhookSender
    rate_limit: RateLimit | None

    def render(self, record: StoredRecord) -> dict[str, Any]: ...

    def create(self, spec: ResourceSpec, values: Mapping[str, Any],
               request: web.Request | None) -> WriteResult: ...

    def update(self, spec: ResourceSpec, key: int, values: Mapping[str, Any],
               request: web.Request | None) -> WriteResult: ...

    def delete(self, spec: ResourceSpec, key: int, request: web.Request | None
               ) -> WriteResult: ...

    def reset(self) -> None: ...

    def set_rate_limit(self, limit: RateLimit | None) -> None: ...


def error_body(error: ApiError) -> dict[str, Any]:
    """The body of an error answered by an admin route."""
    body: dict[str, Any] = {"error": error.code, "message": error.message}
    if error.details:
        body["details"] = error.details
    return body


def add_routes(router: web.UrlDispatcher, system: AdminTarget, *, prefix: str) -> None:
    """Register the admin routes of ``system`` under ``prefix``."""
    routes = _AdminRoutes(system)
    router.add_get(f"{prefix}/faults", routes.get_faults)
    router.add_post(f"{prefix}/faults", routes.set_faults)
    router.add_delete(f"{prefix}/faults", routes.clear_faults)
    router.add_post(f"{prefix}/edit/{{resource}}", routes.edit)
    router.add_get(f"{prefix}/records/{{resource}}", routes.records)
    router.add_get(f"{prefix}/stats", routes.stats)
    router.add_get(f"{prefix}/journal/{{resource}}", routes.journal)
    router.add_post(f"{prefix}/reset", routes.reset)
    router.add_get(f"{prefix}/clock", routes.get_clock)
    router.add_post(f"{prefix}/clock", routes.set_clock)
    router.add_get(f"{prefix}/rate_limit", routes.get_rate_limit)
    router.add_post(f"{prefix}/rate_limit", routes.set_rate_limit)
    if system.sends_webhooks:
        router.add_get(f"{prefix}/webhooks", routes.get_webhooks)
        router.add_post(f"{prefix}/webhooks", routes.set_webhooks)


class _AdminRoutes:
    def __init__(self, system: AdminTarget) -> None:
        self.system = system

    async def get_faults(self, request: web.Request) -> web.Response:
        return web.json_response(self.system.faults.settings.as_json())

    async def set_faults(self, request: web.Request) -> web.Response:
        changes = await read_json_object(request)
        return web.json_response(self.system.faults.configure(changes).as_json())

    async def clear_faults(self, request: web.Request) -> web.Response:
        self.system.faults.clear()
        return web.json_response(self.system.faults.settings.as_json())

    async def edit(self, request: web.Request) -> web.Response:
        spec = self._spec(request)
        body = await read_json_object(request)
        unknown = sorted(set(body) - {"op", "id", "fields"})
        if unknown:
            raise BadRequest(f"unknown key(s): {', '.join(unknown)}")
        op = body.get("op")
        fields = body.get("fields", {})
        if not isinstance(fields, dict):
            raise BadRequest("fields must be an object")
        if op == "create":
            result = self.system.create(spec, fields, None)
            return web.json_response({"record": self.system.render(result.record)}, status=201)
        if op not in ("update", "delete"):
            raise BadRequest("op must be create, update or delete")
        key = spec.parse_id(body.get("id"))
        if key is None:
            raise NotFound(f"{spec.singular} {body.get('id')!r} not found")
        if op == "update":
            result = self.system.update(spec, key, fields, None)
            return web.json_response({"record": self.system.render(result.record)})
        result = self.system.delete(spec, key, None)
        return web.json_response({"deleted": result.record.id})

    async def records(self, request: web.Request) -> web.Response:
        spec = self._spec(request)
        if "updated_since_ms" in request.query:
            # Only the records changed since then: a probe that looks many times a second
            # (benchmarks.latency) would otherwise render every record each time.
            since = query_int(request, "updated_since_ms", default=0, low=0, high=2**62)
            found, _ = self.system.store.page_since(spec.name, since_ms=since, offset=0,
                                                    limit=2**62)
        else:
            found = self.system.store.live(spec.name)
        records = [self.system.render(r) for r in found]
        return web.json_response({"records": records, "count": len(records)})

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response({
            **self.system.stats.as_json(self.system.webhooks.counts),
            "faults_injected": dict(sorted(self.system.faults.injected.items()))})

    async def journal(self, request: web.Request) -> web.Response:
        spec = self._spec(request)
        journal = self.system.journal
        return web.json_response({"enabled": journal.enabled,
                                  "records": journal.records(spec.name)})

    async def reset(self, request: web.Request) -> web.Response:
        self.system.reset()
        return web.json_response({"reset": True})

    async def get_clock(self, request: web.Request) -> web.Response:
        return web.json_response(self._clock_json())

    async def set_clock(self, request: web.Request) -> web.Response:
        body = await read_json_object(request)
        unknown = sorted(set(body) - {"freeze", "set", "advance_ms", "advance_seconds"})
        if unknown:
            raise BadRequest(f"unknown key(s): {', '.join(unknown)}")
        freeze = body.get("freeze")
        if freeze is not None and not isinstance(freeze, bool):
            raise BadRequest("freeze must be true or false")
        at_ms = None
        if "set" in body:
            if not isinstance(body["set"], str):
                raise BadRequest("set must be an ISO-8601 timestamp")
            at_ms = parse_iso(body["set"], name="set")
        delta_ms = _integer(body.get("advance_ms", 0), "advance_ms")
        seconds = body.get("advance_seconds", 0)
        if not isinstance(seconds, int | float) or isinstance(seconds, bool):
            raise BadRequest("advance_seconds must be a number")
        delta_ms += round(seconds * 1000)

        clock = self.system.clock
        # Freeze first and thaw last, so that "set" and "advance" land exactly.
        if freeze is True:
            clock.freeze()
        if at_ms is not None:
            clock.set(at_ms)
        clock.advance(delta_ms)
        if freeze is False:
            clock.unfreeze()
        return web.json_response(self._clock_json())

    async def get_rate_limit(self, request: web.Request) -> web.Response:
        return web.json_response(self._rate_limit_json())

    async def set_rate_limit(self, request: web.Request) -> web.Response:
        body = await read_json_object(request)
        per_second = body.get("per_second")
        burst = body.get("burst")
        if per_second is None:
            self.system.set_rate_limit(None)
            return web.json_response(self._rate_limit_json())
        ok_rate = isinstance(per_second, int | float) and not isinstance(per_second, bool)
        if not ok_rate or per_second <= 0:
            raise BadRequest("per_second must be a number > 0 (or null for no limit)")
        if burst is not None and _integer(burst, "burst") < 1:
            raise BadRequest("burst must be an integer >= 1")
        self.system.set_rate_limit(RateLimit(float(per_second), burst))
        return web.json_response(self._rate_limit_json())

    async def get_webhooks(self, request: web.Request) -> web.Response:
        return web.json_response(self._webhooks_json())

    async def set_webhooks(self, request: web.Request) -> web.Response:
        body = await read_json_object(request)
        url, secret = body.get("url"), body.get("secret")
        if url is None:
            self.system.webhooks.target = None
        elif isinstance(url, str) and isinstance(secret, str) and secret:
            self.system.webhooks.target = WebhookTarget(url, secret)
        else:
            raise BadRequest("send url and a non-empty secret (or url null to stop webhooks)")
        return web.json_response(self._webhooks_json())

    def _spec(self, request: web.Request) -> ResourceSpec:
        name = request.match_info["resource"]
        if name not in self.system.store.resources:
            raise NotFound(f"no resource {name!r}; known: {sorted(self.system.store.resources)}")
        return self.system.store.spec(name)

    def _clock_json(self) -> dict[str, Any]:
        now_ms = self.system.clock.now_ms()
        return {"now": format_iso_ms(now_ms), "now_ms": now_ms, "frozen": self.system.clock.frozen}

    def _rate_limit_json(self) -> dict[str, Any]:
        limit = self.system.rate_limit
        if limit is None:
            return {"per_second": None, "burst": None}
        return {"per_second": limit.per_second, "burst": limit.capacity}

    def _webhooks_json(self) -> dict[str, Any]:
        target = self.system.webhooks.target
        counts = self.system.webhooks.counts
        return {
            "url": target.url if target is not None else None,
            "sent": counts.sent,
            "delivered": counts.delivered,
            "failed": counts.failed,
        }


def _integer(value: object, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadRequest(f"{name} must be an integer")
    return value
