"""The worker's web server: health, readiness, Prometheus metrics and webhook receivers.

::

    GET  /health            200 {"status": "ok"} while the process runs
    GET  /ready             200 {"status": "ready"}
                            503 {"status": "starting", "waiting_for": [...]}
    GET  /metrics           Prometheus text format
    POST /webhooks/{system} 202 {"status": "accepted", ...}
                            401 / 400 / 404 / 413 / 503 {"error": outcome, "message": ...}

A webhook is only a trigger: the receiver checks who sent it (HMAC over ``timestamp + "." +
body`` with the system's secret) and when (within ``tolerance_s`` of the server's clock),
finds the entity and the record's external id in the body, and hands
``(system, entity, external_id, deleted_hint)`` to ``on_trigger``. It never reads the record
itself; the system's lane does, in its own sequence of reads and writes. A replayed delivery
within the tolerance only causes one more read, which is harmless.

Checks run in this order, so nothing about the body is looked at before its sender is known:
system known (else 404) → signature and timestamp headers present and the signature right
(else 401 ``bad_signature``) → timestamp fresh (else 401 ``stale_timestamp``) → body a JSON
object with an event of a known entity and an id (else 400 ``malformed``). Every outcome is
counted in ``webhooks_total``; neither the secret nor a signature is ever logged.

More routes (the review page) go on the same server with :meth:`WebServer.add_routes` or
:meth:`WebServer.add_subapp` before it starts.
"""

from __future__ import annotations

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
from typing import Any, Final, Literal

from aiohttp import web
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


class ListenError(DaemonError):
    """The web server cannot listen on the requested address (e.g. the port is taken)."""

    def __init__(self, host: str, port: int, reason: str) -> None:
        self.host = host
        self.port = port
        self.reason = reason
        super().__init__(f"web server cannot listen on {_host_port(host, port)}: {reason}")


@dataclass(frozen=True)
class WebhookSpec:
    """How one system signs its webhooks and where the record is named in the body.

    Attributes:
        secret: the shared HMAC secret.
        entities: event-name prefix → entity, e.g. ``{"contact": "contact"}`` for events like
            ``contact.updated``. The longest prefix that ends at a ``.`` (or is the whole event
            name) wins.
        signature_header: the header that carries the hex signature.
        timestamp_header: the header that carries the sending time, Unix seconds.
        tolerance_s: how far (either way) the timestamp may be from the server's clock.
        algorithm: the HMAC's hash.
        signature_prefix: what precedes the hex digest in the header (``"sha256="`` for
            GitHub-style senders); empty for the simulated CRM.
        id_at: the dotted path of the record's external id in the body (``"data.id"``).
        event_at: the dotted path of the event name in the body.
        deleted_suffix: an event name ending in this is a hint that the record was deleted.
    """

    secret: SecretStr
    entities: Mapping[str, str]
    signature_header: str = "X-Signature"
    timestamp_header: str = "X-Timestamp"
    tolerance_s: float = 300.0
    algorithm: Literal["sha256", "sha512"] = "sha256"
    signature_prefix: str = ""
    id_at: str = "id"
    event_at: str = "event"
    deleted_suffix: str = ".deleted"

    def __post_init__(self) -> None:
        if not self.entities:
            raise ValueError("a webhook spec needs at least one entity")
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


