"""The import rules of the package, read from the source.

- Dependencies point one way: ``daemon`` → ``streams`` → ``conflict``.
- ``daemon/`` imports :mod:`streams` through its public face (``streams/__init__.py``) and
  only the names it exports: never a module inside, never an internal constant or helper.
- No module reaches a private (underscore) name of another package, by import or attribute.
- The import graph of the modules has no cycle (imports inside functions count: they
  hide a cycle from import time, not from the reader).

Files still being changed on other branches are marked ``xfail(strict=True)`` below, with
the reason: once fixed they pass, and the strict marker then fails until it is removed.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import streams

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("conflict", "streams", "daemon")
LAYERS = {"conflict": set(), "streams": {"conflict"}, "daemon": {"streams", "conflict"}}

PENDING_FACE: dict[str, str] = {}
PENDING_PRIVATE: dict[str, str] = {}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_files() -> list[Path]:
    files = [path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))]
    assert len(files) > 50
    return files


MODULES = {module_name(path): path for path in source_files()}


def package_of(module: str) -> str:
    """The package a module is in (a package's ``__init__`` is in the package itself)."""
    path = MODULES.get(module)
    return module if path is not None and path.name == "__init__.py" else module.rpartition(".")[0]


@dataclass(frozen=True)
class Imported:
    module: str  # the project module the name comes from (or that is imported)
    name: str | None  # the name taken from it (None: the module itself)
    line: int
    via: str  # the module as written in the import statement


def walk(tree: ast.AST, runtime_only: bool) -> Iterator[ast.AST]:
    """Every node of ``tree``; with ``runtime_only``, not those under ``if TYPE_CHECKING:``
    (imports for annotations alone, never executed)."""
    for node in ast.iter_child_nodes(tree):
        if runtime_only and isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for child in node.orelse for n in walk(child, runtime_only))
            continue
        yield node
        yield from walk(node, runtime_only)


