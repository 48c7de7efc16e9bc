"""The review page: the conflict-review report, live, with a "take this value" action.

An aiohttp sub-application, mounted at ``/review`` on the worker's web server
(:func:`mount`)::

    GET  /review/              the report as HTML, read from the topics on every request,
                               with a form per candidate of every open conflict
    GET  /review/report.json   the report as JSON (see docs/REVIEW.md)
    POST /review/resolve       form fields or a JSON object: conflict_id, take or value
                               (JSON), by, note. A form is answered 303 to the page; JSON
                               with 202 {"resolution_id": ..., "status": "sent"}
                               400 / 404 / 409 / 503 {"error": ..., "message": ...}

Every request must carry the review token from the config, compared in constant time: an
``Authorization: Bearer`` header, a ``?token=`` query parameter (a GET with one is answered
with a cookie and a redirect to the same page without it, so the token leaves the address
bar and the history), or that cookie (HttpOnly, SameSite=Strict). Anything else is 401. A
POST whose ``Origin`` is another site is 403.

Every decision is a :class:`~streams.events.Resolution` with ``via="review-page"``, ``by``
(the name the person typed, or ``reviewer``), ``at`` and what was chosen; the merge applies
it and writes the value to every system. The page shows the conflict as resolved once the
merge has done so.
"""

from __future__ import annotations

import hmac
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import orjson
from aiohttp import web
from pydantic import SecretStr

from conflict.state import Json
from daemon.config import Config
from daemon.review.errors import NotFound, ReviewError
from daemon.review.report import render
from daemon.review.resolve import NO_VALUE, Accepts, field_types, plan_resolution
from daemon.review.source import load_view, publish
from daemon.review.view import ReviewView
from daemon.web import WebServer
from streams import (
    KafkaSettings,
    Resolution,
    StreamsError,
    Topics,
)

log = logging.getLogger(__name__)

PREFIX = "/review"
COOKIE = "syncline_review"
VIA = "review-page"
DEFAULT_BY = "reviewer"

Load = Callable[[], Awaitable[ReviewView]]
"""Reads the conflicts view now (from Kafka, or an in-memory twin in tests)."""
Send = Callable[[Resolution], Awaitable[object]]
"""Publishes a resolution (to Kafka, or an in-memory twin in tests)."""

_TOKEN: web.AppKey[SecretStr] = web.AppKey("token")
_LOAD: web.AppKey[Load] = web.AppKey("load")
_SEND: web.AppKey[Send] = web.AppKey("send")
_ACCEPTS: web.AppKey[Accepts | None] = web.AppKey("accepts")
_CLOCK: web.AppKey[Callable[[], float]] = web.AppKey("clock")
_PREFIX: web.AppKey[str] = web.AppKey("prefix")


def mount(server: WebServer, config: Config,
          load: Callable[[], Awaitable[ReviewView]] | None = None) -> bool:
    """Serve the review page at ``/review`` on ``server``, if the config gives a token.

    ``load`` gives the view (by default the topics are read on every request; the worker
    passes a :class:`~daemon.review.live.LiveView`'s). Returns whether it was mounted;
    without ``review: {token_env: ...}`` in the config the page is disabled, and a warning
    says so.
    """
    if config.review is None:
        log.warning("review page disabled: the config has no review: {token_env: ...}")
        return False
    settings = config.kafka.settings()
    topics = Topics(config.kafka.topic_prefix)
    server.add_subapp(PREFIX, review_app_for_kafka(settings, topics, config.review.token,
                                                   accepts=field_types(config.catalog()),
                                                   load=load))
    log.info("review page at %s/ (token from $%s)", PREFIX, config.review.token_env)
    return True


def review_app_for_kafka(settings: KafkaSettings, topics: Topics, token: SecretStr, *,
                         accepts: Accepts | None = None,
                         load: Callable[[], Awaitable[ReviewView]] | None = None
                         ) -> web.Application:
    """The review page over the Kafka topics of ``topics``."""
    async def read_all() -> ReviewView:
        return await load_view(settings, topics)

    async def send(resolution: Resolution) -> object:
        return await publish(settings, topics, resolution)

    return review_app(token, load or read_all, send, accepts=accepts, prefix=topics.prefix)


def review_app(token: SecretStr, load: Load, send: Send, *, accepts: Accepts | None = None,
               clock: Callable[[], float] = time.time, prefix: str = "") -> web.Application:
    """The review sub-application (mount it with ``add_subapp``).

    Args:
        token: what a reviewer must present.
        load: reads the conflicts view.
        send: publishes a resolution.
        accepts: checks a value against the field's type.
        clock: the time of a decision, in Unix seconds.
        prefix: the topic prefix, shown on the page.
    """
    if not token.get_secret_value():
        raise ValueError("the review token is empty")
    app = web.Application(middlewares=[_authenticate])
    app[_TOKEN] = token
    app[_LOAD] = load
    app[_SEND] = send
    app[_ACCEPTS] = accepts
    app[_CLOCK] = clock
    app[_PREFIX] = prefix
    app.router.add_get("/", _page, name="page")
    app.router.add_get("/report.json", _report_json, name="report_json")
    app.router.add_post("/resolve", _resolve, name="resolve")
    return app


# -- authentication -----------------------------------------------------------------------
def _presented(request: web.Request) -> tuple[str | None, str]:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip(), "header"
    if "token" in request.query:
        return request.query["token"], "query"
    return request.cookies.get(COOKIE), "cookie"


def _same_token(given: str, expected: SecretStr) -> bool:
    return hmac.compare_digest(given.encode(), expected.get_secret_value().encode())


