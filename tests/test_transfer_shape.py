"""``transfer/`` and ``shared/`` stay rooms of one job each: no module cycle among their modules
(every import counted: module level, inside functions, under ``TYPE_CHECKING``), no class over
400 lines, no module over 600 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import runanywhere

SRC = Path(runanywhere.__file__).parent
PACKAGES = ("transfer", "shared")
MAX_CLASS = 400
MAX_MODULE = 600


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported(path: Path) -> set[str]:
    """Every module ``path`` imports (absolute names), wherever the import statement is."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            out.add(target)
            # ``from . import x`` (and ``from .pkg import mod``) may import submodules.
            out |= {f"{target}.{a.name}" for a in node.names}
    return out


def graph() -> dict[str, set[str]]:
    files = [p for pkg in PACKAGES for p in sorted((SRC / pkg).rglob("*.py"))]
    nodes = {module_name(p): p for p in files}
    return {name: {t for t in imported(path) if t in nodes and t != name}
            for name, path in nodes.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    """The positive control: a cycle of three and one of two, beside a tree."""
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"e"}, "e": {"d"}, "f": {"a"}}
    assert sorted(cycles(edges)) == [["a", "b", "c"], ["d", "e"]]


def test_no_module_cycle() -> None:
    edges = graph()
    assert "runanywhere.transfer.fetch" in edges and "runanywhere.shared.tier" in edges
    assert cycles(edges) == []


@pytest.mark.parametrize("package", PACKAGES)
def test_no_long_module_or_class(package: str) -> None:
    long = []
    for path in sorted((SRC / package).rglob("*.py")):
        text = path.read_text()
        if text.count("\n") > MAX_MODULE:
            long.append(f"{path.relative_to(SRC)}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef):
                n = (node.end_lineno or node.lineno) - node.lineno + 1
                if n > MAX_CLASS:
                    long.append(f"{path.relative_to(SRC)}: class {node.name} {n} lines")
    assert not long, "\n".join(long)
