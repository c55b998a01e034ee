"""Deletion plans: decide what goes and how many bytes that frees, show it, then execute it.

A plan evicts least-recently-used models until the cache fits ``max_size`` (never a pinned model
or one a process holds: ``locks/use-<id>.lock``), and lists orphans older than ``orphan_age``:
abandoned partials (never one a live process is writing, see ``partial.is_abandoned``),
blobs no index row refers to, and model folders or manifests no index row refers to.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..logs import log
from .disk import CacheEntry, DiskTier
from .fsutil import crash_point, remove_tree
from .partial import is_abandoned

#: A folder in ``partials/`` (an archive being unpacked) counts as abandoned only after this long
#: without a change, whatever ``orphan_age`` says: nothing names the process that owns it.
PARTIAL_DIR_IDLE = 300.0


@dataclass(frozen=True)
class PrunePlan:
    """What a prune would remove. Nothing happens until :meth:`execute`."""

    evict: tuple[CacheEntry, ...] = ()
    orphan_partials: tuple[Path, ...] = ()
    orphan_blobs: tuple[Path, ...] = ()
    stray: tuple[Path, ...] = ()
    freed_bytes: int = 0
    size_before: int = 0
    #: Models that would have gone for the size limit but are pinned or in use.
    kept: tuple[str, ...] = ()
    #: The part of ``freed_bytes`` that eviction frees (the rest is orphans).
    evict_bytes: int = 0
    _disk: DiskTier | None = field(default=None, repr=False, compare=False)
    _on_evict: Callable[[list[str]], None] | None = field(default=None, repr=False,
                                                          compare=False)

    @property
    def empty(self) -> bool:
        return not (self.evict or self.orphan_partials or self.orphan_blobs or self.stray)

    @property
    def size_after(self) -> int:
        """What ``cache size`` will say afterwards (orphans are not counted in it)."""
        return max(0, self.size_before - self.evict_bytes)

    def to_dict(self) -> dict[str, object]:
        return {
            "evict": [{"id": e.model_id, "size": e.size, "last_access": e.last_access}
                      for e in self.evict],
            "kept": list(self.kept),
            "orphan_partials": [str(p) for p in self.orphan_partials],
            "orphan_blobs": [str(p) for p in self.orphan_blobs],
            "stray": [str(p) for p in self.stray],
            "freed_bytes": self.freed_bytes,
            "size_before": self.size_before,
            "size_after": self.size_after,
        }

    def execute(self) -> int:
        """Carry the plan out; returns the bytes actually freed.

        Each evicted model is locked against use first; one that became pinned or in use since
        the plan was made is skipped. Orphans are re-checked under the same locks publishing uses.
        """
        disk = self._disk
        if disk is None:
            raise RuntimeError("this plan was not built by a cache")
        freed, evicted = evict_unused(disk, [e.model_id for e in self.evict])
        for mid in evicted:
            log.info("evicted %s", mid)
        if evicted and self._on_evict is not None:
            self._on_evict(evicted)
        freed += _remove_orphans(disk, self)
        return freed


def evict_unused(disk: DiskTier, ids: Iterable[str], *, keep_pinned: bool = True
                 ) -> tuple[int, list[str]]:
    """Remove the models nobody holds (nor pinned) in one batch; (bytes freed, removed ids)."""
    held: list[int] = []
    try:
        pinned = {e.model_id for e in disk.entries() if e.pinned} if keep_pinned else set()
        chosen = []
        for mid in ids:
            fd = None if mid in pinned else disk.locks.try_evict(mid)
            if fd is not None:  # locked: a process that wants to use it waits for us
                held.append(fd)
                chosen.append(mid)
        crash_point("evict:locked")
        return (disk.remove(chosen) if chosen else 0), chosen
    finally:
        for fd in held:
            os.close(fd)


def _remove_orphans(disk: DiskTier, plan: PrunePlan) -> int:
    freed = 0
    with disk.locks.gc():  # no publish is between storing a blob and committing its row
        refs = disk.index.blob_refs()
        for p in plan.orphan_blobs:
            if p.name not in refs:
                freed += _unlink(p)
    for p in plan.orphan_partials:
        if p.is_dir() and not p.is_symlink():
            freed += _bytes(p)
            remove_tree(p)
        elif is_abandoned(p, 0):  # still abandoned now (its writer may have come back)
            freed += _unlink(p)
    for p in plan.stray:
        _remove_stray(disk, p)
    freed += disk.gc_blobs()  # blob rows whose last user went away in a crash
    return freed


def _remove_stray(disk: DiskTier, path: Path) -> None:
    temp = path.name.startswith((".tmp-", ".old-"))
    if path.parent == disk.manifest_dir:
        model_id = path.stem
    else:
        model_id = path.parent.name if temp else path.name
    fd = disk.locks.try_model(model_id)
    if fd is None:
        return  # a publish of this model is running
    try:  # re-checked under the lock: the model may have been published since the plan
        if temp or disk.index.row(model_id) is None:
            remove_tree(path)
    finally:
        os.close(fd)


def _unlink(p: Path) -> int:
    n = _bytes(p)
    with contextlib.suppress(FileNotFoundError):
        p.unlink()
        return n
    return 0


def _bytes(p: Path) -> int:
    """Bytes a file or folder really occupies (partials are sparse)."""
    try:
        if p.is_dir() and not p.is_symlink():
            return sum(os.lstat(os.path.join(d, n)).st_blocks * 512
                       for d, _, names in os.walk(p) for n in names)
        return os.lstat(p).st_blocks * 512
    except OSError:
        return 0


def _idle(p: Path, now: float) -> float:
    """Seconds since anything in ``p`` changed."""
    try:
        newest = os.lstat(p).st_mtime
        if p.is_dir() and not p.is_symlink():
            for d, _, names in os.walk(p):
                for n in names:
                    with contextlib.suppress(OSError):
                        newest = max(newest, os.lstat(os.path.join(d, n)).st_mtime)
    except OSError:
        return 0.0
    return now - newest


def plan_prune(disk: DiskTier, *, max_size: int | None, orphan_age: float,
               in_use: set[str], on_evict: Callable[[list[str]], None] | None = None
               ) -> PrunePlan:
    """LRU eviction down to ``max_size`` plus orphans idle for ``orphan_age`` seconds."""
    entries = disk.entries()
    total = disk.size()
    evict, kept, evict_bytes = _plan_eviction(disk, entries, total, max_size, in_use)
    now = time.time()
    blobs = _orphan_blobs(disk, now, orphan_age)
    partials = _orphan_partials(disk, now, orphan_age)
    stray = _stray(disk, {e.model_id for e in entries}, now, orphan_age)
    freed = evict_bytes + sum(_bytes(p) for p in (*blobs, *partials))
    return PrunePlan(tuple(evict), tuple(partials), tuple(blobs), tuple(stray), freed, total,
                     tuple(kept), evict_bytes, disk, on_evict)


def _plan_eviction(disk: DiskTier, entries: list[CacheEntry], total: int, max_size: int | None,
                   in_use: set[str]) -> tuple[list[CacheEntry], list[str], int]:
    if max_size is None or total <= max_size:
        return [], [], 0
    refcount: dict[str, int] = {}
    sizes: dict[str, int] = {}
    for e in entries:
        for f in e.files:
            refcount[f.sha256] = refcount.get(f.sha256, 0) + 1
            sizes[f.sha256] = f.size
    evict: list[CacheEntry] = []
    kept: list[str] = []
    freed = 0
    for e in sorted(entries, key=lambda e: (e.last_access, e.model_id)):
        if total - freed <= max_size:
            break
        if e.pinned or e.model_id in in_use or disk.locks.used_elsewhere(e.model_id):
            kept.append(e.model_id)
            continue
        evict.append(e)
        for sha in {f.sha256 for f in e.files}:  # a shared blob frees its bytes with its last user
            refcount[sha] -= 1
            if refcount[sha] == 0:
                freed += sizes[sha]
    return evict, kept, freed


def _orphan_blobs(disk: DiskTier, now: float, age: float) -> list[Path]:
    refs = disk.index.blob_refs()
    out = []
    for p in disk.blob_dir.iterdir():
        if p.name not in refs:
            with contextlib.suppress(FileNotFoundError):
                if now - p.lstat().st_ctime >= age:
                    out.append(p)
    return out


def _orphan_partials(disk: DiskTier, now: float, age: float) -> list[Path]:
    out = []
    for p in disk.partial_dir.iterdir():
        if p.is_dir() and not p.is_symlink():
            if _idle(p, now) >= max(age, PARTIAL_DIR_IDLE):
                out.append(p)
        elif is_abandoned(p, age):
            out.append(p)
    return out


def _stray(disk: DiskTier, known: set[str], now: float, age: float) -> list[Path]:
    """Model folders and manifests without an index row, and leftover temporary folders."""
    out = []
    for mdir in disk.model_dir.iterdir():
        children = list(mdir.iterdir()) if mdir.is_dir() and not mdir.is_symlink() else []
        temps = [c for c in children if c.name.startswith((".tmp-", ".old-"))]
        if mdir.name not in known:
            if _idle(mdir, now) >= age:
                out.append(mdir)
            continue
        out.extend(c for c in temps if _idle(c, now) >= age)
    for mf in disk.manifest_dir.glob("*.json"):
        if mf.stem not in known:
            with contextlib.suppress(FileNotFoundError):
                if now - mf.lstat().st_mtime >= age:
                    out.append(mf)
    return out
