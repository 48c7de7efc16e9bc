"""``syncline demo`` from a built wheel, installed into a clean virtualenv outside the
repository and run from a directory outside it: what a user who ran ``pip install syncline``
gets. The wheel must carry everything the demo needs (the example configuration and the
local broker's script, :mod:`daemon.shipped`); nothing of the checkout is reachable.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.e2e.test_demo import STORY, free_port

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(900)]

NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis",
    "syncline-demo", "var", "*.so")
"""What a clean checkout does not have (a compiled fold, caches, earlier builds)."""


def run(command: list[str], **options: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, capture_output=True, text=True, check=False,
                            **options)  # type: ignore[call-overload]
    assert result.returncode == 0, f"{command}:\n{result.stdout}{result.stderr}"
    return result  # type: ignore[no-any-return]


def test_the_demo_runs_from_an_installed_wheel(kafka_bootstrap: str, tmp_path: Path) -> None:
    # Built from a copy (links kept as links), so the build writes nothing into the checkout.
    source = tmp_path / "source"
    shutil.copytree(REPO, source, symlinks=True, ignore=NOT_SOURCES)
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir",
         str(tmp_path / "dist"), str(source)], timeout=600)
    (wheel,) = (tmp_path / "dist").glob("syncline-*.whl")
    shutil.rmtree(source)

    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    venv.create(tmp_path / "venv", with_pip=True)
    bin_dir = tmp_path / "venv" / "bin"
    run([str(bin_dir / "python"), "-m", "pip", "install", "--quiet", str(wheel)], env=env,
        timeout=600)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = run([str(bin_dir / "python"), "-c", "import daemon; print(daemon.__file__)"],
                cwd=elsewhere, env=env).stdout.strip()
    assert Path(where).is_relative_to(tmp_path / "venv"), where

    port = kafka_bootstrap.rpartition(":")[2]
    result = subprocess.run(
        [str(bin_dir / "syncline"), "demo", "--crm-port", str(free_port()), "--helpdesk-port",
         str(free_port()), "--worker-port", str(free_port())],
        capture_output=True, text=True, timeout=300, check=False, cwd=elsewhere,
        env={**env, "SYNCLINE_KAFKA_PORT": port})

    assert result.returncode == 0, result.stdout + result.stderr
    for line in STORY:
        assert line in result.stdout, result.stdout
    assert (elsewhere / "syncline-demo" / "conflicts.html").is_file()
    assert "Ann Archer-Smith" in (elsewhere / "syncline-demo" / "conflicts.md").read_text()
