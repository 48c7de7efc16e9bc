"""The worker's log lines: JSON off a terminal, text on one, secrets and personal fields out."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from daemon.config import load_config
from daemon.logs import REDACTED, Redactor, choose_format, configure, secrets_of

REPO = Path(__file__).resolve().parents[2]
ENV = {"CRM_TOKEN": "tok-crm-5f1e", "CRM_WEBHOOK_SECRET": "whsec/9a+b c",
       "SYNCLINE_REVIEW_TOKEN": "rev-77d0", "HELPDESK_API_KEY": "hd-key-31c4"}


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level, hook = list(root.handlers), root.level, sys.excepthook
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    sys.excepthook = hook
    logging.captureWarnings(False)


def test_json_off_a_terminal_text_on_one_unless_told() -> None:
    assert choose_format("auto", io.StringIO()) == "json"
    assert choose_format("auto", Terminal()) == "console"
    assert choose_format("json", Terminal()) == "json"
    assert choose_format("console", io.StringIO()) == "console"


def test_every_secret_of_the_example_config_is_found() -> None:
    config = load_config(REPO / "examples" / "syncline.yaml", ENV)
    assert sorted(secrets_of(config)) == sorted(ENV.values())


def test_secrets_in_private_attributes_and_the_kafka_section_are_found(tmp_path: Path) -> None:
    config = tmp_path / "syncline.yaml"
    config.write_text(
        "kafka:\n"
        "  bootstrap: 127.0.0.1:9\n"
        "  security_protocol: SASL_PLAINTEXT\n"
        "  sasl: {mechanism: SCRAM-SHA-512, username: u, password_env: KAFKA_PASSWORD}\n"
        "systems:\n"
        "  crm:\n"
        "    base_url: http://crm.example\n"
        "    auth: {type: oauth2_refresh_token, token_url: 'http://crm.example/t',\n"
        "           client_id: c, refresh_token_env: RT, client_secret_env: CS}\n")
    loaded = load_config(config, {"KAFKA_PASSWORD": "kp-1", "RT": "rt-2", "CS": "cs-3"})
    assert sorted(secrets_of(loaded)) == ["cs-3", "kp-1", "rt-2"]


@pytest.mark.usefixtures("restore_logging")
def test_lines_of_any_library_are_json_with_their_extra_keys() -> None:
    out = io.StringIO()
    configure("json", stream=out)
    logging.getLogger("daemon.lane.report").info("lane %s read %s", "crm/contact", "c-1",
                                                 extra={"correlation_id": "abc"})
    # (aiohttp's: the CLI sets aiokafka's level, and earlier tests in this process ran it)
    logging.getLogger("aiohttp.server").warning("broker %s gone", "127.0.0.1:9")
    lines = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["lane crm/contact read c-1",
                                                 "broker 127.0.0.1:9 gone"]
    assert lines[0]["correlation_id"] == "abc" and lines[0]["level"] == "info"
    assert lines[1]["logger"] == "aiohttp.server" and "timestamp" in lines[1]


@pytest.mark.usefixtures("restore_logging")
def test_console_lines_are_text() -> None:
    out = Terminal()
    configure("console", stream=out)
    logging.getLogger("syncline").info("worker listening", extra={"roles": "all"})
    text = out.getvalue()
    assert "worker listening" in text and "roles" in text
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(text.splitlines()[0])


@pytest.mark.usefixtures("restore_logging")
def test_secrets_and_personal_fields_never_reach_a_line() -> None:
    config = load_config(REPO / "examples" / "syncline.yaml", ENV)
    out = io.StringIO()
    configure("json", stream=out,
              redactor=Redactor(secrets_of(config), ["email", "phone"]))
    log = logging.getLogger("httpx")
    # A secret in a library's message, URL-encoded in a URL, in an exception, in a value.
    log.warning("GET http://crm/x?auth=%s failed", "tok-crm-5f1e")
    log.warning("GET http://crm/x?s=%s", "whsec%2F9a%2Bb%20c")
    try:
        raise RuntimeError("refused: key hd-key-31c4")
    except RuntimeError:
        log.exception("request failed")
    logging.getLogger("daemon.lane.report").info(
        "lane crm/contact read c-1", extra={"fields": {"email": "ann@example.com",
                                                       "phone": "+15550100", "name": "Ann"},
                                            "note": ["rev-77d0"], "email": "bo@example.com"})
    text = out.getvalue()
    for secret in [*ENV.values(), "whsec%2F9a%2Bb%20c", "ann@example.com", "+15550100",
                   "bo@example.com"]:
        assert secret not in text
    lines = [orjson.loads(line) for line in text.splitlines()]
    assert lines[3]["fields"] == {"email": REDACTED, "phone": REDACTED, "name": "Ann"}
    assert lines[0]["event"] == f"GET http://crm/x?auth={REDACTED} failed"
    assert "RuntimeError: refused: key [redacted]" in lines[2]["exception"]
