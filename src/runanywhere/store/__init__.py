"""Bytes at rest: the two-tier model cache (memory LRU + disk tier with a SQLite index).

``ModelCache`` is the one door: the loader, the sideload and the shared tier use its narrow
methods; nothing outside this package touches the disk tier or the index. Inside, one object per
job (see ``cache.py``'s module doc for the map).

The names below load on first use: a caller that needs one module of this package
(``store.hashing`` for the shared tier's uploads, ``store.cache`` for a cached answer) does not
pay for the others (``doctor``, ``prune``...).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .cache import CacheHit, ModelCache
    from .doctor import Check, DoctorReport, diagnose
    from .entry import CacheEntry, DiskUsage, StagedFile, VerifyResult
    from .index import FileRow, TrustRecord
    from .memory import MemoryLRU
    from .partial import partial_key
    from .prune import PrunePlan, PruneResult

_LAZY = {"CacheHit": ".cache", "ModelCache": ".cache", "Check": ".doctor",
         "DoctorReport": ".doctor", "diagnose": ".doctor", "CacheEntry": ".entry",
         "DiskUsage": ".entry", "StagedFile": ".entry", "VerifyResult": ".entry",
         "FileRow": ".index", "TrustRecord": ".index", "MemoryLRU": ".memory",
         "partial_key": ".partial", "PrunePlan": ".prune", "PruneResult": ".prune"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


__all__ = ["CacheEntry", "CacheHit", "Check", "DiskUsage", "DoctorReport", "FileRow",
           "MemoryLRU", "ModelCache", "PrunePlan", "PruneResult", "StagedFile", "TrustRecord",
           "VerifyResult", "diagnose", "partial_key"]
