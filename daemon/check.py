"""``syncline check`` against the systems: can this config sync, before it runs?

For each system and entity the check makes the requests the lane would make and judges what
comes back:

- the first page of the listing, as the first poll reads it (no since filter), counting the
  records that cannot be observed as *unreadable*, not as records;
- the listing with the since filter, as every later poll sends it: from the oldest time on
  that page, every record of the page must come back (a record whose updated-at is null is
  invisible to such a filter); and from a moment after now, none may (an API that ignores
  the filter answers everything);
- one record by its id, as a lane reads before it writes; the match-key lookup (it must
  find that record by its own values) and the delete feed, where configured;
- every mapped path present in the records read, and readable by its field's mapping;
- with ``write_probe``, a write: a scratch record created from ``check.scratch`` (read back,
  compared, deleted), or else one record's own values written back; every field that does
  not round-trip is named.

Every request is recorded (method and URL, query string included, secrets redacted) so the
user sees exactly what the lane will send. Nothing here prints; :mod:`daemon.cli` does.

Webhooks are checked without a request (:func:`check_webhooks`): the secret resolved (from
its variable or its ``_FILE``) and not empty, the scheme and where the secret travels, every
configured event name about an entity, ``id_at`` and ``event_at`` compiled. A sample body
(:func:`sample_webhook`) is read by the receiver's own parsing (:func:`daemon.web.delivery_of`,
with the spec the worker builds), which says the event, entity and ids it yields, or why it
is ignored or refused.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from conflict.state import Json
from daemon.config import Config
from daemon.connector.config import EntityEndpointConfig
from daemon.connector.rest import (
    BadRecord,
    RemoteRecord,
    RestEntity,
    build_client,
    format_time,
    render,
)
from daemon.errors import DaemonError
from daemon.http import Unavailable
from daemon.lane.verify import not_taken
from daemon.mapping import EntityMapping, MappingError
from daemon.web import Ignored, WebhookRefused, WebhookSpec, delivery_of, expression
from daemon.worker import webhook_specs

LONG_AGO = 946_684_800.0
"""2000-01-01: the since of the filter probe when no record on the first page has a time."""

SINCE_PAGES = 10
"""At most this many pages of the filtered listing are read to find the first page's records."""

SHOWN = 5
"""At most this many examples of one kind of problem are listed."""


@dataclass
class EntityReport:
    """What the check of one entity of one system found."""

    system: str
    entity: str
    requests: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    unreachable: bool = False

    @property
    def ok(self) -> bool:
        """Nothing was found that would stop this entity from syncing."""
        return not self.problems and not self.unreachable


async def check_systems(config: Config, *, write_probe: bool = False,
                        now: Callable[[], float] = time.time) -> list[EntityReport]:
    """Check every entity of every system that describes entities."""
    reports: list[EntityReport] = []
    for name, system in config.systems.items():
        sink: list[str] = []
        async with build_client(name, system, on_request=_recorder(sink)) as client:
            for entity, endpoint in system.entities.items():
                report = EntityReport(name, entity)
                sink.clear()
                mapping = config.entities[entity].mapping(entity, name)
                rest = RestEntity(client, name, entity, endpoint)
                try:
                    await _check_entity(rest, mapping, report, write_probe, now())
                except Unavailable as exc:  # no answer, or 5xx after the retries
                    report.unreachable = True
                    report.problems.append(str(exc))
                except DaemonError as exc:  # an answer, but not one the config describes
                    report.problems.append(str(exc))
                report.requests = list(sink)
                reports.append(report)
    return reports


def _recorder(sink: list[str]) -> Callable[[str, str], None]:
    return lambda method, url: sink.append(f"{method} {url}")


