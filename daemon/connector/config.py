"""The ``systems:`` part of the configuration file: how to reach each system's API.

A system names its connector (``rest``, the generic declarative one), its base URL, how to
authenticate (secrets only through environment variables), its rate limit and retry budget,
its webhooks, and per entity how the API shapes that entity: paths, id and updated-at fields,
how to ask for changes since a time, pagination, envelopes, write methods, key lookup and how
deletes are seen. Everything a new API needs is written here; no code.

Example (the simulated CRM)::

    crm:
      connector: rest
      base_url: http://127.0.0.1:8101
      auth: {type: bearer, token_env: CRM_TOKEN}
      entities:
        contact:
          path: /contacts
          records_at: data
          since: {param: updated_after, format: iso_ms}
          pagination: {style: cursor, next: next_cursor, size_param: limit, size: 100}
          version: version
          conditional: etag
          lookup: {path: /contacts/search, params: {email: "{email}"}, records_at: data}
          deletes: {feed: {path: /contacts/deleted, since_param: since, records_at: data}}
"""

from __future__ import annotations

import string
from typing import Annotated, Any, Literal, Self
from urllib.parse import parse_qsl, urlsplit

from pydantic import (
    Field,
    PrivateAttr,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from daemon.configbase import EnvName, SecretSection, Section, config_error, secret
from daemon.http import (
    ApiKeyHeader,
    ApiKeyQuery,
    BasicAuth,
    BearerToken,
    Cursor,
    LinkHeader,
    OAuth2ClientCredentials,
    OAuth2RefreshToken,
    OffsetLimit,
    PageNumber,
    RateLimiter,
    RetryPolicy,
)
from daemon.http.auth import SecretAuth
from daemon.http.pagination import PaginationStyle

TimeFormat = Literal["iso", "iso_ms", "unix", "unix_ms"]
"""How a time is written in a query: ``2024-05-01T12:34:56Z``, ``…56.789Z``, Unix seconds, ms."""


Scalar = str | int | float | bool
"""A fixed query parameter's value, or a constant written on create."""


def split_query(path: str, params: dict[str, Any], where: str) -> tuple[str, dict[str, Any]]:
    """``path`` without its query string, and ``params`` with that query's parameters.

    A query string written into a path (``/users?brief=false``) is honoured: its parameters
    are sent with every request to that path, like ``params:``. A parameter given both ways
    is refused, naming ``where`` (the key that holds the path).
    """
    if "?" not in path:
        return path, params
    parts = urlsplit(path)
    if parts.fragment:
        raise config_error("{where}: expected a path without a #fragment, got {value}",
                           where=where, value=repr(path))
    merged = dict(params)
    for name, value in parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False):
        if name in merged:
            raise config_error("{where}: the query parameter {name} is both in the path and "
                               "in params: (keep one)", where=where, name=repr(name))
        merged[name] = value
    return path.split("?", 1)[0], merged


def honour_query(data: Any) -> Any:
    """A section's raw ``data`` with the query string of its ``path`` moved into ``params``."""
    # ``params`` of another type is left to the model, which names it in its message.
    if isinstance(data, dict) and isinstance(data.get("path"), str) \
            and isinstance(data.get("params") or {}, dict):
        path, params = split_query(data["path"], dict(data.get("params") or {}), "path")
        data = {**data, "path": path, "params": params}
    return data


