"""The latency benchmark end to end at a tiny size: the worker, the systems and the editor in
three processes, against the real broker."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_edits_from_their_own_process_reach_the_helpdesk_each_write_read_first(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    figures = tmp_path / "latency.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.latency", "--bootstrap", kafka_bootstrap,
         "--rate", "10", "--seconds", "2", "--records", "20", "--json", str(figures)],
        capture_output=True, text=True, timeout=280, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "helpdesk requests a helpdesk write" in done.stdout
    r = json.loads(figures.read_text())
    assert r["editor"] == "process" and r["editor_cpu_seconds"] > 0
    assert r["edits"] == 20 and r["achieved_rate"] > 5
    assert r["final_values_present"] == r["final_values_expected"] > 0
    assert r["writes_made"]["crm"] == 0  # no echo
    assert r["writes_made"]["helpdesk"] >= r["timed"]
    # The helpdesk has no versions: every write is read first, and verified by a read after.
    assert r["helpdesk_requests_per_write"] >= 3.0