class _Rejection(Exception):
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

    def webhook_url(self, system: str) -> str:
        """Where ``system`` should send its webhooks (known once started)."""
        return f"{self.url}/webhooks/{system}"

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
        spec = self._webhooks.get(system)
        try:
            if spec is None:
                raise _Rejection(404, "unknown_system",
                                 f"no webhooks are configured for system {system!r}")
            try:
                body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                raise _Rejection(413, "malformed", "the body is too large") from None
            self._authenticate(spec, request, body)
            entity, external_id, event = _trigger_of(spec, body)
        except _Rejection as rejection:
            label = system if spec is not None else UNKNOWN_SYSTEM
            self.metrics.count_webhook(label, rejection.outcome)
            log.info("webhook for %r from %s refused (%d %s): %s", system, request.remote,
                     rejection.status, rejection.outcome, rejection.message)
            return web.json_response({"error": rejection.outcome, "message": rejection.message},
                                     status=rejection.status)
        deleted_hint = event.endswith(spec.deleted_suffix)
        try:
            pending = self._trigger(system, entity, external_id, deleted_hint)
            if inspect.isawaitable(pending):
                await pending
        except Exception:
            self.metrics.count_webhook(system, "trigger_failed")
            log.exception("webhook for %s/%s %s: the trigger failed", system, entity, external_id)
            message = "the trigger could not be queued"
            return web.json_response({"error": "trigger_failed", "message": message}, status=503)
        self.metrics.count_webhook(system, "accepted")
        log.debug("webhook %s for %s/%s %s accepted", event, system, entity, external_id)
        return web.json_response(
            {"status": "accepted", "system": system, "entity": entity, "id": external_id,
             "deleted_hint": deleted_hint},
            status=202,
        )

    def _authenticate(self, spec: WebhookSpec, request: web.Request, body: bytes) -> None:
        signature = request.headers.get(spec.signature_header)
        timestamp = request.headers.get(spec.timestamp_header)
        missing = [name for name, value in ((spec.signature_header, signature),
                                            (spec.timestamp_header, timestamp)) if not value]
        if missing or signature is None or timestamp is None:
            raise _Rejection(401, "bad_signature",
                             f"missing header {' and '.join(missing)}")
        expected = spec.signature(timestamp, body)
        # Hex digests are case-insensitive; bytes, because compare_digest refuses non-ASCII str.
        given = signature.strip().lower().encode("utf-8", "replace")
        if not hmac.compare_digest(given, expected.lower().encode()):
            raise _Rejection(401, "bad_signature",
                             f"the {spec.signature_header} header does not match the body")
        try:
            sent_at = float(timestamp)
        except ValueError:
            sent_at = math.nan
        if not math.isfinite(sent_at):
            raise _Rejection(401, "stale_timestamp",
                             f"the {spec.timestamp_header} header is not Unix seconds")
        skew = self._clock() - sent_at
        if abs(skew) > spec.tolerance_s:
            raise _Rejection(401, "stale_timestamp",
                             f"the {spec.timestamp_header} header is {abs(skew):.0f}s "
                             f"{'old' if skew > 0 else 'in the future'} "
                             f"(tolerance {spec.tolerance_s:g}s)")


def _no_trigger(system: str, entity: str, external_id: str, deleted_hint: bool) -> None:
    """Never called: without an ``on_trigger`` no system has a webhook spec."""


def _trigger_of(spec: WebhookSpec, body: bytes) -> tuple[str, str, str]:
    """``(entity, external_id, event)`` named by a webhook body, or a 400 rejection."""

    def malformed(message: str) -> _Rejection:
        return _Rejection(400, "malformed", message)

    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise malformed("the body is not JSON") from None
    if not isinstance(payload, dict):
        raise malformed("the body is not a JSON object")
    event = _at(payload, spec.event_at)
    if not isinstance(event, str) or not event:
        raise malformed(f"no event name (a string) at {spec.event_at!r}")
    entity = spec.entity_of(event)
    if entity is None:
        raise malformed(f"event {event!r} is not about a known entity "
                        f"(known: {', '.join(sorted(spec.entities))})")
    external_id = _at(payload, spec.id_at)
    # bool is an int to Python, but never an id.
    if isinstance(external_id, bool) or not isinstance(external_id, str | int):
        raise malformed(f"no record id (a string or an integer) at {spec.id_at!r}")
    if external_id == "":
        raise malformed(f"the record id at {spec.id_at!r} is empty")
    return entity, str(external_id), event


def _at(payload: Mapping[str, Any], path: str) -> object:
    """The value at a dotted path, or ``None`` when any step is missing."""
    value: object = payload
    for step in path.split("."):
        if not isinstance(value, Mapping) or step not in value:
            return None
        value = value[step]
    return value


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


__all__ = [
    "UNKNOWN_SYSTEM",
    "ListenError",
    "OnTrigger",
    "Readiness",
    "WebServer",
    "WebhookSpec",
]
