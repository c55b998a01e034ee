"""``ModelCache``: the seed's two-tier cache, a memory LRU in front of the disk tier.

* ``get(id)`` -> a :class:`CacheHit` (memory tier: a dict lookup; disk tier: one index row, one
  ``stat``, an ``mmap`` of the file, never a copy or a re-hash) and promotes it to memory.
* ``put``/``publish`` is called by the loader with verified files; ``import_path`` sideloads.
* Faults degrade, never crash: an unwritable cache folder or an index locked too long turns the
  cache into memory + a scratch folder for this process, with one warning.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import logging
import mmap
import os
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CacheError
from .disk import CacheEntry, DiskTier, StagedFile, VerifyResult
from .fsutil import is_writable_dir
from .memory import MemoryLRU
from .prune import PrunePlan, plan_prune

log = logging.getLogger("runanywhere")
DEFAULT_MEMORY_LIMIT = 500 * 2**20


@dataclass(frozen=True)
class CacheHit:
    entry: CacheEntry
    tier: str  # "memory" or "disk"
    #: The file's bytes (mmap) for single-file models; None for folders.
    buffer: Any | None

    @property
    def path(self) -> Path:
        return self.entry.path


class ModelCache:
    def __init__(self, memory_limit: int = DEFAULT_MEMORY_LIMIT, directory: Path | str | None = None,
                 *, durable: bool = True, disk_limit: int | None = None) -> None:
        if directory is None:
            from ..settings import Settings

            directory = Settings.from_env().home
        self.directory = Path(directory)
        self.durable = durable
        self.disk_limit = disk_limit
        self.memory = MemoryLRU(memory_limit)
        self.degraded: str | None = None
        self._scratch: tempfile.TemporaryDirectory[str] | None = None
        self._readonly_index = None
        self._pending: dict[str, tuple[int, float]] = {}
        self._pending_lock = threading.Lock()
        self._last_flush = time.monotonic()
        self._use_fds: dict[str, list[int]] = {}
        self.disk = self._open_disk()
        atexit.register(self.flush)

    # -- opening and graceful fallback ----------------------------------------------------------
    def _open_disk(self) -> DiskTier:
        if is_writable_dir(self.directory):
            try:
                return DiskTier(self.directory, durable=self.durable)
            except CacheError:
                raise
            except (OSError, sqlite3.Error) as e:
                reason = f"cannot use the cache index in {self.directory} ({e})"
        else:
            reason = f"cache folder {self.directory} is not writable"
        return self._fallback(reason)

    def _fallback(self, reason: str) -> DiskTier:
        self._scratch = tempfile.TemporaryDirectory(prefix="runanywhere-scratch-")
        self.degraded = reason
        log.warning("%s; using memory and a temporary folder for this run (nothing will persist)",
                    reason)
        ro_db = self.directory / "index.db"
        if ro_db.exists():
            from .index import Index

            with contextlib.suppress(sqlite3.Error, OSError, CacheError):
                self._readonly_index = Index(ro_db, readonly=True)
        return DiskTier(Path(self._scratch.name), durable=False)

    def close(self) -> None:
        self.flush()
        self.disk.close()
        if self._scratch is not None:
            self._scratch.cleanup()

    # -- reads ----------------------------------------------------------------------------------
    def get(self, model_id: str, *, promote: bool = True) -> CacheHit | None:
        mem = self.memory.get(model_id)
        if mem is not None:
            entry = mem.buffer[0]
            self._touch(model_id)
            return CacheHit(entry, "memory", mem.buffer[1])
        entry = self.lookup(model_id)
        if entry is None:
            return None
        buffer = self._map(entry) if entry.kind == "file" else None
        if promote and entry.size <= self.memory.max_bytes:
            self.memory.put(model_id, (entry, buffer), entry.size)
        self._touch(model_id)
        return CacheHit(entry, "disk", buffer)

    def lookup(self, model_id: str) -> CacheEntry | None:
        """The disk entry (cheap checks only), without promoting or counting a hit."""
        try:
            entry = self.disk.lookup(model_id)
        except sqlite3.OperationalError as e:
            log.warning("cache index busy (%s); treating %s as a miss", e, model_id)
            return None
        if entry is None and self._readonly_index is not None:
            entry = self._readonly_lookup(model_id)
        if entry is None:
            self.memory.pop(model_id)  # a stale memory copy must not outlive the disk entry
        return entry

    def _readonly_lookup(self, model_id: str) -> CacheEntry | None:
        idx = self._readonly_index
        assert idx is not None
        row = idx.model(model_id)
        if row is None:
            return None
        files = idx.files(model_id)
        entry = CacheEntry(row.id, row.version, self.directory / row.entry, row.kind, row.size,
                           tuple(files), row.source_sha256, row.created, row.last_access,
                           row.hits, row.pinned, "disk", row.origin)
        base = entry.path if entry.kind == "dir" else entry.path.parent
        for f in files:
            try:
                if (base / f.path).stat().st_size != f.size:
                    return None
            except OSError:
                return None
        return entry

    def has(self, model_id: str) -> bool:
        return model_id in self.memory or self.lookup(model_id) is not None

    @staticmethod
    def _map(entry: CacheEntry) -> Any:
        if entry.size == 0:
            return b""
        with open(entry.path, "rb") as f:
            return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)

    def entries(self) -> list[CacheEntry]:
        out = {e.model_id: e for e in self.disk.entries()}
        if self._readonly_index is not None:
            for row in self._readonly_index.models():
                if row.id not in out:
                    ro = self._readonly_lookup(row.id)
                    if ro is not None:
                        out[row.id] = ro
        return sorted(out.values(), key=lambda e: e.model_id)

    def size(self) -> int:
        """Bytes held, each counted once (memory copies of disk entries are not added again)."""
        return self.disk.size()

    def memory_size(self) -> int:
        return self.memory.bytes

    # -- writes ---------------------------------------------------------------------------------
    def publish(self, model_id: str, version: str, files: list[StagedFile], *, kind: str,
                source_sha256: str | None, origin: str = "download") -> CacheEntry:
        entry = self.disk.publish(model_id, version, files, kind=kind,
                                  source_sha256=source_sha256, origin=origin)
        self.memory.pop(model_id)
        if self.disk_limit is not None:
            self.enforce_limit(protect={model_id})
        return entry

    def delete(self, model_id: str) -> int:
        self.memory.pop(model_id)
        return self.disk.remove([model_id])

    def clear(self) -> int:
        self.memory.clear()
        ids = [e.model_id for e in self.disk.entries()]
        return self.disk.remove(ids) if ids else 0

    def set_max_memory_size(self, max_bytes: int) -> None:
        self.memory.set_max_bytes(max_bytes)

    def pin(self, model_id: str, pinned: bool = True) -> bool:
        return self.disk.index.set_pinned(model_id, pinned)

    # -- in use ---------------------------------------------------------------------------------
    @contextlib.contextmanager
    def in_use(self, model_id: str) -> Iterator[None]:
        self.hold(model_id)
        try:
            yield
        finally:
            self.release(model_id)

    def hold(self, model_id: str) -> None:
        """Mark a model as in use (by this process) so no eviction removes it."""
        with contextlib.suppress(OSError):
            fd = os.open(self.disk.lock_dir / f"use-{model_id}.lock", os.O_RDWR | os.O_CREAT,
                         0o644)
            fcntl.flock(fd, fcntl.LOCK_SH)
            self._use_fds.setdefault(model_id, []).append(fd)

    def release(self, model_id: str) -> None:
        fds = self._use_fds.get(model_id)
        if fds:
            os.close(fds.pop())

    # -- eviction, pruning, verification ------------------------------------------------------------
    def plan_prune(self, max_size: int | None = None, *, orphan_age: float = 24 * 3600
                   ) -> PrunePlan:
        return plan_prune(self.disk, max_size=max_size, orphan_age=orphan_age,
                          in_use={k for k, v in self._use_fds.items() if v},
                          on_evict=lambda ids: [self.memory.pop(i) for i in ids] and None)

    def enforce_limit(self, protect: set[str] = frozenset()) -> int:  # type: ignore[assignment]
        if self.disk_limit is None:
            return 0
        plan = plan_prune(self.disk, max_size=self.disk_limit, orphan_age=float("inf"),
                          in_use=protect | {k for k, v in self._use_fds.items() if v})
        return plan.execute() if plan.evict else 0

    def verify(self, model_id: str | None = None) -> list[VerifyResult]:
        results = self.disk.verify([model_id] if model_id else None)
        for r in results:
            if not r.ok:
                self.memory.pop(r.model_id)
        return results

    # -- access statistics (batched: a hit must not cost a disk transaction) ------------------------
    def _touch(self, model_id: str) -> None:
        now = time.time()
        with self._pending_lock:
            n, _ = self._pending.get(model_id, (0, 0.0))
            self._pending[model_id] = (n + 1, now)
        if time.monotonic() - self._last_flush > 5.0:
            self.flush()

    def flush(self) -> None:
        with self._pending_lock:
            pending, self._pending = self._pending, {}
            self._last_flush = time.monotonic()
        if pending:
            with contextlib.suppress(sqlite3.Error):
                self.disk.index.record_access(pending)
