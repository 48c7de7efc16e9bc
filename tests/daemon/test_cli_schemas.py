"""`syncline schemas`: the JSON Schema of every event, and the copies in docs/ are current."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

from streams.events import EVENT_TYPES

REPO = Path(__file__).resolve().parents[2]


def test_schemas_command_writes_one_file_per_event(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "daemon", "schemas", "--out", str(tmp_path)],
                            capture_output=True, text=True, check=False, cwd=REPO)
    assert result.returncode == 0, result.stderr
    files = sorted(tmp_path.glob("*.json"))
    assert len(files) == len(EVENT_TYPES)
    observed = orjson.loads((tmp_path / "syncline.observed.v3.json").read_bytes())
    assert observed["properties"]["schema"]["const"] == "syncline.observed/3"
    # The copies published in docs/schemas are what the code says today.
    for path in files:
        published = REPO / "docs" / "schemas" / path.name
        assert published.read_bytes() == path.read_bytes(), (
            f"{published} is out of date: run `syncline schemas`")
