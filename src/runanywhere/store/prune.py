"""Deletion plans: decide what goes and how many bytes that frees, show it, then execute it.

A plan evicts least-recently-used models until the cache fits ``max_size`` (never a pinned model
or one a process holds: ``locks/use-<id>.lock``; nor a model whose every blob a kept model also
uses, since evicting it would free nothing), and lists what is idle for ``orphan_age``:
abandoned partials (never one a live process is writing, see ``partial.is_abandoned``; a
partial's files go as one group, its metadata last), blobs no index row refers to, model
folders, old version folders and manifests no index row refers to, and quarantined files.

Bytes are those of files whose last name goes (``fsutil.file_bytes``: the length, or the
allocated blocks of a sparse partial). A blob still linked from another folder frees nothing,
so "would free" is what really leaves the disk, and ``execute`` reports what did (counted at
each unlink). Manifests and folders are bookkeeping and are not counted.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..logs import log
from .disk import DiskTier
from .entry import CacheEntry
from .fsutil import bytes_freed_by, crash_point, remove_tree_counted, unlink_counted
from .layout import is_model_id
from .partial import is_abandoned, partial_group

#: A folder in ``partials/`` (an archive being unpacked) counts as abandoned only after this long
#: without a change, whatever ``orphan_age`` says: nothing names the process that owns it.
PARTIAL_DIR_IDLE = 300.0


@dataclass(frozen=True)
class PruneResult:
    """What :meth:`PrunePlan.apply` did."""

    freed_bytes: int
    evicted: tuple[str, ...]
    removed: tuple[Path, ...]
    #: Planned, but left: in use, pinned or written to since the plan was made.
    skipped: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        return {"freed": self.freed_bytes, "evicted": list(self.evicted),
                "removed": [str(p) for p in self.removed], "skipped": list(self.skipped)}


@dataclass(frozen=True)
class PrunePlan:
    """What a prune would remove. Nothing happens until :meth:`execute` (or :meth:`apply`)."""

    evict: tuple[CacheEntry, ...] = ()
    orphan_partials: tuple[Path, ...] = ()
    orphan_blobs: tuple[Path, ...] = ()
    stray: tuple[Path, ...] = ()
    #: Bytes that would really leave the disk (files whose last name goes).
    freed_bytes: int = 0
    size_before: int = 0
    #: Models that would have gone for the size limit but are pinned or in use.
    kept: tuple[str, ...] = ()
    #: The part of the cache size (apparent bytes, as ``cache size`` counts) eviction removes.
    evict_bytes: int = 0
    #: Files in ``quarantine/`` idle for ``orphan_age``.
    quarantine: tuple[Path, ...] = ()
    #: Models spared although over the limit: every blob of theirs is also used by a kept model.
    spared: tuple[str, ...] = ()
    _disk: DiskTier | None = field(default=None, repr=False, compare=False)
    _on_evict: Callable[[list[str]], None] | None = field(default=None, repr=False,
                                                          compare=False)

    @property
    def empty(self) -> bool:
        return not (self.evict or self.orphan_partials or self.orphan_blobs or self.stray
                    or self.quarantine)

    @property
    def size_after(self) -> int:
        """What ``cache size`` will say afterwards (orphans are not counted in it)."""
        return max(0, self.size_before - self.evict_bytes)

    def to_dict(self) -> dict[str, object]:
        return {
            "evict": [{"id": e.model_id, "size": e.size, "last_access": e.last_access}
                      for e in self.evict],
            "kept": list(self.kept),
            "spared": list(self.spared),
            "orphan_partials": [str(p) for p in self.orphan_partials],
            "orphan_blobs": [str(p) for p in self.orphan_blobs],
            "stray": [str(p) for p in self.stray],
            "quarantine": [str(p) for p in self.quarantine],
            "freed_bytes": self.freed_bytes,
            "size_before": self.size_before,
            "size_after": self.size_after,
        }

    def execute(self) -> int:
        """Carry the plan out; returns the bytes actually freed on the disk."""
        return self.apply().freed_bytes

    def apply(self) -> PruneResult:
        """Carry the plan out and say what was removed and what was left.

        Each evicted model is locked against use first; one that became pinned or in use since
        the plan was made is skipped. Orphans are re-checked under the same locks publishing
        uses; a partial whose writer came back is left.
        """
        disk = self._disk
        if disk is None:
            raise RuntimeError("this plan was not built by a cache")
        wanted = [e.model_id for e in self.evict]
        freed, evicted = evict_unused(disk, wanted)
        for mid in evicted:
            log.info("evicted %s", mid)
        if evicted and self._on_evict is not None:
            self._on_evict(evicted)
        removed: list[Path] = []
        skipped = [f"{mid} (pinned or in use)" for mid in wanted if mid not in evicted]
        freed += _remove_orphans(disk, self, removed, skipped)
        return PruneResult(freed, tuple(evicted), tuple(removed), tuple(skipped))


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


def _remove_orphans(disk: DiskTier, plan: PrunePlan, removed: list[Path],
                    skipped: list[str]) -> int:
    freed = 0
    with disk.locks.gc():  # no publish is between storing a blob and committing its row
        refs = disk.index.blob_refs()
        for p in plan.orphan_blobs:
            if p.name in refs:
                skipped.append(f"{p} (used again)")
                continue
            freed += unlink_counted(p)
            removed.append(p)
    groups: dict[tuple[Path, str, str], list[Path]] = {}
    for p in plan.orphan_partials:
        if p.is_dir() and not p.is_symlink():
            freed += remove_tree_counted(p)
            removed.append(p)
            continue
        key, owner = partial_group(p)
        groups.setdefault((p.parent, key, owner), []).append(p)
    for (folder, key, owner), members in groups.items():
        freed += _remove_partial(folder, key, owner, members, removed, skipped)
    for p in plan.stray:
        freed += _remove_stray(disk, p, removed, skipped)
    for p in plan.quarantine:
        freed += remove_tree_counted(p)
        removed.append(p)
    freed += disk.blobs.gc()  # blob rows whose last user went away in a crash
    return freed


def _remove_partial(folder: Path, key: str, owner: str, members: list[Path],
                    removed: list[Path], skipped: list[str]) -> int:
    """One partial's files as a group: decided once (its writer may have come back), the
    metadata that names the writer removed last (without it the rest would look alive)."""
    group = sorted(folder.glob(f"{key}.{owner}.*"), key=lambda p: p.name.endswith(".json"))
    probe = next((p for p in group if p.name.endswith(".json")), group[0] if group else None)
    if probe is None:
        return 0
    if not is_abandoned(probe, 0):
        skipped.extend(f"{p} (its writer is alive)" for p in members)
        return 0
    freed = 0
    for p in group:
        freed += unlink_counted(p)
        removed.append(p)
    return freed


def _remove_stray(disk: DiskTier, path: Path, removed: list[Path], skipped: list[str]) -> int:
    temp = path.name.startswith((".tmp-", ".old-"))
    layout = disk.layout
    if path.parent == layout.manifest_dir:
        model_id = path.stem
    elif path.parent == layout.model_dir:
        model_id = path.name
    else:  # a temporary or an old version folder inside models/<id>/
        model_id = path.parent.name
    if not is_model_id(model_id):
        removed.append(path)  # no model has this name, so no publish can be using it
        return remove_tree_counted(path)  # (a link is removed, never what it points to)
    fd = disk.locks.try_model(model_id)
    if fd is None:
        skipped.append(f"{path} (a publish of {model_id} is running)")
        return 0
    try:  # re-checked under the lock: the model may have been published since the plan
        row = disk.index.row(model_id)
        if temp or row is None:
            gone = True
        elif path.parent.parent == layout.model_dir:  # an old version: not the one shown now
            gone = path in disk.installer.old_versions(model_id, disk.entry(row).base) and (
                not disk.locks.used_elsewhere(model_id))
        else:
            gone = False
        if not gone:
            skipped.append(f"{path} (in use again)")
            return 0
        removed.append(path)
        return remove_tree_counted(path)
    finally:
        os.close(fd)


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
    held: set[str] = set()
    if max_size is not None and total > max_size:  # only then is asking every lock worth it
        held = {e.model_id for e in entries if e.pinned or e.model_id in in_use
                or disk.locks.used_elsewhere(e.model_id)}
    ev = plan_eviction(entries, total, max_size, held)
    now = time.time()
    blobs = _orphan_blobs(disk, now, orphan_age)
    partials = _orphan_partials(disk, now, orphan_age)
    stray = _stray(disk, entries, now, orphan_age)
    quarantine = _quarantined(disk, now, orphan_age)
    freed = bytes_freed_by(_paths_of(disk, ev.evict, entries) + blobs + partials + stray
                           + quarantine)
    return PrunePlan(ev.evict, tuple(partials), tuple(blobs), tuple(stray), freed, total,
                     ev.kept, ev.freed, tuple(quarantine), ev.spared, disk, on_evict)


def _paths_of(disk: DiskTier, evict: Iterable[CacheEntry], entries: list[CacheEntry]
              ) -> list[Path]:
    """What removing these models deletes: their folders and manifests, and the blobs no
    remaining model uses."""
    going = {e.model_id for e in evict}
    if not going:
        return []
    staying = {f.sha256 for e in entries if e.model_id not in going for f in e.files}
    paths = [disk.layout.model_folder(mid) for mid in sorted(going)]
    paths += [disk.layout.blob(sha) for sha in {f.sha256 for e in evict for f in e.files}
              if sha not in staying]
    return paths


@dataclass(frozen=True)
class Eviction:
    """What eviction down to a size decides (see :func:`plan_eviction`)."""

    evict: tuple[CacheEntry, ...] = ()
    #: Over the limit but pinned or in use.
    kept: tuple[str, ...] = ()
    #: Over the limit but every blob of theirs is also a kept model's: evicting frees nothing.
    spared: tuple[str, ...] = ()
    #: The apparent bytes (as ``cache size`` counts them) the eviction takes off the total.
    freed: int = 0


def plan_eviction(entries: Iterable[CacheEntry], total: int, max_size: int | None,
                  held: set[str]) -> Eviction:
    """Least recently used first (ties by id) until ``total`` fits ``max_size``; never a model
    in ``held`` (pinned or in use), nor one whose every blob a held model also uses. A blob
    shared by several models frees its bytes with its last user."""
    if max_size is None or total <= max_size:
        return Eviction()
    entries = list(entries)
    fixed = {f.sha256 for e in entries if e.model_id in held for f in e.files}
    refcount: dict[str, int] = {}
    sizes: dict[str, int] = {}
    for e in entries:
        for f in e.files:
            refcount[f.sha256] = refcount.get(f.sha256, 0) + 1
            sizes[f.sha256] = f.size
    evict: list[CacheEntry] = []
    kept: list[str] = []
    spared: list[str] = []
    freed = 0
    for e in sorted(entries, key=lambda e: (e.last_access, e.model_id)):
        if total - freed <= max_size:
            break
        if e.model_id in held:
            kept.append(e.model_id)
            continue
        if all(f.sha256 in fixed for f in e.files):
            spared.append(e.model_id)  # its bytes stay for a kept model: evicting frees nothing
            continue
        evict.append(e)
        for sha in {f.sha256 for f in e.files}:  # a shared blob frees its bytes with its last user
            refcount[sha] -= 1
            if refcount[sha] == 0:
                freed += sizes[sha]
    return Eviction(tuple(evict), tuple(kept), tuple(spared), freed)


def _orphan_blobs(disk: DiskTier, now: float, age: float) -> list[Path]:
    refs = disk.index.blob_refs()
    out = []
    for p in disk.layout.blob_dir.iterdir():
        if p.name not in refs:
            with contextlib.suppress(FileNotFoundError):
                if now - p.lstat().st_ctime >= age:
                    out.append(p)
    return out


def _orphan_partials(disk: DiskTier, now: float, age: float) -> list[Path]:
    out = []
    for p in disk.layout.partial_dir.iterdir():
        if p.is_dir() and not p.is_symlink():
            if _idle(p, now) >= max(age, PARTIAL_DIR_IDLE):
                out.append(p)
        elif is_abandoned(p, age):
            out.append(p)
    return out


def _stray(disk: DiskTier, entries: list[CacheEntry], now: float, age: float) -> list[Path]:
    """Model folders and manifests without an index row, old version folders of a model, and
    leftover temporary folders."""
    shown = {e.model_id: e.base for e in entries}
    out = []
    for mdir in disk.layout.model_dir.iterdir():
        children = list(mdir.iterdir()) if mdir.is_dir() and not mdir.is_symlink() else []
        if mdir.name not in shown:
            if _idle(mdir, now) >= age:
                out.append(mdir)
            continue
        temps = [c for c in children if c.name.startswith((".tmp-", ".old-"))]
        out.extend(c for c in temps if _idle(c, now) >= age)
        old = disk.installer.old_versions(mdir.name, shown[mdir.name])
        if old and not disk.locks.used_elsewhere(mdir.name):
            out.extend(c for c in old if _idle(c, now) >= age)
    for mf in disk.layout.manifest_dir.glob("*.json"):
        if mf.stem not in shown:
            with contextlib.suppress(FileNotFoundError):
                if now - mf.lstat().st_mtime >= age:
                    out.append(mf)
    return out


def _quarantined(disk: DiskTier, now: float, age: float) -> list[Path]:
    """Quarantined files and folders, by the time they were put there (the rename's ctime)."""
    out = []
    with contextlib.suppress(FileNotFoundError):
        for p in disk.layout.quarantine_dir.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if now - p.lstat().st_ctime >= age:
                    out.append(p)
    return out
