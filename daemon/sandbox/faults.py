"""The fault switch: what a simulated API does wrong, and how often.

Faults touch API requests only, never ``/_admin``. Their effects, in request order:

- ``down``: every request gets 503 at once.
- ``latency_ms``: every request waits this long first.
- ``burst_429``: the next N requests get 429 with ``Retry-After`` (the counter runs down).
- ``error_rate``: this share of requests gets a 500, 502 or 503 before anything is done.
- ``timeout_rate``: this share of requests is processed, then the response is held for
  ``timeout_ms`` (longer than any client waits): a write in such a request *did* happen.
- ``malformed_rate``: this share of requests is processed, then the body the client gets is
  damaged: an HTML page with status 200, truncated JSON, or garbled bytes (not UTF-8, not
  JSON) labelled as JSON (``malformed_kind``; ``mixed`` draws one of the three).
- ``ignore_fields``: API writes of these fields are answered as usual and not kept (a
  created record gets the field's default), like an API that silently drops what it does
  not know.
- ``ignore_unknown_fields``: API writes with fields the resource does not have keep the
  rest instead of being refused (422), like an API that takes any JSON: a body wrapped in
  an envelope it does not expect (``{"data": {...}}``) writes nothing.
- ``wrap_answers`` (CRM): one-record answers (read, create, update) come wrapped in this key
  (``{"data": {...}}``), while writes still take bare bodies (NocoDB does this).
- ``since_skips_null_updated`` (CRM): a since-filtered listing (``updated_after``) leaves
  out records whose ``updated_at`` reads null (a filter on a null field is never true; with
  ``null_updated_until_edit``, NocoDB's listing).

Behaviours of real APIs (issue 15), switched the same way, also API requests only:

- ``normalise_fields``: ``{field: trim | lower | round}``: an API write stores that form of
  the value (a string trimmed or lowercased; a number rounded to an integer).
- ``lie_on_writes``: updates and deletes are answered as if done (200 with the record as
  asked for, 204) and nothing is stored: an API that answers 200 to everything.
- ``forge_versions``: as ``lie_on_writes`` for updates, but the answer claims a new
  version and a later updated-at than the record holds (nothing is stored): an API whose
  answers make up what a write would have done.
- ``bare_writes``: an API that answers wrapped (``{"user": {...}}``) but takes bare bodies:
  a write's body is the record itself, and keys it does not know (the envelope) are
  silently dropped.
- ``null_updated_until_edit``: ``updated_at`` reads null until a record's first update.
- ``whole_seconds``: times read in whole seconds (``2026-12-07T10:17:35Z``).
- ``nested_fields``: choice fields read as ``{"id": n, "name": value}`` (n counts the
  choices from 1) and written as ``<field>_id: n``; a write of ``<field>`` itself is
  silently dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

from aiohttp import web

from daemon.sandbox.errors import BadRequest, RateLimited, ServerError

MalformedKind = Literal["html", "truncated", "garbled"]

_GARBLED = b'{"data": [\xff\xfe\x00\x9c\xc3\x28 {"id": \xe2\x82 ]]}'
"""A body no JSON parser takes: invalid UTF-8 in a JSON-looking frame."""
Normalisation = Literal["trim", "lower", "round"]
NORMALISATIONS: tuple[Normalisation, ...] = ("trim", "lower", "round")

_HTML_PAGE = (
    "<!DOCTYPE html><html><head><title>Service Temporarily Unavailable</title></head>"
    "<body><h1>We'll be right back</h1><p>Our team is performing maintenance.</p></body></html>"
)


@dataclass(frozen=True)
class FaultSettings:
    """The current faults (all off by default)."""

    error_rate: float = 0.0
    latency_ms: int = 0
    timeout_rate: float = 0.0
    timeout_ms: int = 30_000
    burst_429: int = 0
    malformed_rate: float = 0.0
    malformed_kind: Literal["html", "truncated", "garbled", "mixed"] = "mixed"
    down: bool = False
    ignore_fields: tuple[str, ...] = ()
    ignore_unknown_fields: bool = False
    wrap_answers: str | None = None
    since_skips_null_updated: bool = False
    normalise_fields: tuple[tuple[str, Normalisation], ...] = ()
    lie_on_writes: bool = False
    forge_versions: bool = False
    bare_writes: bool = False
    null_updated_until_edit: bool = False
    whole_seconds: bool = False
    nested_fields: tuple[str, ...] = ()

    @property
    def normalised(self) -> dict[str, Normalisation]:
        """``normalise_fields`` as a mapping."""
        return dict(self.normalise_fields)

    def merged(self, changes: Mapping[str, Any]) -> FaultSettings:
        """These settings with ``changes`` applied (a JSON object from the admin API).

        Raises:
            BadRequest: an unknown name or a value out of range.
        """
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise BadRequest(f"unknown fault(s): {', '.join(unknown)}; known: {sorted(known)}")
        changes = dict(changes)
        for listed in ("ignore_fields", "nested_fields"):
            if listed in changes:
                names = changes[listed]
                if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
                    raise BadRequest(f"{listed} must be a list of field names")
                changes[listed] = tuple(names)
        if "normalise_fields" in changes:
            forms = changes["normalise_fields"]
            if not (isinstance(forms, dict) and all(
                    isinstance(k, str) and v in NORMALISATIONS for k, v in forms.items())):
                raise BadRequest("normalise_fields must map field names to "
                                 + ", ".join(NORMALISATIONS))
            changes["normalise_fields"] = tuple(sorted(forms.items()))
        updated = replace(self, **changes)
        for name in ("error_rate", "timeout_rate", "malformed_rate"):
            value = getattr(updated, name)
            if _is_number(value) and 0 <= value <= 1:
                continue
            raise BadRequest(f"{name} must be a number from 0 to 1")
        for name in ("latency_ms", "timeout_ms", "burst_429"):
            value = getattr(updated, name)
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
                raise BadRequest(f"{name} must be an integer >= 0")
        for name in ("down", "ignore_unknown_fields", "since_skips_null_updated",
                     "lie_on_writes", "forge_versions", "bare_writes", "null_updated_until_edit",
                     "whole_seconds"):
            if not isinstance(getattr(updated, name), bool):
                raise BadRequest(f"{name} must be true or false")
        if updated.wrap_answers is not None and not (
                isinstance(updated.wrap_answers, str) and updated.wrap_answers):
            raise BadRequest("wrap_answers must be a key (such as data) or null")
        if updated.malformed_kind not in ("html", "truncated", "garbled", "mixed"):
            raise BadRequest("malformed_kind must be html, truncated, garbled or mixed")
        return updated

    def as_json(self) -> dict[str, Any]:
        """The settings as a JSON object."""
        return {**asdict(self), "ignore_fields": list(self.ignore_fields),
                "nested_fields": list(self.nested_fields),
                "normalise_fields": self.normalised}


@dataclass(frozen=True)
class FaultPlan:
    """What to do to one request's response after it has been processed."""

    hold_ms: int = 0
    malformed: MalformedKind | None = None
    delay_ms: int = 0  # the latency the request already waited


