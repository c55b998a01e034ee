"""The two-tier model cache: memory LRU + disk tier (SQLite index, content-addressed blobs)."""

from .cache import CacheHit, ModelCache
from .disk import CacheEntry, DiskTier, StagedFile, VerifyResult
from .fsutil import CacheBusy
from .index import FileRow
from .memory import MemoryLRU
from .prune import PrunePlan

__all__ = ["CacheBusy", "CacheEntry", "CacheHit", "DiskTier", "FileRow", "MemoryLRU",
           "ModelCache", "PrunePlan", "StagedFile", "VerifyResult"]
