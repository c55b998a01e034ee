"""Deletion plans: decide what goes and how many bytes that frees, show it, then execute it."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .disk import CacheEntry, DiskTier
from .fsutil import remove_tree


@dataclass(frozen=True)
class PrunePlan:
    """What a prune would remove. Nothing happens until :meth:`execute`."""

    evict: tuple[CacheEntry, ...] = ()
    orphan_partials: tuple[Path, ...] = ()
    orphan_blobs: tuple[Path, ...] = ()
    stray_dirs: tuple[Path, ...] = ()
    freed_bytes: int = 0
    size_before: int = 0
    _disk: DiskTier | None = field(default=None, repr=False, compare=False)
    _on_evict: Callable[[list[str]], None] | None = field(default=None, repr=False, compare=False)

    @property
    def empty(self) -> bool:
        return not (self.evict or self.orphan_partials or self.orphan_blobs or self.stray_dirs)

    def to_dict(self) -> dict[str, object]:
        return {
            "evict": [{"id": e.model_id, "size": e.size, "last_access": e.last_access}
                      for e in self.evict],
            "orphan_partials": [str(p) for p in self.orphan_partials],
            "orphan_blobs": [str(p) for p in self.orphan_blobs],
            "stray_dirs": [str(p) for p in self.stray_dirs],
            "freed_bytes": self.freed_bytes,
            "size_before": self.size_before,
        }

    def execute(self) -> int:
        """Carry the plan out; returns the bytes actually freed."""
        assert self._disk is not None, "plan was not built by a cache"
        freed = 0
        ids = [e.model_id for e in self.evict if _not_in_use(self._disk, e.model_id)]
        if ids:
            freed += self._disk.remove(ids)
            if self._on_evict:
                self._on_evict(ids)
        refs = self._disk.index.blob_refs()
        for p in self.orphan_blobs:
            if p.name in refs:
                continue  # became referenced since the plan was made
            with contextlib.suppress(FileNotFoundError):
                freed += p.lstat().st_size
                p.unlink()
        for p in self.orphan_partials:
            with contextlib.suppress(FileNotFoundError):
                freed += p.stat().st_blocks * 512
                p.unlink()
        for p in self.stray_dirs:
            remove_tree(p)
        return freed


def _lock_path(disk: DiskTier, model_id: str) -> Path:
    return disk.lock_dir / f"use-{model_id}.lock"


def _not_in_use(disk: DiskTier, model_id: str) -> bool:
    """True if no process holds the model open (a shared lock on its use-lock)."""
    try:
        fd = os.open(_lock_path(disk, model_id), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def plan_prune(disk: DiskTier, *, max_size: int | None, orphan_age: float,
               in_use: set[str], on_evict: Callable[[list[str]], None] | None = None
               ) -> PrunePlan:
    """LRU eviction down to ``max_size`` (never pinned or in-use models) plus orphan cleanup."""
    from ..transfer.partial import is_abandoned

    entries = disk.entries()
    total = disk.size()
    evict: list[CacheEntry] = []
    freed = 0
    if max_size is not None and total > max_size:
        refcount: dict[str, int] = {}
        for e in entries:
            for f in e.files:
                refcount[f.sha256] = refcount.get(f.sha256, 0) + 1
        for e in sorted(entries, key=lambda e: (e.last_access, e.model_id)):
            if total - freed <= max_size:
                break
            if e.pinned or e.model_id in in_use or not _not_in_use(disk, e.model_id):
                continue
            evict.append(e)
            for f in e.files:  # shared blobs free their bytes only with their last user
                refcount[f.sha256] -= 1
                if refcount[f.sha256] == 0:
                    freed += f.size
    now = time.time()
    refs = disk.index.blob_refs()
    blobs = []
    for p in disk.blob_dir.iterdir():
        if p.name not in refs:
            with contextlib.suppress(FileNotFoundError):
                if now - p.lstat().st_ctime >= orphan_age:
                    blobs.append(p)
                    freed += p.lstat().st_size
    partials = []
    for p in disk.partial_dir.iterdir():
        if is_abandoned(p, orphan_age):
            partials.append(p)
            with contextlib.suppress(FileNotFoundError):
                freed += p.stat().st_blocks * 512
    known = {e.model_id for e in entries}
    stray = []
    for mdir in disk.model_dir.iterdir():
        children = list(mdir.iterdir()) if mdir.is_dir() else []
        for child in children:
            if child.name.startswith((".tmp-", ".old-")):
                with contextlib.suppress(FileNotFoundError):
                    if now - child.lstat().st_ctime >= orphan_age:
                        stray.append(child)
        if mdir.name not in known and not any(c.name.startswith(".tmp-") for c in children):
            with contextlib.suppress(FileNotFoundError):
                if now - mdir.lstat().st_mtime >= orphan_age:
                    stray.append(mdir)
    return PrunePlan(tuple(evict), tuple(partials), tuple(blobs), tuple(stray), freed, total,
                     disk, on_evict)
