"""Runtimes: turn a downloaded model file (or folder) into something that runs.

A runtime is a small object with a ``name``, the pip ``extra`` that installs its library, and
``load(path, meta, **options)``. The table is a plugin table:

1. the built-in runtimes below (``onnx``, ``tflite``, ``torchscript``, ``safetensors``), then
2. the entry points of the group ``runanywhere.runtimes``, so a third-party package adds a
   runtime by being installed::

       [project.entry-points."runanywhere.runtimes"]
       openvino = "my_pkg.runtime:OpenVinoRuntime"   # a class (built with no arguments) or object

Two optional methods let the registry keep a runtime's models within the loaded-model budget
(``Settings.max_loaded_memory``): ``memory_estimate(session) -> int | None``, the bytes a loaded
session takes (the llama runtime: weights plus the KV cache of the context it was opened with;
without it a model costs its catalog ``requirements.memory``, else its size), and
``close(session)``, which frees a session the registry unloads (on eviction for room,
``unload_model`` or ``clear_cache``).

Nothing heavy is imported here: each runtime imports its library inside ``load``. Asking for a
runtime whose library is missing raises :class:`~runanywhere.errors.RuntimeUnavailableError`
naming the extra (``pip install 'runanywhere[onnx]'``); an unknown name raises
:class:`~runanywhere.errors.UnknownRuntimeError` listing the known ones. The lookup itself is the
shared plugin table of :mod:`runanywhere.plugins` (adapters use the same one).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..errors import ModelError, UnknownRuntimeError
from ..plugins import PluginTable, module_available
from ._base import BuiltinRuntime, pop_options, resolve_model_file

if TYPE_CHECKING:
    from ..catalog.model import ModelMetadata

ENTRY_POINT_GROUP = "runanywhere.runtimes"

#: Built-in runtimes, imported only when asked for: name -> ("module:attribute", extra). The
#: modules import their library inside ``load``, so importing them is cheap.
BUILTIN_RUNTIMES: dict[str, tuple[str, str]] = {
    "onnx": ("runanywhere.runtimes.onnx:OnnxRuntime", "onnx"),
    "tflite": ("runanywhere.runtimes.tflite:TFLiteRuntime", "tflite"),
    "torchscript": ("runanywhere.runtimes.torchscript:TorchScriptRuntime", "torch"),
    "safetensors": ("runanywhere.runtimes.safetensors_rt:SafetensorsRuntime", "safetensors"),
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

#: Runtimes the project ships in adapter packages: name -> (distribution, the core's extra), so
#: asking for one that is not installed names the package instead of "unknown runtime".
KNOWN_RUNTIMES: dict[str, tuple[str, str]] = {
    "ctranslate2": ("runanywhere-stt-whisper", "stt"),
    "llama": ("runanywhere-llm-llamacpp", "llm"),
}

RUNTIMES = PluginTable(ENTRY_POINT_GROUP, "runtime", BUILTIN_RUNTIMES, UnknownRuntimeError,
                       ALIASES, not_installed=KNOWN_RUNTIMES)

#: Catalog ``format`` -> the runtime that loads it by default.
_DEFAULT_FOR_FORMAT: dict[str, str] = {
    "onnx": "onnx",
    "tflite": "tflite",
    "tensorflow": "tflite",
    "pytorch": "torchscript",
    "safetensors": "safetensors",
    # Provided by adapter packages (entry points), not built in.
    "ctranslate2": "ctranslate2",  # runanywhere-stt-whisper (extra ``stt``)
    "gguf": "llama",  # runanywhere-llm-llamacpp (extra ``llm``)
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


def get_runtime(name: str) -> Runtime:
    """The runtime called ``name``, with its library checked to be importable.

    Raises :class:`~runanywhere.errors.UnknownRuntimeError` for a name nobody provides and
    :class:`~runanywhere.errors.RuntimeUnavailableError` (naming the pip extra) when the library
    is not installed.
    """
    obj = RUNTIMES.load(name)
    runtime = obj() if isinstance(obj, type) else obj
    if not isinstance(runtime, Runtime):
        raise ModelError(f"runtime '{name}' is not a runanywhere runtime (needs name, extra and"
                         " load())")
    check = getattr(runtime, "ensure_available", None)
    if callable(check):
        check()
    return runtime


def formats_for_runtime(name: str) -> list[str]:
    """The catalog formats that ``name`` loads by default (``onnx`` -> ``["onnx"]``)."""
    key = RUNTIMES.canonical(name)
    return sorted(f for f, rt in _DEFAULT_FOR_FORMAT.items() if rt == key)


def available_runtimes(*, installed_only: bool = False) -> list[str]:
    """Names of every known runtime (built-in and plugins), sorted.

    With ``installed_only=True`` only the runtimes whose library can be imported are listed
    (found without importing the library).
    """
    names = RUNTIMES.names()
    if not installed_only:
        return names
    out = []
    for n in names:
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


__all__ = [
    "ALIASES",
    "BUILTIN_RUNTIMES",
    "ENTRY_POINT_GROUP",
    "KNOWN_RUNTIMES",
    "RUNTIMES",
    "BuiltinRuntime",
    "Runtime",
    "UnknownRuntimeError",
    "available_runtimes",
    "default_runtime_for",
    "formats_for_runtime",
    "get_runtime",
    "module_available",
    "pop_options",
    "resolve_model_file",
]
