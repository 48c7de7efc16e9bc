"""The conflict-review report: what it says, and that values from systems stay text."""

from __future__ import annotations

import html.parser
import json
from pathlib import Path

import orjson

from daemon.review.report import (
    REPORT_SCHEMA,
    diff,
    fenced_diff,
    md_escape,
    render,
    report_data,
    write_report,
)
from daemon.review.view import ReviewView
from tests.daemon.review.events import T0, conflict, record

SCRIPT = "<script>alert('x')</script>"
NOW = T0 + 3 * 3600 + 120  # the oldest open conflict below is 3h 2m old


def sample() -> ReviewView:
    return ReviewView.build([
        conflict("c1", "name", current=(SCRIPT, "helpdesk", 1), incoming=("Ann | *B*", "crm", 2)),
        conflict("c2", "name", at=T0 + 3600, current=("Bo", "crm", 1),
                 incoming=("Bob", "helpdesk", 4)),
        conflict("c3", "phone", status="auto_resolved", policy="latest", decision="incoming",
                 current=("1000", "crm", 3), incoming=("2000", "helpdesk", 5)),
        conflict("c4", "tags", status="auto_resolved", policy="union", decision="merged",
                 current=(["a"], "crm", 4), incoming=(["b"], "helpdesk", 6), value=["a", "b"]),
        conflict("c5", "name", status="resolved", decision="chosen", value="Cy",
                 current=("Cy", "crm", 5), incoming=("Cyrus", "helpdesk", 7),
                 resolution={"resolution_id": "r-1", "by": "dana", "at": T0 + 60,
                             "value": "Cy", "deleted": False, "note": "asked Cy"}),
        # A later event of the same conflict replaces the earlier: c6 ends superseded.
        conflict("c6", "phone", current=("1", "crm", 6), incoming=("2", "helpdesk", 8)),
        conflict("c6", "phone", status="superseded", current=("1", "crm", 6),
                 incoming=("2", "helpdesk", 8), superseded_by="crm:9"),
    ], [record("c1", links={"crm": "42", "helpdesk": "7"})])


def test_json_summary_open_first_auto_resolved_grouped_by_policy() -> None:
    data = report_data(sample(), NOW)
    assert data["schema"] == REPORT_SCHEMA
    assert data["summary"] == {
        "total": 6, "open": 2, "auto_resolved": 2, "resolved": 1, "superseded": 1,
        "open_by_entity": {"contact": 2},
        "oldest_open": {"conflict_id": "c1/name/crm:2", "age_seconds": 3 * 3600 + 120.0}}
    assert [c["canonical_id"] for c in data["open"]] == ["c1", "c2"]  # oldest first
    assert sorted(data["auto_resolved"]) == ["latest", "union"]
    phone = data["auto_resolved"]["latest"][0]
    assert [(c["system"], c["outcome"]) for c in phone["candidates"]] == [
        ("crm", "lost"), ("helpdesk", "won")]
    assert data["auto_resolved"]["union"][0]["value"] == ["a", "b"]
    assert data["resolved"][0]["resolution"]["by"] == "dana"
    assert data["superseded"][0]["superseded_by"] == "crm:9"
    assert data["open"][0]["links"] == {"crm": "42", "helpdesk": "7"}


def test_json_is_stable_sorted_and_round_trips() -> None:
    first = render(sample(), "json", NOW)
    assert first == render(sample(), "json", NOW)
    parsed = json.loads(first)
    assert list(parsed) == sorted(parsed)
    assert parsed["open"][0]["candidates"][0]["value"] == SCRIPT  # data, not markup


class _Collect(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.links += [v or "" for k, v in attrs if k in ("src", "href") and v]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_is_self_contained_and_shows_a_script_value_as_text() -> None:
    page = render(sample(), "html", NOW)
    parsed = _Collect()
    parsed.feed(page)
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page
    assert parsed.tags.count("script") == 0  # the report itself has no script at all
    assert SCRIPT in "".join(parsed.text)  # what a reader sees: the value, as text
    assert parsed.links == []  # no external assets (no src=, no href=)
    assert "<style>" in page
    text = " ".join(" ".join(parsed.text).split())
    assert "2 open" in text and "3h 2m oldest open" in text
    assert text.index("Open conflicts") < text.index("Auto-resolved") < text.index("Resolved")
    assert "latest (1)" in text and "union (1)" in text
    assert "Take this value" not in text  # only the review page has the action


def test_html_shows_a_word_diff_for_long_text() -> None:
    before = "Met at the 2024 conference; prefers email; account manager is Lee Smith."
    after = "Met at the 2024 conference; prefers phone; account manager is Lee Smith."
    view = ReviewView.build([conflict("c7", "notes", current=(before, "crm", 1),
                                      incoming=(after, "helpdesk", 2))])
    page = render(view, "html", NOW)
    assert "<del>email</del><ins>phone</ins>" in page
    assert diff("short", "other") is None  # short values side by side say it all


def test_markdown_escapes_html_and_markdown() -> None:
    md = render(sample(), "md", NOW)
    assert SCRIPT not in md
    assert "&lt;script&gt;alert('x')&lt;/script&gt;" in md
    assert r"Ann \| \*B\*" in md  # a pipe would end the table cell, stars make emphasis
    assert md.startswith("# syncline conflict review\n")
    assert "**2 open**" in md and "The oldest open conflict is 3h 2m old." in md
    assert "| helpdesk (current) |" in md
    assert md.index("## Open conflicts") < md.index("## Auto-resolved") < md.index("## Resolved")


def test_markdown_escape_and_fenced_diff() -> None:
    assert md_escape("a\nb") == "a<br>b"
    assert md_escape("[x](javascript:alert(1))") == r"\[x\](javascript:alert(1))"
    assert md_escape("<img src=x onerror=alert(1)>") == "&lt;img src=x onerror=alert(1)&gt;"
    block = fenced_diff([("same", "a "), ("del", "````"), ("ins", "b")])
    assert block.startswith("`````text\n") and block.endswith("\n`````")
    assert "[-````-]{+b+}" in block


def test_write_report_from_events_for_the_demo(tmp_path: Path) -> None:
    events = sample()
    by_id = dict(events.conflicts)
    out = write_report(by_id, [record("c1")], tmp_path / "conflicts.md", "md", now=NOW)
    assert out.read_text().startswith("# syncline conflict review")
    out = write_report(list(by_id.values()), {}, tmp_path / "conflicts.json", "json", now=NOW)
    assert orjson.loads(out.read_bytes())["summary"]["open"] == 2


def test_an_empty_report_says_nothing_waits() -> None:
    view = ReviewView.build([])
    assert "No conflict is waiting for a person." in render(view, "html", NOW)
    assert "No conflict is waiting for a person." in render(view, "md", NOW)
    assert report_data(view, NOW)["summary"]["oldest_open"] is None