def imports_of(module: str, path: Path | None = None, *, runtime_only: bool = False
               ) -> Iterator[Imported]:
    """Every import of a project module anywhere in ``module``'s file (or ``path``)."""
    path = path or MODULES[module]
    tree = ast.parse(path.read_text(), filename=str(path))
    package = package_of(module)
    for node in walk(tree, runtime_only):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in MODULES:
                    yield Imported(alias.name, None, node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            if base not in MODULES:
                continue
            for alias in node.names:
                child = f"{base}.{alias.name}"
                if child in MODULES:  # a submodule: ``from streams import codec``
                    yield Imported(child, None, node.lineno, base)
                else:
                    yield Imported(base, alias.name, node.lineno, base)


def private_attributes(module: str, path: Path | None = None
                       ) -> Iterator[tuple[str, str, int]]:
    """``alias._name`` where ``alias`` is a project module of another package."""
    path = path or MODULES[module]
    tree = ast.parse(path.read_text(), filename=str(path))
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in MODULES:
                    aliases[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                if child in MODULES:
                    aliases[alias.asname or alias.name] = child
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in aliases and node.attr.startswith("_")
                and not node.attr.startswith("__")):
            target = aliases[node.value.id]
            if package_of(target) != package_of(module):
                yield target, node.attr, node.lineno


def relative(module: str) -> str:
    return str(MODULES[module].relative_to(ROOT))


def marked(pending: dict[str, str]) -> list[object]:
    params: list[object] = []
    for module in sorted(MODULES):
        path = relative(module)
        marks = ([pytest.mark.xfail(strict=True, reason=pending[path])]
                 if path in pending else [])
        params.append(pytest.param(module, id=path, marks=marks))
    return params


def test_the_pending_files_exist() -> None:
    """An entry for a file that is gone would hide nothing; remove it."""
    for path in [*PENDING_FACE, *PENDING_PRIVATE]:
        assert (ROOT / path).is_file(), path


@pytest.mark.parametrize("module", sorted(MODULES))
def test_dependencies_point_one_way(module: str) -> None:
    top = module.split(".")[0]
    wrong = [f"{relative(module)}:{i.line}: imports {i.module}" for i in imports_of(module)
             if i.module.split(".")[0] not in {top, *LAYERS[top]}]
    assert wrong == []


def face_violations(module: str, path: Path | None = None) -> list[str]:
    """Imports of ``module`` (in ``daemon/``) from inside :mod:`streams`, or of a name its
    face does not export."""
    public = set(streams.__all__)
    wrong = []
    for item in imports_of(module, path):
        if not item.module.startswith("streams"):
            continue
        name = item.name or item.module.rpartition(".")[2]
        if item.via != "streams":
            wrong.append(f"{module}:{item.line}: from {item.via} import {name} (import it "
                         "from streams, the package's public face)")
        elif name not in public:
            wrong.append(f"{module}:{item.line}: {name} is not in streams.__all__")
    return wrong


def private_violations(module: str, path: Path | None = None) -> list[str]:
    """Private names of another package that ``module`` imports or uses."""
    wrong = [f"{module}:{i.line}: imports {i.name} from {i.module}"
             for i in imports_of(module, path)
             if i.name is not None and i.name.startswith("_") and not i.name.startswith("__")
             and package_of(i.module) != package_of(module)]
    wrong += [f"{module}:{line}: uses {target}.{name}"
              for target, name, line in private_attributes(module, path)]
    return wrong


@pytest.mark.parametrize("module", marked(PENDING_FACE))
def test_daemon_imports_streams_only_through_its_face(module: str) -> None:
    assert not module.startswith("daemon") or face_violations(module) == []


@pytest.mark.parametrize("module", marked(PENDING_PRIVATE))
def test_no_private_name_is_reached_across_packages(module: str) -> None:
    assert private_violations(module) == []


def cycles() -> list[frozenset[str]]:
    """The strongly connected components of the import graph with more than one module
    (or a module importing itself), by Tarjan's algorithm. Imports for annotations alone
    (``if TYPE_CHECKING:``) are not edges: they never run."""
    graph = {module: sorted({i.module for i in imports_of(module, runtime_only=True)})
             for module in MODULES}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.add(top)
                if top == node:
                    break
            if len(component) > 1 or node in graph[node]:
                found.append(frozenset(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_the_import_graph_has_no_cycle() -> None:
    assert [sorted(c) for c in cycles()] == []


def test_the_rules_see_what_they_forbid(tmp_path: Path) -> None:
    """The scanners find each kind of violation in a module written to break them."""
    probe = tmp_path / "probe.py"
    probe.write_text("from streams.checkpoint import CHECKPOINT_KEY\n"
                     "from streams import codec, decode_state\n"
                     "from streams.kafka import _consumed\n"
                     "import daemon.review.cli as review_cli\n"
                     "def f():\n"
                     "    return review_cli._kafka\n")
    module = "daemon.probe"

    assert face_violations(module, probe) == [
        f"{module}:1: from streams.checkpoint import CHECKPOINT_KEY (import it from streams, "
        "the package's public face)",
        f"{module}:2: decode_state is not in streams.__all__",
        f"{module}:3: from streams.kafka import _consumed (import it from streams, the "
        "package's public face)"]
    assert private_violations(module, probe) == [
        f"{module}:3: imports _consumed from streams.kafka",
        f"{module}:6: uses daemon.review.cli._kafka"]


def test_every_kafka_client_is_made_in_the_edge() -> None:
    """aiokafka's clients are built in streams/kafka.py alone, and daemon/ never imports
    aiokafka: one place configures a client and translates its errors."""
    clients = ("AIOKafkaProducer", "AIOKafkaConsumer", "AIOKafkaAdminClient")
    wrong = []
    for module, path in sorted(MODULES.items()):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and module != "streams.kafka"
                    and ast.unparse(node.func).rpartition(".")[2] in clients):
                wrong.append(f"{relative(module)}:{node.lineno}: {ast.unparse(node.func)}(...)")
            if module.startswith("daemon") and isinstance(node, ast.Import | ast.ImportFrom):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module or ""])
                wrong += [f"{relative(module)}:{node.lineno}: imports {name}"
                          for name in names if name.split(".")[0] == "aiokafka"]
    assert wrong == []
