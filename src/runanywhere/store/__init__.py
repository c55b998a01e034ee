"""The two-tier model cache: memory LRU + disk tier (SQLite index, content-addressed blobs)."""

from .cache import CacheHit, ModelCache
from .disk import CacheEntry, DiskTier, StagedFile, VerifyResult
from .memory import MemoryLRU
from .prune import PrunePlan

__all__ = ["CacheEntry", "CacheHit", "DiskTier", "MemoryLRU", "ModelCache", "PrunePlan",
           "StagedFile", "VerifyResult"]