async def _check_entity(rest: RestEntity, mapping: EntityMapping, report: EntityReport,
                        write_probe: bool, now: float) -> None:
    endpoint = rest.config
    first = await _first_page(rest, None)
    good = [r for r in first if isinstance(r, RemoteRecord)]
    bad = [r for r in first if isinstance(r, BadRecord)]
    report.notes.append(f"first page: {len(good)} record{_s(len(good))}, {len(bad)} unreadable")
    for record in bad[:SHOWN]:
        report.problems.append(f"unreadable record{'' if record.id is None else ' ' + record.id}"
                               f": {record.reason}")
    if len(bad) > SHOWN:
        report.problems.append(f"... {len(bad)} unreadable records on the first page in all")
    await _check_since(rest, good, report, now)
    read: list[RemoteRecord] = list(good)
    one: RemoteRecord | None = None
    if good:
        one = await rest.fetch(good[0].id)
        if one is None:
            report.problems.append(f"record {good[0].id} of the listing cannot be read by its "
                                   f"id: {endpoint.item(good[0].id)} answers not found")
        elif one.id != good[0].id:
            report.problems.append(f"reading record {good[0].id} by its id answered record "
                                   f"{one.id} (check item_path and id)")
        else:
            report.notes.append(f"record {one.id} read by its id")
            read.append(one)
    else:
        report.notes.append("no record to read by id or to check the mapped paths against "
                            f"(the first page has {'no readable record' if bad else 'none'})")
    _check_paths(mapping, endpoint, read, report)
    if one is not None and endpoint.lookup is not None:
        found = await rest.lookup(one.data)
        if not any(r.id == one.id for r in found):
            report.problems.append(
                f"lookup: searching {endpoint.lookup.path} with record {one.id}'s own values "
                f"did not find it ({len(found)} found): a create could duplicate it; check "
                "lookup.params and lookup.records_at")
        else:
            report.notes.append(f"lookup finds record {one.id} by its own values")
    if endpoint.deletes.feed is not None:
        feed = rest.deletions(now - 86_400)
        try:
            page = await anext(feed, None)
        finally:
            await feed.aclose()
        count = len(page or [])
        report.notes.append(f"delete feed: {count} delete{_s(count)} in the last day")
    if write_probe:
        try:
            await _probe_writes(rest, mapping, one, report)
        except MappingError as exc:
            report.problems.append(f"write probe: {exc}")
        except Unavailable:
            raise
        except DaemonError as exc:
            report.problems.append(f"write probe: the write failed: {exc}")


async def _first_page(rest: RestEntity, since: float | None) -> list[RemoteRecord | BadRecord]:
    pages = rest.changes(since)
    try:
        page = await anext(pages, None)
    finally:
        await pages.aclose()
    return [] if page is None else page.records


async def _check_since(rest: RestEntity, good: list[RemoteRecord], report: EntityReport,
                       now: float) -> None:
    """The since filter as the poller sends it: it returns every record, and not all."""
    since_config = rest.config.since
    if since_config is None:
        report.notes.append("no since filter: every poll reads the whole listing")
        return
    times = [r.updated for r in good if r.updated is not None]
    since = min(times) if times else LONG_AGO
    wanted = {r.id: r for r in good}
    seen: set[str] = set()
    pages = rest.changes(since)
    try:
        count = 0
        async for page in pages:
            seen.update(r.id for r in page.records if r.id is not None)
            count += 1
            if wanted.keys() <= seen or count >= SINCE_PAGES:
                break
    finally:
        await pages.aclose()
    missing = [wanted[i] for i in wanted if i not in seen]
    shown_since = format_time(since, since_config.format)
    fields = ", ".join(rest.config.updated) or "(none)"
    for record in missing[:SHOWN]:
        if record.updated is None:
            report.problems.append(
                f"record {record.id} has no updated-at ({fields} null or absent) and the since "
                f"filter ({since_config.param} from {shown_since}) does not return it: polls "
                "would never see it change; list a field it always has after the updated-at "
                "(updated: [UpdatedAt, CreatedAt]) and make the filter cover both")
        else:
            report.problems.append(
                f"the since filter ({since_config.param} from {shown_since}) did not return "
                f"record {record.id}, updated {format_time(record.updated, 'iso_ms')} "
                f"(within {SINCE_PAGES} pages): polls would miss changes; check since.format, "
                "since.template and overlap_seconds")
    if len(missing) > SHOWN:
        report.problems.append(f"... {len(missing)} records missed by the since filter in all")
    if not missing:
        report.notes.append(f"since filter ({since_config.param} from {shown_since}) returns "
                            + ("every record of the first page" if wanted else
                               "an answer (the first page has no record to look for)"))
    future = now + 86_400 + since_config.overlap_seconds
    later = await _first_page(rest, future)
    if later:
        report.problems.append(
            f"the since filter is ignored: asked for changes since "
            f"{format_time(future, since_config.format)} (tomorrow), the API answered "
            f"{len(later)} record{_s(len(later))}; check since.param and since.format")