def template_names(template: str) -> set[str]:
    """The names a ``{name}`` template uses (``{{`` and ``}}`` are literal braces)."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def _valid_template(value: str, where: str) -> None:
    try:
        names = template_names(value)
    except ValueError as exc:
        raise config_error("{where}: not a valid template ({why}); write {{ and }} for "
                           "literal braces, got {value}", where=where, why=str(exc),
                           value=repr(value)) from None
    for name in names:
        if not name.replace(".", "").replace("_", "").isalnum():
            raise config_error("{where}: expected placeholders naming the system's fields "
                               "(such as {email} or {address.city}), got {placeholder} in "
                               "{value}", where=where, placeholder="{" + name + "}",
                               value=repr(value))


# -- auth ---------------------------------------------------------------------------------
class BearerAuthConfig(SecretSection):
    """``Authorization: Bearer <token>``."""

    SECRET_FROM = "token_env"
    type: Literal["bearer"]
    token_env: EnvName

    def build(self) -> SecretAuth:
        return BearerToken(self.secret_value)


class ApiKeyAuthConfig(SecretSection):
    """An API key in a header (default ``X-API-Key``) or, with ``query:``, a query parameter."""

    SECRET_FROM = "key_env"
    type: Literal["api_key"]
    key_env: EnvName
    header: str = "X-API-Key"
    query: str | None = None

    def build(self) -> SecretAuth:
        if self.query is not None:
            return ApiKeyQuery(self.secret_value, self.query)
        return ApiKeyHeader(self.secret_value, self.header)


class BasicAuthConfig(SecretSection):
    """HTTP basic auth; the password from ``password_env``."""

    SECRET_FROM = "password_env"
    type: Literal["basic"]
    username: str = Field(min_length=1)
    password_env: EnvName

    def build(self) -> SecretAuth:
        return BasicAuth(self.username, self.secret_value)


class OAuth2ClientCredentialsConfig(SecretSection):
    """OAuth2 client credentials: a token from ``token_url``, refreshed before it expires."""

    SECRET_FROM = "client_secret_env"
    type: Literal["oauth2_client_credentials"]
    token_url: str = Field(min_length=1)
    client_id: str = Field(min_length=1)
    client_secret_env: EnvName
    scope: str | None = None

    def build(self) -> SecretAuth:
        return OAuth2ClientCredentials(self.token_url, self.client_id, self.secret_value,
                                       scope=self.scope)


class OAuth2RefreshTokenConfig(Section):
    """OAuth2 refresh token: access tokens from ``token_url``; a rotated refresh token is kept."""

    type: Literal["oauth2_refresh_token"]
    token_url: str = Field(min_length=1)
    refresh_token_env: EnvName
    client_id: str | None = None
    client_secret_env: EnvName | None = None
    scope: str | None = None
    _refresh: SecretStr = PrivateAttr()
    _client_secret: SecretStr | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _resolve(self, info: ValidationInfo) -> Self:
        self._refresh = secret(info, self.refresh_token_env)
        if self.client_secret_env is not None:
            self._client_secret = secret(info, self.client_secret_env)
        return self

    def build(self) -> SecretAuth:
        return OAuth2RefreshToken(self.token_url, self._refresh, client_id=self.client_id,
                                  client_secret=self._client_secret, scope=self.scope)


AuthConfig = Annotated[
    BearerAuthConfig | ApiKeyAuthConfig | BasicAuthConfig | OAuth2ClientCredentialsConfig
    | OAuth2RefreshTokenConfig,
    Field(discriminator="type"),
]


# -- the shared machinery ------------------------------------------------------------------
class RateLimitConfig(Section):
    """A token bucket: ``per_second`` requests on average, at most ``burst`` back to back."""

    per_second: float = Field(gt=0)
    burst: int | None = Field(default=None, ge=1)

    def build(self) -> RateLimiter:
        return RateLimiter(self.per_second, self.burst)


class RetryConfig(Section):
    """Retries of timeouts, connection errors, 5xx and 429, with jittered backoff."""

    attempts: int = Field(5, ge=1)
    total_seconds: float = Field(60.0, gt=0)
    base_seconds: float = Field(0.2, gt=0)
    max_delay_seconds: float = Field(20.0, gt=0)

    def build(self) -> RetryPolicy:
        return RetryPolicy(attempts=self.attempts, total_seconds=self.total_seconds,
                           base_seconds=self.base_seconds,
                           max_delay_seconds=self.max_delay_seconds)


class PaginationConfig(Section):
    """How a listing is paged: ``page`` numbers, ``offset``/limit, a ``cursor`` token, ``link``.

    ``next`` is where the next cursor (or next page number) sits in the body.
    """

    style: Literal["page", "offset", "cursor", "link"]
    param: str | None = None
    next: str | None = None
    size_param: str | None = None
    size: int | None = Field(default=None, ge=1)
    start: int = 1

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if self.style == "cursor" and not self.next:
            raise config_error("a cursor style needs next: (where the next cursor is in the "
                               "body, e.g. next_cursor)")
        return self

    def build(self) -> PaginationStyle:
        if self.style == "page":
            return PageNumber(param=self.param or "page", size_param=self.size_param,
                              size=self.size, start=self.start, next_path=self.next)
        if self.style == "offset":
            return OffsetLimit(offset_param=self.param or "offset",
                               limit_param=self.size_param or "limit", limit=self.size or 100)
        if self.style == "cursor":
            assert self.next is not None
            return Cursor(param=self.param or "cursor", next_path=self.next,
                          size_param=self.size_param, size=self.size)
        return LinkHeader(size_param=self.size_param, size=self.size)


class SinceConfig(Section):
    """How to ask for records changed since a time.

    ``param`` is the query parameter; ``template`` (default ``{since}``) builds its value, so a
    filter expression works too (``template: "updated_at>={since}"``). ``overlap_seconds``
    steps back from the newest time seen, for an API whose filter is exclusive (``>``) or
    whose clock is coarse; records seen again are recognised and not reported twice.
    """

    param: str = Field(min_length=1)
    format: TimeFormat = "iso"
    template: str = "{since}"
    overlap_seconds: float = Field(0.0, ge=0)

    @field_validator("template")
    @classmethod
    def _has_since(cls, value: str) -> str:
        names = {name for _, name, _, _ in string.Formatter().parse(value) if name}
        if names != {"since"}:
            raise config_error("expected a template with {{since}} and nothing else in braces, "
                               "got {value}", value=repr(value))
        return value


class LookupConfig(Section):
    """Finding a record by its match key, before creating it (so a retry never duplicates).

    ``params`` values are templates over the system's own field names: ``{email}``.
    """

    path: str = Field(min_length=1)
    params: dict[str, str] = Field(min_length=1)
    records_at: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _query_in_path(cls, data: Any) -> Any:
        return honour_query(data)

    def fields(self) -> set[str]:
        """The system's field names the templates use."""
        return {name for template in self.params.values()
                for _, name, _, _ in string.Formatter().parse(template) if name}


