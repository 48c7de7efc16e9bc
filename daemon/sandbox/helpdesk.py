"""The simulated helpdesk: users and tickets under ``/api/v2``, page-number pagination,
second-resolution ``updated_at`` (so timestamps collide), envelopes, no ETags, no delete feed,
and a token-bucket rate limit, behind an API key header or basic auth.

The endpoints are listed in ``daemon/sandbox/README.md``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from daemon.sandbox.auth import KeyOrBasicAuth
from daemon.sandbox.clock import format_iso_seconds
from daemon.sandbox.errors import (
    ApiError,
    BadRequest,
    DuplicateKey,
    InvalidRecord,
    NotFound,
    RateLimited,
    Unauthorized,
)
from daemon.sandbox.params import query_int, read_json_object
from daemon.sandbox.ratelimit import RateLimit
from daemon.sandbox.store import READ_ONLY_FIELDS, FieldSpec, ResourceSpec, StoredRecord
from daemon.sandbox.system import SimulatedSystem

DEFAULT_API_KEY = "sandbox-helpdesk-key"
DEFAULT_RATE_LIMIT = RateLimit(per_second=20, burst=40)
TICKET_STATUSES = ("open", "pending", "solved")
MAX_PER_PAGE = 100
PREFIX = "/api/v2"

USERS = ResourceSpec(
    name="users",
    singular="user",
    fields=(
        FieldSpec("email_address", unique=True),
        FieldSpec("name", required=True),
        FieldSpec("tags", kind="text_list", default=()),
        FieldSpec("phone"),
        FieldSpec("organization"),
    ),
    lookup="email_address",
)
TICKETS = ResourceSpec(
    name="tickets",
    singular="ticket",
    fields=(
        FieldSpec("subject", required=True),
        FieldSpec("status", kind="choice", choices=TICKET_STATUSES, default="open", required=True),
        FieldSpec("requester_id", kind="ref", ref="users"),
    ),
)

#: What a search ``query=<term>:<value>`` term means, per resource.
SEARCH_TERMS = {"users": {"email": "email_address"}}

_ERROR_NAMES = {
    400: "InvalidParameter",
    404: "RecordNotFound",
    405: "MethodNotAllowed",
    422: "RecordInvalid",
    429: "TooManyRequests",
}


class Helpdesk(SimulatedSystem):
    """A helpdesk-like API (see the module docstring).

    Args:
        db: SQLite file or ``":memory:"``.
        api_key: the key accepted in ``api_key_header``; ``None`` disables key auth.
        basic: ``(user, password)`` accepted as basic auth; ``None`` disables it.
            With neither, auth is off.
        api_key_header: the header that carries the key.
        rate_limit: the token bucket; ``None`` for no limit.
        seed: seeds the fault injector.
        unique: ``False`` makes no field a key (two records may hold the same values).
        reuse_ids: a create takes the id of the newest deleted record.
        journal: keep when each record was read and written (``/_admin/journal``).
    """

    name = "helpdesk"
    resources = (USERS, TICKETS)
    tick_ms = 1000
    strictly_ordered = False
    sends_webhooks = False

    def __init__(
        self,
        *,
        db: str = ":memory:",
        api_key: str | None = DEFAULT_API_KEY,
        basic: tuple[str, str] | None = None,
        api_key_header: str = "X-API-Key",
        rate_limit: RateLimit | None = DEFAULT_RATE_LIMIT,
        seed: int | None = None,
        unique: bool = True,
        reuse_ids: bool = False,
        journal: bool = False,
    ) -> None:
        auth = None
        if api_key is not None or basic is not None:
            auth = KeyOrBasicAuth(api_key, basic, api_key_header)
        super().__init__(db=db, auth=auth, rate_limit=rate_limit, seed=seed, unique=unique,
                         reuse_ids=reuse_ids, journal=journal)

    def add_api_routes(self, router: web.UrlDispatcher) -> None:
        """``/api/v2/{users|tickets}`` with list, create, search and per-record routes."""
        names = "|".join(spec.name for spec in self.resources)
        collection = f"{PREFIX}/{{resource:{names}}}"
        item = collection + "/{id}"
        router.add_get(collection, self.list_page)
        router.add_post(collection, self.create_record)
        router.add_get(collection + "/search", self.search)
        router.add_get(item, self.get_record)
        router.add_put(item, self.update_record)
        router.add_delete(item, self.delete_record)

    def render(self, record: StoredRecord) -> dict[str, Any]:
        """``{"id": int, <fields>, "created_at", "updated_at"}`` (seconds, no version)."""
        return self.shown(record, {
            "id": record.id,
            **record.fields,
            "created_at": format_iso_seconds(record.created_ms),
            "updated_at": format_iso_seconds(record.updated_ms),
        })

    def error_answer(self, error: ApiError) -> tuple[int, dict[str, Any]]:
        """Errors in the helpdesk's own words; a duplicate email is a 422, as in Zendesk."""
        if isinstance(error, Unauthorized):
            return 401, {"error": "Couldn't authenticate you"}
        if isinstance(error, NotFound):
            return 404, {"error": "RecordNotFound", "description": "Not found"}
        if isinstance(error, InvalidRecord | DuplicateKey):
            details = {
                name: [{"description": f"{name} {why}"}] for name, why in error.details.items()
            }
            if isinstance(error, DuplicateKey):
                details = {error.field: [{"description": f"{error.field} is already being used"}]}
            body = {
                "error": "RecordInvalid",
                "description": "Record validation errors",
                "details": details,
            }
            return 422, body
        if isinstance(error, RateLimited):
            return 429, {"error": "TooManyRequests", "description": error.message}
        name = _ERROR_NAMES.get(error.status, "ServerError" if error.status >= 500 else "Error")
        return error.status, {"error": name, "description": error.message}

    def format_time(self, epoch_ms: int) -> str:
        """ISO-8601 UTC, whole seconds."""
        return format_iso_seconds(epoch_ms)

    # -- handlers ----------------------------------------------------------------------------

    async def list_page(self, request: web.Request) -> web.Response:
        """``GET /api/v2/{resource}?updated_since=<unix s>&page=N&per_page=M`` (``>=``)."""
        spec = self.spec_of(request)
        since_s = query_int(request, "updated_since", default=0, low=0, high=2**40)
        page = query_int(request, "page", default=1, low=1, high=2**31)
        per_page = query_int(request, "per_page", default=MAX_PER_PAGE, low=1, high=MAX_PER_PAGE)
        records, total = self.store.page_since(
            spec.name, since_ms=since_s * 1000, offset=(page - 1) * per_page, limit=per_page
        )
        self.shown_to(request, spec, records, "list")
        return web.json_response(
            {
                spec.name: [self.render(r) for r in records],
                "next_page": page + 1 if page * per_page < total else None,
                "previous_page": page - 1 if page > 1 else None,
                "count": total,
            }
        )

    async def search(self, request: web.Request) -> web.Response:
        """``GET /api/v2/{resource}/search?query=email:<address>``."""
        spec = self.spec_of(request)
        terms = SEARCH_TERMS.get(spec.name)
        if terms is None:
            raise NotFound(f"{spec.name} cannot be searched")
        query = request.query.get("query", "")
        term, _, value = query.partition(":")
        if term not in terms or not value:
            raise BadRequest(f"query must look like {' or '.join(f'{t}:<value>' for t in terms)}")
        found = self.store.find(spec.name, terms[term], value.strip())
        self.shown_to(request, spec, found, "search")
        return web.json_response(
            {spec.name: [self.render(r) for r in found], "count": len(found), "next_page": None}
        )

    async def get_record(self, request: web.Request) -> web.Response:
        """``GET /api/v2/{resource}/{id}`` → ``{"<singular>": {...}}``."""
        spec = self.spec_of(request)
        record = self.store.require(spec.name, self.key_of(request, spec))
        self.shown_to(request, spec, [record], "get")
        return web.json_response({spec.singular: self.render(record)})

    async def create_record(self, request: web.Request) -> web.StreamResponse:
        """``POST /api/v2/{resource}`` with ``{"<singular>": {...}}`` → 201; once per key."""
        return await self.idempotent(self.spec_of(request), request, self._create)

    async def _create(self, request: web.Request) -> web.Response:
        spec = self.spec_of(request)
        result = self.create(spec, await self._enveloped(request, spec), request)
        return web.json_response({spec.singular: self.render(result.record)}, status=201)

    async def update_record(self, request: web.Request) -> web.Response:
        """``PUT /api/v2/{resource}/{id}``: changes the fields sent; unconditional."""
        spec = self.spec_of(request)
        key = self.key_of(request, spec)
        result = self.update(spec, key, await self._enveloped(request, spec), request)
        return web.json_response({spec.singular: self.render(result.record)})

    async def _enveloped(self, request: web.Request, spec: ResourceSpec) -> dict[str, Any]:
        """A write's record: inside ``{"<singular>": {...}}``, or with ``bare_writes`` the
        body itself, whose keys the helpdesk does not know (the envelope) are dropped."""
        body = await read_json_object(request)
        if self.faults.settings.bare_writes:
            return {k: v for k, v in body.items()
                    if spec.field(k) is not None or k in READ_ONLY_FIELDS}
        inner = body.get(spec.singular)
        if not isinstance(inner, dict):
            raise BadRequest(f'the body must be {{"{spec.singular}": {{...}}}}')
        return inner

    async def delete_record(self, request: web.Request) -> web.Response:
        """``DELETE /api/v2/{resource}/{id}`` → 204; reported nowhere afterwards."""
        spec = self.spec_of(request)
        self.delete(spec, self.key_of(request, spec), request)
        return web.Response(status=204)


