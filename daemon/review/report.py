"""The conflict-review report: HTML for a person, Markdown for a ticket, JSON for machines.

All three are made from one document, :func:`report_data` (the JSON, documented in
``docs/REVIEW.md``): summary counts, the open conflicts (oldest first), the ones a policy
decided (grouped by policy), the ones a person resolved and the superseded ones.

Values come from external systems and may hold anything, markup included. The HTML is
rendered with autoescaping on; the Markdown environment escapes every expression on the way
out (``finalize``), and the only unescaped Markdown is what this module builds itself
(:class:`MdRaw`: a fenced diff whose fence is longer than any backtick run inside it).

Use :func:`write_report` to write a report file from events (``syncline demo`` can call it)
and :func:`render` for a view already built.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import jinja2
import orjson

import conflict
from conflict.state import Json
from daemon.review import templates
from daemon.review.view import ReviewView, age, candidates, outcome, raised_at
from streams import (
    ConflictEvent,
    RecordEvent,
)

Format = Literal["html", "md", "json"]
FORMATS: tuple[Format, ...] = ("html", "md", "json")

REPORT_SCHEMA = "syncline.review-report/1"
"""The ``schema`` of the JSON report; the version goes up when a field changes meaning."""

LONG_TEXT = 60
"""Two string values of which one is at least this long (or has a line break) get a diff."""


# -- the document ---------------------------------------------------------------------------
def conflict_data(event: ConflictEvent, now: float,
                  record: RecordEvent | None = None) -> dict[str, Any]:
    """One conflict in the report's JSON shape."""
    return {
        "conflict_id": event.conflict_id,
        "canonical_id": event.canonical_id,
        "entity": event.entity,
        "field": event.field,
        "status": event.status,
        "policy": event.policy,
        "decision": event.decision,
        "value": event.value,
        "deleted": event.deleted,
        "raised_at": raised_at(event),
        "age_seconds": round(age(event, now), 3),
        "candidates": [
            {"role": role, "system": c.system, "value": c.value, "deleted": c.deleted,
             "dot": c.dot, "source_ts": c.source_ts, "outcome": outcome(event, role)}
            for role, c in candidates(event)],
        "resolution": None if event.resolution is None else event.resolution.model_dump(),
        "superseded_by": event.superseded_by,
        "links": dict(sorted(record.links.items())) if record is not None else {},
    }


def report_data(view: ReviewView, now: float) -> dict[str, Any]:
    """The whole report as a JSON-ready document (schema :data:`REPORT_SCHEMA`)."""
    summary = view.summary(now)

    def data(event: ConflictEvent) -> dict[str, Any]:
        return conflict_data(event, now, view.records.get(event.canonical_id))

    oldest = summary.oldest_open
    return {
        "schema": REPORT_SCHEMA,
        "generated_at": now,
        "summary": {
            "total": summary.total,
            **summary.by_status,
            "open_by_entity": dict(summary.open_by_entity),
            "oldest_open": None if oldest is None else {
                "conflict_id": oldest.conflict_id,
                "age_seconds": round(summary.oldest_open_age or 0.0, 3)},
        },
        "unreadable": view.unreadable,
        "open": [data(e) for e in view.by_status("open")],
        "auto_resolved": {policy: [data(e) for e in events]
                          for policy, events in view.auto_resolved_by_policy().items()},
        "resolved": [data(e) for e in view.by_status("resolved")],
        "superseded": [data(e) for e in view.by_status("superseded")],
    }


# -- formatting helpers (also the templates' filters) ---------------------------------------
def when(ts: float | None) -> str:
    """A Unix time as ``2026-11-25 03:13:36 UTC``."""
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def age_text(seconds: float | None) -> str:
    """A duration for people: ``45s``, ``12m``, ``3h 5m``, ``2d 4h``."""
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def show(value: Json, deleted: bool = False) -> str:
    """A value as text: strings as they are, anything else as JSON."""
    if deleted:
        return "(deleted)"
    if value is None:
        return "(empty)"
    if isinstance(value, str):
        return value
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


_TOKEN = re.compile(r"\s+|\w+|[^\w\s]")