class DeleteFeedConfig(Section):
    """An API that lists deleted records: ids and when, since a time, paged."""

    path: str = Field(min_length=1)
    params: dict[str, Scalar] = Field(default_factory=dict)
    since_param: str = Field(min_length=1)
    since_format: TimeFormat = "iso"
    records_at: str | None = None
    id: str = "id"
    at: str = "deleted_at"
    pagination: PaginationConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _query_in_path(cls, data: Any) -> Any:
        return honour_query(data)


class DeletesConfig(Section):
    """How deletes are seen.

    ``feed`` for an API that reports them; ``tombstone`` names a field that marks a record as
    deleted in listings; without either, a periodic sweep over all records (at most every
    ``reconcile_every_seconds``) finds ids that disappeared, and confirms each with a read.

    A sweep's circuit breaker: when more than ``max_missing_share`` of the records the lane
    knows are missing from the listing (and more than ``max_missing_records`` of them), the
    sweep deletes nothing and holds, and the lane says so in its status, its metrics and its
    log: a listing that suddenly comes back empty, or a token that lost its rights, is not a
    mass delete. The next sweep decides again. ``max_missing_share: 1`` turns the breaker off
    (to let a real mass delete through, say).
    """

    feed: DeleteFeedConfig | None = None
    tombstone: str | None = None
    reconcile_every_seconds: float = Field(300.0, gt=0)
    max_missing_share: float = Field(0.5, gt=0, le=1)
    max_missing_records: int = Field(2, ge=0)


