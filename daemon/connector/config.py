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

import jmespath
from jmespath.exceptions import JMESPathError
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
    """Selects this kind of auth."""
    token_env: EnvName = Field(examples=['CRM_TOKEN'])
    """The environment variable that holds the token (or ``<NAME>_FILE`` a file holding it)."""

    def build(self) -> SecretAuth:
        return BearerToken(self.secret_value)


class ApiKeyAuthConfig(SecretSection):
    """An API key in a header (default ``X-API-Key``) or, with ``query:``, a query parameter."""

    SECRET_FROM = "key_env"
    type: Literal["api_key"]
    """Selects this kind of auth."""
    key_env: EnvName = Field(examples=['HELPDESK_API_KEY'])
    """The environment variable that holds the API key."""
    header: str = "X-API-Key"
    """The header that carries the key."""
    query: str | None = Field(None, examples=['api_key'])
    """Send the key as this query parameter instead of a header (it is redacted from logs and
    from `syncline check`)."""

    def build(self) -> SecretAuth:
        if self.query is not None:
            return ApiKeyQuery(self.secret_value, self.query)
        return ApiKeyHeader(self.secret_value, self.header)


class BasicAuthConfig(SecretSection):
    """HTTP basic auth; the password from ``password_env``."""

    SECRET_FROM = "password_env"
    type: Literal["basic"]
    """Selects this kind of auth."""
    username: str = Field(min_length=1, examples=['syncline@example.com'])
    """The user name."""
    password_env: EnvName = Field(examples=['HELPDESK_PASSWORD'])
    """The environment variable that holds the password."""

    def build(self) -> SecretAuth:
        return BasicAuth(self.username, self.secret_value)


class OAuth2ClientCredentialsConfig(SecretSection):
    """OAuth2 client credentials: a token from ``token_url``, refreshed before it expires."""

    SECRET_FROM = "client_secret_env"
    type: Literal["oauth2_client_credentials"]
    """Selects this kind of auth."""
    token_url: str = Field(min_length=1,
        examples=['https://sso.example.com/realms/acme/protocol/openid-connect/token'])
    """The token endpoint (absolute URL)."""
    client_id: str = Field(min_length=1, examples=['syncline'])
    """The client id."""
    client_secret_env: EnvName = Field(examples=['SSO_CLIENT_SECRET'])
    """The environment variable that holds the client secret."""
    scope: str | None = Field(None, examples=['contacts.read contacts.write'])
    """The scope to ask for, if the server needs one."""

    def build(self) -> SecretAuth:
        return OAuth2ClientCredentials(self.token_url, self.client_id, self.secret_value,
                                       scope=self.scope)


class OAuth2RefreshTokenConfig(Section):
    """OAuth2 refresh token: access tokens from ``token_url``; a rotated refresh token is kept."""

    type: Literal["oauth2_refresh_token"]
    """Selects this kind of auth."""
    token_url: str = Field(min_length=1, examples=['https://api.example.com/oauth/token'])
    """The token endpoint (absolute URL)."""
    refresh_token_env: EnvName = Field(examples=['CRM_REFRESH_TOKEN'])
    """The environment variable that holds the refresh token."""
    client_id: str | None = Field(None, examples=['syncline'])
    """The client id, if the server wants one."""
    client_secret_env: EnvName | None = Field(None, examples=['CRM_CLIENT_SECRET'])
    """The environment variable that holds the client secret, if any."""
    scope: str | None = Field(None, examples=['offline_access'])
    """The scope to ask for, if the server needs one."""
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

    per_second: float = Field(gt=0, examples=[15])
    """Requests per second on average: the API's own limit can be given as it is (see
    ``jitter_seconds``)."""
    burst: int | None = Field(default=None, ge=1, examples=[30])
    """At most this many requests back to back (default: per_second rounded up)."""
    jitter_seconds: float = Field(default=0.1, ge=0, le=10, examples=[0.1])
    """How much the delay from the lane to the system may vary between requests without one
    going above the budget. The system counts a request when it handles it, the lane when it
    sends it: the lane keeps ``floor(per_second * jitter_seconds) + 1`` of the burst in hand (the
    average rate stays whole); a burst too small for that spaces requests out instead."""

    def build(self) -> RateLimiter:
        return RateLimiter(self.per_second, self.burst, jitter_seconds=self.jitter_seconds)


