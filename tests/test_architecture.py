"""The house stays layered: imports point down the layer order, never up, lazy ones included.

Walks every module of ``src/runanywhere`` with ``ast`` (module-level imports, imports inside
functions and ``TYPE_CHECKING`` blocks alike) and fails on an arrow that points up, on a reach
into the disk tier from outside the store, on a private name imported across packages, on a
module cycle and on a class or module too long. The layer order is read from the map,
``ARCHITECTURE.md``: editing that table is the only way to change it.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

import runanywhere

SRC = Path(runanywhere.__file__).parent
ROOT = Path(__file__).resolve().parent.parent
MAP = ROOT / "ARCHITECTURE.md"
LAYERS_START = "<!-- layers:start"
LAYERS_END = "<!-- layers:end -->"


def read_layers(text: str) -> list[str]:
    """The packages of the map's layer table, bottom to top.

    Rows are ``| N | `name` | job |``; the numbers must be 1..len, each once (their order in
    the file does not matter: the map lists the top first, as a map reads)."""
    if LAYERS_START not in text or LAYERS_END not in text:
        raise ValueError(f"ARCHITECTURE.md lacks the markers {LAYERS_START!r} ... {LAYERS_END!r}")
    table = text.split(LAYERS_START, 1)[1].split(LAYERS_END, 1)[0]
    rows = re.findall(r"^\|\s*(\d+)\s*\|\s*`([\w.]+)`\s*\|", table, re.MULTILINE)
    ranks = sorted(int(n) for n, _ in rows)
    if not rows or ranks != list(range(1, len(rows) + 1)):
        raise ValueError(f"layer numbers must be 1..{len(rows)}, each once: got {ranks}")
    names = [name for _, name in sorted(rows, key=lambda r: int(r[0]))]
    if len(set(names)) != len(names):
        raise ValueError(f"a package is on two rows: {names}")
    return names


#: Bottom to top. A module may import its own node and any node below it.
LAYERS = read_layers(MAP.read_text(encoding="utf-8"))
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
    out: list[tuple[int, str, list[str]]] = []
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
    assert nodes <= set(RANK), (f"modules outside the layer table of ARCHITECTURE.md:"
                                f" {nodes - set(RANK)}")


def test_every_layer_of_the_map_exists() -> None:
    nodes = {_node(_module_name(p)) for p in _sources()}
    assert set(RANK) <= nodes, f"rows of ARCHITECTURE.md with no module: {set(RANK) - nodes}"


def test_the_map_is_read_in_its_numbered_order() -> None:
    table = ("<!-- layers:start -->\n| layer | package | job |\n|---:|---|---|\n"
             "| 2 | `b` | above |\n| 1 | `a` | below |\n<!-- layers:end -->")
    assert read_layers(table) == ["a", "b"]
    for broken in (table.replace("| 2 |", "| 3 |"), table.replace("`b`", "`a`"),
                   table.replace("<!-- layers:end -->", "")):
        with pytest.raises(ValueError):
            read_layers(broken)


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


# -- the one-job rules, over all of src/runanywhere ------------------------------------------------
# No module cycle (every import counts: module level, inside functions, under TYPE_CHECKING), no
# class over 400 lines, no module over 600. The numbers come from scripts/house_numbers.py, the
# same measure ARCHITECTURE.md quotes.

#: What still breaks a rule, each with the issue that removes it. An entry that no longer
#: breaks its rule fails the test until it is removed here: the list can only shrink.
ALLOWED_CYCLES: dict[frozenset[str], str] = {}
ALLOWED_LONG_CLASSES: dict[str, str] = {}
ALLOWED_LONG_MODULES: dict[str, str] = {}


def _house_numbers() -> ModuleType:
    """scripts/house_numbers.py, loaded from its file (scripts/ is not a package)."""
    path = ROOT / "scripts" / "house_numbers.py"
    spec = importlib.util.spec_from_file_location("house_numbers", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("house_numbers", module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def numbers() -> dict[str, object]:
    measured: dict[str, object] = _house_numbers().measure(SRC, None, 400, 600)
    return measured


def test_the_measure_finds_a_cycle_of_every_kind_of_import(tmp_path: Path) -> None:
    """A lazy import and a TYPE_CHECKING import close a cycle as much as a top-level one."""
    pkg = tmp_path / "house"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from . import b\n")
    (pkg / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                              "    from .c import C\n")
    (pkg / "c.py").write_text("from house.a import f\n")
    (pkg / "d.py").write_text("from . import a\n")
    (pkg / "big.py").write_text("class Big:\n" + "    x = 1\n" * 450)
    found = _house_numbers().measure(pkg, None, 400, 600)
    assert found["cycles"] == [["house.a", "house.b", "house.c"]]
    assert found["long_classes"] == [("house.big.Big", 451)]
    assert found["long_modules"] == []


def test_no_module_cycle(numbers: dict[str, object]) -> None:
    cycles = numbers["cycles"]
    assert isinstance(cycles, list)
    found = {frozenset(c) for c in cycles}
    new = [" <-> ".join(sorted(c)) for c in found - set(ALLOWED_CYCLES)]
    assert not new, "import cycles (every import counted):\n" + "\n".join(new)
    gone = [" <-> ".join(sorted(c)) for c in set(ALLOWED_CYCLES) - found]
    assert not gone, "no longer a cycle: remove it from ALLOWED_CYCLES:\n" + "\n".join(gone)


def test_no_class_over_400_lines(numbers: dict[str, object]) -> None:
    rows = numbers["long_classes"]
    assert isinstance(rows, list)
    found = {name: n for name, n in rows}
    new = [f"{name} {n} lines" for name, n in found.items() if name not in ALLOWED_LONG_CLASSES]
    assert not new, "classes over 400 lines:\n" + "\n".join(new)
    gone = sorted(set(ALLOWED_LONG_CLASSES) - set(found))
    assert not gone, f"no longer over 400 lines: remove from ALLOWED_LONG_CLASSES: {gone}"


def test_no_module_over_600_lines(numbers: dict[str, object]) -> None:
    rows = numbers["long_modules"]
    assert isinstance(rows, list)
    found = {name: n for name, n in rows}
    new = [f"{name} {n} lines" for name, n in found.items() if name not in ALLOWED_LONG_MODULES]
    assert not new, "modules over 600 lines:\n" + "\n".join(new)
    gone = sorted(set(ALLOWED_LONG_MODULES) - set(found))
    assert not gone, f"no longer over 600 lines: remove from ALLOWED_LONG_MODULES: {gone}"
