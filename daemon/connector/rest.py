"""The generic declarative REST connector: one entity of one system, described by config.

:class:`RestEntity` turns an :class:`~daemon.connector.config.EntityEndpointConfig` into the
operations a lane needs — list changes since a time (every page), read one record, create,
update (conditionally where the API allows), delete, look a record up by its match key, and
list deletes where the API reports them — over the shared :class:`~daemon.http.HttpClient`
(auth, rate limit, retries, pagination). It decides nothing about syncing: that is the lane's.

Records come back as :class:`RemoteRecord` in the system's own shape (envelope removed), with
the id, the updated-at time and the native version found. A record in a listing that lacks its
id or has an unreadable updated-at is a :class:`BadRecord`, reported next to the good ones so
one broken record never hides the rest of its page. A record with no updated-at at all (none
of the ``updated`` fields set) is a record without a time, not a broken one.

Where the API's shapes differ between reads and writes, the configuration says so and this
module follows it: envelopes per direction, fixed query parameters, the id in the body of a
write, answers that hold only the id, defaults and constants on create.
"""

from __future__ import annotations

import math
import string
import uuid
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from daemon.connector.config import EntityEndpointConfig, SystemConfig, TimeFormat, WriteConfig
from daemon.errors import DaemonError
from daemon.http import (
    HttpClient,
    HttpError,
    MalformedResponse,
    NotFound,
    PageGuard,
    Precondition,
    RetryPolicy,
)
from daemon.http.headers import REQUEST_ID
from daemon.http.pagination import Fetched, PaginationStyle, Params, path_get

FRESH_READ_SECONDS = 0.25
"""How long after the read it was decided on an unconditional write may still be sent.

On an API without versions or conditional writes, a person's edit that lands between the
lane's read and its write is overwritten unseen. Most of that window is the network and the
two ends' event loops; what the lane itself adds (its decision, the rate limit) is well
under this in the normal case (docs/RELIABILITY.md). A write the rate limit would hold
longer (a 429's pause, say) is not sent; the lane reads again and decides again."""


class ConnectorError(DaemonError):
    """The API answered in a shape the configuration does not describe."""


@dataclass(frozen=True, slots=True)
class RemoteRecord:
    """One record as the system holds it.

    Attributes:
        id: its external id (as a string, whatever the API's type).
        data: the record in the system's shape, without an envelope.
        updated: its updated-at time, seconds since the epoch, when it has one.
        version: its native version (the ``version`` field, else the ETag), when known.
        precondition: what a conditional write of this record should carry.
        deleted: the API lists it with its tombstone field set: it is deleted.
        created: its created-at time, seconds since the epoch, when the config names the
            field (``created``).
        read_at: when its answer came (the client's clock, :meth:`HttpClient.now`), for a
            record read by itself (:meth:`RestEntity.fetch`): an unconditional write decided
            on it goes out only while it is fresh (:data:`FRESH_READ_SECONDS`).
        read_id: the request id that read carried (``X-Request-Id``); a write decided on it
            names it, with the time it held it (``X-Syncline-Read-Id``, ``-Read-Age``).
    """

    id: str
    data: dict[str, Any] = field(repr=False)
    updated: float | None = None
    version: str | None = None
    precondition: Precondition | None = None
    deleted: bool = False  # the API marks it deleted (``deletes.tombstone``)
    created: float | None = None
    read_at: float | None = field(default=None, compare=False)
    read_id: str | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class BadRecord:
    """A record in a listing that cannot be observed, and why."""

    reason: str
    raw: Any = field(repr=False)
    id: str | None = None


@dataclass(frozen=True, slots=True)
class ChangePage:
    """One page of changes: its records in the system's order."""

    number: int
    url: str
    records: list[RemoteRecord | BadRecord]


@dataclass(frozen=True, slots=True)
class Deletion:
    """A delete the system reported: which record, and when."""

    id: str
    at: float | None