def _check_paths(mapping: EntityMapping, endpoint: EntityEndpointConfig,
                 read: list[RemoteRecord], report: EntityReport) -> None:
    """Every readable field's path is in the records read, and its values can be read."""
    if not read:
        return
    for name, mapper in mapping.fields.items():
        if not mapper.readable:
            continue
        path = ".".join(mapper.path)
        holding = [r for r in read if _has(r.data, mapper.path)]
        if not holding:
            keys = sorted({k for r in read for k in r.data})
            report.problems.append(
                f"field {name}: path {path} is in none of the {len(read)} records read "
                f"(their keys: {', '.join(keys[:20])}{' ...' if len(keys) > 20 else ''})")
            continue
        unfit = [(r.id, why) for r in read
                 if (why := mapping.to_canonical(r.data).problems.get(name)) is not None]
        for external_id, why in unfit[:SHOWN]:
            report.problems.append(f"field {name}: path {path} of record {external_id} "
                                   f"cannot be read: {why}")
    if endpoint.updated and not any(_has(r.data, u.split(".")) for r in read
                                    for u in endpoint.updated):
        report.problems.append(f"updated: none of {', '.join(endpoint.updated)} is in the "
                               f"{len(read)} records read")


def _has(data: Any, path: tuple[str, ...] | list[str]) -> bool:
    value = data
    for part in path:
        if not isinstance(value, dict) or part not in value:
            return False
        value = value[part]
    return True


async def _probe_writes(rest: RestEntity, mapping: EntityMapping, one: RemoteRecord | None,
                        report: EntityReport) -> None:
    scratch = rest.config.check.scratch
    if scratch is not None:
        await _probe_scratch(rest, mapping, scratch, report)
        return
    if one is None:
        report.problems.append("write probe: no record to write back (the listing is empty); "
                               "set check.scratch to let the probe create one")
        return
    values = {name: value for name, value in mapping.to_canonical(one.data).values.items()
              if name in mapping.writable}
    if not values:
        report.notes.append("write probe: no field is written to this system")
        return
    data = mapping.to_system(values)
    await rest.update(one.id, data, one.precondition)
    after = await rest.fetch(one.id)
    if after is None:
        report.problems.append(f"write probe: record {one.id} cannot be read after writing "
                               "its own values back")
        return
    _compare("wrote record " + one.id + "'s own values back", mapping, values, after, report)
    report.notes.append("write probe: a field the API ignores keeps its value when written "
                        "back unchanged, so only check.scratch can show it")


async def _probe_scratch(rest: RestEntity, mapping: EntityMapping, scratch: dict[str, Any],
                         report: EntityReport) -> None:
    nonce = secrets.token_hex(4)
    values: dict[str, Json] = {
        name: render(value, {"nonce": nonce}) if isinstance(value, str) else value
        for name, value in scratch.items()}
    try:
        data = mapping.to_system(values)
    except MappingError as exc:
        report.problems.append(f"write probe: check.scratch: {exc}")
        return
    created = await rest.create(data)
    if created is None:
        report.problems.append("write probe: the answer to the create of a scratch record "
                               "does not say which record was made (a lookup: would find it); "
                               "delete it by hand")
        return
    try:
        after = await rest.fetch(created.id)
        if after is None:
            report.problems.append(f"write probe: scratch record {created.id} cannot be read "
                                   "after its create")
        else:
            _compare(f"created scratch record {created.id}", mapping, values, after, report)
    finally:
        await rest.delete(created.id, None)
    if await rest.fetch(created.id) is not None:
        report.problems.append(f"write probe: scratch record {created.id} is still there "
                               "after its delete; delete it by hand")
    else:
        report.notes.append(f"write probe: scratch record {created.id} deleted")


def _compare(what: str, mapping: EntityMapping, wrote: dict[str, Json], after: RemoteRecord,
             report: EntityReport) -> None:
    holds = mapping.to_canonical(after.data).values
    missed = not_taken(wrote, holds, mapping.normalise)
    for name in wrote:
        if name not in holds and mapping.fields[name].readable:
            missed[name] = (wrote[name], None)
    for name, (value, now) in sorted(missed.items()):
        mapper = mapping.fields[name]
        where = ".".join(mapper.written_at)
        read_at = ".".join(mapper.path)
        shown_now = "nothing there" if name not in holds else repr(now)
        report.problems.append(
            f"write probe: field {name} does not round-trip: wrote {value!r} at {where}, "
            f"read back {shown_now} at {read_at}")
    if not missed:
        report.notes.append(f"write probe: {what}; all {len(wrote)} field{_s(len(wrote))} "
                            "round-trip")