class WriteConfig(Section):
    """One write operation: its method, and optionally its own path (``{id}`` is the id).

    ``idempotency_header`` (creates only): the header that makes the API run a create once
    per key (``Idempotency-Key`` for Stripe, Zendesk and others). The lane sends the intent's
    id in it, so a create re-run after a crash cannot make a second copy, and is retried
    after a timeout like any other write.

    ``params``: query parameters sent with this write (after the entity's own ``params:``).
    ``id_field``: the body key that carries the record's id, for an API whose updates and
    deletes go to the collection with the id in the body (NocoDB: ``PATCH /records
    {"Id": 7, ...}``); ``id_type: integer`` sends it as a number. ``answer``: what the
    response holds — ``record`` (the record, or nothing; the default), ``id`` (only the id,
    at the entity's ``id`` path: the record is read after the write) or ``none`` (ignore the
    body: the record is read after the write; a create then needs a ``Location`` header or
    a ``lookup:``).

    Creates only: ``defaults`` are values set where the mapped fields leave a key empty
    (strings are templates over the body's own keys: ``username: "{email}"``; ``{{`` and
    ``}}`` are literal braces); ``constants`` are values always sent (a project id, a type
    id; refused where a mapped field writes). Both are keyed by dotted paths in the system's
    shape.

    ``canonical_id_field`` (creates only): a field of the record (a dotted path) where the API
    can keep a value of ours: a custom field, metadata, an ``external_id``. A create writes
    the record's canonical id there, so a create that may have landed (a crash, a lost or
    unreadable answer) finds its copy by it. Without it (and without an idempotency key or a
    match key) the copy is found by its content: a record the lane has not reported, changed
    since its cursor, holding every value the create wrote.
    """

    method: Literal["POST", "PUT", "PATCH", "DELETE"]
    path: str | None = None
    idempotency_header: str | None = Field(None, min_length=1)
    params: dict[str, Scalar] = Field(default_factory=dict)
    id_field: str | None = Field(None, min_length=1)
    id_type: Literal["string", "integer"] = "string"
    answer: Literal["record", "id", "none"] = "record"
    defaults: dict[str, Any] = Field(default_factory=dict)
    constants: dict[str, Any] = Field(default_factory=dict)
    canonical_id_field: str | None = Field(None, pattern=r"^[^.]+(\.[^.]+)*$")

    @model_validator(mode="before")
    @classmethod
    def _query_in_path(cls, data: Any) -> Any:
        return honour_query(data)

    @model_validator(mode="after")
    def _templates(self) -> Self:
        for key, value in self.defaults.items():
            if isinstance(value, str):
                _valid_template(value, f"defaults.{key}")
        for key in self.constants:
            if key in self.defaults:
                raise config_error("{key} is both in defaults: and in constants: (keep one)",
                                   key=repr(key))
        return self


class EnvelopeConfig(Section):
    """Envelopes that differ between reads and writes: ``{read: data}`` answers
    ``{"data": {...}}`` but takes bare bodies; ``{write: user}`` the other way round."""

    read: str | None = None
    write: str | None = None


