"""``ModelCache``: the seed's two-tier cache, a memory LRU in front of the disk tier.

A small facade: each job belongs to an object of its own, built here and handed what it needs.

=============  ===============================================================================
reads.py       ``get`` (the bytes, a hit), ``entry`` (the facts), ``entry_matching`` (is it the
               catalog's model now)
writer.py      the one write path of downloads and imports: staging, first-use hashes, publish
upkeep.py      ``delete``, ``clear``, ``pin``, ``plan_prune``/``prune``, the disk limit, ``verify``
modes.py       the tiers of the folder and the degraded modes (read-only, scratch, volatile)
holds.py       models this process uses (``hold``/``release``/``in_use``)
stats.py       batched hit statistics (never a disk transaction on the hit path)
disk.py        the folder itself: layout, index, blobs, installer, verifier, trust records
=============  ===============================================================================

Renamed reads (the old names still work, with a ``DeprecationWarning``, for one release):
``lookup`` and ``info`` are :meth:`ModelCache.entry`; ``find`` and ``find_nowait`` are
:meth:`ModelCache.entry_matching` and :meth:`ModelCache.entry_matching_nowait`.
"""

from __future__ import annotations

import atexit
import contextlib
import threading
import warnings
import weakref
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..settings import DEFAULT_MEMORY_LIMIT, Settings, env_disk_limit
from .disk import DiskTier
from .entry import CacheEntry, DiskUsage, StagedFile, VerifyResult
from .holds import Holds
from .index import TrustRecord
from .layout import Layout
from .memory import MemoryLRU
from .modes import CacheModes
from .reads import CacheHit, Reader
from .sources import SourcesFile
from .stats import HitStats
from .upkeep import Upkeep
from .writer import ModelWriter

if TYPE_CHECKING:
    from ..catalog import ModelFile, ModelMetadata
    from .prune import PrunePlan

__all__ = ["CacheHit", "ModelCache"]

#: Open caches, so batched statistics are written when the interpreter exits.
_OPEN: weakref.WeakSet[ModelCache] = weakref.WeakSet()


@atexit.register
def _flush_at_exit() -> None:
    for cache in list(_OPEN):
        with contextlib.suppress(Exception):
            cache.flush()


def _renamed(old: str, new: str) -> None:
    warnings.warn(f"ModelCache.{old} is deprecated: use ModelCache.{new}", DeprecationWarning,
                  stacklevel=3)