@web.middleware
async def _authenticate(request: web.Request,
                        handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                        ) -> web.StreamResponse:
    given, how = _presented(request)
    if given is None or not _same_token(given, request.app[_TOKEN]):
        return web.Response(
            status=401, headers={"WWW-Authenticate": 'Bearer realm="syncline review"'},
            text="401: the review page needs the review token (Authorization: Bearer TOKEN, "
                 "or ?token=TOKEN once in a browser)\n")
    if request.method == "POST":
        origin = request.headers.get("Origin")
        if origin and origin != "null" and urlsplit(origin).netloc != request.host:
            return web.Response(status=403, text="403: a request from another site\n")
    if how == "query" and request.method == "GET":
        # Keep the token out of the address bar, the history and any Referer: a cookie
        # carries it from now on.
        query = [(k, v) for k, v in request.query.items() if k != "token"]
        target = request.rel_url.with_query(query)
        redirect = web.HTTPSeeOther(str(target))
        redirect.set_cookie(COOKIE, given, httponly=True, samesite="Strict",
                            path=str(request.app.router["page"].url_for()))
        raise redirect
    return await handler(request)


# -- handlers -------------------------------------------------------------------------------
async def _view(request: web.Request) -> ReviewView:
    try:
        return await request.app[_LOAD]()
    except StreamsError as exc:
        log.warning("review page: cannot read the conflicts: %s", exc)
        raise web.HTTPServiceUnavailable(text=f"503: cannot read the conflicts now: {exc}\n"
                                         ) from exc


async def _page(request: web.Request, flash: str | None = None, flash_error: bool = False,
                status: int = 200) -> web.Response:
    view = await _view(request)
    if flash is None and "sent" in request.query:
        flash = (f"Resolution {request.query['sent']} sent. The conflict shows as resolved "
                 "once the merge has applied it; refresh to see.")
    html = render(view, "html", request.app[_CLOCK](), prefix=request.app[_PREFIX],
                  interactive=True, flash=flash, flash_error=flash_error,
                  resolve_url=str(request.app.router["resolve"].url_for()),
                  page_url=str(request.app.router["page"].url_for()))
    return web.Response(status=status, text=html, content_type="text/html",
                        headers={"Cache-Control": "no-store",
                                 "Content-Security-Policy": _CSP,
                                 "X-Content-Type-Options": "nosniff",
                                 "Referrer-Policy": "no-referrer"})


# Inline style and script are the page's own; nothing may load from elsewhere.
_CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


async def _report_json(request: web.Request) -> web.Response:
    view = await _view(request)
    body = render(view, "json", request.app[_CLOCK](), prefix=request.app[_PREFIX])
    return web.Response(text=body, content_type="application/json",
                        headers={"Cache-Control": "no-store"})


class _BadRequest(Exception):
    """A choice the page cannot take as sent (its message says why)."""


async def _choice(request: web.Request) -> dict[str, Any]:
    if request.content_type == "application/json":
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError as exc:
            raise _BadRequest(f"the body is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise _BadRequest("the body must be a JSON object")
        return body
    form = await request.post()
    out: dict[str, Any] = {k: v for k, v in form.items() if isinstance(v, str)}
    if "value" in out:
        if out["value"] == "":
            del out["value"]
        else:
            try:
                out["value"] = orjson.loads(out["value"])
            except orjson.JSONDecodeError as exc:
                raise _BadRequest(f"value is not JSON: {exc}") from None
    return out


def _text(body: dict[str, Any], name: str, limit: int) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _BadRequest(f"{name} must be a string")
    value = value.strip()
    if len(value) > limit:
        raise _BadRequest(f"{name} is longer than {limit} characters")
    return value or None


async def _resolve(request: web.Request) -> web.Response:
    wants_json = request.content_type == "application/json"

    async def answer(status: int, error: str, message: str) -> web.Response:
        if wants_json:
            return web.json_response({"error": error, "message": message}, status=status)
        return await _page(request, flash=message, flash_error=True, status=status)

    try:
        body = await _choice(request)
        conflict_id = _text(body, "conflict_id", 1000)
        if conflict_id is None:
            raise _BadRequest("conflict_id is missing")
        take = _text(body, "take", 200)
        by = _text(body, "by", 80) or DEFAULT_BY
        note = _text(body, "note", 500)
        value: Json | object = body.get("value", NO_VALUE)
    except _BadRequest as exc:
        return await answer(400, "bad_request", str(exc))
    view = await _view(request)
    try:
        event = view.find(conflict_id)
        resolution = plan_resolution(event, take=take, value=value, by=by, via=VIA,
                                     at=request.app[_CLOCK](),
                                     resolution_id=f"r-{uuid.uuid4().hex}", note=note,
                                     accepts=request.app[_ACCEPTS])
    except NotFound as exc:
        return await answer(404, "not_found", str(exc))
    except ReviewError as exc:
        return await answer(409, "not_resolvable", str(exc))
    try:
        await request.app[_SEND](resolution)
    except StreamsError as exc:
        log.warning("review page: cannot publish a resolution: %s", exc)
        return await answer(503, "unavailable", f"the decision was not sent: {exc}")
    log.info("review page: %s resolved %s (%s) as %s", resolution.by, resolution.conflict_id,
             resolution.resolution_id, f"take {take}" if take else "a value")
    if wants_json:
        return web.json_response({"status": "sent", "resolution_id": resolution.resolution_id,
                                  "conflict_id": resolution.conflict_id}, status=202)
    target = request.app.router["page"].url_for().with_query(sent=resolution.resolution_id)
    raise web.HTTPSeeOther(str(target))