class FaultInjector:
    """Holds the fault settings and applies them to API requests.

    Args:
        seed: seeds the random draws, for reproducible fault sequences.

    ``injected`` counts the faults that struck, by kind (``down``, ``latency``, ``429``,
    ``error``, ``timeout``, ``html``, ``truncated``, ``garbled``), so a run can say how often.
    """

    def __init__(self, seed: int | None = None) -> None:
        self.settings = FaultSettings()
        self.injected: Counter[str] = Counter()
        self._random = random.Random(seed)
        self._release = asyncio.Event()

    def configure(self, changes: Mapping[str, Any]) -> FaultSettings:
        """Merge ``changes`` into the settings."""
        self.settings = self.settings.merged(changes)
        return self.settings

    def clear(self) -> None:
        """Turn every fault off."""
        self.settings = FaultSettings()

    def release_held(self) -> None:
        """Let every response held by a timeout fault go now (the server is stopping)."""
        self._release.set()

    async def before(self) -> FaultPlan:
        """Apply the faults that strike before a request is processed.

        Raises:
            ServerError: the system is down, or an injected error.
            RateLimited: an injected 429 burst.
        """
        settings = self.settings
        if settings.down:
            self.injected["down"] += 1
            raise ServerError("service unavailable (down)", status=503)
        if settings.latency_ms:
            self.injected["latency"] += 1
            await asyncio.sleep(settings.latency_ms / 1000)
        if settings.burst_429 > 0:
            self.injected["429"] += 1
            self.settings = replace(self.settings, burst_429=self.settings.burst_429 - 1)
            raise RateLimited(
                "too many requests (burst)",
                headers={
                    "Retry-After": "1",
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": "1",
                },
            )
        if self._strikes(settings.error_rate):
            self.injected["error"] += 1
            raise ServerError("injected server error", status=self._random.choice((500, 502, 503)))
        hold_ms = settings.timeout_ms if self._strikes(settings.timeout_rate) else 0
        if hold_ms:
            self.injected["timeout"] += 1
        malformed: MalformedKind | None = None
        if self._strikes(settings.malformed_rate):
            kind: MalformedKind = (self._random.choice(("html", "truncated", "garbled"))
                                   if settings.malformed_kind == "mixed"
                                   else settings.malformed_kind)
            self.injected[kind] += 1
            malformed = kind
        return FaultPlan(hold_ms, malformed, settings.latency_ms)

    async def after(self, plan: FaultPlan, response: web.StreamResponse) -> web.StreamResponse:
        """Apply the faults that strike after a request was processed."""
        if plan.hold_ms:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._release.wait(), plan.hold_ms / 1000)
        if plan.malformed == "html":
            return web.Response(status=200, text=_HTML_PAGE, content_type="text/html")
        if plan.malformed == "garbled":
            return web.Response(status=200, body=_GARBLED, content_type="application/json")
        if plan.malformed == "truncated":
            body = response.body if isinstance(response, web.Response) else None
            raw = body if isinstance(body, bytes) and body else b'{"data": [{"id": "'
            return web.Response(
                status=200 if response.status == 204 else response.status,
                body=raw[: max(1, len(raw) // 2)],
                content_type="application/json",
            )
        return response

    def _strikes(self, rate: float) -> bool:
        return rate > 0 and self._random.random() < rate


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
