#!/usr/bin/env python3
"""The house's numbers, from the source alone: module cycles, long classes, long modules.

    python scripts/house_numbers.py                       # the whole of src/runanywhere
    python scripts/house_numbers.py --under store         # only what lies in src/runanywhere/store
    python scripts/house_numbers.py --json                # one JSON document
    python scripts/house_numbers.py --check               # exit 1 if any limit is broken

* Module cycles: the graph of modules with an arrow for EVERY import (module level, inside a
  function, under ``TYPE_CHECKING``); ``from pkg import name`` points at ``pkg.name`` when that is
  a module, else at ``pkg``. A cycle is a strongly connected component of two or more modules (or
  a module that imports itself). Packages are not counted as importing their parents.
* Classes longer than ``--max-class`` lines (400) and modules longer than ``--max-module`` (600).

Measured with ``ast`` only: nothing is imported, so it works on a broken tree too.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "runanywhere"


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    tree: ast.Module
    lines: int


def module_name(path: Path, package_dir: Path) -> str:
    rel = path.relative_to(package_dir.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def load(package_dir: Path) -> dict[str, Module]:
    out = {}
    for path in sorted(package_dir.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        name = module_name(path, package_dir)
        out[name] = Module(name, path, ast.parse(text, str(path)), len(text.splitlines()))
    return out


def imports(mod: Module, known: set[str]) -> set[str]:
    """The modules of ``known`` that ``mod`` imports, anywhere in its body."""
    is_package = mod.path.name == "__init__.py"
    package = mod.name if is_package else mod.name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(mod.tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            for a in node.names:
                sub = f"{target}.{a.name}"
                found.add(sub if sub in known else target)
    return {t for t in found if t in known and t != mod.name} | (
        {mod.name} if mod.name in found and not is_package else set())


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module, or a self-import (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph[v]:
                out.append(sorted(comp))

    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def long_classes(mods: dict[str, Module], limit: int) -> list[tuple[str, int]]:
    out = []
    for m in mods.values():
        for node in ast.walk(m.tree):
            if isinstance(node, ast.ClassDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > limit:
                    out.append((f"{m.name}.{node.name}", length))
    return sorted(out, key=lambda x: -x[1])


def measure(package_dir: Path, under: str | None, max_class: int, max_module: int
            ) -> dict[str, object]:
    mods = load(package_dir)
    graph = {name: imports(m, set(mods)) for name, m in mods.items()}
    prefix = f"{package_dir.name}.{under}" if under else package_dir.name

    def inside(name: str) -> bool:
        return name == prefix or name.startswith(prefix + ".")

    mine = {n: m for n, m in mods.items() if inside(n)}
    return {
        "scope": prefix,
        "modules": len(mine),
        "lines": sum(m.lines for m in mine.values()),
        "cycles": [c for c in cycles(graph) if any(inside(n) for n in c)],
        "long_classes": long_classes(mine, max_class),
        "long_modules": sorted(((n, m.lines) for n, m in mine.items() if m.lines > max_module),
                               key=lambda x: -x[1]),
        "limits": {"class": max_class, "module": max_module},
    }


def report(numbers: dict[str, object]) -> str:
    limits = numbers["limits"]
    assert isinstance(limits, dict)
    out = [f"{numbers['scope']}: {numbers['modules']} modules, {numbers['lines']} lines"]
    cyc = numbers["cycles"]
    assert isinstance(cyc, list)
    out.append(f"module cycles (every import): {len(cyc)}")
    out += [f"  {' <-> '.join(c)}" for c in cyc]
    for key, what in (("long_classes", f"classes over {limits['class']} lines"),
                      ("long_modules", f"modules over {limits['module']} lines")):
        rows = numbers[key]
        assert isinstance(rows, list)
        out.append(f"{what}: {len(rows)}")
        out += [f"  {name} {n}" for name, n in rows]
    return "\n".join(out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--package", type=Path, default=PACKAGE,
                   help="the package folder (default: src/runanywhere)")
    p.add_argument("--under", help="report only modules under this subpackage (e.g. store)")
    p.add_argument("--max-class", type=int, default=400)
    p.add_argument("--max-module", type=int, default=600)
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.add_argument("--check", action="store_true", help="exit 1 if a cycle or a limit is found")
    args = p.parse_args()
    numbers = measure(args.package, args.under, args.max_class, args.max_module)
    print(json.dumps(numbers, indent=1) if args.json else report(numbers))
    broken = numbers["cycles"] or numbers["long_classes"] or numbers["long_modules"]
    return 1 if args.check and broken else 0


if __name__ == "__main__":
    raise SystemExit(main())
