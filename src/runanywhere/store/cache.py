"""``ModelCache``: the seed's two-tier cache, a memory LRU in front of the disk tier.

* ``get(id)`` -> a :class:`CacheHit`. Memory tier: a dict lookup (~1 µs). Disk tier: one index
  statement, one ``lstat`` per file, an ``mmap`` of the file: never a copy or a re-hash. A disk
  hit is promoted to memory unless it is bigger than the whole memory limit.
* ``publish`` is called by the loader with verified files; ``import_path`` sideloads a file.
* Hit counts and last-access times are batched (one transaction every few seconds, never on the
  hit path) and written with a short lock wait: statistics never block a hit.
* Faults degrade, never crash, with one warning each: an unwritable cache folder or an index
  that cannot be opened turns the cache into a read-only view of the folder plus a scratch folder
  for this process; a corrupt index is rebuilt from the blobs and manifests; a publish that meets
  an index locked too long stays visible to this process and is committed later.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import mmap
import os
import shutil
import sqlite3
import stat
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import CacheBusy, CacheError, InsufficientStorageError, IntegrityError
from ..logs import log, warn_once
from ..settings import DEFAULT_MEMORY_LIMIT, Settings
from . import permissions
from .archive import extract, unpack_bound
from .disk import CacheEntry, DiskTier, DiskUsage, Prepared, StagedFile, VerifyResult
from .fsutil import atomic_write, disk_error, is_writable_dir
from .index import TrustRecord, dump_manifest, is_busy
from .memory import MemoryLRU
from .partial import is_reuse_link, link_for_publish, release_link
from .prune import PrunePlan, evict_unused, plan_prune

if TYPE_CHECKING:
    from ..catalog import ModelFile, ModelMetadata
#: Seconds between two writes of batched hit statistics.
FLUSH_EVERY = 5.0
#: Room kept free on the disk besides what a download needs.
SPACE_MARGIN = 64 * 2**20
T = TypeVar("T")


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


#: ``_checked``'s answer when a re-hash is due but not allowed (on an event loop).
_PENDING = object()
#: Open caches, so batched statistics are written when the interpreter exits.
_OPEN: weakref.WeakSet[ModelCache] = weakref.WeakSet()


@atexit.register
def _flush_at_exit() -> None:
    for cache in list(_OPEN):
        with contextlib.suppress(Exception):
            cache.flush()


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
        if directory is None or disk_limit is None:
            env = Settings.from_env()
            directory = env.home if directory is None else directory
            disk_limit = env.disk_limit if disk_limit is None else disk_limit
        self.directory = Path(directory)
        self.durable = durable
        self.disk_limit = disk_limit
        self.lock_timeout = lock_timeout
        self.scratch_fallback = scratch_fallback
        self.memory = MemoryLRU(memory_limit)
        self.degraded: str | None = None
        self._fallback: DiskTier | None = None  # read-only view of the real folder, if degraded
        self._scratch: tempfile.TemporaryDirectory[str] | None = None
        self._volatile: dict[str, tuple[Prepared, CacheEntry]] = {}
        self._pending: dict[str, tuple[int, float]] = {}
        self._pending_lock = threading.Lock()
        self._last_flush = time.monotonic()
        self._use_fds: dict[str, list[int]] = {}
        self._recovered = False
        self.disk = self._open_disk()
        _OPEN.add(self)

    # -- opening and graceful fallback ----------------------------------------------------------
    def _open_disk(self) -> DiskTier:
        unsafe = permissions.problems(self.directory)
        if unsafe:
            raise CacheError(f"refusing the cache folder {self.directory}: {unsafe[0]}"
                             + (f" (and {len(unsafe) - 1} more: runanywhere doctor)"
                                if len(unsafe) > 1 else ""))
        if not is_writable_dir(self.directory):
            return self._degrade(f"cache folder {self.directory} is not writable")
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                return DiskTier(self.directory, durable=self.durable,
                                busy_timeout=self.lock_timeout)
            except CacheBusy as e:
                return self._degrade(f"cache index in {self.directory} is busy ({e})")
            except CacheError:
                raise  # an index from a newer runanywhere: refuse, never touch it
            except sqlite3.OperationalError as e:
                # Another process opening the same index (WAL switch, migration) can answer
                # "locked" at once, without SQLite's busy wait: wait it out like a lock.
                if is_busy(e) and time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                return self._degrade(f"cannot use the cache index in {self.directory} ({e})")
            except (OSError, sqlite3.Error) as e:
                return self._degrade(f"cannot use the cache index in {self.directory} ({e})")

    def _degrade(self, reason: str) -> DiskTier:
        self.degraded = reason
        served = "nothing (it has no index)"
        if (self.directory / "index.db").exists():
            try:
                self._fallback = DiskTier(self.directory, readonly=True,
                                          busy_timeout=self.lock_timeout)
                served = "what it holds, read-only"
            except (OSError, sqlite3.Error, CacheError) as e:
                served = f"nothing from it (its index cannot be read either: {e})"
        then = ("new downloads go to a temporary folder for this run (nothing new will persist)"
                if self.scratch_fallback else "nothing can be added to it")
        self._warn("degraded", f"{reason}; serving {served}; {then}")
        # The writable tier: a scratch folder, used only with scratch_fallback (the rest of the
        # class stays the same either way; require_writable() guards every addition).
        self._scratch = tempfile.TemporaryDirectory(prefix="runanywhere-scratch-")
        return DiskTier(Path(self._scratch.name), durable=False, busy_timeout=self.lock_timeout)

    def require_writable(self) -> None:
        """Raise ``CacheError`` (saying why) if nothing can be added to this cache."""
        if self.degraded is not None and not self.scratch_fallback:
            raise CacheError(f"{self.degraded}: nothing can be added to it (use another --home,"
                             " or ModelCache(scratch_fallback=True) for a temporary folder)")

    def _warn(self, key: str, message: str) -> None:
        warn_once(f"cache:{key}:{self.directory}:{id(self)}", "%s", message)

    def _guarded(self, call: Callable[[], T], default: T, what: str,
                 tier: DiskTier | None = None) -> T:
        """Run an index read of ``tier`` (default: the writable one). A busy index answers
        ``default``; a corrupt writable one is rebuilt once, a corrupt read-only one ignored."""
        tier = tier or self.disk
        try:
            return call()
        except sqlite3.OperationalError as e:
            if not is_busy(e):
                raise
            self._warn("busy-read", f"cache index busy ({e}); {what} answered without it")
            return default
        except sqlite3.DatabaseError as e:
            if tier.readonly:
                self._warn("ro-corrupt", f"the read-only cache index is damaged ({e})")
                return default
            if self._recovered:
                raise
            self._recovered = True
            tier.recover(e)
            return call()

    def close(self) -> None:
        self.flush()
        _OPEN.discard(self)
        for mid in list(self._use_fds):
            self._release_all(mid)
        self.memory.clear()
        self.disk.close()
        if self._fallback is not None:
            self._fallback.close()
        if self._scratch is not None:
            self._scratch.cleanup()

    def __enter__(self) -> ModelCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reads ----------------------------------------------------------------------------------
    def get(self, model_id: str, *, promote: bool = True) -> CacheHit | None:
        """The model's bytes (mmap) and path, or None; counts a hit."""
        mem = self.memory.get(model_id)
        if mem is not None:
            if self._still_on_disk(mem.buffer.entry):
                self._touch(model_id)
                return mem.buffer  # type: ignore[no-any-return]
            self.memory.pop(model_id)  # removed or replaced by another process: ask the disk
        for _ in range(3):  # another process may replace the file between check and open
            entry = self.lookup(model_id)
            if entry is None:
                return None
            try:
                buffer = self._map(entry) if entry.kind == "file" else None
                break
            except OSError:  # removed or replaced by another process a moment ago
                continue
        else:
            return None
        self._touch(model_id)
        if promote and entry.size <= self.memory.max_bytes:
            self.memory.put(model_id, CacheHit(entry.with_tier("memory"), "memory", buffer),
                            entry.size)
        return CacheHit(entry, "disk", buffer)

    @staticmethod
    def _still_on_disk(entry: CacheEntry) -> bool:
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

    def lookup(self, model_id: str) -> CacheEntry | None:
        """The disk entry (cheap checks only), without promoting or counting a hit.

        A file whose size is right but whose mtime moved is re-hashed here (once: its new mtime
        is recorded when the bytes are right, it is quarantined when they are not)."""
        return self._lookup(model_id, rehash=True)[0]

    def _lookup(self, model_id: str, *, rehash: bool) -> tuple[CacheEntry | None, bool]:
        """``(entry or None, True if a re-hash is needed and rehash was False)``."""
        entry = self._checked(self.disk, model_id, rehash)
        if entry is _PENDING:
            return None, True
        if entry is None and model_id in self._volatile:
            entry = self._volatile[model_id][1]
        if entry is None and self._fallback is not None:
            entry = self._checked(self._fallback, model_id, rehash)
            if entry is _PENDING:
                return None, True
        if entry is None:
            self.memory.pop(model_id)  # a stale memory copy must not outlive the disk entry
        return entry, False

    def _checked(self, tier: DiskTier, model_id: str, rehash: bool) -> Any:
        """The tier's entry after its cheap check, re-hashed if its mtimes moved (or
        ``_PENDING`` when that is needed and not allowed here)."""
        none: tuple[CacheEntry | None, bool] = (None, False)
        entry, stale = self._guarded(lambda: tier.check(model_id), none,
                                     f"lookup of {model_id}", tier)
        if not stale:
            return entry
        if not rehash:
            return _PENDING
        try:
            return self._guarded(lambda: tier.recheck(model_id), None,
                                 f"re-check of {model_id}", tier)
        except CacheBusy as e:
            self._warn("busy-recheck", f"{model_id} could not be re-checked now ({e})")
            return None

    def has(self, model_id: str) -> bool:
        return self.lookup(model_id) is not None

    def __contains__(self, model_id: object) -> bool:
        return isinstance(model_id, str) and self.has(model_id)

    @staticmethod
    def _map(entry: CacheEntry) -> Any:
        """Map the file the cheap check approved (same inode), never one that replaced it."""
        with open(entry.path, "rb") as f:
            st = os.fstat(f.fileno())
            if entry.checked_inode not in (None, (st.st_dev, st.st_ino)):
                raise FileNotFoundError(f"{entry.path} was replaced")
            if entry.size == 0:
                return b""
            return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)

    def entries(self) -> list[CacheEntry]:
        """Every visible model (sorted by id); ``tier`` says whether it is in memory too."""
        self._flush_stats()
        none: list[CacheEntry] = []
        out = self._guarded(self.disk.entries, none, "listing")
        seen = {e.model_id for e in out}
        extra = [e for _, e in self._volatile.values() if e.model_id not in seen]
        if self._fallback is not None:
            extra += [e for e in self._guarded(self._fallback.entries, none, "listing",
                                               self._fallback)
                      if e.model_id not in seen and e.model_id not in self._volatile]
        if extra:
            out = sorted(out + extra, key=lambda e: e.model_id)
        if len(self.memory):
            out = [e.with_tier("memory") if e.model_id in self.memory else e for e in out]
        return out

    def info(self, model_id: str) -> CacheEntry | None:
        """Per-model facts (size, hash, tier, last access, hits, pinned), statistics flushed."""
        self._flush_stats()
        entry = self.lookup(model_id)
        if entry is not None and model_id in self.memory:
            entry = entry.with_tier("memory")
        return entry

    def size(self) -> int:
        """Bytes stored, each counted once (shared blobs and memory copies are not added again)."""
        total = self._guarded(self.disk.size, 0, "size")
        blobs = {f.sha256: f.size for _, e in self._volatile.values() for f in e.files}
        total += sum(blobs.values())
        if self._fallback is not None:
            total += self._guarded(self._fallback.size, 0, "size", self._fallback)
        return total

    def usage(self) -> DiskUsage:
        """Where the cache folder's bytes really are on the disk: the models, partials,
        quarantine, the index and everything else (old versions, orphans), each inode once.
        Walks the folder: for ``cache size``, not for a hot path."""
        return self._guarded(self.disk.usage, DiskUsage(0, 0, 0, 0, 0), "usage")

    def memory_size(self) -> int:
        return self.memory.bytes

    # -- writes ---------------------------------------------------------------------------------
    def publish(self, model_id: str, version: str, files: list[StagedFile], *, kind: str,
                source_sha256: str | None, origin: str = "download",
                pinned: bool | None = None) -> CacheEntry:
        """Make verified files visible as a model (the files are moved into the store)."""
        self.require_writable()
        try:
            entry = self.disk.publish(model_id, version, files, kind=kind,
                                      source_sha256=source_sha256, origin=origin, pinned=pinned)
            self._volatile.pop(model_id, None)
        except CacheBusy as e:
            if not isinstance(e.pending, Prepared):
                raise
            entry = self._keep_volatile(e.pending, str(e))
        self.memory.pop(model_id)
        if self.disk_limit is not None:
            self.enforce_limit(protect={model_id})
        return entry

    def _keep_volatile(self, p: Prepared, why: str) -> CacheEntry:
        self._warn("busy-write", f"{why}; {p.doc['id']} is usable by this process now and will"
                   " be recorded once the index is free")
        entry = CacheEntry(str(self.disk.root), p.doc["id"], dump_manifest(p.doc), time.time(), 0,
                           bool(p.pinned))
        self._volatile[p.doc["id"]] = (p, entry)
        return entry

    def import_path(self, meta: ModelMetadata, path: Path | str) -> CacheEntry:
        """Sideload a local file or folder, verified against ``meta`` before it is visible."""
        from .sideload import import_into

        self.require_writable()
        return import_into(self, meta, Path(path))

    def publish_archive(self, meta: ModelMetadata, archive: StagedFile, *, origin: str,
                        on_extract: Callable[[], None] | None = None,
                        after_publish: Callable[[Path], object] | None = None) -> CacheEntry:
        """Unpack a verified archive safely and publish its files as the model's folder.

        The archive's blob is kept while it is unpacked (``after_publish`` gets its path, to
        share it) and dropped afterwards unless some model uses the same bytes.
        """
        blob = self.disk.store_blob(archive)
        if on_extract is not None:
            on_extract()
        work = self.partial_dir() / f"unpack-{meta.id}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            assert meta.archive is not None
            work.parent.mkdir(parents=True, exist_ok=True)
            free = shutil.disk_usage(work.parent).free - SPACE_MARGIN
            members = extract(blob, meta.archive, work,
                              limit=unpack_bound(archive.size, meta.unpacked_size), free=free,
                              declared=meta.unpacked_size is not None)
            if not members:
                raise IntegrityError(f"the archive of {meta.id} holds no files")
            files = [StagedFile(m.path, m.file, m.sha256, m.size) for m in members]
            entry = self.publish(meta.id, meta.version, files, kind="dir",
                                 source_sha256=archive.sha256, origin=origin)
            if after_publish is not None:
                after_publish(blob)
            return entry
        finally:
            shutil.rmtree(work, ignore_errors=True)
            self._drop_unshared_blob(archive.sha256)

    def _drop_unshared_blob(self, sha256: str) -> None:
        """An archive is not the model (its unpacked files are), and a refused one must not stay:
        drop its blob unless some model uses the same bytes."""
        with self.disk.locks.gc():  # the guard against racing a publisher that uses it
            if sha256 not in self.disk.index.blob_refs():
                with contextlib.suppress(FileNotFoundError):
                    self.disk.blob_path(sha256).unlink()

    # -- where pulled URLs came from ------------------------------------------------------------
    @property
    def sources_path(self) -> Path:
        """``sources.json``: a catalog of the models pulled by URL or ``hf://`` reference, so a
        later run (offline too) knows them by id."""
        return self.directory / "sources.json"

    def record_source(self, entry: dict[str, Any]) -> None:
        """Add (or replace, by id) a catalog entry in ``sources.json``, atomically."""
        self.require_writable()
        with self.disk.locks.sources():
            try:
                doc = json.loads(self.sources_path.read_text(encoding="utf-8"))
                models = [m for m in doc.get("models", []) if m.get("id") != entry["id"]]
            except FileNotFoundError:
                models = []
            except (OSError, ValueError, AttributeError) as e:
                raise CacheError(f"{self.sources_path} cannot be read ({e}); move it aside"
                                 " to start a new one") from e
            doc = {"format_version": 1, "models": [*models, entry]}
            atomic_write(self.sources_path, json.dumps(doc, indent=1).encode(),
                         durable=self.durable)

    # -- what a download needs from the store ---------------------------------------------------
    def find(self, meta: ModelMetadata) -> CacheEntry | None:
        """The cached entry if it is the one the catalog asks for now (same files and hashes,
        recorded first-use hashes included)."""
        entry = self.lookup(meta.id)
        if entry is not None and self._matches(entry, meta):
            return entry
        return None

    def find_nowait(self, meta: ModelMetadata) -> tuple[bool, CacheEntry | None]:
        """``find`` for an event loop: ``(False, None)`` at once when another thread holds the
        index (it may be waiting out another process's write), ``(True, entry or None)`` else."""
        with self.disk.index.unless_busy() as free:
            if not free:
                return False, None
            entry, pending = self._lookup(meta.id, rehash=False)
            if pending:  # a re-hash is due: not on the event loop
                return False, None
            return True, entry if entry is not None and self._matches(entry, meta) else None

    def _matches(self, entry: CacheEntry, meta: ModelMetadata) -> bool:
        if meta.archive:
            want = self.expected_sha256(meta.id, meta.files[0])
            return want is not None and entry.sha256 == want
        have = {f.path: f for f in entry.files}
        if set(have) != {f.path for f in meta.files}:
            return False
        for f in meta.files:
            if f.size is not None and have[f.path].size != f.size:
                return False
            want = self.expected_sha256(meta.id, f)
            if want is None and f.git_sha1:
                return False  # no sha256 vouches for these bytes: fetch (and check) them
            if want is not None and have[f.path].sha256 != want:
                return False
        return True

    def expected_sha256(self, model_id: str, f: ModelFile) -> str | None:
        """The catalog's hash of a file, else the one recorded at its first verified download.

        A file the catalog knows by its git blob id (a small file of the Hub) changes with the
        commit its URL names: its record counts only for the URL it was recorded from, so a
        moved branch is fetched and checked against the new blob id, never served old bytes.
        """
        if f.sha256:
            return f.sha256
        t = self._guarded(lambda: self.disk.index.trusted(model_id, f.path), None, "lookup")
        if t is None or f.size not in (None, t[1]):
            return None
        if f.git_sha1 and t[2] != f.url:
            return None
        return t[0]

    def record_trusted(self, model_id: str, f: ModelFile, source: str, sha256: str,
                       size: int) -> None:
        """Trust on first use: every later download or import of this file must match (the
        record outlives ``rm``, ``clear`` and an index rebuild; only :meth:`forget_trusted`
        drops it). A file with a git blob id was checked against it: its record is replaced
        when its URL (the commit) changes, and names that URL whatever ``source`` was."""
        if f.git_sha1:
            self.disk.record_trust(model_id, f.path, f.url, sha256, size, replace=True)
        else:
            self.disk.record_trust(model_id, f.path, source, sha256, size)

    def trusted_hashes(self, model_id: str | None = None) -> list[TrustRecord]:
        """The first-use sha256 records (of one model, or all)."""
        none: list[TrustRecord] = []
        return self._guarded(lambda: self.disk.trust_records(model_id), none, "trust records")

    def forget_trusted(self, model_id: str) -> list[TrustRecord]:
        """Forget a model's first-use hashes; returns what was forgotten. The cached copy (if
        any) stays; the next download records what it sees."""
        return self.disk.forget_trust(model_id)

    def partial_dir(self) -> Path:
        """``partials/`` (recreated if someone removed it while we ran)."""
        folder = self.disk.partial_dir
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o755)
        except OSError as e:
            raise disk_error(e, f"creating {folder}", self.directory) from e
        return folder

    def blob_path(self, sha256: str) -> Path:
        return self.disk.blob_path(sha256)

    def stage_stored_blob(self, path: str, sha256: str, size: int | None) -> StagedFile | None:
        """Stage a hard link to a stored blob with these bytes, or None if there is none.

        Publishing *moves* a staged file into ``blobs/`` and drops it when the blob exists, so the
        blob itself must never be staged: a link in ``partials/`` is, and it costs no copy. The
        link is a partial of this process (``prune`` leaves it alone), and it keeps the bytes
        even if another process removes the blob before the publish.
        """
        try:
            if not self.disk.has_blob(sha256, size):
                return None
            if size is None:  # a catalog without sizes (a Hub file known by its hash)
                size = self.disk.blob_path(sha256).stat().st_size
            link = link_for_publish(self.partial_dir(), self.disk.blob_path(sha256), sha256,
                                    size)
        except OSError:  # removed by another process's clear or prune a moment ago: download
            return None
        return StagedFile(path, link, sha256, size)

    def discard_staged(self, files: Iterable[StagedFile]) -> None:
        """Drop the reuse links that publishing did not consume (never a download's partial)."""
        for sf in files:
            if sf.src.parent == self.disk.partial_dir and is_reuse_link(sf.src):
                release_link(sf.src)

    def check_space(self, todo: list[tuple[str, int]], *, unpacked: int = 0) -> None:
        """Refuse (``InsufficientStorageError``) a download of ``(partial key, size)`` files that
        cannot fit, counting the bytes their partials hold already; ``unpacked``: what an archive
        will unpack to besides itself (the catalog's ``unpacked_size``, else its own size as a
        lower bound; the unpacker enforces the real bound member by member)."""
        if not todo and not unpacked:
            return
        folder = self.partial_dir()
        have = 0
        for key, size in todo:
            for part in folder.glob(f"{key}.*.part"):
                with contextlib.suppress(OSError):
                    have += min(part.stat().st_blocks * 512, size)
        total = sum(size for _, size in todo)
        need = total - have
        free = shutil.disk_usage(folder).free
        if need + unpacked + SPACE_MARGIN > free:
            also = f" and {unpacked / 2**20:.1f} MiB to unpack" if unpacked else ""
            raise InsufficientStorageError(
                f"not enough disk space in {self.directory}: {need / 2**20:.1f} MiB still to"
                f" download{also}, {free / 2**20:.1f} MiB free", needed=need + unpacked,
                available=free)

    def download_lock(self, meta: ModelMetadata, cancel: threading.Event
                      ) -> contextlib.AbstractContextManager[bool]:
        """Hold the model's download lock (True), or False once another process published it."""
        return self.disk.locks.download(meta.id, cancel=cancel,
                                        done=lambda: self.find(meta) is not None)

    def delete(self, model_id: str, *, force: bool = False) -> int:
        """Remove a model (even pinned); refuses one another process holds unless ``force``."""
        self._release_all(model_id)  # this process asked for the deletion: its holds end
        if self.disk.index.row(model_id) is None and model_id not in self._volatile:
            self._refuse_readonly(model_id)
        fd = self.disk.locks.try_evict(model_id)
        if fd is None and not force:
            raise CacheError(f"{model_id} is in use by another process; close it first")
        try:
            freed = self.disk.remove([model_id])
        finally:
            if fd is not None:
                os.close(fd)
        self.memory.pop(model_id)
        self._volatile.pop(model_id, None)
        return freed

    def clear(self) -> int:
        """Remove every model nobody else is using (pinned ones too); returns bytes freed."""
        for mid in list(self._use_fds):
            self._release_all(mid)
        ids: list[str] = self._guarded(self.disk.index.ids, list[str](), "clear")
        freed, removed = evict_unused(self.disk, ids, keep_pinned=False)
        left = sorted(set(ids) - set(removed))
        if left:
            log.warning("kept %s: in use by another process", ", ".join(left))
        self.memory.clear()
        self._volatile.clear()
        return freed

    def set_max_memory_size(self, max_bytes: int) -> None:
        """Change the memory limit; evicts least-recently-used entries at once if needed."""
        self.memory.set_max_bytes(max_bytes)

    def pin(self, model_id: str, pinned: bool = True) -> bool:
        """Never evict this model (``pinned=False`` to undo). False if it is not cached."""
        if self.disk.set_pinned(model_id, pinned):
            return True
        self._refuse_readonly(model_id)
        return False

    def _refuse_readonly(self, model_id: str) -> None:
        if self._fallback is not None and self._fallback.lookup(model_id) is not None:
            raise CacheError(f"{model_id} is in a cache this process cannot change"
                             f" ({self.degraded})")

    # -- in use ---------------------------------------------------------------------------------
    @contextlib.contextmanager
    def in_use(self, model_id: str) -> Iterator[CacheEntry | None]:
        """Hold the model for the block (no process evicts it); yields its entry or None."""
        self.hold(model_id)
        try:
            yield self.lookup(model_id)
        finally:
            self.release(model_id)

    def hold(self, model_id: str) -> None:
        """Mark a model as in use by this process (a shared flock) so no eviction removes it.

        Waits while an eviction of the model is running; look the model up *after* holding it.
        """
        fd = self.disk.locks.hold_use(model_id)
        self._use_fds.setdefault(model_id, []).append(fd)

    def release(self, model_id: str) -> None:
        fds = self._use_fds.get(model_id)
        if fds:
            fd = fds.pop()
            if fd >= 0:
                os.close(fd)
        if not fds:
            self._use_fds.pop(model_id, None)

    def _release_all(self, model_id: str) -> None:
        for fd in self._use_fds.pop(model_id, []):
            if fd >= 0:
                os.close(fd)

    def held(self, model_id: str) -> bool:
        """Is the model held by any process (this one included)?"""
        return bool(self._use_fds.get(model_id)) or self.disk.locks.used_elsewhere(model_id)

    # -- eviction, pruning, verification --------------------------------------------------------
    def plan_prune(self, max_size: int | None = None, *, orphan_age: float = 24 * 3600
                   ) -> PrunePlan:
        """What ``prune`` would remove: LRU models above ``max_size`` bytes, and orphans idle
        for ``orphan_age`` seconds. Nothing changes until ``plan.execute()``."""
        self._flush_stats()
        return plan_prune(self.disk, max_size=max_size, orphan_age=orphan_age,
                          in_use=set(self._use_fds), on_evict=self._forget)

    def prune(self, max_size: int | None = None, *, orphan_age: float = 24 * 3600) -> int:
        return self.plan_prune(max_size, orphan_age=orphan_age).execute()

    def _forget(self, ids: list[str]) -> None:
        for i in ids:
            self.memory.pop(i)
            self._volatile.pop(i, None)

    def enforce_limit(self, protect: set[str] | None = None) -> int:
        """Evict least-recently-used models until the disk limit holds; returns bytes freed."""
        if self.disk_limit is None:
            return 0
        self._flush_stats()
        in_use = set(self._use_fds) | (protect or set())
        plan = plan_prune(self.disk, max_size=self.disk_limit, orphan_age=float("inf"),
                          in_use=in_use, on_evict=self._forget)
        if plan.size_after > self.disk_limit:
            self._warn("limit", f"the cache holds more than its disk limit of {self.disk_limit}"
                       f" bytes: {', '.join(plan.kept) or 'nothing'} pinned or in use")
        return plan.execute() if plan.evict else 0

    def verify(self, model_id: str | None = None) -> list[VerifyResult]:
        """Re-hash cached files; corrupt models are quarantined (and no longer visible)."""
        ids = [model_id] if model_id else None
        results = self.disk.verify(ids)
        if self._fallback is not None:
            fb_ids = ids or [e.model_id for e in self._fallback.entries()]
            known = {r.model_id for r in results if r.problems != ["not in the cache"]}
            results = [r for r in results if r.model_id not in fb_ids or r.model_id in known]
            results += self._fallback.verify([i for i in fb_ids if i not in known],
                                             quarantine=False)
        for r in results:
            if not r.ok:
                self.memory.pop(r.model_id)
        return results

    # -- access statistics (batched: a hit must not cost a disk transaction) --------------------
    def _touch(self, model_id: str) -> None:
        now = time.time()
        with self._pending_lock:
            n, _ = self._pending.get(model_id, (0, 0.0))
            self._pending[model_id] = (n + 1, now)
        if time.monotonic() - self._last_flush > FLUSH_EVERY:
            self._flush_stats()

    def _flush_stats(self) -> None:
        """Write batched statistics; a busy index keeps them for next time."""
        with self._pending_lock:
            pending, self._pending = self._pending, {}
            self._last_flush = time.monotonic()
        if pending:
            try:
                self.disk.index.record_access(pending)
            except sqlite3.Error:
                self._requeue(pending)

    def flush(self) -> None:
        """Write batched statistics and retry commits that met a locked index."""
        self._flush_stats()
        for p, _ in list(self._volatile.values()):
            with contextlib.suppress(CacheError, OSError, sqlite3.Error):
                self.disk.retry_commit(p)
                self._volatile.pop(p.doc["id"], None)

    def _requeue(self, pending: dict[str, tuple[int, float]]) -> None:
        with self._pending_lock:
            for k, (n, t) in pending.items():
                n0, t0 = self._pending.get(k, (0, 0.0))
                self._pending[k] = (n + n0, max(t, t0))