def _s(count: int) -> str:
    return "" if count == 1 else "s"


def check_webhooks(config: Config) -> list[EntityReport]:
    """One report per system that sends webhooks (``entity`` is ``"webhooks"``)."""
    reports = []
    for name, system in config.systems.items():
        hooks = system.webhooks
        if hooks is None:
            continue
        report = EntityReport(name, "webhooks")
        reports.append(report)
        value = hooks.secret_value.get_secret_value()
        if not value.strip():
            report.problems.append(f"the secret ({hooks.secret_env} or {hooks.secret_env}_FILE) "
                                   "is empty: every delivery would be refused 401")
        else:
            report.notes.append(f"secret from {hooks.secret_env} (or {hooks.secret_env}_FILE) "
                                "resolved")
        where = {"hmac": f"signed: {hooks.signature_header} over {hooks.timestamp_header} + "
                         f"body, within {hooks.tolerance_seconds:g} s",
                 "header": f"the secret itself in the {hooks.secret_header} header",
                 "query": f"the secret itself in the query parameter {hooks.secret_param} "
                          "(proxies log URLs: prefer header when the sender allows it)"}
        report.notes.append(f"scheme {hooks.scheme}: {where[hooks.scheme]}")
        for key, path in (("id_at", hooks.id_at), ("event_at", hooks.event_at)):
            try:
                expression(path)
            except ValueError as exc:
                report.problems.append(f"{key}: {exc}")
        try:
            spec = webhook_specs(config)[name]
        except ValueError as exc:  # a system with webhooks and no entity
            report.problems.append(str(exc))
            continue
        report.notes.append(f"ids at {hooks.id_at}, event name at {hooks.event_at}")
        _check_events(spec, system.entities, report)
    return reports


def _check_events(spec: WebhookSpec, entities: dict[str, EntityEndpointConfig],
                  report: EntityReport) -> None:
    """Each configured event name is about an entity, and each entity's events are taken."""
    routes = ", ".join(f"/webhooks/{report.system}/{e}" for e in sorted(entities))
    if spec.events is None:
        prefixes = sorted(spec.entities)
        report.notes.append("every event of an entity is taken (" + (
            "by the prefixes " + ", ".join(prefixes) + ", or " if prefixes else "")
            + f"by the URL: {routes})")
        return
    for event, kind in sorted(spec.events.items()):
        entity = spec.entity_of(event)
        if entity is None:
            report.notes.append(f"event {event!r} ({kind}) names no entity by its prefix: "
                                f"it syncs only when sent to an entity's URL ({routes})")
        else:
            report.notes.append(f"event {event!r} ({kind}) is about {entity}")
    for prefix, entity in sorted(spec.entities.items()):
        if not any(event == prefix or event.startswith(prefix + ".") for event in spec.events):
            report.problems.append(
                f"entity {entity} has webhook_event {prefix!r}, but no event in "
                f"webhooks.events starts with it: every {prefix}.* delivery would be ignored; "
                "add its events, or drop webhook_event and send to the entity's URL")


def sample_webhook(config: Config, target: str, body: bytes) -> EntityReport:
    """What the receiver makes of ``body`` sent to ``/webhooks/<target>`` (``system`` or
    ``system/entity``): its event, entity and ids, or why it is ignored or refused. The
    sender's signature or secret is not checked (a sample has no headers)."""
    system, _, routed = target.partition("/")
    report = EntityReport(system, f"webhook sample to /webhooks/{target}")
    spec = webhook_specs(config).get(system) if system in config.systems else None
    if spec is None:
        report.problems.append(f"system {system!r} has no webhooks: in the config (known: "
                               f"{', '.join(sorted(webhook_specs(config))) or 'none'})")
        return report
    if routed and routed not in spec.routed:
        report.problems.append(f"404: system {system!r} has no entity {routed!r}")
        return report
    try:
        delivery = delivery_of(spec, body, routed or None)
    except WebhookRefused as refused:
        report.problems.append(f"refused {refused.status} {refused.outcome}: {refused.message}")
        return report
    if isinstance(delivery, Ignored):
        report.problems.append(f"ignored (answered 200, nothing read): {delivery.reason}")
        return report
    entity, ids, event, kind = delivery
    report.notes.append(f"event {event!r} ({kind}): entity {entity}, "
                        f"{len(ids)} record{_s(len(ids))} to read: {', '.join(ids)}")
    report.notes.append("the sender's signature or secret is not checked for a sample")
    return report
