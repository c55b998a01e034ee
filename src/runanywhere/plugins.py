"""Plugin tables: built-in parts by name, then the entry points of installed packages.

Runtimes and adapters are both found this way. A table maps a name to ``"module:attribute"`` and
the pip extra that installs what the module needs; names nobody built in come from the entry
point group, so a third-party package plugs in by being installed::

    [project.entry-points."runanywhere.runtimes"]
    openvino = "my_pkg.runtime:OpenVinoRuntime"

A table may also know plugins it does not ship (``not_installed``: name -> the distribution and
the core's extra that install it), so asking for one of those names the package to install
instead of calling the name unknown.

Nothing is imported until a name is asked for; ``describe`` reports what is installed (the
distribution, its version, whether its requirements can be imported) without importing the
plugins' libraries.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import ModelError, PluginNotInstalledError, RuntimeUnavailableError, install_hint

if TYPE_CHECKING:
    # Imported where entry points or distributions are read: importlib.metadata (email,
    # zipfile, csv...) costs ~20 ms, and a table that is only asked for a built-in part never
    # needs it.
    import importlib.metadata


def module_available(module: str) -> bool:
    """True when ``module`` can be imported (checked without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


@dataclass(frozen=True)
class PluginInfo:
    """One installed plugin as ``runanywhere adapters`` shows it (nothing of it imported)."""

    name: str
    #: ``"module:attribute"``.
    target: str
    #: The distribution that provides it (``runanywhere-vad-silero``) and its version.
    distribution: str
    version: str
    #: Requirements of the distribution that cannot be imported (empty: all import).
    missing: tuple[str, ...] = ()
    #: The entry point itself (``entry_point.load()`` imports the plugin).
    entry_point: importlib.metadata.EntryPoint | None = field(default=None, compare=False,
                                                               repr=False)

    @property
    def available(self) -> bool:
        return not self.missing


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
    #: Plugins the project publishes as packages of their own: name -> (distribution, extra of
    #: the core that installs it, or ""), for the message when one is not installed.
    not_installed: Mapping[str, tuple[str, str]] = field(default_factory=dict)

    def entry_points(self) -> dict[str, importlib.metadata.EntryPoint]:
        import importlib.metadata

        return {ep.name: ep for ep in importlib.metadata.entry_points(group=self.group)}

    def names(self) -> list[str]:
        """Every installed name, built in and from entry points, sorted."""
        return sorted(set(self.builtins) | set(self.entry_points()))

    def canonical(self, name: str) -> str:
        return self.aliases.get(name.lower(), name.lower())

    def is_installed(self, name: str) -> bool:
        key = self.canonical(name)
        return key in self.builtins or bool({name, key} & set(self.entry_points()))

    def install_command(self, name: str) -> str | None:
        """``pip install <distribution>`` for a plugin the project knows but ships apart."""
        known = self.not_installed.get(self.canonical(name))
        return f"pip install {known[0]}" if known else None

    def load(self, name: str) -> Any:
        """The object a plugin names (a class, a factory or an instance).

        Raises ``PluginNotInstalledError`` (naming the package) for a known plugin whose package
        is not installed, the table's ``unknown`` error for a name nobody provides and
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
            known = self.not_installed.get(key)
            if known is not None:
                raise PluginNotInstalledError(self.kind, key, known[0], known[1] or None)
            raise self.unknown(name, self.names())
        dist = _dist_name(ep)
        try:
            return ep.load()
        except ImportError as e:
            raise RuntimeUnavailableError(
                f"{self.kind} '{name}' (from {dist}) cannot be imported: {e}; reinstall or"
                f" repair {dist}") from e

    def describe(self, only: str | None = None) -> list[PluginInfo]:
        """Every plugin installed through an entry point (``only``: just the one of that name),
        with its distribution and whether the distribution's requirements import (found with
        ``find_spec``: nothing imported; the slow part, so a caller asking about one plugin
        does not check them all)."""
        out = []
        installed = _Installed()  # each requirement looked up once for every plugin
        for name, ep in sorted(self.entry_points().items()):
            if only is not None and name != only:
                continue
            dist = ep.dist
            missing = tuple(missing_requirements(dist, installed)) if dist is not None else ()
            out.append(PluginInfo(name, ep.value, _dist_name(ep),
                                  dist.version if dist is not None else "", missing, ep))
        return out


def _dist_name(ep: importlib.metadata.EntryPoint) -> str:
    if ep.dist is not None:
        return str(ep.dist.name)
    return ep.value.split(":")[0].split(".")[0]


# -- requirements ---------------------------------------------------------------------------------

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _applies(marker: str) -> bool:
    """Does an environment marker hold here? Extras never do (only what is always needed)."""
    if "extra" in marker:
        return False
    try:
        from packaging.markers import Marker
    except ImportError:  # without packaging, a requirement with a marker counts as needed
        return True
    return bool(Marker(marker).evaluate())


def _modules_of(dist: importlib.metadata.Distribution) -> list[str]:
    """The top-level modules a distribution installs (from its file list; no import)."""
    top = (dist.read_text("top_level.txt") or "").split()
    if top:
        return top
    mods = set()
    for f in dist.files or ():
        first = f.parts[0]
        if first.endswith((".dist-info", ".data")) or first in ("..", "__pycache__"):
            continue
        if len(f.parts) > 1 or first.endswith(".py"):
            mods.add(first.removesuffix(".py"))
    return sorted(mods)


class _Installed:
    """Distributions looked up by name, and their modules, each found once per report (a
    requirement such as numpy is shared by most packages; reading metadata is the slow part)."""

    def __init__(self) -> None:
        self._dists: dict[str, importlib.metadata.Distribution | None] = {}
        self._modules: dict[str, list[str]] = {}

    def distribution(self, name: str) -> importlib.metadata.Distribution | None:
        import importlib.metadata

        key = _normalize(name)
        if key not in self._dists:
            try:  # found by its folder's name: no METADATA is parsed
                self._dists[key] = importlib.metadata.distribution(name)
            except importlib.metadata.PackageNotFoundError:
                self._dists[key] = None
        return self._dists[key]

    def modules(self, name: str, dist: importlib.metadata.Distribution) -> list[str]:
        key = _normalize(name)
        if key not in self._modules:
            self._modules[key] = _modules_of(dist)
        return self._modules[key]


def missing_requirements(dist: importlib.metadata.Distribution,
                         installed: _Installed | None = None) -> list[str]:
    """The distribution's unconditional requirements that are not installed or whose modules
    cannot be found (``find_spec``; nothing is imported)."""
    installed = installed or _Installed()
    out = []
    for req in dist.requires or ():
        spec, _, marker = req.partition(";")
        if marker and not _applies(marker.strip()):
            continue
        m = _NAME.match(spec)
        if m is None:
            continue
        name = m.group(1)
        needed = installed.distribution(name)
        if needed is None:
            out.append(name)
            continue
        modules = installed.modules(name, needed)
        if modules and not any(module_available(mod) for mod in modules):
            out.append(name)
    return out
