"""The review commands: ``syncline conflicts list|show|resolve``, ``report`` and ``record``.

:func:`register` adds them to the ``syncline`` group that :mod:`daemon.cli` builds. They handle
a user's mistake as every command does (:mod:`daemon.clibase`: one line on stderr, exit code 2).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson

from conflict.state import Json
from daemon.clibase import CliContext, fail, load_or_fail, run_kafka
from daemon.config import Config
from daemon.review.errors import ReviewError
from daemon.review.report import FORMATS, Format, age_text, render, show, when
from daemon.review.resolve import NO_VALUE, field_types, plan_resolution
from daemon.review.source import load_view, publish
from daemon.review.view import STATUSES, ConflictFilter, ReviewView, Status, age, raised_at
from streams import (
    ConflictEvent,
    Topics,
)

T = TypeVar("T")


def _kafka(config: Config, work: Coroutine[Any, Any, T]) -> T:
    return run_kafka(config.kafka.settings(), work)


def _view(config: Config) -> ReviewView:
    return _kafka(config, load_view(config.kafka.settings(), Topics(config.kafka.topic_prefix)))


def _now() -> float:
    return time.time()


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str, now: float) -> float:
    """``--since``: a duration back from now (``90m``, ``2h``, ``7d``) or an ISO 8601 time
    (``2026-11-24``, ``2026-11-24T09:30``, with an offset or UTC) as Unix seconds.

    Raises:
        click.BadParameter: neither.
    """
    found = _DURATION.match(text.strip())
    if found:
        return now - float(found.group(1)) * _UNIT[found.group(2)]
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"expected a duration such as 2h or 7d, or an ISO time such "
                                 f"as 2026-11-24T09:30Z; got {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


_CONFIG = click.option("--config", "config_path", required=True,
                       type=click.Path(path_type=Path), help="The YAML configuration file.")


def register(group: click.Group) -> None:
    """Add the review commands to the ``syncline`` command group."""
    group.add_command(conflicts)
    group.add_command(report)
    group.add_command(record)


@click.group()
def conflicts() -> None:
    """Conflicts: list them, show one, resolve an open one."""


@conflicts.command("list")
@_CONFIG
@click.option("--open", "open_only", is_flag=True, help="Only conflicts waiting for a person.")
@click.option("--status", type=click.Choice(STATUSES), help="Only conflicts with this status.")
@click.option("--entity", help="Only conflicts of this entity (e.g. contact).")
@click.option("--system", help="Only conflicts where this system wrote one of the sides.")
@click.option("--field", "field_name", help="Only conflicts on this field.")
@click.option("--since", help="Only conflicts raised since: a duration back (2h, 7d) or an "
              "ISO time.")
@click.pass_obj
def conflicts_list(obj: CliContext | None, config_path: Path, open_only: bool,
                   status: Status | None, entity: str | None, system: str | None,
                   field_name: str | None, since: str | None) -> None:
    """List conflicts: open ones first, each group oldest first."""
    now = _now()
    try:
        since_ts = None if since is None else parse_since(since, now)
    except click.BadParameter as exc:
        fail(f"syncline conflicts list: --since: {exc.message}")
    if open_only and status not in (None, "open"):
        fail(f"syncline conflicts list: --open and --status {status} contradict each other")
    config = load_or_fail(obj, config_path)
    view = _view(config)
    found = view.select(ConflictFilter(status="open" if open_only else status, entity=entity,
                                       system=system, field=field_name, since=since_ts))
    for event in found:
        click.echo(_line(event, now))
    plural = "s" if len(found) != 1 else ""
    open_count = sum(1 for e in found if e.status == "open")
    click.echo(f"{len(found)} conflict{plural} ({open_count} open)")


def _line(event: ConflictEvent, now: float) -> str:
    sides = " vs ".join(f"{c.system}={_json(c.value, c.deleted)}"
                        for c in (event.current, event.incoming))
    kept = _json(event.value, event.deleted)
    return (f"{event.conflict_id}  {event.status:<13}  {event.entity}.{event.field}  "
            f"{age_text(age(event, now))} ago  {sides}  -> {kept} ({event.policy})")


def _json(value: Json, deleted: bool = False) -> str:
    if deleted:
        return "(deleted)"
    text = orjson.dumps(value).decode()
    return text if len(text) <= 60 else text[:57] + "..."


@conflicts.command("show")
@_CONFIG
@click.argument("conflict_id")
@click.option("--history", "history_rows", default=10, show_default=True,
              type=click.IntRange(min=0), help="How many of the record's latest changes.")
@click.pass_obj
def conflicts_show(obj: CliContext | None, config_path: Path, conflict_id: str,
                   history_rows: int) -> None:
    """Show one conflict: both sides (system, value, when) and the record's recent history.

    CONFLICT_ID is the id from `syncline conflicts list`, or a prefix of it that only one
    conflict has.
    """
    config = load_or_fail(obj, config_path)
    view = _view(config)
    now = _now()
    try:
        event = view.find(conflict_id)
    except ReviewError as exc:
        fail(f"syncline conflicts show: {exc}")
    click.echo(f"conflict  {event.conflict_id}")
    click.echo(f"record    {event.canonical_id} ({event.entity})" + _links(view, event))
    click.echo(f"field     {event.field}")
    click.echo(f"status    {event.status} (policy {event.policy}, decision {event.decision})")
    click.echo(f"raised    {when(raised_at(event))} ({age_text(age(event, now))} ago)")
    for role, candidate in (("current", event.current), ("incoming", event.incoming)):
        held = "(deleted)" if candidate.deleted else orjson.dumps(candidate.value).decode()
        click.echo(f"  {candidate.system:<10} {role:<8} {held}  written "
                   f"{when(candidate.source_ts)} ({candidate.dot})")
    click.echo(f"value     {_json(event.value, event.deleted)} (what the record holds now)")
    if event.resolution is not None:
        r = event.resolution
        click.echo(f"resolved  by {r.by} at {when(r.at)}: {_json(r.value, r.deleted)}"
                   + (f" ({r.note})" if r.note else ""))
    if event.superseded_by:
        click.echo(f"superseded by the write {event.superseded_by}")
    if event.status == "open":
        click.echo(f"resolve   syncline conflicts resolve {event.conflict_id} "
                   f"--take {event.incoming.system} --config {config_path}")
    rows = view.history(event.canonical_id)[-history_rows:] if history_rows else []
    if rows:
        click.echo(f"recent history of {event.canonical_id} (oldest first):")
        for row in rows:
            click.echo("  " + _history_line(row))


def _links(view: ReviewView, event: ConflictEvent) -> str:
    record = view.records.get(event.canonical_id)
    if record is None or not record.links:
        return ""
    return "; " + ", ".join(f"{s} {ext}" for s, ext in sorted(record.links.items()))


def _history_line(row: Any) -> str:
    how = {"set": "set", "won": "won a conflict", "lost": "lost a conflict",
           "merged": "merged", "chosen": f"chosen by {row.by or 'a person'}",
           "open": "in an open conflict", "deleted": "deleted",
           "restored": "restored"}.get(row.outcome, row.outcome)
    where = f"  [{row.conflict_id}]" if row.conflict_id else ""
    return (f"{when(row.at)}  {row.field:<10} {_json(row.value)}  by {row.system} "
            f"({row.dot})  {how}{where}")


@conflicts.command("resolve")
@_CONFIG
@click.argument("conflict_id")
@click.option("--take", help="The system whose value wins.")
@click.option("--value", "value_json", help="A value of your own, as JSON (e.g. '\"Ann Lee\"').")
@click.option("--note", help="Why, in your words; kept with the decision.")
@click.option("--by", help="Who decides (default: $USER).")
@click.pass_obj
def conflicts_resolve(obj: CliContext | None, config_path: Path, conflict_id: str,
                      take: str | None, value_json: str | None, note: str | None,
                      by: str | None) -> None:
    """Resolve an open conflict: take one system's value, or give a value.

    Publishes a Resolution; the merge applies it and writes the chosen value to every
    system.
    """
    if (take is None) == (value_json is None):
        fail("syncline conflicts resolve: give exactly one of --take SYSTEM or --value JSON")
    value: Json | object = NO_VALUE
    if value_json is not None:
        try:
            value = orjson.loads(value_json)
        except orjson.JSONDecodeError as exc:
            fail(f"syncline conflicts resolve: --value is not JSON ({exc}); a text needs "
                  "quotes, e.g. --value '\"Ann Lee\"'")
    env = obj.env if obj is not None else {}
    who = by or env.get("USER") or "cli"
    config = load_or_fail(obj, config_path)
    settings = config.kafka.settings()
    topics = Topics(config.kafka.topic_prefix)
    view = _view(config)
    try:
        event = view.find(conflict_id)
        resolution = plan_resolution(event, take=take, value=value, by=who, via="cli",
                                     at=_now(), resolution_id=f"r-{uuid.uuid4().hex}",
                                     note=note, accepts=field_types(config.catalog()))
    except ReviewError as exc:
        fail(f"syncline conflicts resolve: {exc}")
    delivery = _kafka(config, publish(settings, topics, resolution))
    chosen = (f"{take}'s value" if take is not None
              else orjson.dumps(resolution.value).decode())
    click.echo(f"resolution {resolution.resolution_id} sent: {event.entity}.{event.field} of "
               f"{event.canonical_id} takes {chosen} (by {who}; {topics.resolutions}"
               f"[{delivery.partition}]@{delivery.offset})")


@click.command()
@_CONFIG
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="html", show_default=True,
              help="html: one self-contained page; md: for a ticket; json: for machines.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file instead of standard output.")
@click.pass_obj
def report(obj: CliContext | None, config_path: Path, fmt: Format, out_path: Path | None) -> None:
    """The conflict-review report: open conflicts first, then what policies and people decided.
    """
    config = load_or_fail(obj, config_path)
    view = _view(config)
    text = render(view, fmt, _now(), prefix=config.kafka.topic_prefix)
    if out_path is None:
        click.echo(text, nl=not text.endswith("\n"))
        return
    try:
        out_path.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(f"syncline report: cannot write {out_path}: {exc.strerror or exc}")
    summary = view.summary(_now())
    click.echo(f"wrote {out_path} ({summary.total} conflicts, "
               f"{summary.by_status['open']} open)")


@click.command()
@_CONFIG
@click.argument("record_ref", metavar="ID")
@click.pass_obj
def record(obj: CliContext | None, config_path: Path, record_ref: str) -> None:
    """The history of one record: which system set each field, when, and how it fared.

    ID is a canonical id, or SYSTEM/EXTERNAL_ID (e.g. crm/42). The history is the record's
    recent changes (the merge keeps a bounded number) and its conflicts' losing sides.
    """
    config = load_or_fail(obj, config_path)
    view = _view(config)
    try:
        cid = view.record_id(record_ref)
    except ReviewError as exc:
        fail(f"syncline record: {exc}")
    event = view.records.get(cid)
    if event is not None:
        state = "deleted" if event.deleted else "live"
        click.echo(f"record {cid} ({event.entity}, {state}, version {event.version}, "
                   f"{event.open_conflicts} open conflicts)")
        for system, ext in sorted(event.links.items()):
            click.echo(f"  in {system}: {ext}")
        for name, value in sorted(event.fields.items()):
            why = event.provenance.get(name)
            source = f"  (from {why.system}, {when(why.source_ts)})" if why else ""
            click.echo(f"  {name:<10} {show(value)}{source}")
        for system, fields in sorted(event.not_kept.items()):
            for name, kept in sorted(fields.items()):
                click.echo(f"  system {system} does not keep field {name} "
                           f"(wrote {show(kept.wrote)}, it holds {show(kept.holds)})")
    else:
        click.echo(f"record {cid}")
    rows = view.history(cid)
    click.echo(f"history ({len(rows)} changes, oldest first):")
    for row in rows:
        click.echo("  " + _history_line(row))
