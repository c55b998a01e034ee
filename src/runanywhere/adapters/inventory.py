"""What is installed: every adapter and runtime, the distribution that provides it, what it
handles, and whether its dependencies can be imported (``runanywhere adapters``).

Dependencies are checked with ``importlib.util.find_spec`` on the modules of each requirement of
the providing distribution (a runtime of the core: on the libraries it lists), so nothing heavy
is imported. An adapter whose dependencies are all there is imported (its module only, to read
the ``model_types`` and ``formats`` it declares); the libraries it loads models with are not.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..plugins import PluginInfo
from ..runtimes import RUNTIMES, formats_for_runtime
from . import ADAPTERS, KNOWN_ADAPTERS


@dataclass(frozen=True)
class Installed:
    """One adapter or runtime as ``runanywhere adapters`` reports it."""

    kind: str  # "adapter" | "runtime"
    name: str
    #: ``"module:attribute"`` of the class.
    target: str
    distribution: str
    version: str
    model_types: tuple[str, ...]
    formats: tuple[str, ...]
    #: Dependencies that cannot be imported (empty: all import).
    missing: tuple[str, ...]
    #: How to add what is missing (a pip command), or "".
    fix: str = ""
    #: Why the class itself could not be read, or "".
    error: str = ""

    @property
    def available(self) -> bool:
        return not self.missing and not self.error

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["model_types"] = list(self.model_types)
        d["formats"] = list(self.formats)
        d["missing"] = list(self.missing)
        d["available"] = self.available
        return d


@dataclass(frozen=True)
class AdapterChoice:
    """The adapter that would run a model, and whether it is installed (``info ID``)."""

    name: str | None
    installed: bool
    distribution: str | None = None
    version: str | None = None
    #: ``pip install <package>`` when a known adapter is not installed, else None.
    install: str | None = None

    def describe(self) -> str:
        if self.name is None:
            return "- (none for this type and format)"
        if self.installed:
            return f"{self.name} ({self.distribution} {self.version})"
        how = f": {self.install}" if self.install else ""
        return f"{self.name} (not installed{how})"


def _adapter(info: PluginInfo) -> Installed:
    types: tuple[str, ...] = ()
    formats: tuple[str, ...] = ()
    error = ""
    if info.available:  # import the adapter's module only when its libraries are there
        try:
            cls = info.entry_point.load() if info.entry_point else ADAPTERS.load(info.name)
            types = tuple(getattr(cls, "model_types", ()) or ())
            formats = tuple(getattr(cls, "formats", ()) or ())
        except Exception as e:  # a broken plugin is reported, not fatal
            error = " ".join(str(e).split())
    fix = f"pip install {info.distribution}" if info.missing else ""
    return Installed("adapter", info.name, info.target, info.distribution, info.version, types,
                     formats, info.missing, fix, error)


def installed_adapters() -> list[Installed]:
    """Every adapter registered by an installed distribution, sorted by name."""
    return [_adapter(info) for info in ADAPTERS.describe()]


def installed_runtimes() -> list[Installed]:
    """Every runtime, the core's and the plugins', sorted by name."""
    out = []
    described = {info.name: info for info in RUNTIMES.describe()}
    for name in RUNTIMES.names():
        info = described.get(name)
        target = info.target if info else RUNTIMES.builtins[name][0]
        dist, version = (info.distribution, info.version) if info else ("runanywhere", "")
        missing: tuple[str, ...] = info.missing if info else ()
        fix = ""
        error = ""
        try:
            obj = RUNTIMES.load(name)
            runtime = obj() if isinstance(obj, type) else obj
            check = getattr(runtime, "missing", None)
            if callable(check):  # the core's runtimes list the libraries they load models with
                missing = tuple(check())
            extra = getattr(runtime, "extra", "")
            if missing and extra and dist == "runanywhere":
                fix = f"pip install 'runanywhere[{extra}]'"
        except Exception as e:  # a broken plugin is reported, not fatal
            error = " ".join(str(e).split())
        out.append(Installed("runtime", name, target, dist, version, (),
                             tuple(formats_for_runtime(name)), missing, fix, error))
    return out


def not_installed_adapters() -> dict[str, str]:
    """The project's adapters whose package is not installed: name -> distribution."""
    installed = set(ADAPTERS.names())
    return {name: dist for name, (dist, _) in KNOWN_ADAPTERS.items() if name not in installed}


def adapter_choice(name: str | None) -> AdapterChoice:
    """Whether the adapter ``name`` (a model's ``adapter_name``) is installed, and from where."""
    if name is None:
        return AdapterChoice(None, False)
    for info in ADAPTERS.describe(only=name):
        if info.name == name:
            return AdapterChoice(name, True, info.distribution, info.version)
    return AdapterChoice(name, False, install=ADAPTERS.install_command(name))


def require_adapter(name: str, model_id: str) -> None:
    """Raise ``RuntimeUnavailableError`` (naming the package to install) unless the adapter
    ``name`` and the libraries it needs are installed: checked before a model is downloaded
    for it, without importing anything heavy."""
    from ..errors import RuntimeUnavailableError

    for info in ADAPTERS.describe(only=name):
        if info.name == name:
            if info.missing:
                raise RuntimeUnavailableError(
                    f"the adapter '{name}' that runs {model_id} needs {', '.join(info.missing)},"
                    f" which is not installed: pip install {info.distribution}")
            return
    how = ADAPTERS.install_command(name)
    raise RuntimeUnavailableError(f"the adapter '{name}' that runs {model_id} is not installed"
                                  + (f": {how}" if how else ""))


__all__ = ["AdapterChoice", "Installed", "adapter_choice", "installed_adapters",
           "installed_runtimes", "not_installed_adapters", "require_adapter"]
