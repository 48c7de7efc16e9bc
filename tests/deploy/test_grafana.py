"""deploy/grafana/syncline.json queries only metrics and labels the daemon declares.

Every PromQL expression of the dashboard (panel targets and template variables) is parsed
with Prometheus' grammar (promql-parser); each metric it selects must be one that
:class:`daemon.metrics.Metrics` registers, under the name Prometheus sees (a counter's
``_total``, a histogram's ``_bucket``/``_sum``/``_count``), and each label it matches or
groups by must be a label of that metric or one Prometheus adds to every target.

The panels for metrics issue 16 asks for and the daemon does not export yet are listed in
:data:`EXPECTED_MISSING`: they stay on the dashboard, described as not exported yet, and
the test fails as soon as one of them is declared, so the list cannot go stale.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser as promql
import pytest
from prometheus_client.metrics import MetricWrapperBase

from daemon.metrics import Metrics

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "syncline.json"

EXPECTED_MISSING: dict[str, str] = {}
"""Metrics the dashboard queries that the daemon does not export yet, and what they are."""

TARGET_LABELS = {"job", "instance", "pod", "namespace", "service", "container", "endpoint"}
"""Labels Prometheus (and the prometheus-operator) put on every scraped series."""

# Grafana's variables, replaced by something PromQL accepts before parsing.
_RANGES = re.compile(r"\$__(rate_interval|interval|range)\b")
_VARIABLES = re.compile(r"\$\{?(\w+)\}?")


def declared() -> dict[str, set[str]]:
    """Every series name the daemon's registry exports → the labels it carries."""
    metrics = Metrics(process=True)
    names: dict[str, set[str]] = {}
    for wrapper in vars(metrics).values():
        if not isinstance(wrapper, MetricWrapperBase):
            continue
        labels = set(wrapper._labelnames)
        base = wrapper._name
        kind = wrapper._type
        if kind == "counter":
            names[f"{base}_total"] = labels
        elif kind == "histogram":
            for suffix in ("_bucket", "_sum", "_count"):
                names[base + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
        else:
            names[base] = labels
    metrics.stages.open_conflicts = dict  # a worker with lanes exports this gauge too
    for family in metrics.stages.collect():  # read from the stages when scraped
        suffix = "_total" if family.type == "counter" else ""
        names[family.name + suffix] = set(getattr(family, "_labelnames", ()))
    for family in metrics.registry.collect():  # the process collector's, label-less
        for sample in family.samples:
            names.setdefault(sample.name, set(sample.labels))
    return names


def expressions() -> Iterator[tuple[str, str]]:
    """``(where, PromQL)`` for every query in the dashboard."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r}", target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]["query"]
        match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query)
        assert match, f"variable {variable['name']}: unexpected query {query!r}"
        selector, label = match.groups()
        yield f"variable {variable['name']!r}", f"count by ({label}) ({selector})"


def parse(expr: str) -> Any:
    text = _RANGES.sub("5m", expr)
    text = _VARIABLES.sub(".*", text)
    return promql.parse(text)


def selectors(node: Any) -> Iterator[tuple[str | None, list[str]]]:
    """``(metric name or None, matched label names)`` of every selector under ``node``."""
    found: list[tuple[str | None, list[str]]] = []

    def visit(expr: Any) -> None:
        if isinstance(expr, promql.VectorSelector):
            matchers = expr.matchers.matchers
            name = expr.name
            regex_name = [m for m in matchers if m.name == "__name__"]
            if name is None and regex_name:
                name = "re:" + regex_name[0].value
            found.append((name, [m.name for m in matchers if m.name != "__name__"]))

    promql.walk(node, pre_visit=visit)
    return iter(found)


def grouping_labels(node: Any) -> set[str]:
    """Labels of every ``by (...)`` under ``node``."""
    labels: set[str] = set()

    def visit(expr: Any) -> None:
        if (isinstance(expr, promql.AggregateExpr) and expr.modifier is not None
                and expr.modifier.type == promql.AggModifierType.By):
            labels.update(expr.modifier.labels)

    promql.walk(node, pre_visit=visit)
    return labels


def queried() -> dict[str, list[str]]:
    """Every metric name the dashboard selects → where."""
    out: dict[str, list[str]] = {}
    for where, expr in expressions():
        for name, _ in selectors(parse(expr)):
            if name is not None and not name.startswith("re:"):
                out.setdefault(name, []).append(where)
    return out


def test_the_dashboard_queries_every_kind_of_metric_the_issue_names() -> None:
    names = set(queried())
    for wanted in ("syncline_observations_total", "syncline_writes_total",
                   "syncline_dead_letters_total", "syncline_loop_breakers_open",
                   "syncline_delete_breaker_open", "syncline_lane_cursor_lag_seconds",
                   "syncline_http_requests_total", "syncline_merge_inputs_total"):
        assert wanted in names, wanted


def test_every_metric_the_dashboard_queries_is_declared_by_the_daemon() -> None:
    exported = declared()
    unknown = {name: where for name, where in queried().items()
               if name not in exported and name not in EXPECTED_MISSING}
    assert not unknown, (
        "the dashboard queries metrics daemon/metrics.py does not declare: "
        + "; ".join(f"{name} ({', '.join(where)})" for name, where in sorted(unknown.items())))


def test_the_expected_missing_metrics_are_still_missing_and_still_queried() -> None:
    exported = declared()
    now_declared = sorted(set(EXPECTED_MISSING) & set(exported))
    assert not now_declared, (f"{now_declared} are declared now: take them out of "
                              "EXPECTED_MISSING and check the panels' label names")
    assert set(EXPECTED_MISSING) <= set(queried())


def test_the_panels_of_missing_metrics_say_so() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    for panel in dashboard["panels"]:
        names = {name for target in panel.get("targets", [])
                 for name, _ in selectors(parse(target["expr"]))}
        if names & set(EXPECTED_MISSING):
            assert "Not exported by this version of syncline yet" in panel["description"], (
                panel["title"])


@pytest.mark.parametrize("where,expr", list(expressions()))
def test_every_label_a_query_uses_is_one_its_metrics_carry(where: str, expr: str) -> None:
    exported = declared()
    node = parse(expr)
    carried: set[str] = set(TARGET_LABELS)
    for name, matched in selectors(node):
        if name is None or name.startswith("re:"):
            assert set(matched) <= TARGET_LABELS, (where, matched)
            continue
        if name in EXPECTED_MISSING:
            continue
        labels = exported[name] | TARGET_LABELS
        assert set(matched) <= labels, f"{where}: {name} has no label {set(matched) - labels}"
        carried |= labels
    if all(name in EXPECTED_MISSING for name, _ in selectors(node)):
        return
    grouped = grouping_labels(node)
    assert grouped <= carried, f"{where}: groups by {grouped - carried}, which no metric has"


def test_the_dashboard_imports_cleanly_ids_unique_layout_without_overlap() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    panels = dashboard["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    cells: dict[tuple[int, int], str] = {}
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        for row in range(grid["y"], grid["y"] + grid["h"]):
            for column in range(grid["x"], grid["x"] + grid["w"]):
                assert (row, column) not in cells, (panel["title"], cells.get((row, column)))
                cells[(row, column)] = panel["title"]
        if panel["type"] != "row":
            # Every query goes to the data source the person picks on import.
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"])
    names = [variable["name"] for variable in dashboard["templating"]["list"]]
    assert names[0] == "datasource"
    used = {name for _, expr in expressions() for name in _VARIABLES.findall(expr)}
    assert used - {"__rate_interval", "__range", "__interval"} <= set(names)