def parse_time(value: Any) -> float | None:
    """A time from an API as seconds since the epoch: ISO-8601, or Unix seconds (or ms)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        number = float(value)
        return number / 1000.0 if number > 1e11 else number
    if isinstance(value, str) and value:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            try:
                return parse_time(float(value))
            except ValueError:
                return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    return None


def format_time(seconds: float, style: TimeFormat) -> str:
    """``seconds`` as a query value, rounded down so that an inclusive filter includes it."""
    if style == "unix":
        return str(math.floor(seconds))
    if style == "unix_ms":
        return str(math.floor(seconds * 1000))
    moment = datetime.fromtimestamp(math.floor(seconds * 1000) / 1000, UTC)
    if style == "iso_ms":
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _text_id(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | str) and str(value):
        return str(value)
    return None


class RestEntity:
    """One entity of one system over HTTP, as the configuration describes it."""

    def __init__(self, client: HttpClient, system: str, entity: str,
                 config: EntityEndpointConfig) -> None:
        self.client = client
        self.system = system
        self.entity = entity
        self.config = config
        self._paging: PaginationStyle = (config.pagination.build() if config.pagination
                                         else SinglePage())
        self._guard = PageGuard(max_records_per_page=config.max_page_records)

    # -- capabilities --------------------------------------------------------------------
    @property
    def conditional(self) -> bool:
        """Updates and deletes can be made conditional on the version read (If-Match)."""
        return self.config.conditional == "etag"

    @property
    def can_look_up(self) -> bool:
        """Records can be found by their match key."""
        return self.config.lookup is not None

    @property
    def delete_feed(self) -> bool:
        """The API lists deleted records."""
        return self.config.deletes.feed is not None

    # -- reading -------------------------------------------------------------------------
    def record(self, raw: Any, precondition: Precondition | None = None
               ) -> RemoteRecord | BadRecord:
        """A record of this entity from the API's JSON (without envelope)."""
        if not isinstance(raw, dict):
            return BadRecord(f"expected a record (a JSON object), got {type(raw).__name__}", raw)
        external_id = _text_id(path_get(raw, self.config.id))
        if external_id is None:
            return BadRecord(f"the record has no id at {self.config.id!r}", raw)
        updated: float | None = None
        for name in self.config.updated:  # the first one set decides
            updated_raw = path_get(raw, name)
            if updated_raw is None:
                continue
            updated = parse_time(updated_raw)
            if updated is None:
                return BadRecord(f"record {external_id}: no readable updated-at at {name!r} "
                                 f"(got {updated_raw!r})", raw, external_id)
            break
        version: str | None = None
        if self.config.version is not None:
            found = path_get(raw, self.config.version)
            version = None if found is None else str(found)
        if version is None and precondition is not None and precondition.etag is not None:
            version = precondition.etag
        created: float | None = None
        if self.config.created is not None:
            created_raw = path_get(raw, self.config.created)
            created = parse_time(created_raw) if created_raw is not None else None
            if created_raw is not None and created is None:
                return BadRecord(f"record {external_id}: no readable created-at at "
                                 f"{self.config.created!r} (got {created_raw!r})", raw,
                                 external_id)
        tombstone = self.config.deletes.tombstone
        deleted = bool(path_get(raw, tombstone)) if tombstone is not None else False
        return RemoteRecord(external_id, raw, updated, version, precondition, deleted,
                            created)

    def _one(self, body: Any, precondition: Precondition | None = None) -> RemoteRecord:
        envelope = self.config.read_envelope
        raw = path_get(body, envelope) if envelope and isinstance(body, dict) else body
        found = self.record(raw, precondition)
        if isinstance(found, BadRecord):
            raise ConnectorError(f"{self.system} {self.entity}: {found.reason}")
        return found

    async def changes(self, since: float | None) -> AsyncGenerator[ChangePage, None]:
        """Every page of the records changed at or after ``since`` (all records for None)."""
        params: dict[str, Any] = dict(self.config.params)
        if since is not None and self.config.since is not None:
            filter_ = self.config.since
            moment = max(0.0, since - filter_.overlap_seconds)
            tick = self.config.timestamp_resolution
            if tick > 0:
                moment = math.floor(moment / tick) * tick
            params[filter_.param] = filter_.template.format(
                since=format_time(moment, filter_.format))
        async for page in self.client.paginate(self.config.path, self._paging, params=params,
                                               records_at=self.config.records_at,
                                               guard=self._guard):
            yield ChangePage(page.number, page.url, [self.record(raw) for raw in page.records])

    async def fetch(self, external_id: str) -> RemoteRecord | None:
        """The record now, or ``None`` when the system says it does not exist."""
        read_id = uuid.uuid4().hex[:16]
        try:
            body, precondition = await self.client.get_versioned(
                self.config.item(external_id), params=self.config.params or None,
                headers={REQUEST_ID: read_id})
        except HttpError as exc:
            if self._is_not_found(exc):
                return None
            raise
        found = self._one(body, precondition)
        return None if found.deleted else replace(found, read_at=self.client.now(),
                                                  read_id=read_id)

    async def lookup(self, values: Mapping[str, Any]) -> list[RemoteRecord]:
        """The records whose match key holds ``values`` (the system's field names)."""
        lookup = self.config.lookup
        if lookup is None:
            return []
        params = {**self.config.params,
                  **{name: template.format_map(_Blank(values))
                     for name, template in lookup.params.items()}}
        body = await self.client.get_json(lookup.path, params=params)
        found = path_get(body, lookup.records_at)
        if not isinstance(found, list):
            raise MalformedResponse(f"expected a list of records at {lookup.records_at!r}",
                                    method="GET", url=lookup.path)
        records = [self.record(raw) for raw in found]
        return [r for r in records if isinstance(r, RemoteRecord)]

    async def deletions(self, since: float | None) -> AsyncGenerator[list[Deletion], None]:
        """Pages of the deletes the API reports at or after ``since``."""
        feed = self.config.deletes.feed
        if feed is None:
            return
        params: dict[str, Any] = dict(feed.params)
        if since is not None:
            params[feed.since_param] = format_time(since, feed.since_format)
        style = feed.pagination.build() if feed.pagination else self._paging
        async for page in self.client.paginate(feed.path, style, params=params,
                                               records_at=feed.records_at):
            found = []
            for raw in page.records:
                external_id = _text_id(path_get(raw, feed.id)) if isinstance(raw, dict) else None
                if external_id is not None:
                    found.append(Deletion(external_id, parse_time(path_get(raw, feed.at))))
            yield found

    # -- writing -------------------------------------------------------------------------
    def _body(self, data: Mapping[str, Any]) -> Any:
        envelope = self.config.write_envelope
        return {envelope: dict(data)} if envelope else dict(data)

    def _params(self, write: WriteConfig) -> dict[str, Any] | None:
        return {**self.config.params, **write.params} or None

    def _id_value(self, write: WriteConfig, external_id: str) -> Any:
        if write.id_type == "integer":
            try:
                return int(external_id)
            except ValueError:
                raise ConnectorError(f"{self.system} {self.entity}: id {external_id!r} is not "
                                     "an integer (id_type: integer)") from None
        return external_id

    def create_body(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """What a create sends for the mapped ``data``: with the defaults and constants."""
        write = self.config.create
        body = _deep_copy(data)
        for path, value in write.defaults.items():
            if _is_empty(path_get(body, path)):
                _put(body, path, render(value, data) if isinstance(value, str) else value)
        for path, value in write.constants.items():
            _put(body, path, value)
        return body

    @property
    def idempotent_creates(self) -> bool:
        """Whether the API runs a create once per key (``create.idempotency_header``)."""
        return self.config.create.idempotency_header is not None

    async def create(self, data: Mapping[str, Any], key: str | None = None
                     ) -> RemoteRecord | None:
        """Create a record; it as the API returned it (re-read when the answer has no body).

        With an idempotency header configured, ``key`` goes in it and the create is retried
        like any write (the API runs it once); the answer to a repeated key is the first
        create's, whatever happened to the record since. Without one it is sent once, never
        repeated by the retry loop: a timeout may hide a create that happened, and only a
        lookup can tell (the lane does that). ``None``: the answer does not say which record
        was made (the lane looks it up).
        """
        write = self.config.create
        header = write.idempotency_header
        headers = {header: key} if header is not None and key is not None else None
        fetched = await self.client.request(
            write.method, write.path or self.config.path, json=self._body(self.create_body(data)),
            params=self._params(write), headers=headers,
            retry=None if headers else RetryPolicy.never())
        if fetched.body is not None and write.answer == "record":
            return self._one(fetched.body, Precondition.from_response(fetched.response))
        if fetched.body is not None and write.answer == "id":
            return await self._read_answered(fetched.body, "create")
        location = fetched.response.headers.get("location")
        if location:
            body, precondition = await self.client.get_versioned(
                location, params=self.config.params or None)
            return self._one(body, precondition)
        return None

    async def _read_answered(self, body: Any, op: str) -> RemoteRecord:
        """The record whose id an answer holds (``answer: id``), read now."""
        envelope = self.config.read_envelope
        raw = path_get(body, envelope) if envelope and isinstance(body, dict) else body
        external_id = _text_id(path_get(raw, self.config.id)) if isinstance(raw, dict) else None
        if external_id is None:
            raise ConnectorError(f"{self.system} {self.entity}: the answer to a {op} has no "
                                 f"id at {self.config.id!r} (answer: id)")
        record = await self.fetch(external_id)
        if record is None:
            raise ConnectorError(f"{self.system} {self.entity}: record {external_id}, "
                                 f"answered to a {op}, cannot be read")
        return record

    def _write_target(self, write: WriteConfig, external_id: str
                      ) -> tuple[str, dict[str, Any] | None]:
        """The path of a write to one record, and the id to put in its body, if any."""
        path = (write.path.replace("{id}", external_id) if write.path
                else self.config.item(external_id))
        if write.id_field is None:
            return path, None
        return path, {write.id_field: self._id_value(write, external_id)}

    async def update(self, external_id: str, data: Mapping[str, Any],
                     precondition: Precondition | None, *, read_at: float | None = None,
                     read_id: str | None = None) -> RemoteRecord | None:
        """Change the fields in ``data``; the record after the write.

        ``read_at``: when the read this write was decided on answered (``RemoteRecord.
        read_at``). Without a precondition to carry, the write is sent only within
        :data:`FRESH_READ_SECONDS` of it, else :class:`~daemon.http.ReadTooOld` (nothing
        written); it carries ``read_id`` (``RemoteRecord.read_id``) and how long after that
        read it went (:data:`~daemon.http.headers.READ_ID`, ``READ_AGE``): the lane's own
        share of the window, for a system that journals its writes.

        Raises :class:`~daemon.http.PreconditionFailed` when ``precondition`` no longer holds
        or the read is too old (nothing was written), :class:`~daemon.http.NotFound` when the
        record is gone. A write without a precondition is never repeated here: a retriable
        error is raised at once, for the caller to read the record and decide again.
        """
        write = self.config.update
        path, id_body = self._write_target(write, external_id)
        body = self._body({**(id_body or {}), **data})
        headers = precondition.headers() if precondition is not None and self.conditional else {}
        # An unconditional write is sent once: repeated seconds later (after a 429, a 5xx or
        # a timeout) it would overwrite whatever a person changed since the caller's read.
        # The lane runs the intent again instead, which reads and decides again. For the
        # same reason it is not sent late: held by the rate limit (a 429's pause, another
        # request's 503) or a slow process past FRESH_READ_SECONDS after the read, it is not
        # sent at all, and the caller reads again.
        send_by = None if headers or read_at is None else read_at + FRESH_READ_SECONDS
        fetched = await self.client.request(
            write.method, path, json=body, params=self._params(write), headers=headers,
            retry=None if headers else RetryPolicy.never(), send_by=send_by,
            decided_on=None if send_by is None or read_at is None else (read_id, read_at))
        if fetched.body is not None and write.answer == "record":
            return self._one(fetched.body, Precondition.from_response(fetched.response))
        return await self.fetch(external_id)

    async def delete(self, external_id: str, precondition: Precondition | None) -> None:
        """Delete the record; one already gone is fine."""
        write = self.config.delete
        path, id_body = self._write_target(write, external_id)
        headers = precondition.headers() if precondition is not None and self.conditional else {}
        try:
            await self.client.request(write.method, path, json=id_body,
                                      params=self._params(write), headers=headers)
        except HttpError as exc:
            if not self._is_not_found(exc):
                raise

    def _is_not_found(self, exc: HttpError) -> bool:
        return isinstance(exc, NotFound) or exc.status in self.config.not_found


class SinglePage:
    """A listing that is not paged: one answer holds every record."""

    def first(self, params: Params) -> Params:
        return dict(params)

    def next(self, url: str, params: Params, fetched: Fetched, records: list[Any]
             ) -> tuple[str, Params] | None:
        return None


def render(template: str, values: Mapping[str, Any]) -> str:
    """``template`` with each ``{name}`` (a dotted path) replaced by that value in ``values``.

    A value the record lacks (or holds as null) is an empty string; ``{{`` and ``}}`` are
    literal braces.
    """
    out: list[str] = []
    for literal, name, _, _ in string.Formatter().parse(template):
        out.append(literal)
        if name:
            value = path_get(values, name)
            out.append("" if value is None else str(value))
    return "".join(out)


def _is_empty(value: Any) -> bool:
    return value is None or value == ""


def _deep_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in data.items()}


