"""Bytes at rest: the two-tier model cache (memory LRU + disk tier with a SQLite index).

``ModelCache`` is the one door: the loader, the sideload and the shared tier use its narrow
methods; nothing outside this package touches the disk tier or the index. Inside, one object per
job (see ``cache.py``'s module doc for the map).
"""

from .cache import CacheHit, ModelCache
from .doctor import Check, DoctorReport, diagnose
from .entry import CacheEntry, DiskUsage, StagedFile, VerifyResult
from .index import FileRow, TrustRecord
from .memory import MemoryLRU
from .partial import partial_key
from .prune import PrunePlan, PruneResult

__all__ = ["CacheEntry", "CacheHit", "Check", "DiskUsage", "DoctorReport", "FileRow",
           "MemoryLRU", "ModelCache", "PrunePlan", "PruneResult", "StagedFile", "TrustRecord",
           "VerifyResult", "diagnose", "partial_key"]
