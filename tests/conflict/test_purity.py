"""conflict/ is the pure core: it imports nothing but the standard library and pydantic."""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path

import conflict

ALLOWED_THIRD_PARTY = {"pydantic", "pydantic_core"}
FORBIDDEN_STDLIB = {"asyncio", "socket", "random", "secrets", "threading", "subprocess",
                    "urllib", "http", "ssl", "selectors"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_conflict_imports_only_stdlib_and_pydantic() -> None:
    package = Path(conflict.__file__).parent
    files = sorted(package.rglob("*.py"))
    assert files
    for path in files:
        for name in imported_modules(path):
            if name in ("conflict", "__future__"):
                continue
            assert name in sys.stdlib_module_names or name in ALLOWED_THIRD_PARTY, (
                f"{path.name} imports {name!r}")
            assert name not in FORBIDDEN_STDLIB, f"{path.name} imports {name!r} (I/O or chance)"


def test_conflict_reads_no_clock() -> None:
    package = Path(conflict.__file__).parent
    for path in package.rglob("*.py"):
        text = path.read_text()
        for call in ("time.time(", "datetime.now(", "datetime.utcnow(", "uuid4(", "uuid1("):
            assert call not in text, f"{path.name} calls {call}"


def test_the_fold_runs_compiled_when_the_run_says_it_does() -> None:
    """``make test-compiled`` sets SYNCLINE_EXPECT_COMPILED=1: the suite must then really run
    the mypyc-compiled fold, not silently the interpreted one (and the reverse)."""
    expected = os.environ.get("SYNCLINE_EXPECT_COMPILED") == "1"
    assert conflict.compiled() is expected
