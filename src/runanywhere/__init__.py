"""runanywhere: find, download, verify, cache and load the models of on-device AI apps.

Importing the package is cheap: the names below are loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

_LAZY = {
    "ModelRegistry": "runanywhere.registry",
    "BlockingRegistry": "runanywhere.registry",
    "ModelLoader": "runanywhere.transfer.loader",
    "FetchConfig": "runanywhere.transfer.config",
    "DownloadProgress": "runanywhere.progress",
    "Stage": "runanywhere.progress",
    "ModelCache": "runanywhere.store.cache",
    "CacheHit": "runanywhere.store.cache",
    "CacheEntry": "runanywhere.store.entry",
    "VerifyResult": "runanywhere.store.entry",
    "PrunePlan": "runanywhere.store.prune",
    "Catalog": "runanywhere.catalog.catalog",
    "ModelMetadata": "runanywhere.catalog.model",
    "ModelFile": "runanywhere.catalog.model",
    "Result": "runanywhere.result",
    "Settings": "runanywhere.settings",
}

if TYPE_CHECKING:
    from .catalog.catalog import Catalog
    from .catalog.model import ModelFile, ModelMetadata
    from .progress import DownloadProgress, Stage
    from .registry import BlockingRegistry, ModelRegistry
    from .result import Result
    from .settings import Settings
    from .store.cache import CacheHit, ModelCache
    from .store.entry import CacheEntry, VerifyResult
    from .store.prune import PrunePlan
    from .transfer.config import FetchConfig
    from .transfer.loader import ModelLoader


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
    "CacheEntry",
    "CacheHit",
    "Catalog",
    "DownloadProgress",
    "FetchConfig",
    "ModelCache",
    "ModelFile",
    "ModelLoader",
    "ModelMetadata",
    "ModelRegistry",
    "PrunePlan",
    "Result",
    "Settings",
    "Stage",
    "VerifyResult",
    "__version__",
]
