"""The repository explains itself: no file of the project points at a document outside it.

A clone has only what is in it, so the design is described in ``docs/ARCHITECTURE.md`` and
nothing refers to a design document beside the repository.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_DESIGN, _SHARED = "DESIGN", "shared"  # spelled apart, so this file is no pointer itself
OUTSIDE = (f"{_DESIGN}.md", f"../{_SHARED}", f"{_SHARED}/{_DESIGN}", f"{_DESIGN} says",
           f'{_DESIGN} "')
"""How a pointer to the design document beside the repository was spelled."""

def project_files() -> list[str]:
    try:
        listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                                cwd=REPO, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [name for name in listed.splitlines() if (REPO / name).is_file()]


def test_no_file_points_outside_the_repository() -> None:
    offenders = set()
    files = project_files()
    assert "docs/ARCHITECTURE.md" in files
    for name in files:
        try:
            text = (REPO / name).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # not text
        if any(pointer in text for pointer in OUTSIDE):
            offenders.add(name)
    assert sorted(offenders) == []
