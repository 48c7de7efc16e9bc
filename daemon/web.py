"""The worker's web server: health, readiness, Prometheus metrics and webhook receivers.

::

    GET  /health            200 {"status": "ok"} while the process runs
    GET  /ready             200 {"status": "ready"}
                            503 {"status": "starting", "waiting_for": [...]}
    GET  /metrics           Prometheus text format
    POST /webhooks/{system}[/{entity}]
                            202 {"status": "accepted", "ids": [...], ...}
                            200 {"status": "ignored", ...}  (an event it does not sync)
                            401 / 400 / 404 / 413 / 503 {"error": outcome, "message": ...}

A webhook is only a trigger: the receiver checks who sent it and when, finds the entity and
the records' external ids in the body, and hands ``(system, entity, external_id,
deleted_hint)`` to ``on_trigger`` once per id. It never reads a record itself; the system's
lane does, in its own sequence of reads and writes. A replayed delivery only causes more
reads, which are harmless.

Who sent it (``scheme``): ``hmac`` checks an HMAC over ``timestamp + "." + body`` with the
system's secret and a timestamp within ``tolerance_s`` of the server's clock; ``header`` and
``query`` are for senders that cannot sign: the shared secret itself travels in a header or a
query parameter and is compared in constant time (digests of both sides, so not even its
length leaks).

Where things are in the body: ``event_at`` and ``id_at`` are JMESPath expressions, of which a
dotted path (``data.id``) is the simplest form; ``data.rows[*].Id`` or ``payload.ids[]``
address arrays, and a delivery naming several records triggers a read of each (once per
distinct id). The entity is the one in the URL (``/webhooks/nocodb/contact``) or the one whose
event prefix starts the event name. ``events`` maps a sender's event names to ``created``,
``updated`` or ``deleted``; without it, an event name ending in ``deleted_suffix`` hints a
delete. An event the receiver does not sync (not in ``events``, or about no configured
entity) is answered 200 ``ignored`` and counted, not refused: the sender did nothing wrong and
must not retry it, and it is not an error worth a dead letter.

Checks run in this order, so nothing about the body is looked at before its sender is known:
system (and entity) known (else 404) → the secret or signature present and right (else 401
``bad_secret`` / ``bad_signature``) → timestamp fresh, for ``hmac`` (else 401
``stale_timestamp``) → body a JSON object with an event name (else 400 ``malformed``) → an
event it syncs (else 200 ``ignored``) → ids (strings or integers) at ``id_at`` (else 400
``malformed``). Every outcome is counted in ``webhooks_total``; neither the secret nor a
signature is ever logged.

More routes (the review page) go on the same server with :meth:`WebServer.add_routes` or
:meth:`WebServer.add_subapp` before it starts.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import hmac
import inspect
import json
import logging
import math
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Final, Literal

import jmespath
from aiohttp import web
from jmespath.exceptions import JMESPathError
from jmespath.parser import ParsedResult
from pydantic import SecretStr

from daemon.errors import DaemonError
from daemon.listen import CannotListen, listening_socket
from daemon.metrics import WEBHOOK_OUTCOMES, Metrics, WebhookOutcome

log = logging.getLogger(__name__)

OnTrigger = Callable[[str, str, str, bool], Awaitable[None] | None]
"""``on_trigger(system, entity, external_id, deleted_hint)``: ask the lane to read a record.

It may be a plain function or a coroutine function; it should only enqueue (the webhook is
answered after it returns). Raising makes the answer a 503, so the sender may retry.
"""

Readiness = Callable[[], Iterable[str]]
"""What the process still waits for before it is ready (e.g. ``["kafka", "lane crm/contact"]``);
nothing means ready."""

UNKNOWN_SYSTEM: Final = "(unknown)"
"""The ``system`` label for webhooks to a system that is not configured: a path segment from
anyone must not mint new time series."""

SHUTDOWN_TIMEOUT_S: Final = 2.0

EventKind = Literal["created", "updated", "deleted"]
"""What a sender's event says happened to the records it names."""

