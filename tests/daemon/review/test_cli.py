"""`syncline conflicts list|show|resolve`, `report` and `record` against the real broker.

The conflicts and records are put on a fresh prefix's topics as the merge would; a
resolution from the CLI is read back from the resolutions topic.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
import yaml
from click.testing import CliRunner, Result

from daemon.cli import CliContext, cli
from streams import codec
from streams.events import Resolution
from streams.kafka import KafkaSettings
from streams.topics import Topics
from tests.daemon.review.events import conflict, record
from tests.streams.kafka_helpers import made_topics, produce, read_topic

pytestmark = [pytest.mark.kafka]

REPO = Path(__file__).resolve().parents[3]
ENV = {"CRM_TOKEN": "t", "CRM_WEBHOOK_SECRET": "w", "HELPDESK_API_KEY": "k",
       "SYNCLINE_REVIEW_TOKEN": "r", "USER": "dana"}
SCRIPT = "<script>alert(1)</script>"


async def syncline(*args: str) -> Result:
    def run() -> Result:
        return CliRunner().invoke(cli, list(args), obj=CliContext(env=ENV))
    return await asyncio.to_thread(run)


@pytest.fixture
async def setup(kafka_settings: KafkaSettings, tmp_path: Path) -> tuple[Topics, str]:
    topics = await made_topics(kafka_settings, "rv")
    data = yaml.safe_load((REPO / "examples" / "syncline.yaml").read_text())
    data["kafka"]["bootstrap"] = kafka_settings.bootstrap
    data["kafka"]["topic_prefix"] = topics.prefix
    config = tmp_path / "syncline.yaml"
    config.write_text(yaml.safe_dump(data))
    events = [
        conflict("c1", "name", current=(SCRIPT, "helpdesk", 1), incoming=("Anne", "crm", 2)),
        conflict("c2", "phone", status="auto_resolved", policy="latest", decision="incoming",
                 current=("1000", "crm", 3), incoming=("2000", "helpdesk", 5)),
    ]
    await produce(kafka_settings, topics.conflicts,
                  [(e.canonical_id.encode(), codec.encode(e)) for e in events])
    await produce(kafka_settings, topics.records,
                  [(b"c1", codec.encode(record("c1", links={"crm": "42"})))])
    return topics, str(config)


async def test_list_show_report_and_record(setup: tuple[Topics, str], tmp_path: Path) -> None:
    _, config = setup
    listed = await syncline("conflicts", "list", "--config", config)
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert lines[0].startswith("c1/name/crm:2  open ")  # open first
    assert "helpdesk=\"<script>" in lines[0] and "crm=\"Anne\"" in lines[0]
    assert lines[1].startswith("c2/phone/helpdesk:5  auto_resolved")
    assert lines[-1] == "2 conflicts (1 open)"
    only_open = await syncline("conflicts", "list", "--open", "--config", config)
    assert only_open.output.splitlines()[-1] == "1 conflict (1 open)"
    none = await syncline("conflicts", "list", "--entity", "ticket", "--since", "1h",
                          "--config", config)
    assert none.output.strip() == "0 conflicts (0 open)"

    shown = await syncline("conflicts", "show", "c1", "--config", config)
    assert shown.exit_code == 0, shown.output
    assert "record    c1 (contact); crm 42" in shown.output
    assert "helpdesk   current  \"<script>alert(1)</script>\"" in shown.output
    assert "crm        incoming \"Anne\"" in shown.output
    assert "syncline conflicts resolve c1/name/crm:2 --take crm" in shown.output

    out = tmp_path / "report.html"
    made = await syncline("report", "--format", "html", "--out", str(out), "--config", config)
    assert made.exit_code == 0 and "2 conflicts, 1 open" in made.output
    assert "&lt;script&gt;" in out.read_text() and SCRIPT not in out.read_text()
    as_json = await syncline("report", "--format", "json", "--config", config)
    assert orjson.loads(as_json.output)["summary"]["open"] == 1
    as_md = await syncline("report", "--format", "md", "--config", config)
    assert "&lt;script&gt;" in as_md.output and SCRIPT not in as_md.output

    history = await syncline("record", "crm/42", "--config", config)
    assert history.exit_code == 0, history.output
    assert history.output.startswith("record c1 (contact, live, version 3, 1 open conflicts)")
    assert "in an open conflict  [c1/name/crm:2]" in history.output


async def test_resolve_publishes_a_resolution(setup: tuple[Topics, str],
                                              kafka_settings: KafkaSettings) -> None:
    topics, config = setup
    took = await syncline("conflicts", "resolve", "c1/name/crm:2", "--take", "helpdesk",
                          "--note", "asked her", "--config", config)
    assert took.exit_code == 0, took.output
    assert "takes helpdesk's value (by dana;" in took.output
    given = await syncline("conflicts", "resolve", "c1", "--value", '"Ann Lee"', "--by", "lee",
                           "--config", config)
    assert given.exit_code == 0, given.output
    sent = [codec.decode(r.value, (Resolution,))
            for r in await read_topic(kafka_settings, topics.resolutions)]
    assert [(r.conflict_id, r.canonical_id, r.take, r.value, r.by, r.via, r.note)
            for r in sent] == [
        ("c1/name/crm:2", "c1", "helpdesk", None, "dana", "cli", "asked her"),
        ("c1/name/crm:2", "c1", None, "Ann Lee", "lee", "cli", None)]


@pytest.mark.parametrize("args, message", [
    (["nope", "--take", "crm"], "no conflict 'nope'"),
    (["c2", "--take", "crm"], "is not open (it was auto-resolved)"),
    (["c1", "--take", "shop"], "'shop' is not one of its candidates (helpdesk, crm)"),
    (["c1", "--value", "Ann"], "--value is not JSON"),
    (["c1", "--value", "42"], "42 does not fit field contact.name"),
    (["c1"], "give exactly one of --take SYSTEM or --value JSON"),
    (["c1", "--take", "crm", "--value", '"x"'], "give exactly one of"),
])
async def test_resolve_refuses_with_one_line_and_exit_2(
        setup: tuple[Topics, str], kafka_settings: KafkaSettings, args: list[str],
        message: str) -> None:
    topics, config = setup
    result = await syncline("conflicts", "resolve", *args, "--config", config)
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert await read_topic(kafka_settings, topics.resolutions) == []


async def test_unknown_record_and_bad_since(setup: tuple[Topics, str]) -> None:
    _, config = setup
    missing = await syncline("record", "crm/999", "--config", config)
    assert missing.exit_code == 2 and "no record 'crm/999'" in missing.output
    bad = await syncline("conflicts", "list", "--since", "soon", "--config", config)
    assert bad.exit_code == 2 and "--since: expected a duration" in bad.output
