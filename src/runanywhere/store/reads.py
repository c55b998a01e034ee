"""Reading the cache: the three questions a caller asks, one verb each.

* :meth:`Reader.get` -- the model's bytes: a :class:`CacheHit` (a read-only ``mmap`` of a single
  file, the path of a folder), counted as a hit and promoted to the memory tier. Memory tier: a
  dict lookup (~1 µs) and one ``lstat`` that proves the disk still holds the same file. Disk tier:
  one index statement, one ``lstat`` per file, an ``mmap``: never a copy or a re-hash.
* :meth:`Reader.entry` -- the facts (:class:`CacheEntry`: size, hashes, tier, hits, pinned), no
  hit counted. A file whose size is right but whose mtime moved is re-hashed here, once.
* :meth:`Reader.entry_matching` -- the entry only if it is the model the catalog describes now
  (same files and hashes, first-use hashes included); ``entry_matching_nowait`` is its form for
  an event loop, which never waits for the index.
"""

from __future__ import annotations

import mmap
import os
import stat
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .entry import CacheEntry
from .matching import Expected, matches
from .memory import MemoryLRU
from .modes import CacheModes
from .stats import HitStats

if TYPE_CHECKING:
    from pathlib import Path

    from ..catalog import ModelMetadata


@dataclass(frozen=True, slots=True)
class CacheHit:
    entry: CacheEntry
    tier: str  # "memory" or "disk"
    #: The file's bytes (a read-only mmap) for single-file models; None for folders.
    buffer: Any | None

    @property
    def path(self) -> Path:
        return self.entry.path

    @property
    def model_id(self) -> str:
        return self.entry.model_id


class Reader:
    def __init__(self, modes: CacheModes, memory: MemoryLRU, stats: HitStats,
                 expected: Expected) -> None:
        self.modes = modes
        self.memory = memory
        self.stats = stats
        self.expected = expected

    def get(self, model_id: str, *, promote: bool = True) -> CacheHit | None:
        """The model's bytes (mmap) and path, or None; counts a hit."""
        mem = self.memory.get(model_id)
        if mem is not None:
            if still_on_disk(mem.buffer.entry):
                self.stats.touch(model_id)
                return mem.buffer  # type: ignore[no-any-return]
            self.memory.pop(model_id)  # removed or replaced by another process: ask the disk
        for _ in range(3):  # another process may replace the file between check and open
            entry, _ = self._lookup(model_id, rehash=True)
            if entry is None:
                return None
            try:
                buffer = map_file(entry) if entry.kind == "file" else None
                break
            except OSError:  # removed or replaced by another process a moment ago
                continue
        else:
            return None
        self.stats.touch(model_id)
        if promote and entry.size <= self.memory.max_bytes:
            self.memory.put(model_id, CacheHit(entry.with_tier("memory"), "memory", buffer),
                            entry.size)
        return CacheHit(entry, "disk", buffer)

    def entry(self, model_id: str) -> CacheEntry | None:
        """The model's entry, or None; its ``tier`` is ``"memory"`` when a copy is there, and
        its hits count those this process has not written yet."""
        entry, _ = self._lookup(model_id, rehash=True)
        return None if entry is None else self._with_stats(entry)

    def entry_matching(self, meta: ModelMetadata) -> CacheEntry | None:
        """The entry if it is the one the catalog asks for now (see matching.py)."""
        entry = self.entry(meta.id)
        return entry if entry is not None and matches(entry, meta, self.expected) else None

    def entry_matching_nowait(self, meta: ModelMetadata) -> tuple[bool, CacheEntry | None]:
        """``entry_matching`` for an event loop: ``(False, None)`` at once when another thread
        holds the index (it may be waiting out another process's write) or a re-hash is due,
        ``(True, entry or None)`` else."""
        with self.modes.unless_busy() as free:
            if not free:
                return False, None
            entry, pending = self._lookup(meta.id, rehash=False)
            if pending:  # a re-hash is due: not on the event loop
                return False, None
            if entry is None or not matches(entry, meta, self.expected):
                return True, None
            return True, self._with_stats(entry)

    def entries(self) -> list[CacheEntry]:
        """Every visible model (sorted by id); ``tier`` says whether it is in memory too."""
        self.stats.flush()
        out = self.modes.entries()
        if len(self.memory):
            out = [e.with_tier("memory") if e.model_id in self.memory else e for e in out]
        return out

    def _lookup(self, model_id: str, *, rehash: bool) -> tuple[CacheEntry | None, bool]:
        entry, pending = self.modes.lookup(model_id, rehash=rehash)
        if entry is None and not pending:
            self.memory.pop(model_id)  # a stale memory copy must not outlive the disk entry
        return entry, pending

    def _with_stats(self, entry: CacheEntry) -> CacheEntry:
        hits, last = self.stats.pending(entry.model_id)
        tier = "memory" if entry.model_id in self.memory else entry.tier
        if not hits and tier == entry.tier:
            return entry
        return entry.with_stats(tier=tier, hits=hits, last_access=last)


def still_on_disk(entry: CacheEntry) -> bool:
    """Is a memory copy still what the disk shows? One ``lstat`` per file (about a
    microsecond): the same inode for a single file, regular files of the right size for a
    folder. Another process may have removed or replaced the model since it was read."""
    try:
        if entry.kind == "file":
            st = os.lstat(entry.path)
            return (entry.checked_inode in (None, (st.st_dev, st.st_ino))
                    and st.st_size == entry.size)
        base = entry.base
        for f in entry.files:
            st = os.lstat(base / f.path)
            if not stat.S_ISREG(st.st_mode) or st.st_size != f.size:
                return False
        return True
    except OSError:
        return False


def map_file(entry: CacheEntry) -> Any:
    """Map the file the cheap check approved (same inode), never one that replaced it."""
    with open(entry.path, "rb") as f:
        st = os.fstat(f.fileno())
        if entry.checked_inode not in (None, (st.st_dev, st.st_ino)):
            raise FileNotFoundError(f"{entry.path} was replaced")
        if entry.size == 0:
            return b""
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