def diff(a: Json, b: Json) -> list[tuple[str, str]] | None:
    """A word diff of two long strings as ``(tag, text)`` with tags same, del, ins.

    ``None`` unless both are strings and one is long (:data:`LONG_TEXT`) or has a line break:
    short values side by side say it all.
    """
    if not (isinstance(a, str) and isinstance(b, str)) or a == b:
        return None
    if max(len(a), len(b)) < LONG_TEXT and "\n" not in a + b:
        return None
    left, right = _TOKEN.findall(a), _TOKEN.findall(b)
    out: list[tuple[str, str]] = []
    matcher = difflib.SequenceMatcher(None, left, right, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            out.append(("same", "".join(left[i1:i2])))
            continue
        if i2 > i1:
            out.append(("del", "".join(left[i1:i2])))
        if j2 > j1:
            out.append(("ins", "".join(right[j1:j2])))
    return out


# -- Markdown escaping ----------------------------------------------------------------------
class MdRaw(str):
    """Markdown built by this module, emitted as it is (never a value from a system)."""

    __slots__ = ()


# Every value lands mid-line (after a label, or in a table cell), where only these mean
# anything: emphasis, code, links and images, strikethrough, table cells.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")


def md_escape(value: object) -> str:
    """Any value as Markdown text that renders as exactly that text, inline or in a table.

    ``&``, ``<`` and ``>`` become entities (no HTML gets through), the punctuation that means
    something mid-line is backslash-escaped, and line breaks become ``<br>`` so a value stays
    in its table cell.
    """
    if isinstance(value, MdRaw):
        return str(value)
    if value is None:
        return ""
    text = str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MD_SPECIAL.sub(r"\\\1", text)
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "<br>")


def fenced_diff(segments: list[tuple[str, str]]) -> MdRaw:
    """A word diff as a fenced block: ``[-removed-]{+added+}``, safe whatever it holds."""
    body = "".join(f"[-{t}-]" if tag == "del" else f"{{+{t}+}}" if tag == "ins" else t
                   for tag, t in segments)
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return MdRaw(f"{fence}text\n{body}\n{fence}")


# -- rendering ------------------------------------------------------------------------------
def _environment(markdown: bool) -> jinja2.Environment:
    if markdown:
        env = jinja2.Environment(autoescape=False, finalize=md_escape,
                                 undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
        env.globals["fenced_diff"] = fenced_diff
    else:
        env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters.update(when=when, age=age_text, show=show)
    env.globals["diff"] = diff
    return env


_HTML = _environment(markdown=False).from_string(templates.HTML)
_MARKDOWN = _environment(markdown=True).from_string(templates.MARKDOWN)


def render(view: ReviewView, fmt: Format, now: float, *, prefix: str | None = None,
           **page: Any) -> str:
    """The report of ``view`` in ``fmt``.

    ``page`` is for the review page only: ``interactive=True``, ``resolve_url``,
    ``page_url``, ``flash`` and ``flash_error`` add the "take this value" forms.
    """
    data = report_data(view, now)
    if fmt == "json":
        return orjson.dumps(data, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2).decode()
    context = {"title": "syncline conflict review", "prefix": prefix, "interactive": False,
               "flash": None, "flash_error": False, **data, **page}
    if fmt == "html":
        return _HTML.render(context)
    if fmt == "md":
        return _MARKDOWN.render(context)
    raise ValueError(f"unknown report format {fmt!r} (one of {', '.join(FORMATS)})")


def write_report(conflicts: Iterable[ConflictEvent] | Mapping[str, ConflictEvent],
                 records: Iterable[RecordEvent] | Mapping[str, RecordEvent], path: Path,
                 fmt: Format = "html", *, now: float | None = None,
                 states: Mapping[str, conflict.RecordState] | None = None,
                 prefix: str | None = None) -> Path:
    """Write the report of these events to ``path`` (UTF-8); returns ``path``.

    ``conflicts`` and ``records`` are events in topic order (a later event of an id wins),
    or mappings by id such as ``daemon.demo.conflicts`` returns. ``now`` defaults to the
    wall clock.
    """
    if isinstance(conflicts, Mapping):
        conflicts = conflicts.values()
    if isinstance(records, Mapping):
        records = records.values()
    view = ReviewView.build(conflicts, records, states)
    at = datetime.now(UTC).timestamp() if now is None else now
    path.write_text(render(view, fmt, at, prefix=prefix), encoding="utf-8")
    return path
