"""Plugin tables: built-in parts by name, then the entry points of installed packages.

Runtimes and adapters are both found this way. A table maps a name to ``"module:attribute"`` and
the pip extra that installs what the module needs; names nobody built in come from the entry
point group, so a third-party package plugs in by being installed::

    [project.entry-points."runanywhere.runtimes"]
    openvino = "my_pkg.runtime:OpenVinoRuntime"

Nothing is imported until a name is asked for.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ModelError, RuntimeUnavailableError, install_hint


def module_available(module: str) -> bool:
    """True when ``module`` can be imported (checked without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


@dataclass(frozen=True)
class PluginTable:
    #: Entry point group of third-party plugins (``runanywhere.runtimes``).
    group: str
    #: What a plugin is, for messages (``runtime``).
    kind: str
    #: Built-in plugins: name -> (``"module:attribute"``, pip extra).
    builtins: Mapping[str, tuple[str, str]]
    #: The error for a name nobody provides (built with the name and the known names).
    unknown: Callable[[str, list[str]], ModelError]
    #: Other spellings users reach for: alias -> name.
    aliases: Mapping[str, str] = field(default_factory=dict)

    def entry_points(self) -> dict[str, importlib.metadata.EntryPoint]:
        return {ep.name: ep for ep in importlib.metadata.entry_points(group=self.group)}

    def names(self) -> list[str]:
        """Every known name, built in and installed, sorted."""
        return sorted(set(self.builtins) | set(self.entry_points()))

    def canonical(self, name: str) -> str:
        return self.aliases.get(name.lower(), name.lower())

    def load(self, name: str) -> Any:
        """The object a plugin names (a class, a factory or an instance).

        Raises the table's ``unknown`` error for a name nobody provides and
        ``RuntimeUnavailableError`` (naming the extra, or the broken package) when it cannot be
        imported.
        """
        key = self.canonical(name)
        builtin = self.builtins.get(key)
        if builtin is not None:
            target, extra = builtin
            module_name, _, attr = target.partition(":")
            try:
                module = importlib.import_module(module_name)
            except ImportError as e:
                raise RuntimeUnavailableError(
                    f"{self.kind} '{key}' needs {e.name or 'a missing module'}, which is not"
                    f" installed: {install_hint(extra)}") from e
            return getattr(module, attr)
        eps = self.entry_points()
        ep = eps.get(name) or eps.get(key)
        if ep is None:
            raise self.unknown(name, self.names())
        dist = ep.dist.name if ep.dist is not None else ep.value.split(":")[0].split(".")[0]
        try:
            return ep.load()
        except ImportError as e:
            raise RuntimeUnavailableError(
                f"{self.kind} '{name}' (from {dist}) cannot be imported: {e}; reinstall or"
                f" repair {dist}") from e
