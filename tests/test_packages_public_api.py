"""The adapter packages use the core's public API only (the convention of packages/README.md):
no store/, transfer/, shared/, cli/ or serve/, no private module or name of the core, and no
package imports another package. Walks every module of ``packages/*/src`` with ``ast`` (imports
inside functions and ``TYPE_CHECKING`` blocks included)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted((ROOT / "packages").glob("*/src/*/**/*.py"))

#: The core's modules an adapter package may import from.
PUBLIC = {"runanywhere", "runanywhere.adapters", "runanywhere.adapters.base",
          "runanywhere.adapters.audio", "runanywhere.adapters.tts", "runanywhere.catalog",
          "runanywhere.errors", "runanywhere.result", "runanywhere.settings",
          "runanywhere.registry", "runanywhere.runtimes", "runanywhere.progress"}


def imports(path: Path) -> list[tuple[int, str, list[str]]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            out.append((node.lineno, node.module or "", [a.name for a in node.names]))
    return out


def own_package(path: Path) -> str:
    return path.relative_to(ROOT / "packages").parts[2]  # <family>/src/<package>/...


def test_there_are_packages_to_check() -> None:
    assert {own_package(p) for p in SOURCES} >= {
        "runanywhere_vad_silero", "runanywhere_stt_whisper", "runanywhere_tts_speecht5",
        "runanywhere_tts_system"}


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT / "packages")))
def test_only_the_public_api(path: Path) -> None:
    mine = own_package(path)
    wrong = []
    for line, module, names in imports(path):
        top = module.split(".")[0]
        where = f"{path.relative_to(ROOT)}:{line} {module}"
        if top == "runanywhere":
            if module not in PUBLIC:
                wrong.append(f"{where}: not the core's public API")
            wrong += [f"{where}.{n}: a private name" for n in names if n.startswith("_")]
        elif top.startswith("runanywhere_") and top != mine:
            wrong.append(f"{where}: another adapter package")
    assert not wrong, "\n".join(wrong)
