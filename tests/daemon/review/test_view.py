"""The conflicts view: latest event per conflict, filters, lookups, a record's history."""

from __future__ import annotations

import click
import pytest

import conflict as core
from conflict import Change, Dot, HistoryEntry
from daemon.review.cli import parse_since
from daemon.review.errors import NotFound, NotResolvable
from daemon.review.resolve import NO_VALUE, plan_resolution
from daemon.review.view import ConflictFilter, ReviewView
from tests.daemon.review.events import T0, conflict, record


def test_latest_event_per_conflict_and_filters() -> None:
    view = ReviewView.build([
        conflict("c1", "name"),
        conflict("c2", "phone", at=T0 + 100, current=("1", "crm", 1),
                 incoming=("2", "helpdesk", 3), status="auto_resolved", policy="latest",
                 decision="incoming"),
        conflict("c1", "name", status="resolved", decision="chosen", value="Ann",
                 resolution={"resolution_id": "r", "by": "x", "at": T0, "value": "Ann",
                             "deleted": False, "note": None}),
        conflict("c3", "name", entity="ticket", at=T0 + 200),
    ])
    assert {c.conflict_id: c.status for c in view.select()} == {
        "c3/name/crm:2": "open", "c1/name/crm:2": "resolved", "c2/phone/helpdesk:3":
        "auto_resolved"}
    assert [c.canonical_id for c in view.select(ConflictFilter(status="open"))] == ["c3"]
    assert [c.canonical_id for c in view.select(ConflictFilter(entity="contact"))] == [
        "c1", "c2"]
    assert [c.canonical_id for c in view.select(ConflictFilter(field="phone"))] == ["c2"]
    assert len(view.select(ConflictFilter(system="helpdesk"))) == 3
    assert view.select(ConflictFilter(system="shop")) == []
    assert [c.canonical_id for c in view.select(ConflictFilter(since=T0 + 50))] == [
        "c3", "c2"]


def test_find_by_id_or_unique_prefix() -> None:
    view = ReviewView.build([conflict("abc"), conflict("abd")])
    assert view.find("abc/name/crm:2").canonical_id == "abc"
    assert view.find("abd").canonical_id == "abd"
    with pytest.raises(NotFound, match="ambiguous"):
        view.find("ab")
    with pytest.raises(NotFound, match="no conflict 'zz'"):
        view.find("zz")


def test_record_lookup_by_canonical_or_system_and_external_id() -> None:
    view = ReviewView.build([], [record("c1", links={"crm": "42"})])
    assert view.record_id("c1") == "c1"
    assert view.record_id("crm/42") == "c1"
    with pytest.raises(NotFound, match="crm/43"):
        view.record_id("crm/43")


def test_history_says_who_set_each_field_and_who_won_or_lost() -> None:
    won = conflict("c1", "phone", current=("1000", "helpdesk", 1),
                   incoming=("2000", "crm", 2), status="auto_resolved", policy="latest",
                   decision="incoming")
    lost = conflict("c1", "email", current=("a@x", "crm", 1), incoming=("b@x", "helpdesk", 2),
                    status="auto_resolved", policy="prefer", decision="current")
    held = conflict("c1", "name", current=("Ann", "crm", 1), incoming=("Anne", "helpdesk", 3),
                    at=T0 + 50)
    state = core.RecordState("c1", "contact", history=(
        HistoryEntry("name", "Ann", Dot("crm", 1), T0 - 10, Change.FIRST),
        HistoryEntry("email", "a@x", Dot("crm", 1), T0 - 10, Change.FIRST),
        HistoryEntry("phone", "1000", Dot("helpdesk", 1), T0 - 8, Change.EDIT),
        HistoryEntry("phone", "2000", Dot("crm", 2), T0, Change.CONFLICT_WON, won.conflict_id),
    ))
    view = ReviewView.build([won, lost, held], [record("c1")], {"c1": state})
    rows = [(r.field, r.system, r.value, r.outcome) for r in view.history("c1")]
    assert rows == [
        ("email", "crm", "a@x", "set"),
        ("name", "crm", "Ann", "set"),
        ("phone", "helpdesk", "1000", "lost"),
        ("email", "helpdesk", "b@x", "lost"),
        ("phone", "crm", "2000", "won"),
        ("name", "helpdesk", "Anne", "open"),
    ]


def test_plan_resolution_checks_before_anything_is_sent() -> None:
    open_ = conflict("c1", "name")
    common = {"by": "dana", "via": "cli", "at": T0, "resolution_id": "r-1"}
    took = plan_resolution(open_, take="crm", **common)  # type: ignore[arg-type]
    assert (took.take, took.value, took.by, took.via, took.canonical_id) == (
        "crm", None, "dana", "cli", "c1")
    given = plan_resolution(open_, value="Ann Lee", note="asked", **common)  # type: ignore[arg-type]
    assert (given.take, given.value, given.note) == (None, "Ann Lee", "asked")
    with pytest.raises(NotResolvable, match="'shop' is not one of its candidates"):
        plan_resolution(open_, take="shop", **common)  # type: ignore[arg-type]
    with pytest.raises(NotResolvable, match="say what wins"):
        plan_resolution(open_, value=NO_VALUE, **common)  # type: ignore[arg-type]
    with pytest.raises(NotResolvable, match="does not fit"):
        plan_resolution(open_, value=42, accepts=lambda e, f, v: isinstance(v, str),
                        **common)  # type: ignore[arg-type]
    done = conflict("c2", status="auto_resolved", policy="latest", decision="incoming")
    with pytest.raises(NotResolvable, match=r"not open \(it was auto-resolved"):
        plan_resolution(done, take="crm", **common)  # type: ignore[arg-type]


def test_since_takes_a_duration_or_an_iso_time() -> None:
    assert parse_since("2h", T0) == T0 - 7200
    assert parse_since("1.5d", T0) == T0 - 1.5 * 86400
    assert parse_since("2025-11-24T16:00:00Z", 0) == T0
    assert parse_since("2025-11-24T16:00:00", 0) == T0  # no offset: UTC
    with pytest.raises(click.BadParameter, match="expected a duration"):
        parse_since("yesterday", T0)
