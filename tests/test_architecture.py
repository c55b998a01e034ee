"""The house stays layered: imports point down the layer order, never up, lazy ones included.

Walks every module of ``src/runanywhere`` with ``ast`` (module-level imports, imports inside
functions and ``TYPE_CHECKING`` blocks alike) and fails on an arrow that points up, on a reach
into the disk tier from outside the store, and on a private name imported across packages.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import runanywhere

SRC = Path(runanywhere.__file__).parent
#: Bottom to top. A module may import its own node and any node below it.
LAYERS = ["redact", "errors", "units", "logs", "retry", "result", "settings", "progress", "plugins",
          "catalog", "runtimes", "store", "shared", "transfer", "registry", "adapters", "serve",
          "cli", "__main__"]
RANK = {name: i for i, name in enumerate(LAYERS)}


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, absolute module, imported names) of every import in the file."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            names = [a.name for a in node.names]
            out.append((node.lineno, target, names))
            # ``from . import x`` / ``from .. import x`` import the submodules x.
            out += [(node.lineno, f"{target}.{n}", []) for n in names if not node.module]
    return out


def _node(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "runanywhere" or len(parts) < 2:
        return None
    return parts[1]


def _sources() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if p != SRC / "__init__.py")


def test_every_module_has_a_layer() -> None:
    nodes = {_node(_module_name(p)) for p in _sources()}
    assert nodes <= set(RANK), f"modules outside the layer list: {nodes - set(RANK)}"


def test_imports_point_down() -> None:
    upward = []
    for path in _sources():
        here = _node(_module_name(path))
        assert here is not None
        for line, target, _ in _imports(path):
            there = _node(target)
            if there is not None and there in RANK and RANK[there] > RANK[here]:
                upward.append(f"{path.relative_to(SRC)}:{line} {here} -> {there} ({target})")
    assert not upward, "imports that point up the layers:\n" + "\n".join(upward)


def test_nothing_outside_the_store_touches_the_disk_tier() -> None:
    reaches = []
    for path in _sources():
        if _node(_module_name(path)) == "store":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("disk", "index") and (
                    (isinstance(node.value, ast.Attribute) and node.value.attr == "cache")
                    or node.attr == "disk"):
                reaches.append(f"{path.relative_to(SRC)}:{node.lineno} .{node.attr}")
        for line, target, _ in _imports(path):
            if target in ("runanywhere.store.disk", "runanywhere.store.index",
                          "runanywhere.store.locks"):
                reaches.append(f"{path.relative_to(SRC)}:{line} imports {target}")
    assert not reaches, "reaches into the disk tier from outside the store:\n" + "\n".join(reaches)


def test_no_private_name_crosses_a_package() -> None:
    private = []
    for path in _sources():
        here = _node(_module_name(path))
        for line, target, names in _imports(path):
            if _node(target) not in (None, here):
                private += [f"{path.relative_to(SRC)}:{line} {target}.{n}" for n in names
                            if n.startswith("_")]
    assert not private, "private names imported from another package:\n" + "\n".join(private)


@pytest.mark.parametrize("name", ["CacheEntry", "CacheHit", "Catalog", "FetchConfig", "PrunePlan",
                                  "VerifyResult", "ModelRegistry", "BlockingRegistry"])
def test_public_types_are_exported(name: str) -> None:
    assert name in runanywhere.__all__
    assert getattr(runanywhere, name).__name__ == name


#: Packages held to the one-job rules: no import cycle between their modules (lazy and
#: TYPE_CHECKING imports count), no class over 400 lines, no module over 600.
ONE_JOB_PACKAGES = ["serve"]


def _module_graph(package: str) -> dict[str, set[str]]:
    prefix = f"runanywhere.{package}"
    paths = [p for p in _sources() if _module_name(p).startswith(prefix)]
    modules = {_module_name(p) for p in paths}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for path in paths:
        here = _module_name(path)
        for _, target, _names in _imports(path):
            if target in modules and target != here:
                graph[here].add(target)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of the graph (as a path that returns to its start), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return [*path[path.index(n):], n]
            if n not in state and (found := visit(n)):
                return found
        path.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("package", ONE_JOB_PACKAGES)
def test_no_module_cycle_inside(package: str) -> None:
    graph = _module_graph(package)
    assert len(graph) > 1
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize("package", ONE_JOB_PACKAGES)
def test_no_class_over_400_lines_no_module_over_600(package: str) -> None:
    too_big = []
    for path in _sources():
        if not _module_name(path).startswith(f"runanywhere.{package}"):
            continue
        text = path.read_text()
        if (n := len(text.splitlines())) > 600:
            too_big.append(f"{path.relative_to(SRC)}: {n} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
                length = node.end_lineno - node.lineno + 1
                if length > 400:
                    too_big.append(f"{path.relative_to(SRC)}: class {node.name} {length} lines")
    assert not too_big, "\n".join(too_big)
