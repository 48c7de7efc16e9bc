"""What every simulated system shares: its parts, the write path and the HTTP middleware.

A concrete system (:mod:`~daemon.sandbox.crm`, :mod:`~daemon.sandbox.helpdesk`) declares its
resources and supplies the shape of its API: routes, how a record and an error look, how a
timestamp is written. Everything else is here, in :mod:`~daemon.sandbox.admin` and in the
parts it holds.

Every API request passes, in order: stats (counts every answer), error rendering (an
:class:`~daemon.sandbox.errors.ApiError` becomes the API's error body), faults, authentication,
the rate limiter, then the handler. Requests under ``/_admin`` skip faults, auth and the
rate limiter, and are not counted.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from aiohttp import web
from aiohttp.typedefs import Handler

from daemon.sandbox import admin
from daemon.sandbox.auth import Authenticator
from daemon.sandbox.clock import SimClock
from daemon.sandbox.errors import ApiError, NotFound, RateLimited, Unauthorized
from daemon.sandbox.faults import FaultInjector
from daemon.sandbox.journal import DELAY, Journal
from daemon.sandbox.ratelimit import RateLimit, TokenBucket
from daemon.sandbox.stats import Stats
from daemon.sandbox.store import (
    READ_ONLY_FIELDS,
    Change,
    ResourceSpec,
    Store,
    StoredRecord,
    WriteResult,
)
from daemon.sandbox.webhooks import WebhookSender, WebhookTarget

ADMIN_PREFIX = "/_admin"
IDEMPOTENCY_HEADER = "Idempotency-Key"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class _WriteMark:
    resource: str
    changed: bool


_WRITE_MARK = web.RequestKey("sandbox_write", _WriteMark)


class SimulatedSystem(abc.ABC):
    """One simulated SaaS system: its records, clock, faults, counters and HTTP app.

    Args:
        db: SQLite file (records survive a restart) or ``":memory:"``.
        auth: how API requests are authenticated; ``None`` lets every request in.
        rate_limit: the token bucket for API requests; ``None`` for no limit.
        webhook: where change notifications go (only for systems that send them).
        seed: seeds the fault injector's random draws.
        unique: ``False`` makes no field a key (two records may hold the same values).
        reuse_ids: a create takes the id of the newest deleted record (as some real systems
            do; the delete leaves no tombstone then).
        journal: keep when each record was read and written, and by whom
            (:mod:`~daemon.sandbox.journal`, ``/_admin/journal/{resource}``).
    """

    #: The system's name (``crm``); also stamped into its database file.
    name: ClassVar[str]
    #: The resources it serves.
    resources: ClassVar[tuple[ResourceSpec, ...]]
    #: Timestamp resolution in milliseconds.
    tick_ms: ClassVar[int] = 1
    #: See :class:`~daemon.sandbox.store.Store`.
    strictly_ordered: ClassVar[bool] = False
    #: Whether it sends webhooks about changes.
    sends_webhooks: ClassVar[bool] = False

    def __init__(
        self,
        *,
        db: str = ":memory:",
        auth: Authenticator | None,
        rate_limit: RateLimit | None = None,
        webhook: WebhookTarget | None = None,
        seed: int | None = None,
        unique: bool = True,
        reuse_ids: bool = False,
        journal: bool = False,
    ) -> None:
        resources = self.resources
        if not unique:  # no field is a key: two records may hold the same values
            resources = tuple(
                replace(spec, fields=tuple(replace(f, unique=False) for f in spec.fields))
                for spec in resources)
        self.clock = SimClock()
        self.store = Store(
            db,
            system=self.name,
            resources=resources,
            tick_ms=self.tick_ms,
            strictly_ordered=self.strictly_ordered,
            reuse_ids=reuse_ids,
        )
        self.faults = FaultInjector(seed)
        self.stats = Stats()
        self.journal = Journal(journal)
        self.webhooks = WebhookSender(webhook if self.sends_webhooks else None)
        self.auth = auth
        self.rate_limit = rate_limit
        self._bucket = TokenBucket(rate_limit) if rate_limit is not None else None
        # (resource, Idempotency-Key) -> the create's answer: status, body, headers.
        self._creates: dict[tuple[str, str], tuple[int, bytes, dict[str, str]]] = {}

    # -- the API shape, supplied by each system ----------------------------------------------

    @abc.abstractmethod
    def add_api_routes(self, router: web.UrlDispatcher) -> None:
        """Register the API's routes."""

    @abc.abstractmethod
    def render(self, record: StoredRecord) -> dict[str, Any]:
        """A stored record as the API shows it (without any envelope)."""

    @abc.abstractmethod
    def error_answer(self, error: ApiError) -> tuple[int, dict[str, Any]]:
        """The status and JSON body the API answers an error with."""

    @abc.abstractmethod
    def format_time(self, epoch_ms: int) -> str:
        """A timestamp as the API writes it."""

    # -- configuration -----------------------------------------------------------------------

    def set_rate_limit(self, limit: RateLimit | None) -> None:
        """Replace the rate limit (with a full bucket), or remove it."""
        self.rate_limit = limit
        self._bucket = TokenBucket(limit) if limit is not None else None

    def reset(self) -> None:
        """Back to an empty system: no records, counts, faults; running clock; full bucket.

        Configuration (auth, webhook target, the rate limit itself) is kept.
        """
        self.store.reset()
        self.stats.reset()
        self.journal.clear()
        self._creates.clear()
        self.faults.clear()
        self.faults.injected.clear()
        self.clock.reset()
        self.webhooks.reset_counts()
        self.set_rate_limit(self.rate_limit)

    # -- the write path, shared by the API and by admin ("user") edits -----------------------

    def create(
        self, spec: ResourceSpec, values: Mapping[str, Any], request: web.Request | None
    ) -> WriteResult:
        """Create a record; ``request`` is the API request, ``None`` for an admin edit."""
        kept = self._kept(spec, values, request)
        result = self.store.create(spec.name, kept, self.clock.now_ms())
        return self._written(spec, "create", result, request, kept)

    async def idempotent(
        self, spec: ResourceSpec, request: web.Request, create: Handler
    ) -> web.StreamResponse:
        """Run ``create`` once per ``Idempotency-Key``: a repeated key gets the first answer.

        Like Stripe's or Zendesk's keys: the answer is replayed as it was (even when the record
        has been deleted since), marked ``Idempotent-Replayed: true``. Keys live as long as
        the server (or until a reset); a create without the header is never deduplicated.
        """
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if not key:
            return await create(request)
        seen = self._creates.get((spec.name, key))
        if seen is not None:
            status, first, headers = seen
            self.stats.count_replay(spec.name)
            return web.Response(status=status, body=first,
                                headers={**headers, "Idempotent-Replayed": "true"})
        response = await create(request)
        answer = response.body if isinstance(response, web.Response) else None
        if isinstance(answer, bytes | bytearray) and response.status < 300:
            kept = {h: v for h, v in response.headers.items()
                    if h in ("Content-Type", "Location", "ETag")}
            self._creates[(spec.name, key)] = (response.status, bytes(answer), kept)
        return response

    def update(
        self,
        spec: ResourceSpec,
        key: int,
        values: Mapping[str, Any],
        request: web.Request | None,
        *,
        replace: bool = False,
        expect_versions: Collection[int] | None = None,
    ) -> WriteResult:
        """Change a record (all fields with ``replace``), if it is at one of ``expect_versions``."""
        settings = self.faults.settings
        if request is not None and (settings.lie_on_writes or settings.forge_versions):
            current = self.store.require(spec.name, key)
            told = dataclasses.replace(
                current, fields={**current.fields, **self._kept(spec, values, request)})
            if settings.forge_versions:  # a new version and time, made up for the answer
                told = dataclasses.replace(told, version=current.version + 1,
                                           updated_ms=max(self.clock.now_ms(),
                                                          current.updated_ms + 1000))
            return WriteResult(told)
        kept = self._kept(spec, values, request)
        result = self.store.update(
            spec.name,
            key,
            kept,
            self.clock.now_ms(),
            replace=replace,
            expect_versions=expect_versions,
        )
        return self._written(spec, "update", result, request, kept)

    def delete(
        self,
        spec: ResourceSpec,
        key: int,
        request: web.Request | None,
        *,
        expect_versions: Collection[int] | None = None,
    ) -> WriteResult:
        """Delete a record, if it is at one of ``expect_versions``."""
        if request is not None and self.faults.settings.lie_on_writes:
            return WriteResult(self.store.require(spec.name, key))
        result = self.store.delete(
            spec.name, key, self.clock.now_ms(), expect_versions=expect_versions
        )
        return self._written(spec, "delete", result, request, {})

    def _kept(self, spec: ResourceSpec, values: Mapping[str, Any], request: web.Request | None
              ) -> Mapping[str, Any]:
        """What an API write keeps of ``values``: the ``ignore_fields`` fault drops some,
        ``ignore_unknown_fields`` the fields the resource does not have, ``nested_fields``
        takes ``<field>_id`` for ``<field>``, ``normalise_fields`` stores another form (see
        :mod:`daemon.sandbox.faults`)."""
        settings = self.faults.settings
        if request is None:
            return values
        if settings.ignore_unknown_fields:
            values = {name: value for name, value in values.items()
                      if spec.field(name) is not None or name in READ_ONLY_FIELDS
                      or name.removesuffix("_id") in settings.nested_fields}
        kept: dict[str, Any] = {}
        for name, value in values.items():
            if name in settings.ignore_fields or name in settings.nested_fields:
                continue
            nested = name.removesuffix("_id")
            if name.endswith("_id") and nested in settings.nested_fields:
                kept[nested] = _choice_of(self.store.resources, nested, value)
            else:
                kept[name] = value
        for name, form in settings.normalised.items():
            if name in kept:
                kept[name] = _normalised(kept[name], form)
        return kept

    def shown(self, record: StoredRecord, data: dict[str, Any]) -> dict[str, Any]:
        """A record as rendered, with the read behaviours switched on (``nested_fields``,
        ``null_updated_until_edit``); each system's :meth:`render` ends with it."""
        settings = self.faults.settings
        for name in settings.nested_fields:
            field_spec = record.resource.field(name)
            value = data.get(name)
            if field_spec is not None and value in field_spec.choices:
                data[name] = {"id": field_spec.choices.index(value) + 1, "name": value}
        if settings.null_updated_until_edit and record.updated_ms == record.created_ms:
            data["updated_at"] = None
        return data

    def _written(
        self, spec: ResourceSpec, op: str, result: WriteResult, request: web.Request | None,
        kept: Mapping[str, Any],
    ) -> WriteResult:
        self.journal.write(spec.name, result.record.key, op, kept, bool(result.changes),
                           request)
        if request is None:
            self.stats.count_admin_edit(spec.name, op)
        else:
            request[_WRITE_MARK] = _WriteMark(spec.name, bool(result.changes))
        for change in result.changes:
            self._announce(change)
        return result

    def _announce(self, change: Change) -> None:
        if not self.sends_webhooks:
            return
        record = change.record
        at_ms = record.deleted_ms if record.deleted_ms is not None else record.updated_ms
        self.webhooks.emit(
            {
                "event": f"{record.resource.singular}.{change.kind}",
                "id": record.id,
                "occurred_at": self.format_time(at_ms),
            }
        )

    # -- request helpers for handlers --------------------------------------------------------

    def shown_to(self, request: web.Request, spec: ResourceSpec,
                 records: Collection[StoredRecord], kind: str) -> None:
        """Note in the journal that the API answer to ``request`` shows ``records`` (``kind``:
        ``get``, ``list`` or ``search``)."""
        self.journal.read(spec.name, [r.key for r in records], kind, request)

    def spec_of(self, request: web.Request) -> ResourceSpec:
        """The resource named in the route (``{resource}``)."""
        return self.store.spec(request.match_info["resource"])

    def key_of(self, request: web.Request, spec: ResourceSpec) -> int:
        """The internal key for the ``{id}`` in the route.

        Raises:
            NotFound: the id is not one this resource could have.
        """
        raw = request.match_info["id"]
        key = spec.parse_id(raw)
        if key is None:
            raise NotFound(f"{spec.singular} {raw} not found")
        return key

    # -- the HTTP app ------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        """The aiohttp application: the API's routes and the admin routes."""
        app = web.Application(
            middlewares=[self._count, self._render_errors, self._inject_faults,
                         self._authenticate, self._meter]
        )  # fmt: skip
        app.router.add_get(f"{ADMIN_PREFIX}/health", self._health)
        admin.add_routes(app.router, self, prefix=ADMIN_PREFIX)
        self.add_api_routes(app.router)
        app.on_shutdown.append(self._on_shutdown)
        return app

    async def close(self) -> None:
        """Stop sending webhooks and close the database."""
        await self.webhooks.close()
        self.store.close()

    async def _on_shutdown(self, app: web.Application) -> None:
        self.faults.release_held()

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"system": self.name, "ok": True})

    @web.middleware
    async def _count(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if _is_admin(request):
            return await handler(request)
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            self._count_answer(request, exc.status)
            raise
        except Exception:
            self._count_answer(request, 500)
            raise
        self._count_answer(request, response.status)
        return response

    def _count_answer(self, request: web.Request, status: int) -> None:
        self.stats.count_request(status)
        if request.method not in WRITE_METHODS:
            return
        mark = request.get(_WRITE_MARK)
        if mark is None:
            self.stats.count_rejected_write(status)
            return
        origin = request.headers.get("X-Origin") or request.headers.get("User-Agent") or "unknown"
        self.stats.count_write(request.method, mark.resource, origin, changed=mark.changed)

    @web.middleware
    async def _render_errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as error:
            return self._error_response(request, error)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            # Unknown paths and methods answer in the API's own error shape, as real APIs do.
            refusal = NotFound(exc.reason) if exc.status == 404 else ApiError(exc.reason)
            refusal.status = exc.status
            if exc.status == 405:
                refusal.code = "method_not_allowed"
            refusal.headers.update(_allow_header(exc))
            return self._error_response(request, refusal)

    def _error_response(self, request: web.Request, error: ApiError) -> web.Response:
        headers = dict(error.headers)
        if isinstance(error, Unauthorized) and self.auth is not None:
            headers.setdefault("WWW-Authenticate", self.auth.challenge)
        if _is_admin(request):
            status, body = error.status, admin.error_body(error)
        else:
            status, body = self.error_answer(error)
        return web.json_response(body, status=status, headers=headers)

    @web.middleware
    async def _inject_faults(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if _is_admin(request):
            return await handler(request)
        plan = await self.faults.before()
        request[DELAY] = plan.delay_ms
        try:
            response: web.StreamResponse = await handler(request)
        except ApiError as error:
            # A refused request can be held or damaged too.
            response = self._error_response(request, error)
        return await self.faults.after(plan, response)

    @web.middleware
    async def _authenticate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.auth is not None and not _is_admin(request):
            self.auth.check(request)
        return await handler(request)

    @web.middleware
    async def _meter(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        bucket = self._bucket
        if bucket is None or _is_admin(request):
            return await handler(request)
        decision = bucket.take()
        headers = {
            "X-RateLimit-Limit": str(decision.limit),
            "X-RateLimit-Remaining": str(decision.remaining),
            "X-RateLimit-Reset": str(decision.reset_seconds),
        }
        if not decision.allowed:
            headers["Retry-After"] = str(decision.retry_after_seconds)
            raise RateLimited("rate limit exceeded", headers=headers)
        try:
            response = await handler(request)
        except ApiError as error:
            error.headers.update(headers)
            raise
        response.headers.update(headers)
        return response


def _is_admin(request: web.Request) -> bool:
    return request.path == ADMIN_PREFIX or request.path.startswith(ADMIN_PREFIX + "/")


def _allow_header(exc: web.HTTPException) -> dict[str, str]:
    allow = exc.headers.get("Allow")
    return {"Allow": allow} if allow else {}


def _choice_of(resources: Mapping[str, ResourceSpec], name: str, value: Any) -> Any:
    """The choice a ``<name>_id`` write names (counted from 1), or the value as sent (then
    refused like any value that is not a choice)."""
    for spec in resources.values():
        field_spec = spec.field(name)
        if field_spec is not None and field_spec.choices and isinstance(value, int) \
                and not isinstance(value, bool) and 1 <= value <= len(field_spec.choices):
            return field_spec.choices[value - 1]
    return value


def _normalised(value: Any, form: str) -> Any:
    if form == "round" and isinstance(value, int | float) and not isinstance(value, bool):
        return round(value)
    if form == "trim" and isinstance(value, str):
        return value.strip()
    if form == "lower" and isinstance(value, str):
        return value.lower()
    return value