class RetryConfig(Section):
    """Retries of timeouts, connection errors, 5xx and 429, with jittered backoff."""

    attempts: int = Field(5, ge=1)
    """Tries of one request in all (1: no retry)."""
    total_seconds: float = Field(60.0, gt=0)
    """Give up retrying after this many seconds in all."""
    base_seconds: float = Field(0.2, gt=0)
    """The first backoff; it doubles per try, with jitter."""
    max_delay_seconds: float = Field(20.0, gt=0)
    """The longest backoff between two tries (a Retry-After header is obeyed up to the total)."""

    def build(self) -> RetryPolicy:
        return RetryPolicy(attempts=self.attempts, total_seconds=self.total_seconds,
                           base_seconds=self.base_seconds,
                           max_delay_seconds=self.max_delay_seconds)


class PaginationConfig(Section):
    """How a listing is paged: ``page`` numbers, ``offset``/limit, a ``cursor`` token, ``link``.

    ``next`` is where the next cursor (or next page number) sits in the body.
    """

    style: Literal["page", "offset", "cursor", "link"] = Field(examples=['cursor'])
    """``page`` numbers, ``offset``/limit, an opaque ``cursor`` token, or the ``link`` header
    (RFC 8288)."""
    param: str | None = Field(None, examples=['cursor'])
    """The query parameter of the page number, offset or cursor (default ``page``, ``offset``,
    ``cursor``)."""
    next: str | None = Field(None, examples=['next_cursor'])
    """Where the next cursor (or next page number) is in the body; a null or empty value there
    ends the walk. Required for ``cursor``."""
    size_param: str | None = Field(None, examples=['limit'])
    """The query parameter of the page size (offset: default ``limit``)."""
    size: int | None = Field(default=None, ge=1, examples=[100])
    """The page size to ask for (offset: default 100)."""
    start: int = 1
    """The number of the first page (``page`` style)."""

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if self.style == "cursor" and not self.next:
            raise config_error("a cursor style needs next: (where the next cursor is in the "
                               "body, e.g. next_cursor)")
        return self

    def query_names(self) -> list[str]:
        """The query parameters the paging sets."""
        if self.style == "page":
            names = [self.param or "page", self.size_param]
        elif self.style == "offset":
            names = [self.param or "offset", self.size_param or "limit"]
        elif self.style == "cursor":
            names = [self.param or "cursor", self.size_param]
        else:
            names = [self.size_param]
        return [name for name in names if name]

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

    param: str = Field(min_length=1, examples=['updated_after'])
    """The query parameter that filters on the updated-at time."""
    format: TimeFormat = "iso"
    """How the time is written: ``iso`` (``2024-05-01T12:34:56Z``), ``iso_ms`` (``…56.789Z``),
    ``unix`` (seconds), ``unix_ms``."""
    template: str = Field("{since}", examples=['(UpdatedAt,gte,exactDate,{since})'])
    """The parameter's value; ``{since}`` is the time; ``{{`` and ``}}`` are literal braces."""
    overlap_seconds: float = Field(0.0, ge=0, examples=[1])
    """Ask from this much before the newest time seen (an exclusive ``>`` filter, or a coarse
    clock); records seen again are not reported twice."""

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

    path: str = Field(min_length=1, examples=['/contacts/search'])
    """The search endpoint; a query string here is sent too."""
    params: dict[str, str] = Field(min_length=1, examples=[{'email': '{email}'}])
    """Query parameters, each a template over the system's field names (``{email}``,
    ``{address.city}``; ``{{``/``}}`` literal braces)."""
    records_at: str | None = Field(None, examples=['data'])
    """Where the records are in the answer (none: a bare list)."""

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

    path: str = Field(min_length=1, examples=['/contacts/deleted'])
    """The endpoint that lists deleted records."""
    params: dict[str, Scalar] = Field(default_factory=dict, examples=[{'type': 'contact'}])
    """Fixed query parameters of the feed."""
    since_param: str = Field(min_length=1, examples=['since'])
    """The query parameter of the time to list deletes from."""
    since_format: TimeFormat = "iso"
    """How that time is written (as ``since.format``)."""
    records_at: str | None = Field(None, examples=['data'])
    """Where the deletes are in the answer (none: a bare list)."""
    id: str = "id"
    """Where a delete holds the record's id."""
    at: str = "deleted_at"
    """Where a delete holds its time."""
    pagination: PaginationConfig | None = Field(None,
        examples=[{'style': 'cursor', 'next': 'next_cursor'}])
    """How the feed is paged (default: as the entity's listing)."""

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

    feed: DeleteFeedConfig | None = Field(None,
        examples=[{'path': '/contacts/deleted', 'since_param': 'since', 'records_at': 'data'}])
    """An API that lists deletes."""
    tombstone: str | None = Field(None, examples=['archived'])
    """A field whose true value marks a listed record as deleted."""
    reconcile_every_seconds: float = Field(300.0, gt=0)
    """Without a feed: sweep the whole listing for vanished ids at most this often."""
    max_missing_share: float = Field(0.5, gt=0, le=1)
    """The delete breaker: a sweep missing more than this share of the known records deletes
    none (1 turns it off)."""
    max_missing_records: int = Field(2, ge=0)
    """... and more than this many of them (a few records missing is never a breaker)."""


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

    method: Literal["POST", "PUT", "PATCH", "DELETE"] = Field(examples=['PATCH'])
    """The HTTP method (create: POST or PUT; update: PUT, PATCH or POST; delete: any)."""
    path: str | None = Field(None, examples=['/api/v1/db/data/noco/p1/contacts/{id}'])
    """The path, when not the entity's (``{id}`` is the record's id); a query string here is
    sent too."""
    idempotency_header: str | None = Field(None, min_length=1, examples=['Idempotency-Key'])
    """Creates only: the header that makes the API run a create once per key."""
    params: dict[str, Scalar] = Field(default_factory=dict, examples=[{'notify': 'false'}])
    """Query parameters of this write (after the entity's ``params:``)."""
    id_field: str | None = Field(None, min_length=1, examples=['Id'])
    """Updates and deletes: the body key that carries the record's id, for an API that takes it
    there."""
    id_type: Literal["string", "integer"] = "string"
    """How ``id_field`` is sent: ``string`` or ``integer``."""
    answer: Literal["record", "id", "none"] = "record"
    """What the answer holds: ``record``, only the ``id`` (the record is read after), or
    ``none``."""
    defaults: dict[str, Any] = Field(default_factory=dict, examples=[{'username': '{email}'}])
    """Creates only: values for keys the mapped fields leave empty, by dotted path; strings are
    templates over the body (``{email}``; ``{{``/``}}`` literal braces)."""
    constants: dict[str, Any] = Field(default_factory=dict, examples=[{'project_id': 7}])
    """Creates only: values always sent, by dotted path (refused where a mapped field writes)."""
    canonical_id_field: str | None = Field(None, pattern=r"^[^.]+(\.[^.]+)*$",
        examples=['attributes.syncline_id'])
    """Creates only: a field (dotted path) where the API keeps a value of ours; the canonical id
    is written there so a create that may have landed finds its copy."""

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

    read: str | None = Field(None, examples=['data'])
    """The key that wraps one record in answers."""
    write: str | None = Field(None, examples=['user'])
    """The key that wraps one record in the bodies of writes."""