Scheme = Literal["hmac", "header", "query"]
"""How a sender proves it knows the shared secret (see the module docstring)."""


class ListenError(DaemonError):
    """The web server cannot listen on the requested address (e.g. the port is taken)."""

    def __init__(self, host: str, port: int, reason: str) -> None:
        self.host = host
        self.port = port
        self.reason = reason
        super().__init__(f"web server cannot listen on {_host_port(host, port)}: {reason}")


@dataclass(frozen=True)
class WebhookSpec:
    """How one system proves its webhooks are its own and where the records are in the body.

    Attributes:
        secret: the shared secret (the HMAC key, or the value itself for ``header``/``query``).
        entities: event-name prefix → entity, e.g. ``{"contact": "contact"}`` for events like
            ``contact.updated``. The longest prefix that ends at a ``.`` (or is the whole event
            name) wins.
        routed: the entities that may be named in the URL (``/webhooks/{system}/{entity}``),
            for senders whose event names do not say which entity they are about.
        scheme: ``hmac`` (signed), ``header`` or ``query`` (the secret itself is sent).
        secret_header: the header that carries the secret, for ``scheme="header"``.
        secret_param: the query parameter that carries the secret, for ``scheme="query"``.
        events: the sender's event name → what happened; ``None`` to read the kind from
            ``deleted_suffix`` and accept any event of a known entity.
        signature_header: the header that carries the hex signature.
        timestamp_header: the header that carries the sending time, Unix seconds.
        tolerance_s: how far (either way) the timestamp may be from the server's clock.
        algorithm: the HMAC's hash.
        signature_prefix: what precedes the hex digest in the header (``"sha256="`` for
            GitHub-style senders); empty for the simulated CRM.
        id_at: where the record's external id is in the body, as JMESPath (``"data.id"``;
            ``"data.rows[*].Id"`` or ``"ids[]"`` for several records).
        event_at: where the event name is in the body, as JMESPath (``"type"``).
        deleted_suffix: an event name ending in this is a hint that the record was deleted.
    """

    secret: SecretStr
    entities: Mapping[str, str] = dataclasses.field(default_factory=dict)
    routed: frozenset[str] = frozenset()
    scheme: Scheme = "hmac"
    secret_header: str = "X-Webhook-Secret"
    secret_param: str = "secret"
    events: Mapping[str, EventKind] | None = None
    signature_header: str = "X-Signature"
    timestamp_header: str = "X-Timestamp"
    tolerance_s: float = 300.0
    algorithm: Literal["sha256", "sha512"] = "sha256"
    signature_prefix: str = ""
    id_at: str = "id"
    event_at: str = "event"
    deleted_suffix: str = ".deleted"

    def __post_init__(self) -> None:
        if not self.entities and not self.routed:
            raise ValueError("a webhook spec needs at least one entity")
        for path in (self.id_at, self.event_at):
            expression(path)  # a ValueError now, not at the first delivery
        if not self.tolerance_s > 0:
            raise ValueError(f"tolerance_s must be positive, not {self.tolerance_s}")
        if not self.signature_header or not self.timestamp_header:
            raise ValueError("signature_header and timestamp_header must not be empty")

    def signature(self, timestamp: str, body: bytes) -> str:
        """The signature header value a sender with this spec puts on ``body`` at ``timestamp``."""
        message = timestamp.encode() + b"." + body
        key = self.secret.get_secret_value().encode()
        return self.signature_prefix + hmac.new(key, message, self.algorithm).hexdigest()

    def entity_of(self, event: str) -> str | None:
        """The entity an event name is about, or ``None`` when no prefix matches."""
        best: str | None = None
        for prefix in self.entities:
            matches = event == prefix or event.startswith(prefix + ".")
            if matches and (best is None or len(prefix) > len(best)):
                best = prefix
        return None if best is None else self.entities[best]


