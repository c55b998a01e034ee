"""runanywhere: find, download, verify, cache and load the models of on-device AI apps.

Importing the package is cheap: the names below are loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "ModelRegistry": "runanywhere.registry",
    "BlockingRegistry": "runanywhere.registry",
    "ModelLoader": "runanywhere.transfer.loader",
    "DownloadProgress": "runanywhere.transfer.progress",
    "Stage": "runanywhere.transfer.progress",
    "ModelCache": "runanywhere.store.cache",
    "ModelMetadata": "runanywhere.catalog.model",
    "ModelFile": "runanywhere.catalog.model",
    "Result": "runanywhere.result",
    "Settings": "runanywhere.settings",
}

if TYPE_CHECKING:
    from .catalog.model import ModelFile, ModelMetadata
    from .registry import BlockingRegistry, ModelRegistry
    from .result import Result
    from .settings import Settings
    from .store.cache import ModelCache
    from .transfer.loader import ModelLoader
    from .transfer.progress import DownloadProgress, Stage


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'runanywhere' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "BlockingRegistry",
    "DownloadProgress",
    "ModelCache",
    "ModelFile",
    "ModelLoader",
    "ModelMetadata",
    "ModelRegistry",
    "Result",
    "Settings",
    "Stage",
    "__version__",
]