class CheckConfig(Section):
    """What ``syncline check --write-probe`` may do to this entity of this system.

    Without ``scratch`` the probe writes one existing record's own values back (a write that
    changes nothing on an API that keeps what it is sent). With it, the probe creates a
    scratch record from these canonical values, reads it back, names every field that did
    not round-trip, and deletes it.
    """

    scratch: dict[str, Any] | None = Field(
        default=None,
        description="canonical field -> value of a scratch record the write probe may create "
        "and delete; in strings {nonce} is a fresh random token (for unique fields such as an "
        "email), {{ and }} are literal braces",
        examples=[{"email": "syncline-check-{nonce}@example.invalid", "name": "Check Probe"}])

    @field_validator("scratch")
    @classmethod
    def _nonce_only(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        if not value:
            raise config_error("expected at least one field: value (or leave scratch out)")
        for key, item in value.items():
            if not isinstance(item, str):
                continue
            try:
                names = template_names(item)
            except ValueError as exc:
                raise config_error("scratch.{key}: not a valid template ({why}); write {{{{ "
                                   "and }}}} for literal braces", key=key,
                                   why=str(exc)) from None
            if names - {"nonce"}:
                raise config_error("scratch.{key}: only {{nonce}} may be in braces (write "
                                   "{{{{ and }}}} for literal ones), got {value}", key=key,
                                   value=repr(item))
        return value


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
        created: the created-at field (ISO-8601 or Unix seconds), if the API has one. Needed
            for an API that reuses the id of a deleted record: a record created after the
            one its id was linked to is a new record, not the old one come back.
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

    path: str = Field(min_length=1, examples=['/contacts'])
    """The collection; a query string here is sent with every request of the entity, like
    ``params:``."""
    item_path: str | None = Field(None, examples=['/users/{id}'])
    """The path of one record (default ``{path}/{id}``); no query string here."""
    params: dict[str, Scalar] = Field(default_factory=dict,
        examples=[{'briefRepresentation': 'false'}])
    """Query parameters sent with every request of this entity (listings, reads, writes,
    lookups)."""
    id: str = "id"
    """Where a record holds its id (a dotted path)."""
    updated: tuple[str, ...] = Field(("updated_at",), examples=[['UpdatedAt', 'CreatedAt']])
    """The updated-at field, or fields tried in order (``[]``: none). A record with none set is
    still observed, without a time."""
    created: str | None = Field(None, examples=['CreatedAt'])
    """The created-at field, if any: a record whose id belonged to a deleted copy but that was
    created after that copy is a new record (an API that reuses ids), not the old one back."""
    timestamp_resolution: float = Field(0.0, ge=0, le=86_400, examples=[1])
    """How fine the API's times are, in seconds (``1``: whole seconds); the since filter asks
    from the start of the tick."""
    version: str | None = Field(None, examples=['version'])
    """A field holding a version number, if any."""
    records_at: str | None = Field(None, examples=['data'])
    """Where the records are in a listing (none: a bare list)."""
    envelope: EnvelopeConfig | None = Field(None, examples=[{'read': 'data'}])
    """The key that wraps one record in answers and in writes; or ``{read: ..., write: ...}``
    when they differ."""
    since: SinceConfig | None = Field(None,
        examples=[{'param': 'updated_after', 'format': 'iso_ms'}])
    """How to ask for records changed since a time (none: every poll reads the whole listing)."""
    pagination: PaginationConfig | None = Field(None,
        examples=[{'style': 'page', 'next': 'next_page', 'size_param': 'per_page', 'size': 100}])
    """How the listing is paged (none: one answer holds every record)."""
    create: WriteConfig = WriteConfig(method="POST")
    """How a record is created."""
    update: WriteConfig = WriteConfig(method="PATCH")
    """How a record is changed."""
    delete: WriteConfig = WriteConfig(method="DELETE")
    """How a record is deleted."""
    conditional: Literal["etag", "none"] = "none"
    """``etag`` when updates and deletes honour ``If-Match``."""
    lookup: LookupConfig | None = Field(None, examples=[
        {"path": "/contacts/search", "params": {"email": "{email}"}, "records_at": "data"}])
    """Finding a record by its match key, before creating it."""
    deletes: DeletesConfig = DeletesConfig()
    """How deletes are seen: a feed, a tombstone field, or sweeps."""
    not_found: list[int] = Field(default_factory=lambda: [404], min_length=1,
                                 examples=[[404, 410]])
    """The statuses that mean a record does not exist."""
    poll_every_seconds: float = Field(5.0, gt=0)
    """Seconds between polls for changes."""
    concurrency: int = Field(
        4, ge=1, le=64, description="records written at once (one record's writes in "
        "order), and records webhooks named read at once")
    max_page_records: int = Field(
        10_000, ge=1, description="a page with more records is refused, not held in memory")
    loop_bound: int = Field(
        5, ge=1, description="writes to one record that did not hold (not kept, or undone "
        "before a person's edit) before the lane stops writing it: the loop breaker")
    webhook_event: str | None = Field(
        default=None, description="the event-name prefix of this entity's webhooks (contact)",
        examples=["contact"])
    check: CheckConfig = CheckConfig()
    """What ``syncline check --write-probe`` may do here."""

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
    def _no_parameter_replaced(self) -> Self:
        """A fixed query parameter that the since filter or the paging would replace is
        refused: it would be silently dropped from the requests."""
        takers: list[tuple[str, str]] = []
        if self.since is not None:
            takers.append((self.since.param, "since.param"))
        if self.pagination is not None:
            takers += [(name, f"pagination ({self.pagination.style})")
                       for name in self.pagination.query_names()]
        for name, taker in takers:
            if name in self.params:
                raise config_error("the query parameter {name} is fixed (params:, or the query "
                                   "string of path:) and also set by {taker}, which would "
                                   "replace it in every listing: keep one", name=repr(name),
                                   taker=taker)
        return self

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
    """Webhooks the system sends, naming records to read."""

    SECRET_FROM = "secret_env"
    secret_env: EnvName = Field(examples=['CRM_WEBHOOK_SECRET'])
    """The environment variable that holds the shared secret (or ``<NAME>_FILE`` the path of
    a file holding it)."""
    scheme: Literal["hmac", "header", "query"] = Field("hmac", examples=["header"])
    """How the sender proves it knows the secret: ``hmac`` signs each delivery
    (``signature_header`` over ``timestamp_header + "." + body``); ``header`` and ``query``
    are for senders that cannot sign, and send the secret itself in ``secret_header`` or in
    the query parameter ``secret_param`` of the URL (compared in constant time)."""
    signature_header: str = Field("X-Signature", min_length=1, examples=["X-Hub-Signature"])
    """(``hmac``) The header with the hex HMAC-SHA256 of ``timestamp.body``."""
    timestamp_header: str = Field("X-Timestamp", min_length=1, examples=["X-Hub-Timestamp"])
    """(``hmac``) The header with the Unix time the sender signed at."""
    tolerance_seconds: float = Field(300.0, gt=0, examples=[60])
    """(``hmac``) Deliveries signed longer ago (or ahead) are refused."""
    secret_header: str = Field("X-Webhook-Secret", min_length=1, examples=["X-Noco-Secret"])
    """(``header``) The header that carries the secret."""
    secret_param: str = Field("secret", min_length=1, examples=["token"])
    """(``query``) The query parameter that carries the secret."""
    id_at: str = Field("id", examples=["data.rows[*].Id"])
    """Where the record's id is in the body, as JMESPath: a dotted path (``data.id``) or an
    array of ids (``data.rows[*].Id``, ``payload.ids[]``); every id is read."""
    event_at: str = Field("event", examples=["type"])
    """Where the payload holds the event name, as JMESPath (``type``)."""
    events: dict[str, Literal["created", "updated", "deleted"]] | None = Field(
        None, min_length=1, examples=[{"records.after.insert": "created",
                                       "records.after.update": "updated",
                                       "records.after.delete": "deleted"}])
    """The sender's event names → ``created``, ``updated`` or ``deleted``; other events are
    answered 200 and counted as ``ignored``. Without it, any event of an entity (by its
    ``webhook_event`` prefix, or named in the URL) is taken, and a name ending in
    ``.deleted`` hints a delete."""

    @field_validator("id_at", "event_at")
    @classmethod
    def _jmespath(cls, value: str) -> str:
        try:
            jmespath.compile(value)
        except JMESPathError as exc:
            raise config_error("expected a JMESPath expression such as data.id or "
                               "data.rows[*].Id, got {value} ({why})", value=repr(value),
                               why=str(exc).splitlines()[0]) from None
        return value

    @model_validator(mode="after")
    def _keys_of_the_scheme(self) -> Self:
        used = {"hmac": {"signature_header", "timestamp_header", "tolerance_seconds"},
                "header": {"secret_header"}, "query": {"secret_param"}}
        for scheme, keys in used.items():
            for key in sorted(keys & self.model_fields_set):
                if scheme != self.scheme:
                    raise config_error(f"{key}: is read only with scheme: {scheme} (this "
                                       f"system has scheme: {self.scheme})")
        return self


class SystemConfig(Section):
    """One system: its connector and how to reach its API."""

    connector: Literal["rest"] = "rest"
    """The connector: ``rest``, the generic one, described entirely here."""
    base_url: str = Field(min_length=1, examples=['https://crm.example.com/api'])
    """The API's base URL (http or https, no query string); paths are relative to it."""
    auth: AuthConfig | None = Field(None, examples=[{'type': 'bearer', 'token_env': 'CRM_TOKEN'}])
    """How to authenticate; secrets only through environment variables (none: no auth)."""
    rate_limit: RateLimitConfig | None = Field(None, examples=[{'per_second': 15, 'burst': 30}])
    """The most this system may be asked (none: only the server's rate-limit headers are obeyed)."""
    retry: RetryConfig = RetryConfig()
    """Retries of timeouts, connection errors, 5xx and 429."""
    timeout_seconds: float = Field(10.0, gt=0)
    """Seconds one request may take."""
    webhooks: WebhookConfig | None = Field(None, examples=[{'secret_env': 'CRM_WEBHOOK_SECRET'}])
    """Webhooks this system sends (to ``/webhooks/<system>``)."""
    entities: dict[str, EntityEndpointConfig] = Field(default_factory=dict, examples=[
        {"contact": {"path": "/contacts", "records_at": "data"}}])
    """Per entity, how the API shapes it (a system with none has no lane)."""

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise config_error("expected an http:// or https:// URL, got {value}",
                               value=repr(value))
        if "?" in value or "#" in value:
            raise config_error("expected a URL without a query string or #fragment (it would "
                               "be dropped from every request); put query parameters in an "
                               "entity's params: or path:, got {value}", value=repr(value))
        return value.rstrip("/")