def _put(record: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    for part in parts[:-1]:
        inner = record.get(part)
        if not isinstance(inner, dict):
            inner = record[part] = {}
        record = inner
    record[parts[-1]] = value


class _Blank(dict[str, Any]):
    """Template values: a field the record lacks is an empty string."""

    def __missing__(self, key: str) -> str:
        return ""


def build_client(name: str, config: SystemConfig,
                 on_answer: Callable[[str], None] | None = None,
                 on_request: Callable[[str, str], None] | None = None,
                 on_wait: Callable[[float], None] | None = None,
                 on_latency: Callable[[float], None] | None = None) -> HttpClient:
    """The HTTP client of one system: its base URL, auth, rate limit, retries and timeout;
    ``on_answer`` hears each attempt's status, ``on_request`` each attempt's method and URL,
    ``on_wait`` each wait for the rate limit, ``on_latency`` each attempt's seconds
    (:class:`~daemon.http.HttpClient`)."""
    return HttpClient(
        config.base_url,
        auth=config.auth.build() if config.auth is not None else None,
        limiter=config.rate_limit.build() if config.rate_limit is not None else None,
        retry=config.retry.build(),
        timeout=config.timeout_seconds,
        system=name,
        on_answer=on_answer,
        on_request=on_request,
        on_wait=on_wait,
        on_latency=on_latency,
    )
