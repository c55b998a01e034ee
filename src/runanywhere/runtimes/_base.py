"""Shared pieces of the built-in runtimes: dependency checks and picking the file in a folder."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

from .. import plugins
from ..errors import ModelError, RuntimeUnavailableError, install_hint


class BuiltinRuntime:
    """Base of the built-in runtimes (plugins need not use it; see ``runtimes.Runtime``)."""

    name: str = ""
    extra: str = ""
    #: Import names the runtime needs; each entry lists alternatives (any one will do).
    requires: ClassVar[tuple[tuple[str, ...], ...]] = ()
    #: File suffixes the runtime loads, used to pick the file inside a model's folder.
    suffixes: ClassVar[tuple[str, ...]] = ()

    def missing(self) -> list[str]:
        """The required modules that cannot be imported (an alternatives group as ``a or b``)."""
        return [" or ".join(group) for group in self.requires
                if not any(plugins.module_available(m) for m in group)]

    def unavailable_error(self, what: str, cause: BaseException | None = None
                          ) -> RuntimeUnavailableError:
        detail = f" ({cause})" if cause is not None else ""
        return RuntimeUnavailableError(
            f"runtime '{self.name}' needs {what}, which is not installed{detail}: "
            f"{install_hint(self.extra)}"
        )

    def ensure_available(self) -> None:
        """Raise RuntimeUnavailableError naming the extra when a required module is missing."""
        gone = self.missing()
        if gone:
            raise self.unavailable_error(", ".join(gone))

    def import_first(self, *modules: str) -> ModuleType:
        """Import the first of ``modules`` that imports; RuntimeUnavailableError if none does."""
        last: ImportError | None = None
        for m in modules:
            try:
                return importlib.import_module(m)
            except ImportError as e:
                last = e
        raise self.unavailable_error(" or ".join(modules), last)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r} extra={self.extra!r}>"


def pop_options(options: dict[str, Any], allowed: set[str], runtime: str) -> None:
    """Reject options the runtime does not know (a typo must not pass silently)."""
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ModelError(
            f"unknown option(s) for runtime '{runtime}': {', '.join(unknown)} "
            f"(accepted: {', '.join(sorted(allowed)) or 'none'})"
        )


def resolve_model_file(path: Path, suffixes: tuple[str, ...], file: str | None = None,
                       runtime: str = "") -> Path:
    """The file to load: ``path`` itself, or inside the folder ``path``.

    In a folder, ``file`` (relative to the folder) picks one; without it the folder must hold
    exactly one file with one of ``suffixes`` (searched recursively).
    """
    path = Path(path)
    if file is not None:
        if not path.is_dir():
            raise ModelError(f"file={file!r} given but {path} is not a folder")
        root = path.resolve()
        target = (root / file).resolve()
        if not target.is_relative_to(root):
            raise ModelError(f"file={file!r} points outside the model folder {path}")
        if not target.is_file():
            raise ModelError(f"no file {file!r} in the model folder {path}")
        return target
    if path.is_file():
        return path
    if not path.is_dir():
        raise ModelError(f"model path does not exist: {path}")
    found = sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(suffixes))
    label = "/".join(suffixes)
    if not found:
        raise ModelError(f"no {label} file in the model folder {path}")
    if len(found) > 1:
        names = ", ".join(str(p.relative_to(path)) for p in found)
        raise ModelError(
            f"the model folder {path} holds several {label} files ({names}); "
            f"pick one with file=... (runtime '{runtime}')"
        )
    return found[0]
