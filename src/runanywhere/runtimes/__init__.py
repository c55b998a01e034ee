"""Runtimes: turn a downloaded model file (or folder) into something that runs.

A runtime is a small object with a ``name``, the pip ``extra`` that installs its library, and
``load(path, meta, **options)``. The table is a plugin table:

1. the built-in runtimes below (``onnx``, ``tflite``, ``torchscript``, ``safetensors``), then
2. the entry points of the group ``runanywhere.runtimes``, so a third-party package adds a
   runtime by being installed::

       [project.entry-points."runanywhere.runtimes"]
       openvino = "my_pkg.runtime:OpenVinoRuntime"   # a class (built with no arguments) or object

Nothing heavy is imported here: each runtime imports its library inside ``load``. Asking for a
runtime whose library is missing raises :class:`~runanywhere.errors.RuntimeUnavailableError`
naming the extra (``pip install 'runanywhere[onnx]'``); an unknown name raises
:class:`UnknownRuntimeError` listing the known ones.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..errors import ModelError, RuntimeUnavailableError

if TYPE_CHECKING:
    from ..catalog.model import ModelMetadata

ENTRY_POINT_GROUP = "runanywhere.runtimes"

#: Built-in runtimes, imported only when asked for: name -> "module:attribute".
BUILTIN_RUNTIMES: dict[str, str] = {
    "onnx": "runanywhere.runtimes.onnx:OnnxRuntime",
    "tflite": "runanywhere.runtimes.tflite:TFLiteRuntime",
    "torchscript": "runanywhere.runtimes.torchscript:TorchScriptRuntime",
    "safetensors": "runanywhere.runtimes.safetensors_rt:SafetensorsRuntime",
}

#: Other spellings users reach for.
ALIASES: dict[str, str] = {
    "onnxruntime": "onnx",
    "ort": "onnx",
    "litert": "tflite",
    "tensorflow": "tflite",
    "pytorch": "torchscript",
    "torch": "torchscript",
}

#: Catalog ``format`` -> the runtime that loads it by default.
_DEFAULT_FOR_FORMAT: dict[str, str] = {
    "onnx": "onnx",
    "tflite": "tflite",
    "tensorflow": "tflite",
    "pytorch": "torchscript",
    "safetensors": "safetensors",
}


@runtime_checkable
class Runtime(Protocol):
    """What the registry needs from a runtime."""

    #: The name users pass as ``runtime=`` (``"onnx"``).
    name: str
    #: The pip extra that installs the runtime's library (``"onnx"`` -> ``runanywhere[onnx]``).
    extra: str

    def load(self, path: Path, meta: ModelMetadata | None, **options: Any) -> Any:
        """Load the model at ``path`` (a file, or the model's folder) and return the session."""
        ...


class UnknownRuntimeError(ModelError, LookupError):
    """No runtime with this name, built in or installed as a plugin."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        super().__init__(
            f"unknown runtime '{name}' (known runtimes: {', '.join(known) or 'none'}){hint}"
        )


def install_hint(extra: str) -> str:
    return f"pip install 'runanywhere[{extra}]'"


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    eps = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    return {ep.name: ep for ep in eps}


def _instantiate(obj: Any, where: str) -> Runtime:
    runtime = obj() if isinstance(obj, type) else obj
    if not isinstance(runtime, Runtime):
        raise ModelError(f"{where} is not a runanywhere runtime (needs name, extra and load())")
    return runtime


def _check_available(runtime: Runtime) -> None:
    check = getattr(runtime, "ensure_available", None)
    if callable(check):
        check()


def get_runtime(name: str) -> Runtime:
    """The runtime called ``name``, with its library checked to be importable.

    Raises :class:`UnknownRuntimeError` for a name nobody provides and
    :class:`RuntimeUnavailableError` (naming the pip extra) when the library is not installed.
    """
    key = ALIASES.get(name.lower(), name.lower())
    target = BUILTIN_RUNTIMES.get(key)
    if target is not None:
        module_name, _, attr = target.partition(":")
        runtime = _instantiate(getattr(importlib.import_module(module_name), attr), target)
        _check_available(runtime)
        return runtime

    eps = _entry_points()
    ep = eps.get(name) or eps.get(key)
    if ep is None:
        raise UnknownRuntimeError(name, available_runtimes())
    dist = ep.dist.name if ep.dist is not None else ep.value.split(":")[0].split(".")[0]
    try:
        loaded = ep.load()
    except ImportError as e:
        raise RuntimeUnavailableError(
            f"runtime '{name}' (from {dist}) cannot be imported: {e}; reinstall or repair {dist}"
        ) from e
    runtime = _instantiate(loaded, f"entry point '{ep.name} = {ep.value}'")
    _check_available(runtime)
    return runtime


def available_runtimes(*, installed_only: bool = False) -> list[str]:
    """Names of every known runtime (built-in and plugins), sorted.

    With ``installed_only=True`` only the runtimes whose library can be imported are listed
    (found without importing the library).
    """
    names = set(BUILTIN_RUNTIMES) | set(_entry_points())
    if not installed_only:
        return sorted(names)
    out = []
    for n in sorted(names):
        try:
            get_runtime(n)
        except ModelError:
            continue
        out.append(n)
    return out


def default_runtime_for(format: str) -> str:
    """The runtime that loads a catalog ``format`` by default (``onnx`` -> ``onnx``)."""
    try:
        return _DEFAULT_FOR_FORMAT[format.lower()]
    except KeyError:
        raise ModelError(
            f"no default runtime for format '{format}'; pass runtime= one of "
            f"{', '.join(available_runtimes())}"
        ) from None


def module_available(module: str) -> bool:
    """True when ``module`` can be imported (checked without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


__all__ = [
    "ALIASES",
    "BUILTIN_RUNTIMES",
    "ENTRY_POINT_GROUP",
    "Runtime",
    "UnknownRuntimeError",
    "available_runtimes",
    "default_runtime_for",
    "get_runtime",
    "install_hint",
    "module_available",
]
