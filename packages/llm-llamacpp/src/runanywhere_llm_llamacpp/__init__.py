"""runanywhere-llm-llamacpp: small LLMs in GGUF on the device, through llama.cpp (xllamacpp).

Installs the ``llama`` runtime (format ``gguf``) and the ``llama`` adapter (model type ``llm``)
into runanywhere through entry points; ``pip install 'runanywhere[llm]'`` brings it. Importing
this package is cheap: llama.cpp loads when a model does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

if TYPE_CHECKING:
    from .adapter import LlamaAdapter
    from .gguf_file import GGUFInfo, read_gguf
    from .runtime import LlamaModel, LlamaRuntime

_LAZY = {
    "LlamaAdapter": ".adapter",
    "LlamaModel": ".runtime",
    "LlamaRuntime": ".runtime",
    "GGUFInfo": ".gguf_file",
    "read_gguf": ".gguf_file",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


__all__ = ["GGUFInfo", "LlamaAdapter", "LlamaModel", "LlamaRuntime", "__version__", "read_gguf"]
