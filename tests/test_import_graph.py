"""The package's import graph: no module imports itself back through others, and the
dependencies point one way, ``daemon → streams → conflict``.

Every import counts, a function's own and one under ``if TYPE_CHECKING:`` included: an import
deferred into a function, or kept from running, to dodge a cycle at import time is still a
cycle in the design. An import of a package counts as an import of its ``__init__`` only (not
of every module in it), so a package may re-export its modules' names.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("conflict", "streams", "daemon")
LAYER = {"conflict": 0, "streams": 1, "daemon": 2}
"""A package may import only from its own layer or lower ones."""


def module_files() -> dict[str, Path]:
    """Every module of the three packages, by dotted name."""
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def imports_of(name: str, path: Path, known: set[str]) -> Iterator[str]:
    """The project modules that module ``name`` (at ``path``) imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in known:
                    yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            for alias in node.names:
                submodule = f"{module}.{alias.name}"
                if submodule in known:
                    yield submodule  # ``from package import module``
                elif module in known:
                    yield module


def graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports."""
    files = module_files()
    known = set(files)
    return {name: set(imports_of(name, path, known)) - {name} for name, path in files.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_graph_is_read_from_the_sources() -> None:
    edges = graph()
    assert len(edges) > 50
    assert "daemon.review.cli" in edges["daemon.cli"]
    assert "conflict.fold" in edges["conflict"]  # the package's face re-exports the fold
    assert "daemon.demo" in edges["daemon.cli"]  # imported inside the command that runs it


def test_no_module_imports_itself_back() -> None:
    assert cycles(graph()) == []


def test_dependencies_point_one_way() -> None:
    wrong = sorted(f"{source} imports {target}" for source, targets in graph().items()
                   for target in targets
                   if LAYER[target.split(".")[0]] > LAYER[source.split(".")[0]])
    assert wrong == []


def test_a_cycle_is_found_where_there_is_one() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert cycles(edges) == [["a", "b", "c"]]
