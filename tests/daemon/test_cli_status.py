"""``syncline status`` against a worker's ``/status``: a lane with problems is not ok."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from click.testing import CliRunner

from daemon.cli import cli

LANE = {"system": "crm", "entity": "contact", "healthy": True, "polls": 3, "seq": 12,
        "cursor": 1.0, "cursor_lag_seconds": 2.0, "known_records": 6, "waiting_for_links": 0,
        "behind": 0, "last_error": None, "dead_letters": 1, "problems": []}


@pytest.fixture
def worker() -> Iterator[tuple[str, dict[str, Any]]]:
    """A worker's web server answering ``/status`` with what the test puts in the dict."""
    body: dict[str, Any] = {"roles": ["lanes"], "lanes": {}}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", body
    finally:
        server.shutdown()
        server.server_close()


def test_a_lane_without_problems_is_ok_and_counts_its_dead_letters(
        worker: tuple[str, dict[str, Any]]) -> None:
    url, body = worker
    body["lanes"] = {"crm/contact": LANE}
    result = CliRunner().invoke(cli, ["status", "--url", url])
    assert result.exit_code == 0, result.output
    assert " ok " in result.output and "dead letters 1" in result.output


def test_an_open_delete_breaker_makes_the_lane_not_ok(
        worker: tuple[str, dict[str, Any]]) -> None:
    url, body = worker
    reason = "delete breaker open: a sweep found 6 of 6 known records missing"
    body["lanes"] = {"crm/contact": {**LANE, "problems": [reason]}}
    result = CliRunner().invoke(cli, ["status", "--url", url])
    assert result.exit_code == 1
    assert "PROBLEMS" in result.output and reason in result.output
    assert " ok " not in result.output