class WebhookRefused(Exception):
    """A webhook refused: the status, the metric outcome and a message safe to show and log."""

    def __init__(self, status: int, outcome: WebhookOutcome, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.outcome = outcome
        self.message = message


class WebServer:
    """The worker's HTTP server; ``async with WebServer(...) as server: server.url``.

    Args:
        host: the address to listen on.
        port: the port; ``0`` picks a free one (see :attr:`port` once started).
        metrics: the metrics to serve and count into; a new :class:`Metrics` by default.
        ready: what the process still waits for (see :data:`Readiness`); always ready by
            default.
        webhooks: system → how its webhooks are signed and read.
        on_trigger: called for every accepted webhook (see :data:`OnTrigger`); required when
            ``webhooks`` is not empty.
        clock: the current time in Unix seconds, for the timestamp check.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        metrics: Metrics | None = None,
        ready: Readiness | None = None,
        webhooks: Mapping[str, WebhookSpec] | None = None,
        on_trigger: OnTrigger | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.host = host
        self.metrics = metrics if metrics is not None else Metrics()
        self._requested_port = port
        self._ready = ready
        self._webhooks = dict(webhooks or {})
        if self._webhooks and on_trigger is None:
            raise ValueError("webhooks are configured but there is no on_trigger to call")
        self._trigger: OnTrigger = on_trigger if on_trigger is not None else _no_trigger
        self._clock = clock
        self._app = web.Application()
        self._app.router.add_get("/health", self._health)
        self._app.router.add_get("/ready", self._readiness)
        self._app.router.add_get("/metrics", self._metrics)
        self._app.router.add_post("/webhooks/{system}", self._webhook)
        self._app.router.add_post("/webhooks/{system}/{entity}", self._webhook)
        self._runner: web.AppRunner | None = None
        self._sock: socket.socket | None = None
        # Every outcome of every configured system exists from the start, at zero, so a
        # rate() over it works before the first failure.
        for system in self._webhooks:
            for outcome in WEBHOOK_OUTCOMES:
                self.metrics.webhooks.labels(system, outcome)

    # -- extension --------------------------------------------------------------------------

    def add_routes(self, routes: Iterable[web.AbstractRouteDef]) -> None:
        """Serve more routes (e.g. ``aiohttp.web.RouteTableDef``); only before start."""
        self._before_start("add routes")
        self._app.add_routes(routes)

    def add_subapp(self, prefix: str, app: web.Application) -> None:
        """Serve ``app`` under ``prefix`` (with its own middlewares); only before start."""
        self._before_start("add a sub-application")
        self._app.add_subapp(prefix, app)

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port the server listens on (known once started)."""
        if self._sock is None:
            raise RuntimeError("the web server is not started")
        port: int = self._sock.getsockname()[1]
        return port

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:8080`` (known once started)."""
        return f"http://{_host_port(self.host, self.port)}"

    def webhook_url(self, system: str, entity: str | None = None) -> str:
        """Where ``system`` should send its webhooks (about ``entity``), once started."""
        return f"{self.url}/webhooks/{system}" + (f"/{entity}" if entity else "")

    async def start(self) -> None:
        """Listen and serve.

        Raises:
            ListenError: the address cannot be bound (e.g. the port is taken).
        """
        self._before_start("start again")
        try:
            sock = listening_socket(self.host, self._requested_port)
        except CannotListen as exc:
            raise ListenError(self.host, self._requested_port, exc.reason) from None
        runner = web.AppRunner(self._app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        try:
            await runner.setup()
            await web.SockSite(runner, sock).start()
        except BaseException:
            await runner.cleanup()
            sock.close()
            raise
        self._runner, self._sock = runner, sock
        log.info("web server listening on %s", self.url)

    async def stop(self) -> None:
        """Stop serving; connections still open get :data:`SHUTDOWN_TIMEOUT_S` to finish."""
        runner, sock = self._runner, self._sock
        self._runner = self._sock = None
        if runner is not None:
            await runner.cleanup()
        if sock is not None:
            sock.close()

    async def __aenter__(self) -> WebServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _before_start(self, what: str) -> None:
        if self._runner is not None or self._app.frozen:
            raise RuntimeError(f"cannot {what}: the web server has already started")

    # -- handlers ---------------------------------------------------------------------------

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readiness(self, request: web.Request) -> web.Response:
        waiting = [] if self._ready is None else [str(name) for name in self._ready()]
        if waiting:
            return web.json_response({"status": "starting", "waiting_for": waiting}, status=503)
        return web.json_response({"status": "ready"})

    async def _metrics(self, request: web.Request) -> web.Response:
        body, content_type = self.metrics.render()
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def _webhook(self, request: web.Request) -> web.Response:
        system = request.match_info["system"]
        routed = request.match_info.get("entity")
        spec = self._webhooks.get(system)
        try:
            if spec is None:
                raise WebhookRefused(404, "unknown_system",
                                 f"no webhooks are configured for system {system!r}")
            if routed is not None and routed not in spec.routed:
                raise WebhookRefused(404, "unknown_system",
                                 f"system {system!r} has no entity {routed!r}")
            try:
                body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                raise WebhookRefused(413, "malformed", "the body is too large") from None
            self._authenticate(spec, request, body)
            delivery = delivery_of(spec, body, routed)
        except WebhookRefused as rejection:
            label = system if spec is not None else UNKNOWN_SYSTEM
            self.metrics.count_webhook(label, rejection.outcome)
            log.info("webhook for %r from %s refused (%d %s): %s", system, request.remote,
                     rejection.status, rejection.outcome, rejection.message)
            return web.json_response({"error": rejection.outcome, "message": rejection.message},
                                     status=rejection.status)
        if isinstance(delivery, Ignored):
            self.metrics.count_webhook(system, "ignored")
            log.debug("webhook for %s ignored: %s", system, delivery.reason)
            return web.json_response({"status": "ignored", "system": system,
                                      "event": delivery.event, "reason": delivery.reason})
        entity, ids, event, kind = delivery
        deleted_hint = kind == "deleted"
        try:
            for external_id in ids:
                pending = self._trigger(system, entity, external_id, deleted_hint)
                if inspect.isawaitable(pending):
                    await pending
        except Exception:
            self.metrics.count_webhook(system, "trigger_failed")
            log.exception("webhook for %s/%s %s: the trigger failed", system, entity, ids)
            message = "the trigger could not be queued"
            return web.json_response({"error": "trigger_failed", "message": message}, status=503)
        self.metrics.count_webhook(system, "accepted")
        log.debug("webhook %s for %s/%s %s accepted", event, system, entity, ids)
        return web.json_response(
            {"status": "accepted", "system": system, "entity": entity, "ids": ids,
             "deleted_hint": deleted_hint},
            status=202,
        )

    def _authenticate(self, spec: WebhookSpec, request: web.Request, body: bytes) -> None:
        if spec.scheme == "header":
            _check_secret(spec, request.headers.get(spec.secret_header),
                          f"the {spec.secret_header} header")
        elif spec.scheme == "query":
            _check_secret(spec, request.query.get(spec.secret_param),
                          f"the query parameter {spec.secret_param}")
        else:
            self._check_signature(spec, request, body)

    def _check_signature(self, spec: WebhookSpec, request: web.Request, body: bytes) -> None:
        signature = request.headers.get(spec.signature_header)
        timestamp = request.headers.get(spec.timestamp_header)
        missing = [name for name, value in ((spec.signature_header, signature),
                                            (spec.timestamp_header, timestamp)) if not value]
        if missing or signature is None or timestamp is None:
            raise WebhookRefused(401, "bad_signature",
                             f"missing header {' and '.join(missing)}")
        expected = spec.signature(timestamp, body)
        # Hex digests are case-insensitive; bytes, because compare_digest refuses non-ASCII str.
        given = signature.strip().lower().encode("utf-8", "replace")
        if not hmac.compare_digest(given, expected.lower().encode()):
            raise WebhookRefused(401, "bad_signature",
                             f"the {spec.signature_header} header does not match the body")
        try:
            sent_at = float(timestamp)
        except ValueError:
            sent_at = math.nan
        if not math.isfinite(sent_at):
            raise WebhookRefused(401, "stale_timestamp",
                             f"the {spec.timestamp_header} header is not Unix seconds")
        skew = self._clock() - sent_at
        if abs(skew) > spec.tolerance_s:
            raise WebhookRefused(401, "stale_timestamp",
                             f"the {spec.timestamp_header} header is {abs(skew):.0f}s "
                             f"{'old' if skew > 0 else 'in the future'} "
                             f"(tolerance {spec.tolerance_s:g}s)")


def _check_secret(spec: WebhookSpec, given: str | None, where: str) -> None:
    """Refuse a delivery whose plain shared secret is missing or wrong, in constant time."""
    if not given:
        raise WebhookRefused(401, "bad_secret", f"missing {where}")
    # Digests of both sides: equal lengths, so the comparison does not reveal the secret's.
    expected = hashlib.sha256(spec.secret.get_secret_value().encode()).digest()
    if not hmac.compare_digest(hashlib.sha256(given.encode("utf-8", "replace")).digest(),
                               expected):
        raise WebhookRefused(401, "bad_secret", f"{where} is not the shared secret")


def _no_trigger(system: str, entity: str, external_id: str, deleted_hint: bool) -> None:
    """Never called: without an ``on_trigger`` no system has a webhook spec."""


@dataclass(frozen=True)
class Ignored:
    """A delivery about something the receiver does not sync: answered 200, counted."""

    event: str
    reason: str


def delivery_of(spec: WebhookSpec, body: bytes,
                 routed: str | None) -> tuple[str, list[str], str, EventKind] | Ignored:
    """``(entity, external_ids, event, kind)`` of a webhook body, :class:`Ignored`, or a 400
    (:class:`WebhookRefused`). The receiver's own parsing: ``syncline check`` runs a sample
    through it too. ``routed``: the entity the URL names, if it names one."""

    def malformed(message: str) -> WebhookRefused:
        return WebhookRefused(400, "malformed", message)

    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise malformed("the body is not JSON") from None
    if not isinstance(payload, dict):
        raise malformed("the body is not a JSON object")
    event = expression(spec.event_at).search(payload)
    if not isinstance(event, str) or not event:
        raise malformed(f"no event name (a string) at {spec.event_at!r}")
    kind: EventKind | None
    if spec.events is not None:
        kind = spec.events.get(event)
        if kind is None:
            return Ignored(event, f"event {event!r} is not one of the configured events "
                                   f"({', '.join(sorted(spec.events))})")
    else:
        kind = "deleted" if event.endswith(spec.deleted_suffix) else "updated"
    entity = routed if routed is not None else spec.entity_of(event)
    if entity is None:
        known = ", ".join(sorted(spec.entities)) or "none"
        return Ignored(event, f"event {event!r} is not about a known entity (known: {known})")
    found = expression(spec.id_at).search(payload)
    values = found if isinstance(found, list) else [found]
    ids: list[str] = []
    for value in values:
        # bool is an int to Python, but never an id.
        if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
            raise malformed(f"no record id (a non-empty string or an integer) at "
                            f"{spec.id_at!r}" + (f" (got {len(values)} values, not all ids)"
                                                 if len(values) > 1 else ""))
        if str(value) not in ids:
            ids.append(str(value))
    if not ids:
        raise malformed(f"no record id at {spec.id_at!r} (an empty list)")
    return entity, ids, event, kind


@functools.lru_cache(maxsize=256)
def expression(path: str) -> ParsedResult:
    """``path`` compiled as JMESPath; a :class:`ValueError` names what is wrong with it."""
    try:
        return jmespath.compile(path)
    except JMESPathError as exc:
        raise ValueError(f"{path!r} is not a JMESPath expression: {exc}") from None


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


__all__ = [
    "UNKNOWN_SYSTEM",
    "EventKind",
    "Ignored",
    "ListenError",
    "OnTrigger",
    "Readiness",
    "Scheme",
    "WebServer",
    "WebhookRefused",
    "WebhookSpec",
    "delivery_of",
    "expression",
]