class EntityEndpointConfig(Section):
    """How one system's API shapes one entity.

    Attributes:
        path: the collection (``/contacts``); one record is at ``item_path`` (default
            ``{path}/{id}``). A query string in ``path`` is sent with every request, like
            ``params:``.
        params: query parameters sent with every request of this entity (listings, reads,
            writes, lookups): ``{sort: Id}``, ``{briefRepresentation: "false"}``.
        id: the id field; ``version``: a field holding a version number, if any.
        updated: the updated-at field (ISO-8601 or Unix seconds), or a list of fields tried
            in order (``[UpdatedAt, CreatedAt]`` for an API that leaves updated-at null
            until the first edit), or ``[]`` for an API with none. A record with none of
            them is still observed (what changed is decided by its values), without a time.
        timestamp_resolution: how fine the API's times are, in seconds (``1`` for whole
            seconds; ``0``, the default, for as fine as it writes them): the since filter
            asks from the start of the tick, so a filter that compares whole seconds never
            skips a change made later in the same second.
        records_at: where the records are in a list response (``data``; none = a bare list).
        envelope: the key that wraps one record, in answers and in writes (``user``); or
            ``{read: data, write: null}`` when the two differ.
        conditional: ``etag`` when updates and deletes honour ``If-Match``.
        not_found: the statuses that mean a record does not exist.
    """

    path: str = Field(min_length=1)
    item_path: str | None = None
    params: dict[str, Scalar] = Field(default_factory=dict)
    id: str = "id"
    updated: tuple[str, ...] = ("updated_at",)
    timestamp_resolution: float = Field(0.0, ge=0, le=86_400)
    version: str | None = None
    records_at: str | None = None
    envelope: EnvelopeConfig | None = None
    since: SinceConfig | None = None
    pagination: PaginationConfig | None = None
    create: WriteConfig = WriteConfig(method="POST")
    update: WriteConfig = WriteConfig(method="PATCH")
    delete: WriteConfig = WriteConfig(method="DELETE")
    conditional: Literal["etag", "none"] = "none"
    lookup: LookupConfig | None = None
    deletes: DeletesConfig = DeletesConfig()
    not_found: list[int] = Field(default_factory=lambda: [404], min_length=1)
    poll_every_seconds: float = Field(5.0, gt=0)
    concurrency: int = Field(
        4, ge=1, le=64, description="records written at once (one record's writes in order)")
    max_page_records: int = Field(
        10_000, ge=1, description="a page with more records is refused, not held in memory")
    loop_bound: int = Field(
        5, ge=1, description="writes to one record that did not hold (not kept, or undone "
        "before a person's edit) before the lane stops writing it: the loop breaker")
    webhook_event: str | None = Field(
        default=None, description="the event-name prefix of this entity's webhooks (contact)")

    @model_validator(mode="before")
    @classmethod
    def _query_in_path(cls, data: Any) -> Any:
        data = honour_query(data)
        item_path = data.get("item_path") if isinstance(data, dict) else None
        if isinstance(item_path, str) and "?" in item_path:
            raise config_error("item_path: a query string here would be sent with reads of "
                               "one record only; put it in params: (every request) or in "
                               "path:, got {value}", value=repr(item_path))
        return data

    @field_validator("updated", mode="before")
    @classmethod
    def _one_or_more_fields(cls, value: Any) -> Any:
        if value is None:
            return ()
        if isinstance(value, str):
            return (value,)
        if not isinstance(value, list | tuple) or not all(
                isinstance(v, str) and v for v in value):
            raise config_error("expected a field name or a list of field names (tried in "
                               "order), got {value}", value=repr(value))
        return tuple(value)

    @field_validator("envelope", mode="before")
    @classmethod
    def _same_both_ways(cls, value: Any) -> Any:
        return {"read": value, "write": value} if isinstance(value, str) else value

    @property
    def read_envelope(self) -> str | None:
        """The key that wraps a record in answers."""
        return self.envelope.read if self.envelope is not None else None

    @property
    def write_envelope(self) -> str | None:
        """The key that wraps a record in the bodies of writes."""
        return self.envelope.write if self.envelope is not None else None

    @model_validator(mode="after")
    def _writes_fit(self) -> Self:
        if self.update.method not in ("PUT", "PATCH", "POST"):
            raise config_error("update.method: expected PUT, PATCH or POST, got {method}",
                               method=self.update.method)
        if self.create.method not in ("POST", "PUT"):
            raise config_error("create.method: expected POST or PUT, got {method}",
                               method=self.create.method)
        for op in ("update", "delete"):
            if getattr(self, op).idempotency_header is not None:
                raise config_error(f"{op}.idempotency_header: only creates take an idempotency "
                                   "key (updates and deletes are made safe by reading first)")
            if getattr(self, op).canonical_id_field is not None:
                raise config_error(f"{op}.canonical_id_field: only a create writes the "
                                   "canonical id (create.canonical_id_field)")
            if getattr(self, op).defaults or getattr(self, op).constants:
                raise config_error(f"{op}: defaults: and constants: apply to creates only")
        if self.create.id_field is not None:
            raise config_error("create.id_field: a create has no id yet (id_field is for "
                               "updates and deletes)")
        if self.create.answer == "none" and self.lookup is None:
            raise config_error("create.answer: none needs a lookup: (or drop it and let the "
                               "Location header say where the record is)")
        for op in ("update", "delete"):
            write = getattr(self, op)
            if write.path is not None and "{id}" not in write.path and write.id_field is None:
                raise config_error(f"{op}.path: {{id}} is not in it and there is no "
                                   f"{op}.id_field: nothing would say which record to change, "
                                   "got {path}", path=repr(write.path))
        return self

    def item(self, external_id: str) -> str:
        """The path of one record."""
        template = self.item_path or f"{self.path.rstrip('/')}/{{id}}"
        return template.replace("{id}", external_id)


class WebhookConfig(SecretSection):
    """Webhooks the system sends: signed with a shared secret, naming a record to read."""

    SECRET_FROM = "secret_env"
    secret_env: EnvName
    signature_header: str = "X-Signature"
    timestamp_header: str = "X-Timestamp"
    tolerance_seconds: float = Field(300.0, gt=0)
    id_at: str = "id"
    event_at: str = "event"


class SystemConfig(Section):
    """One system: its connector and how to reach its API."""

    connector: Literal["rest"] = "rest"
    base_url: str = Field(min_length=1)
    auth: AuthConfig | None = None
    rate_limit: RateLimitConfig | None = None
    retry: RetryConfig = RetryConfig()
    timeout_seconds: float = Field(10.0, gt=0)
    webhooks: WebhookConfig | None = None
    entities: dict[str, EntityEndpointConfig] = Field(default_factory=dict)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise config_error("expected an http:// or https:// URL, got {value}",
                               value=repr(value))
        return value.rstrip("/")
