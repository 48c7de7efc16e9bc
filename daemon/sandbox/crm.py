"""The simulated CRM: contacts and companies, keyset-cursor pagination, ETags with If-Match,
a delete feed and signed webhooks, behind a bearer token.

The endpoints are listed in ``daemon/sandbox/README.md``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from daemon.sandbox.auth import BearerAuth
from daemon.sandbox.clock import format_iso_ms, format_iso_seconds, parse_iso
from daemon.sandbox.cursors import Cursor
from daemon.sandbox.errors import ApiError, BadRequest, DuplicateKey, PreconditionFailed
from daemon.sandbox.params import query_int, read_json_object
from daemon.sandbox.ratelimit import RateLimit
from daemon.sandbox.store import FieldSpec, ResourceSpec, StoredRecord
from daemon.sandbox.system import SimulatedSystem
from daemon.sandbox.webhooks import WebhookTarget

DEFAULT_TOKEN = "sandbox-crm-token"
LIFECYCLE_STAGES = ("subscriber", "lead", "opportunity", "customer", "churned")
DEFAULT_LIMIT = 50
MAX_LIMIT = 100

COMPANIES = ResourceSpec(
    name="companies",
    singular="company",
    fields=(FieldSpec("name", required=True), FieldSpec("domain")),
    id_prefix="co_",
    lookup="domain",
)
CONTACTS = ResourceSpec(
    name="contacts",
    singular="contact",
    fields=(
        FieldSpec("email", unique=True),
        FieldSpec("full_name"),
        FieldSpec("phone"),
        FieldSpec("labels", kind="text_list", default=()),
        FieldSpec("company_id", kind="ref", ref="companies", nullify_on_delete=True),
        FieldSpec(
            "lifecycle_stage",
            kind="choice",
            choices=LIFECYCLE_STAGES,
            default="lead",
            required=True,
        ),
    ),
    id_prefix="ct_",
    lookup="email",
)


class Crm(SimulatedSystem):
    """A CRM-like API (see the module docstring).

    Args:
        db: SQLite file or ``":memory:"``.
        token: the bearer token API requests must carry; ``None`` turns auth off.
        webhook: where change notifications go (also settable via ``/_admin/webhooks``).
        rate_limit: an optional token bucket for API requests.
        seed: seeds the fault injector.
        unique: ``False`` makes no field a key (two records may hold the same values).
        reuse_ids: a create takes the id of the newest deleted record.
        journal: keep when each record was read and written (``/_admin/journal``).
    """

    name = "crm"
    resources = (COMPANIES, CONTACTS)
    tick_ms = 1
    strictly_ordered = True
    sends_webhooks = True

    def __init__(
        self,
        *,
        db: str = ":memory:",
        token: str | None = DEFAULT_TOKEN,
        webhook: WebhookTarget | None = None,
        rate_limit: RateLimit | None = None,
        seed: int | None = None,
        unique: bool = True,
        reuse_ids: bool = False,
        journal: bool = False,
    ) -> None:
        super().__init__(
            db=db,
            auth=BearerAuth(token) if token is not None else None,
            rate_limit=rate_limit,
            webhook=webhook,
            seed=seed,
            unique=unique,
            reuse_ids=reuse_ids,
            journal=journal,
        )

    def add_api_routes(self, router: web.UrlDispatcher) -> None:
        """``/{contacts|companies}`` with list, create, search, deleted and per-record routes."""
        names = "|".join(spec.name for spec in self.resources)
        collection = f"/{{resource:{names}}}"
        item = collection + "/{id}"
        router.add_get(collection, self.list_changed)
        router.add_post(collection, self.create_record)
        router.add_get(collection + "/search", self.search)
        router.add_get(collection + "/deleted", self.list_deleted)
        router.add_get(item, self.get_record)
        router.add_patch(item, self.patch_record)
        router.add_put(item, self.put_record)
        router.add_delete(item, self.delete_record)

    def render(self, record: StoredRecord) -> dict[str, Any]:
        """``{"id", <fields>, "version", "created_at", "updated_at"}``."""
        return self.shown(record, {
            "id": record.id,
            **record.fields,
            "version": record.version,
            "created_at": self.format_time(record.created_ms),
            "updated_at": self.format_time(record.updated_ms),
        })

    def error_answer(self, error: ApiError) -> tuple[int, dict[str, Any]]:
        """``{"error": <code>, "message": ..., "details"?, "current_version"?, "existing_id"?}``."""
        body: dict[str, Any] = {"error": error.code, "message": error.message}
        if error.details:
            body["details"] = error.details
        if isinstance(error, PreconditionFailed):
            body["current_version"] = error.current_version
        if isinstance(error, DuplicateKey):
            body["existing_id"] = error.existing_id
        return error.status, body

    def format_time(self, epoch_ms: int) -> str:
        """ISO-8601 UTC with milliseconds (whole seconds with ``whole_seconds``)."""
        if self.faults.settings.whole_seconds:
            return format_iso_seconds(epoch_ms)
        return format_iso_ms(epoch_ms)

    # -- handlers ----------------------------------------------------------------------------

    async def list_changed(self, request: web.Request) -> web.Response:
        """``GET /{resource}?updated_after=ISO&limit=N&cursor=TOKEN``."""
        spec = self.spec_of(request)
        limit = query_int(request, "limit", default=DEFAULT_LIMIT, low=1, high=MAX_LIMIT)
        since_ms, after = self._walk_start(request, listing=spec.name, since_param="updated_after")
        found = self.store.changed_since(spec.name, since_ms=since_ms, after=after, limit=limit + 1)
        page = found[:limit]
        next_cursor = None
        if len(found) > limit:
            last = page[-1]
            next_cursor = Cursor(spec.name, since_ms, last.updated_ms, last.key).encode()
        self.shown_to(request, spec, page, "list")
        shown = [self.render(r) for r in page]
        if since_ms > 0 and self.faults.settings.since_skips_null_updated:
            shown = [r for r in shown if r["updated_at"] is not None]  # null >= x is not true
        return web.json_response({"data": shown, "next_cursor": next_cursor})

    async def list_deleted(self, request: web.Request) -> web.Response:
        """``GET /{resource}/deleted?since=ISO&limit=N&cursor=TOKEN``."""
        spec = self.spec_of(request)
        listing = f"{spec.name}/deleted"
        limit = query_int(request, "limit", default=DEFAULT_LIMIT, low=1, high=MAX_LIMIT)
        since_ms, after = self._walk_start(request, listing=listing, since_param="since")
        found = self.store.deleted_since(spec.name, since_ms=since_ms, after=after, limit=limit + 1)
        page = found[:limit]
        next_cursor = None
        if len(found) > limit:
            last = page[-1]
            assert last.deleted_ms is not None
            next_cursor = Cursor(listing, since_ms, last.deleted_ms, last.key).encode()
        data = [{"id": r.id, "deleted_at": format_iso_ms(r.deleted_ms or 0)} for r in page]
        return web.json_response({"data": data, "next_cursor": next_cursor})

    async def search(self, request: web.Request) -> web.Response:
        """``GET /{resource}/search?<lookup field>=value`` (case-insensitive, exact)."""
        spec = self.spec_of(request)
        assert spec.lookup is not None
        value = request.query.get(spec.lookup)
        if value is None:
            raise BadRequest(f"search needs the {spec.lookup} parameter")
        found = self.store.find(spec.name, spec.lookup, value)
        self.shown_to(request, spec, found, "search")
        return web.json_response({"data": [self.render(r) for r in found]})

    async def get_record(self, request: web.Request) -> web.Response:
        """``GET /{resource}/{id}``; ``If-None-Match`` with the current tag answers 304."""
        spec = self.spec_of(request)
        record = self.store.require(spec.name, self.key_of(request, spec))
        self.shown_to(request, spec, [record], "get")
        etag = _etag(record)
        if etag in _tags(request.headers.get("If-None-Match")):
            return web.Response(status=304, headers={"ETag": etag})
        return self._record_response(record)

    async def create_record(self, request: web.Request) -> web.StreamResponse:
        """``POST /{resource}`` → 201, the record, ``Location``, ``ETag``; once per key."""
        return await self.idempotent(self.spec_of(request), request, self._create)

    async def _create(self, request: web.Request) -> web.Response:
        spec = self.spec_of(request)
        result = self.create(spec, await read_json_object(request), request)
        response = self._record_response(result.record, status=201)
        response.headers["Location"] = f"/{spec.name}/{result.record.id}"
        return response

    async def patch_record(self, request: web.Request) -> web.Response:
        """``PATCH /{resource}/{id}``: change the fields sent; honours ``If-Match``."""
        return await self._update(request, replace=False)

    async def put_record(self, request: web.Request) -> web.Response:
        """``PUT /{resource}/{id}``: replace every field; honours ``If-Match``."""
        return await self._update(request, replace=True)

    async def delete_record(self, request: web.Request) -> web.Response:
        """``DELETE /{resource}/{id}`` → 204; honours ``If-Match``."""
        spec = self.spec_of(request)
        key = self.key_of(request, spec)
        self.delete(spec, key, request, expect_versions=_if_match(request))
        return web.Response(status=204)

    async def _update(self, request: web.Request, *, replace: bool) -> web.Response:
        spec = self.spec_of(request)
        key = self.key_of(request, spec)
        values = await read_json_object(request)
        result = self.update(
            spec, key, values, request, replace=replace, expect_versions=_if_match(request)
        )
        return self._record_response(result.record)

    def _record_response(self, record: StoredRecord, *, status: int = 200) -> web.Response:
        wrap = self.faults.settings.wrap_answers
        body = self.render(record)
        return web.json_response(
            {wrap: body} if wrap else body, status=status, headers={"ETag": _etag(record)}
        )

    def _walk_start(
        self, request: web.Request, *, listing: str, since_param: str
    ) -> tuple[int, tuple[int, int] | None]:
        """Where a walk starts: from the cursor if one is sent, else from the ``since`` filter."""
        token = request.query.get("cursor")
        if token:
            cursor = Cursor.decode(token, listing=listing)
            return cursor.since_ms, (cursor.after_ms, cursor.after_key)
        raw = request.query.get(since_param)
        return (parse_iso(raw, name=since_param) if raw else 0), None


def _etag(record: StoredRecord) -> str:
    # A strong tag: the body for one version never changes, so If-Match may compare strongly.
    return f'"{record.version}"'


def _tags(header: str | None) -> set[str]:
    """The entity tags in an ``If-Match``/``If-None-Match`` header, weak ones made strong."""
    if not header:
        return set()
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}


def _if_match(request: web.Request) -> set[int] | None:
    """The versions ``If-Match`` accepts; ``None`` when absent or ``*`` (any version)."""
    tags = _tags(request.headers.get("If-Match"))
    if not tags or "*" in tags:
        return None
    versions = set()
    for tag in tags:
        inner = tag.strip('"')
        if inner.isdecimal():
            versions.add(int(inner))
    return versions
