"""The shape of the code: the model library stands alone (it never imports the service), no two modules import
each other (directly or around a loop, counting the imports inside functions), and no source file is long.

Imports are read from the source (``ast``), not executed, so a lazy import inside a function counts as much as
one at the top: both make one module depend on the other."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("model", "service")
MAX_LINES = 450


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_files() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in sorted((REPO / package).rglob("*.py"))}


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules ``path`` imports (a name imported from a package counts as its submodule when it
    is one)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            submodules = {f"{target}.{alias.name}" for alias in node.names} & known
            found.update(submodules)
            if len(submodules) < len(node.names):  # a name defined by the module itself: it depends on it
                found.add(target)
    return {module for module in found if module in known and module != name}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    files = source_files()
    return {name: imported_modules(name, path, set(files)) for name, path in files.items()}


def test_the_graph_sees_lazy_and_relative_imports(graph):
    # A check that cannot find edges would pass vacuously: these are known ones (relative, lazy, absolute).
    assert "service.worker.batch" in graph["service.worker.process"]
    assert "service.worker.loading" in graph["service.worker.process"]  # inside run_worker()
    assert "model.performance" in graph["service.worker.loading"]  # inside load_model()
    assert "model.training.stage0" in graph["model.training.stages"]


def test_the_model_library_never_imports_the_service(graph):
    offenders = {name: sorted(m for m in imports if m.split(".")[0] == "service")
                 for name, imports in graph.items() if name.split(".")[0] == "model"}
    assert {name: mods for name, mods in offenders.items() if mods} == {}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_cycle_detection_finds_a_loop():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles(graph):
    assert cycles(graph) == []


def test_no_source_file_is_long():
    files = [p for package in (*PACKAGES, "scripts") for p in (REPO / package).rglob("*.py")]
    long = {str(p.relative_to(REPO)): n for p in files if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}