class ModelCache:
    """Two tiers: a byte-bounded memory LRU in front of the disk tier (see the module doc)."""

    def __init__(self, memory_limit: int = DEFAULT_MEMORY_LIMIT,
                 directory: Path | str | None = None, *, durable: bool = True,
                 disk_limit: int | None = None, lock_timeout: float = 10.0,
                 scratch_fallback: bool = False) -> None:
        """``disk_limit`` (bytes; default ``RUNANYWHERE_DISK_LIMIT``) is enforced by LRU eviction
        after each publish. ``lock_timeout``: how long to wait for another process's lock on the
        index before degrading with a warning.

        A cache folder that cannot be written (or whose index cannot be used) is served
        read-only: what it holds stays usable, and anything that would add to it raises
        ``CacheError``. With ``scratch_fallback=True`` new models go to a temporary folder for
        this process instead (deleted when it ends)."""
        if directory is None:
            directory = Settings.from_env().home
        if disk_limit is None:  # not Settings.from_env(): its default home costs milliseconds
            disk_limit = env_disk_limit()
        self.directory = Path(directory)
        self.durable = durable
        self.disk_limit = disk_limit
        self.lock_timeout = lock_timeout
        self.scratch_fallback = scratch_fallback
        self.memory = MemoryLRU(memory_limit)
        self.modes = CacheModes(self.directory, durable=durable, lock_timeout=lock_timeout,
                                scratch_fallback=scratch_fallback)
        disk = self.modes.disk
        self.stats = HitStats(disk.index)
        self.holds = Holds(disk.locks)
        self.writer = ModelWriter(self.modes, after_publish=self._published)
        self.reader = Reader(self.modes, self.memory, self.stats, self.writer.expected_sha256)
        self.upkeep = Upkeep(self.modes, self.memory, self.holds, self.stats)
        self.sources = SourcesFile(Layout(self.directory).sources_path, disk.locks,
                                   durable=durable)
        _OPEN.add(self)

    @property
    def disk(self) -> DiskTier:
        """The writable disk tier (the folder's, or a scratch folder's when degraded)."""
        return self.modes.disk

    @property
    def degraded(self) -> str | None:
        """Why the folder is not used normally (None when it is)."""
        return self.modes.degraded

    def require_writable(self) -> None:
        """Raise ``CacheError`` (saying why) if nothing can be added to this cache."""
        self.modes.require_writable()

    def close(self) -> None:
        self.flush()
        _OPEN.discard(self)
        self.holds.release_all()
        self.memory.clear()
        self.modes.close()

    def __enter__(self) -> ModelCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reads (reads.py) --------------------------------------------------------------------------
    def get(self, model_id: str, *, promote: bool = True) -> CacheHit | None:
        """The model's bytes (mmap) and path, or None; counts a hit."""
        return self.reader.get(model_id, promote=promote)

    def entry(self, model_id: str) -> CacheEntry | None:
        """The model's facts (size, hashes, tier, hits, pinned), or None; counts no hit."""
        return self.reader.entry(model_id)

    def entry_matching(self, meta: ModelMetadata) -> CacheEntry | None:
        """The entry if it is the model the catalog describes now, else None."""
        return self.reader.entry_matching(meta)

    def entry_matching_nowait(self, meta: ModelMetadata) -> tuple[bool, CacheEntry | None]:
        """``entry_matching`` for an event loop: ``(False, None)`` if it would have to wait."""
        return self.reader.entry_matching_nowait(meta)

    def has(self, model_id: str) -> bool:
        """Is the model cached? (``model_id in cache`` says the same.)"""
        return self.reader.entry(model_id) is not None

    def __contains__(self, model_id: object) -> bool:
        return isinstance(model_id, str) and self.has(model_id)

    def entries(self) -> list[CacheEntry]:
        """Every visible model (sorted by id); ``tier`` says whether it is in memory too."""
        return self.reader.entries()

    def size(self) -> int:
        """Bytes stored, each counted once (shared blobs and memory copies are not added again)."""
        return self.modes.size()

    def usage(self) -> DiskUsage:
        """Where the cache folder's bytes really are on the disk: the models, partials,
        quarantine, the index and everything else (old versions, orphans), each inode once.
        Walks the folder: for ``cache size``, not for a hot path."""
        return self.modes.guarded(self.disk.usage, DiskUsage(0, 0, 0, 0, 0), "usage")

    def memory_size(self) -> int:
        return self.memory.bytes

    def lookup(self, model_id: str) -> CacheEntry | None:
        """Deprecated: :meth:`entry`."""
        _renamed("lookup", "entry")
        return self.entry(model_id)

    def info(self, model_id: str) -> CacheEntry | None:
        """Deprecated: :meth:`entry`."""
        _renamed("info", "entry")
        return self.entry(model_id)

    def find(self, meta: ModelMetadata) -> CacheEntry | None:
        """Deprecated: :meth:`entry_matching`."""
        _renamed("find", "entry_matching")
        return self.entry_matching(meta)

    def find_nowait(self, meta: ModelMetadata) -> tuple[bool, CacheEntry | None]:
        """Deprecated: :meth:`entry_matching_nowait`."""
        _renamed("find_nowait", "entry_matching_nowait")
        return self.entry_matching_nowait(meta)

    # -- writes (writer.py, sideload.py, sources.py) ----------------------------------------------
    def publish(self, model_id: str, version: str, files: list[StagedFile], *, kind: str,
                source_sha256: str | None, origin: str = "download",
                pinned: bool | None = None) -> CacheEntry:
        """Make verified files visible as a model (the files are moved into the store)."""
        return self.writer.publish(model_id, version, files, kind=kind,
                                   source_sha256=source_sha256, origin=origin, pinned=pinned)

    def publish_archive(self, meta: ModelMetadata, archive: StagedFile, *, origin: str,
                        on_extract: Callable[[], None] | None = None,
                        after_publish: Callable[[Path], object] | None = None) -> CacheEntry:
        """Unpack a verified archive safely and publish its files as the model's folder."""
        return self.writer.publish_archive(meta, archive, origin=origin, on_extract=on_extract,
                                           after_publish=after_publish)

    def import_path(self, meta: ModelMetadata, path: Path | str) -> CacheEntry:
        """Sideload a local file or folder, verified against ``meta`` before it is visible."""
        from .sideload import import_into  # on use, as prune.py (upkeep.py): not for a read

        return import_into(self.writer, meta, Path(path))

    def _published(self, model_id: str) -> None:
        self.memory.pop(model_id)
        if self.disk_limit is not None:
            self.enforce_limit(protect={model_id})

    @property
    def sources_path(self) -> Path:
        """``sources.json``: the catalog of models pulled by URL or ``hf://`` reference."""
        return self.sources.path

    def record_source(self, entry: dict[str, Any]) -> None:
        """Add (or replace, by id) a catalog entry in ``sources.json``, atomically."""
        self.require_writable()
        self.sources.record(entry)

    def forget_source(self, model_id: str) -> bool:
        """Drop a model's entry from ``sources.json`` (False if it had none)."""
        self.require_writable()
        return self.sources.forget(model_id)

    # -- what a download needs (writer.py, trust.py) ----------------------------------------------
    def expected_sha256(self, model_id: str, f: ModelFile) -> str | None:
        """The catalog's hash of a file, else the one recorded at its first verified download."""
        return self.writer.expected_sha256(model_id, f)

    def record_trusted(self, model_id: str, f: ModelFile, source: str, sha256: str,
                       size: int) -> None:
        """Trust on first use: every later download or import of this file must match (the
        record outlives ``rm``, ``clear`` and an index rebuild; only :meth:`forget_trusted`
        drops it)."""
        self.writer.record_trusted(model_id, f, source, sha256, size)

    def trusted_hashes(self, model_id: str | None = None) -> list[TrustRecord]:
        """The first-use sha256 records (of one model, or all)."""
        none: list[TrustRecord] = []
        return self.modes.guarded(lambda: self.disk.trust.records(model_id), none,
                                  "trust records")

    def forget_trusted(self, model_id: str) -> list[TrustRecord]:
        """Forget a model's first-use hashes; returns what was forgotten. The cached copy (if
        any) stays; the next download records what it sees."""
        return self.disk.trust.forget(model_id)

    def partial_dir(self) -> Path:
        """``partials/`` (recreated if someone removed it while we ran)."""
        return self.writer.partial_dir()

    def blob_path(self, sha256: str) -> Path:
        return self.disk.blobs.path(sha256)

    def stage_stored_blob(self, path: str, sha256: str, size: int | None) -> StagedFile | None:
        """Stage a hard link to a stored blob with these bytes, or None if there is none."""
        return self.writer.stage_stored_blob(path, sha256, size)

    def discard_staged(self, files: Iterable[StagedFile]) -> None:
        """Drop the reuse links that publishing did not consume (never a download's partial)."""
        self.writer.discard_staged(files)

    def check_space(self, todo: list[tuple[str, int]], *, unpacked: int = 0) -> None:
        """Refuse (``InsufficientStorageError``) a download that cannot fit."""
        self.writer.check_space(todo, unpacked=unpacked)

    def download_lock(self, meta: ModelMetadata, cancel: threading.Event,
                      on_wait: Callable[[], object] | None = None
                      ) -> contextlib.AbstractContextManager[bool]:
        """Hold the model's download lock (True), or False once another process published it.
        ``on_wait()`` runs at each look (every 250 ms at most) while another process holds it."""
        def done() -> bool:
            if on_wait is not None:
                on_wait()
            return self.entry_matching(meta) is not None

        return self.disk.locks.download(meta.id, cancel=cancel, done=done)

    def bytes_in_partials(self, todo: list[tuple[str, int]]) -> int:
        """Bytes written so far into the partials of these ``(partial key, size)`` files, by
        any process (another one's download shows its progress through them)."""
        return self.writer.bytes_in_partials(todo)

    # -- upkeep (upkeep.py) ------------------------------------------------------------------------
    def delete(self, model_id: str, *, force: bool = False) -> int:
        """Remove a model (even pinned); refuses one another process holds unless ``force``."""
        return self.upkeep.delete(model_id, force=force)

    def clear(self) -> int:
        """Remove every model nobody else is using (pinned ones too); returns bytes freed."""
        return self.upkeep.clear()

    def set_max_memory_size(self, max_bytes: int) -> None:
        """Change the memory limit; evicts least-recently-used entries at once if needed."""
        self.memory.set_max_bytes(max_bytes)

    def pin(self, model_id: str, pinned: bool = True) -> bool:
        """Never evict this model (``pinned=False`` to undo). False if it is not cached."""
        return self.upkeep.pin(model_id, pinned)

    def plan_prune(self, max_size: int | None = None, *, orphan_age: float = 24 * 3600
                   ) -> PrunePlan:
        """What ``prune`` would remove: LRU models above ``max_size`` bytes, and orphans idle
        for ``orphan_age`` seconds. Nothing changes until ``plan.execute()``."""
        return self.upkeep.plan_prune(max_size, orphan_age=orphan_age)

    def prune(self, max_size: int | None = None, *, orphan_age: float = 24 * 3600) -> int:
        return self.plan_prune(max_size, orphan_age=orphan_age).execute()

    def enforce_limit(self, protect: set[str] | None = None) -> int:
        """Evict least-recently-used models until the disk limit holds; returns bytes freed."""
        return self.upkeep.enforce_limit(self.disk_limit, protect)

    def verify(self, model_id: str | None = None) -> list[VerifyResult]:
        """Re-hash cached files; corrupt models are quarantined (and no longer visible)."""
        return self.upkeep.verify(model_id)

    # -- in use (holds.py) -------------------------------------------------------------------------
    @contextlib.contextmanager
    def in_use(self, model_id: str) -> Iterator[CacheEntry | None]:
        """Hold the model for the block (no process evicts it); yields its entry or None."""
        self.hold(model_id)
        try:
            yield self.entry(model_id)
        finally:
            self.release(model_id)

    def hold(self, model_id: str) -> None:
        """Mark a model as in use by this process (a shared flock) so no eviction removes it.
        Waits while an eviction of the model is running; look the model up *after* holding it."""
        self.holds.hold(model_id)

    def release(self, model_id: str) -> None:
        self.holds.release(model_id)

    def held(self, model_id: str) -> bool:
        """Is the model held by any process (this one included)?"""
        return self.holds.held(model_id)

    def flush(self) -> None:
        """Write batched statistics and retry commits that met a locked index."""
        self.stats.flush()
        self.modes.retry_volatile()
