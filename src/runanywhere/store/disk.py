"""The disk tier: content-addressed blobs, a folder per model version, a SQLite index.

Layout under the cache root::

    index.db                     the index (see index.py)
    blobs/sha256/<hex>           every verified file, named by its hash (stored once)
    models/<id>/<version>/...    the model as users see it: hard links to blobs (copies where
                                 links are impossible)
    manifests/<id>.json          per-model manifest, enough to rebuild the index
    trusted/<id>.json            first-use sha256 records (kept after ``rm``; see ``forget``)
    partials/                    downloads and imports in progress (see partial.py)
    locks/                       flocks (see locks.py)
    quarantine/                  whatever failed verification, kept for inspection

Publishing is ordered so a crash at any point leaves nothing visible that is wrong: bytes are
verified and flushed, renamed into ``blobs/``, linked into a fresh model folder that is renamed
into place, the manifest is written, and only then the index row commits. Whatever a crash
leaves behind before the commit is an orphan that ``prune`` removes; a later publish reuses a
blob that is already there (after re-hashing it, as no index row vouches for it).

Locks: a publish holds ``gc`` shared and ``model-<id>`` exclusive; blob garbage collection holds
``gc`` exclusive, so it never deletes a blob a publish is about to commit. An eviction holds
``use-<id>`` exclusive, which a process using the model holds shared.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import json
import logging
import os
import re
import sqlite3
import stat
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CacheBusy, CacheError, InsufficientStorageError
from .fsutil import (
    atomic_write,
    copy_file,
    crash_point,
    disk_error,
    file_bytes,
    fsync_dir,
    fsync_file,
    is_enospc,
    link_or_copy,
    regular_stat,
    remove_tree,
    remove_tree_counted,
    replace_with_link,
    same_file,
    unlink_counted,
)
from .hashing import file_sha256
from .index import (
    FileRow,
    Index,
    ListingRow,
    TrustRecord,
    dump_manifest,
    is_busy,
    is_full,
    make_manifest,
)
from .locks import Locks
from .rebuild import index_lost, rebuild_index, save_unsaved_trust, write_trust_file

log = logging.getLogger("runanywhere")


@dataclass(frozen=True, slots=True)
class StagedFile:
    """A verified file waiting to be published: ``src`` is moved (not copied) into the store."""

    path: str
    src: Path
    sha256: str
    size: int


class CacheEntry:
    """One cached model version (read-only by convention).

    Built from an index row; the manifest is parsed on first use, so listing many entries costs
    one query and one small object each.
    """

    __slots__ = ("_doc", "_manifest", "_root", "checked_inode", "hits", "last_access",
                 "model_id", "pinned", "tier")

    def __init__(self, root: str, model_id: str, manifest: str, last_access: float, hits: int,
                 pinned: int, tier: str = "disk") -> None:
        self._root = root
        self.model_id = model_id
        self._manifest = manifest
        self._doc: dict[str, Any] | None = None
        self.last_access = last_access
        self.hits = hits
        self.pinned = bool(pinned)
        self.tier = tier
        #: (st_dev, st_ino) of a single file as the cheap check saw it: whoever opens the file
        #: later compares, so a concurrent replacement is never served under this entry.
        self.checked_inode: tuple[int, int] | None = None

    @property
    def manifest(self) -> dict[str, Any]:
        if self._doc is None:
            self._doc = json.loads(self._manifest)
        return self._doc

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    @property
    def kind(self) -> str:
        """``"file"`` (``path`` is the file) or ``"dir"`` (``path`` is the model's folder)."""
        return str(self.manifest["kind"])

    @property
    def size(self) -> int:
        return int(self.manifest["size"])

    @property
    def sha256(self) -> str | None:
        """The sha256 of the downloaded file (single file or archive); None for multi-file."""
        return self.manifest["source_sha256"]  # type: ignore[no-any-return]

    @property
    def created(self) -> float:
        return float(self.manifest["created"])

    @property
    def origin(self) -> str:
        return str(self.manifest["origin"])

    @property
    def files(self) -> tuple[FileRow, ...]:
        return tuple(FileRow(f["path"], f["sha256"], f["size"]) for f in self.manifest["files"])

    @property
    def path(self) -> Path:
        return Path(self._root, self.manifest["entry"])

    @property
    def base(self) -> Path:
        """The model's folder (the parent of ``path`` for single files)."""
        p = self.path
        return p if self.kind == "dir" else p.parent

    def with_tier(self, tier: str) -> CacheEntry:
        e = CacheEntry(self._root, self.model_id, self._manifest, self.last_access, self.hits,
                       self.pinned, tier)
        e._doc = self._doc
        e.checked_inode = self.checked_inode
        return e

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.model_id, "version": self.version, "path": str(self.path),
            "kind": self.kind, "size": self.size, "sha256": self.sha256, "tier": self.tier,
            "created": self.created, "last_access": self.last_access, "hits": self.hits,
            "pinned": self.pinned, "origin": self.origin,
            "files": [{"path": f.path, "sha256": f.sha256, "size": f.size} for f in self.files],
        }

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, CacheEntry) and other.model_id == self.model_id
                and other._manifest == self._manifest and other._root == self._root)

    def __hash__(self) -> int:
        return hash((self.model_id, self._manifest))

    def __repr__(self) -> str:
        return (f"CacheEntry({self.model_id!r}, version={self.version!r}, size={self.size},"
                f" tier={self.tier!r}, pinned={self.pinned})")


@dataclass
class VerifyResult:
    model_id: str
    ok: bool
    #: What is wrong (the model was quarantined: it is no longer visible).
    problems: list[str] = field(default_factory=list)
    #: What was wrong but fixed from a good copy (the model stays visible).
    repaired: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DiskUsage:
    """What a cache folder holds on the disk: bytes of files, each inode counted once (a
    sparse partial by its allocated blocks; see ``fsutil.file_bytes``)."""

    #: The models as the index shows them: their folders, manifests and blobs.
    models: int
    #: Downloads and imports in progress or abandoned (``partials/``).
    partials: int
    #: Whatever failed verification, kept aside (``quarantine/``).
    quarantine: int
    #: ``index.db`` and its journal files (and damaged copies kept aside).
    index: int
    #: Everything else: orphan blobs, old version folders, strays, locks, trust records.
    other: int

    @property
    def total(self) -> int:
        return self.models + self.partials + self.quarantine + self.index + self.other

    def to_dict(self) -> dict[str, int]:
        return {"total": self.total, "models": self.models, "partials": self.partials,
                "quarantine": self.quarantine, "index": self.index, "other": self.other}


@dataclass(frozen=True)
class Prepared:
    """A model whose files are in place, waiting for its index commit."""

    doc: dict[str, Any]
    pinned: bool | None
    file_mtimes: dict[str, int]
    blob_mtimes: dict[str, int]
    #: The model folder, if this publish created it (removed again if the commit fails).
    folder: Path | None


def _safe_component(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text).strip(".") or "v"


class DiskTier:
    def __init__(self, root: Path, *, durable: bool = True, busy_timeout: float = 10.0,
                 readonly: bool = False) -> None:
        self.root = root
        self.durable = durable
        self.readonly = readonly
        self.busy_timeout = busy_timeout
        self.blob_dir = root / "blobs" / "sha256"
        self.model_dir = root / "models"
        self.manifest_dir = root / "manifests"
        self.partial_dir = root / "partials"
        self.quarantine_dir = root / "quarantine"
        self.trusted_dir = root / "trusted"
        self.locks = Locks(root / "locks", busy_timeout)
        self._root_s = str(root)
        if not readonly:
            for d in (self.blob_dir, self.model_dir, self.manifest_dir, self.partial_dir,
                      self.locks.folder, self.quarantine_dir, self.trusted_dir):
                d.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
                d.mkdir(exist_ok=True, mode=0o755)  # the umask may take more, never add
        self.index = self._open_index()

    # -- opening, recovery ------------------------------------------------------------------------
    def _open_index(self) -> Index:
        path = self.root / "index.db"
        if self.readonly:
            return Index(path, readonly=True, busy_timeout=self.busy_timeout)
        # One process at a time checks (and maybe rebuilds) the index: a rebuild moves the file.
        with self.locks.index():
            lost = index_lost(self, path)
            if lost is not None:
                return rebuild_index(self, path, lost)
            try:
                index = self._connect(path)
            except sqlite3.OperationalError:
                raise  # locked, I/O error: not a reason to set the index aside
            except sqlite3.DatabaseError as e:
                return rebuild_index(self, path, e)
            try:
                check = index.quick_check()
            except sqlite3.OperationalError:
                index.close()
                raise
            except sqlite3.DatabaseError as e:
                check = str(e)
            if check != "ok":
                index.close()
                return rebuild_index(self, path, sqlite3.DatabaseError(check))
            save_unsaved_trust(self, index)
            return index

    def _connect(self, path: Path) -> Index:
        """Open the index, retrying a "database is locked" for up to ``busy_timeout``: two
        processes creating a new index at once (where ``flock`` is a no-op) can get it at once,
        without SQLite's busy handler (switching to WAL), and must not degrade for it."""
        deadline = time.monotonic() + self.busy_timeout
        delay = 0.005
        while True:
            try:
                return Index(path, durable=self.durable, busy_timeout=self.busy_timeout)
            except sqlite3.OperationalError as e:
                if not is_busy(e) or time.monotonic() + delay > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def recover(self, why: Exception) -> None:
        """The index turned out corrupt while in use: set it aside and rebuild it."""
        with self.locks.index():
            with contextlib.suppress(sqlite3.Error):
                self.index.close()
            self.index = rebuild_index(self, self.root / "index.db", why)

    # -- trust on first use ------------------------------------------------------------------------
    def record_trust(self, model_id: str, path: str, url: str, sha256: str, size: int, *,
                     replace: bool = False) -> None:
        """Record the sha256 first seen for a file without a catalog hash, in the index and in
        ``trusted/<id>.json`` (so a rebuilt index keeps it)."""
        self._writable()
        self.index.set_trusted(model_id, path, url, sha256, size, replace=replace)
        write_trust_file(self, self.index, model_id)

    def trust_records(self, model_id: str | None = None) -> list[TrustRecord]:
        return self.index.trust_records(model_id)

    def forget_trust(self, model_id: str) -> list[TrustRecord]:
        """Forget a model's first-use hashes (the next download records new ones)."""
        self._writable()
        gone = self.index.trust_records(model_id)
        self.index.delete_trusted(model_id)
        (self.trusted_dir / f"{model_id}.json").unlink(missing_ok=True)
        return gone

    def close(self) -> None:
        self.index.close()

    def _writable(self) -> None:
        if self.readonly:
            raise CacheError(f"the cache in {self.root} is read-only")

    # -- paths and blobs --------------------------------------------------------------------------
    def blob_path(self, sha256: str) -> Path:
        return self.blob_dir / sha256

    def has_blob(self, sha256: str, size: int | None) -> bool:
        """Is a blob with these bytes stored? Cheap when the index vouches for the file (same
        size and mtime as recorded); a blob no row mentions (left by a crash) is re-hashed.
        ``size`` None: any size (the sha256 alone names the bytes)."""
        st = regular_stat(self.blob_path(sha256))
        if st is None or st.st_size != (st.st_size if size is None else size):
            return False
        size = st.st_size
        known = self.index.blob(sha256)
        if known == (size, st.st_mtime_ns):
            return True
        try:  # no row vouches for it (left by a crash), or its mtime moved: the bytes decide
            good = file_sha256(self.blob_path(sha256)) == sha256
        except OSError:  # another process's gc removed it between the lstat and the open
            return False
        if good and known is not None and not self.readonly:
            with contextlib.suppress(sqlite3.Error):
                self.index.refresh_blob_mtime(sha256, st.st_mtime_ns)
        return good

    def store_blob(self, staged: StagedFile) -> Path:
        """Move a verified file into ``blobs/`` (or drop it if the blob is already there)."""
        self._writable()
        dst = self.blob_path(staged.sha256)
        if staged.src == dst:
            return dst  # the caller found the blob already stored
        if self.has_blob(staged.sha256, staged.size):
            with contextlib.suppress(FileNotFoundError):
                staged.src.unlink()
            return dst
        if dst.is_symlink():  # never write through (or next to) a planted link
            self._quarantine_path(dst, f"{staged.sha256}.symlink")
        try:
            self._move_in(staged.src, dst)
        except OSError as e:
            if is_enospc(e):
                raise disk_error(e, "storing a blob", self.root) from e
            raise
        if self.durable:
            fsync_dir(self.blob_dir)
        return dst

    def _move_in(self, src: Path, dst: Path) -> None:
        with contextlib.suppress(OSError):
            os.chmod(src, 0o444)
        try:
            if self.durable:
                fsync_file(src)
            os.replace(src, dst)
        except OSError as e:
            if e.errno != errno.EXDEV:
                raise
            copy_file(src, dst, durable=self.durable)  # another filesystem: copy, then drop
            with contextlib.suppress(OSError):
                os.chmod(dst, 0o444)
            src.unlink()

    # -- lookups ---------------------------------------------------------------------------------
    def entry(self, row: ListingRow, tier: str = "disk") -> CacheEntry:
        return CacheEntry(self._root_s, *row, tier)

    def lookup(self, model_id: str) -> CacheEntry | None:
        """The entry if it is present and intact as far as a cheap ``lstat`` can tell."""
        entry, stale = self.check(model_id)
        return None if stale else entry

    def check(self, model_id: str) -> tuple[CacheEntry | None, bool]:
        """The cheap check: ``(entry, False)`` if every file is there with the recorded size and
        mtime; ``(entry, True)`` if only an mtime moved (``touch``, a clock jump, a copy that
        kept the bytes): the bytes must be re-hashed before they are served; ``(None, False)``
        if the model is not there (no row, a file missing, a link, another size)."""
        found = self.index.row_and_files(model_id)
        if found is None:
            return None, False
        entry = self.entry(found[0])
        base = entry.base
        stale = False
        for path, size, mtime_ns in found[1]:
            st = regular_stat(base / path)
            if st is None or st.st_size != size:
                return None, False
            stale = stale or (mtime_ns is not None and st.st_mtime_ns != mtime_ns)
            entry.checked_inode = (st.st_dev, st.st_ino)
        return entry, stale

    def recheck(self, model_id: str) -> CacheEntry | None:
        """Re-hash a model whose mtimes moved: the right bytes are served again (their new
        mtimes recorded), wrong ones are quarantined (see :meth:`verify`). Holds the model's
        lock, so a publish of the same model is not mistaken for damage."""
        if self.readonly:
            entry, stale = self.check(model_id)
            if entry is None or not stale:
                return entry
            return entry if self._verify_one(entry, fix=False)[0].ok else None
        with self.locks.model(model_id):
            entry, stale = self.check(model_id)
            if entry is None or not stale:
                return entry
            log.info("%s: a file's mtime changed; re-hashing its bytes", model_id)
            self.verify([model_id])
            entry, stale = self.check(model_id)
            return None if stale else entry

    def entries(self) -> list[CacheEntry]:
        root = self._root_s
        # Tens of thousands of new objects, none in a cycle: pausing the cyclic collector
        # spares several full collections (a third of the time for 10,000 models).
        paused = gc.isenabled()
        gc.disable()
        try:
            return [CacheEntry(root, *r) for r in self.index.listing()]
        finally:
            if paused:
                gc.enable()

    def size(self) -> int:
        return self.index.total_size()

    def usage(self) -> DiskUsage:
        """Walk the folder and say where its bytes are (see :class:`DiskUsage`)."""
        seen: set[tuple[int, int]] = set()

        def count(paths: list[Path]) -> int:
            total = 0
            stack = [str(p) for p in paths]
            while stack:
                p = stack.pop()
                try:
                    st = os.lstat(p)
                except OSError:
                    continue
                if (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    total += file_bytes(st)
                if stat.S_ISDIR(st.st_mode):
                    with contextlib.suppress(OSError):
                        stack.extend(os.path.join(p, n) for n in os.listdir(p))
            return total

        entries = self.entries()
        shown = [e.base for e in entries]
        shown += [self.manifest_dir / f"{e.model_id}.json" for e in entries]
        shown += [self.blob_path(sha) for sha in self.index.blob_refs()]
        models = count(shown)
        partials = count([self.partial_dir])
        quarantine = count([self.quarantine_dir])
        index = count([p for p in self.root.glob("index.db*")])
        other = count([self.root])
        return DiskUsage(models, partials, quarantine, index, other)

    # -- publishing ------------------------------------------------------------------------------
    def publish(self, model_id: str, version: str, files: list[StagedFile], *,
                kind: str, source_sha256: str | None, origin: str = "download",
                pinned: bool | None = None) -> CacheEntry:
        """Store verified files and make them visible as one model (see the module doc).

        Raises ``InsufficientStorageError`` when the disk is full (nothing becomes visible) and
        ``CacheBusy`` (carrying ``.pending``, a :class:`Prepared`) when the index stays locked:
        the files are then in place and :meth:`retry_commit` may be tried later.
        """
        self._writable()
        if kind not in ("file", "dir") or not files or (kind == "file" and len(files) != 1):
            raise ValueError(f"cannot publish {len(files)} file(s) as kind {kind!r}")
        # Locks until the commit: gc must not take a blob, nor prune a folder, before its row.
        with self.locks.gc(shared=True), self.locks.model(model_id):
            for f in files:
                self.store_blob(f)
            crash_point("publish:blobs")
            try:
                prepared = self._install(model_id, version, files, kind, source_sha256, origin,
                                         pinned)
            except OSError as e:
                if is_enospc(e):
                    raise disk_error(e, f"publishing {model_id}", self.root) from e
                raise
            entry = self._commit(prepared)
        self.drop_old_versions(model_id)
        return entry

    def retry_commit(self, p: Prepared) -> CacheEntry:
        """Commit a model whose publish met a locked index (``CacheBusy.pending``)."""
        with self.locks.gc(shared=True), self.locks.model(p.doc["id"]):
            base = Path(self.root, p.doc["entry"])
            base = base if p.doc["kind"] == "dir" else base.parent
            for path, mtime in p.file_mtimes.items():
                st = regular_stat(base / path)
                if st is None or st.st_mtime_ns != mtime:
                    raise CacheError(f"{p.doc['id']}: its files changed before the index"
                                     " accepted them")
            return self._commit(p)

    def old_versions(self, model_id: str, current: Path | None) -> list[Path]:
        """Version folders of a model other than ``current`` (the one its row shows), e.g. left
        when the catalog moved the model to a new version while it was in use."""
        folder = self.model_dir / model_id
        try:
            children = list(folder.iterdir())
        except OSError:
            return []
        return [c for c in children if c != current
                and not c.name.startswith((".tmp-", ".old-"))
                and (current is None or not current.is_relative_to(c))]

    def drop_old_versions(self, model_id: str) -> int:
        """After a publish: remove the model's other version folders (and the blobs only they
        used), unless a process holds the model (then ``prune`` removes them later)."""
        fd = self.locks.try_evict(model_id)
        if fd is None:
            return 0
        freed = 0
        old: list[Path] = []
        try:
            with self.locks.model(model_id):
                row = self.index.row(model_id)
                if row is None:
                    return 0
                old = self.old_versions(model_id, self.entry(row).base)
                for folder in old:
                    freed += remove_tree_counted(folder)
        except (OSError, CacheError, sqlite3.Error) as e:
            log.warning("could not remove old versions of %s (%s); prune will", model_id, e)
            return freed
        finally:
            os.close(fd)
        if old:  # their blobs (linked from the folders, so not counted yet) may be unused now
            with contextlib.suppress(OSError, CacheError, sqlite3.Error):
                freed += self.gc_blobs()
        return freed

    def _install(self, model_id: str, version: str, files: list[StagedFile], kind: str,
                 source_sha256: str | None, origin: str, pinned: bool | None) -> Prepared:
        ver = _safe_component(version)
        final = self.model_dir / model_id / ver
        row = self.index.row(model_id)
        keep_pin = pinned if pinned is not None else bool(row and row[4])
        shown = row is not None and self.entry(row).base.is_relative_to(final)
        created = self._install_folder(model_id if shown else None, final, files)
        crash_point("publish:folder")
        entry = f"models/{model_id}/{ver}" + (f"/{files[0].path}" if kind == "file" else "")
        doc = make_manifest(model_id, version, kind, entry, sum(f.size for f in files),
                            source_sha256, time.time(), origin,
                            [{"path": f.path, "sha256": f.sha256, "size": f.size}
                             for f in sorted(files, key=lambda f: f.path)])
        try:
            self._write_manifest(doc, keep_pin)
            crash_point("publish:manifest")
            file_mtimes = {f.path: os.lstat(final / f.path).st_mtime_ns for f in files}
            blob_mtimes = {f.sha256: os.lstat(self.blob_path(f.sha256)).st_mtime_ns
                           for f in files}
        except BaseException:
            self._undo_install(model_id, final if created else None)
            raise
        return Prepared(doc, keep_pin, file_mtimes, blob_mtimes, final if created else None)

    def _commit(self, p: Prepared) -> CacheEntry:
        """The index row: the moment the model becomes visible."""
        mid = p.doc["id"]
        try:
            self.index.put_model(p.doc, pinned=p.pinned, file_mtimes=p.file_mtimes,
                                 blob_mtimes=p.blob_mtimes)
        except sqlite3.OperationalError as e:
            if is_busy(e):
                raise CacheBusy(f"the cache index is locked by another process ({e})",
                                pending=p) from e
            self._undo_install(mid, p.folder)
            if is_full(e):
                raise InsufficientStorageError(f"no space left in {self.root} for the cache"
                                               f" index ({e})") from e
            raise
        crash_point("publish:committed")
        row = self.index.row(mid)
        assert row is not None
        return self.entry(row)

    def _install_folder(self, shown: str | None, final: Path, files: list[StagedFile]) -> bool:
        """Put the model folder in place; True if it was created (not already right).

        A folder a committed row points to is never changed under it: replacing the version
        that model ``shown`` shows with other bytes first hides the model (its own
        transaction), then swaps the folder.
        """
        if self._folder_matches(final, files):
            return False
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.parent / f".tmp-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            for f in files:
                link_or_copy(self.blob_path(f.sha256), tmp / f.path, durable=self.durable)
            if self.durable:
                for d in {(tmp / f.path).parent for f in files}:
                    fsync_dir(d)
            crash_point("publish:tmp-folder")
            if final.exists() or final.is_symlink():
                if shown is not None:
                    self.index.delete_models([shown])
                crash_point("publish:hidden-old")
                old = final.parent / f".old-{uuid.uuid4().hex[:8]}"
                os.replace(final, old)
                os.replace(tmp, final)
                remove_tree(old)
            else:
                os.replace(tmp, final)
            if self.durable:
                fsync_dir(final.parent)
        except BaseException:
            remove_tree(tmp)
            raise
        return True

    def _folder_matches(self, final: Path, files: list[StagedFile]) -> bool:
        """Is the folder already exactly these blobs (hard links, nothing else)?"""
        try:
            for f in files:
                if not os.path.samefile(self.blob_path(f.sha256), final / f.path) or (
                        (final / f.path).is_symlink()):
                    return False
            count = sum(len(names) for _, _, names in os.walk(final))
        except OSError:
            return False
        return count == len(files)

    def _undo_install(self, model_id: str, created: Path | None) -> None:
        """A publish failed before its commit: leave what the index says, nothing more."""
        with contextlib.suppress(OSError, sqlite3.Error):
            row = self.index.row(model_id)
            if row is None:
                (self.manifest_dir / f"{model_id}.json").unlink(missing_ok=True)
            else:
                e = self.entry(row)
                self._write_manifest(e.manifest, e.pinned)
            if created is not None and (row is None or self.entry(row).base != created):
                remove_tree(created)
                created.parent.rmdir()  # the model's folder, if nothing else is in it

    def _write_manifest(self, doc: dict[str, Any], pinned: bool) -> None:
        data = json.dumps({**doc, "pinned": pinned}, indent=1, sort_keys=True).encode()
        atomic_write(self.manifest_dir / f"{doc['id']}.json", data, durable=self.durable)

    def set_pinned(self, model_id: str, pinned: bool) -> bool:
        """Pin in the index and in the manifest (so a rebuilt index keeps the pin)."""
        self._writable()
        if not self.index.set_pinned(model_id, pinned):
            return False
        row = self.index.row(model_id)
        if row is not None:
            with contextlib.suppress(OSError):
                self._write_manifest(self.entry(row).manifest, pinned)
        return True

    # -- removal ---------------------------------------------------------------------------------
    def remove(self, model_ids: list[str]) -> int:
        """Delete models in one index transaction, then their files; returns the bytes freed."""
        self._writable()
        ids = sorted(set(model_ids))
        if not ids:
            return 0
        with contextlib.ExitStack() as stack:
            for mid in ids:  # sorted: two removers never wait on each other in a cycle
                stack.enter_context(self.locks.model(mid))
            self.index.delete_models(ids)
            crash_point("remove:index")
            freed = 0
            for mid in ids:
                (self.manifest_dir / f"{mid}.json").unlink(missing_ok=True)
                freed += remove_tree_counted(self.model_dir / mid)
            crash_point("remove:files")
        return freed + self.gc_blobs()

    def gc_blobs(self) -> int:
        """Delete blobs no model references any more; returns the bytes freed on the disk (a
        blob still linked from a folder frees nothing until that folder goes too)."""
        freed = 0
        with self.locks.gc():
            for sha, _size in self.index.delete_unreferenced_blobs():
                crash_point("gc:unlink")
                freed += unlink_counted(self.blob_path(sha))
        return freed

    # -- integrity -------------------------------------------------------------------------------
    def verify(self, model_ids: list[str] | None = None, *, quarantine: bool = True
               ) -> list[VerifyResult]:
        """Re-hash every file of the given models (all by default).

        A file that is missing, a link, or the wrong size or bytes is restored from a good copy
        (its blob, or the model's file for a lost blob) when one exists; otherwise the model is
        quarantined. A corrupt blob condemns every model built from it, so those are checked too.
        """
        targets = list(model_ids) if model_ids is not None else self.index.ids()
        results: dict[str, VerifyResult] = {}
        suspects: set[str] = set()
        while targets:
            mid = targets.pop(0)
            if mid in results:
                continue
            row = self.index.row(mid)
            if row is None:
                results[mid] = VerifyResult(mid, False, ["not in the cache"])
                continue
            result, corrupt = self._verify_one(self.entry(row), fix=quarantine)
            results[mid] = result
            targets.extend(sorted(self.index.users_of(corrupt - suspects) - set(results)))
            suspects |= corrupt
        bad = [r.model_id for r in results.values() if not r.ok and r.problems != [
            "not in the cache"]]
        if quarantine and bad:
            self._quarantine(bad, suspects)
        return list(results.values())

    def _verify_one(self, entry: CacheEntry, *, fix: bool) -> tuple[VerifyResult, set[str]]:
        res = VerifyResult(entry.model_id, True)
        corrupt: set[str] = set()
        file_mtimes, blob_mtimes = {}, {}
        for f in entry.files:
            target, blob = entry.base / f.path, self.blob_path(f.sha256)
            file_ok = self._hashes_to(target, f)
            blob_ok = (file_ok and same_file(blob, target)) or self._hashes_to(blob, f)
            if not blob_ok and (blob.exists() or blob.is_symlink()):
                corrupt.add(f.sha256)
            if not file_ok:
                res.problems.append(self._describe(target, f))
            if not blob_ok:
                res.problems.append("blob " + self._describe(blob, f, name=f.sha256[:12]))
            if fix and file_ok != blob_ok:  # one good copy: restore the other from it
                good, bad = (target, blob) if file_ok else (blob, target)
                if bad.is_symlink() or bad.exists():
                    self._quarantine_path(bad, f"{entry.model_id}-{f.sha256[:12]}-{bad.name}")
                replace_with_link(good, bad)
                res.repaired.append(res.problems.pop())
                file_ok = blob_ok = True
            if file_ok and blob_ok:
                file_mtimes[f.path] = os.lstat(target).st_mtime_ns
                blob_mtimes[f.sha256] = os.lstat(blob).st_mtime_ns
        res.ok = not res.problems
        if res.ok and fix and not self.readonly:
            self.index.refresh_mtimes(entry.model_id, file_mtimes, blob_mtimes)
        return res, corrupt

    @staticmethod
    def _hashes_to(path: Path, f: FileRow) -> bool:
        st = regular_stat(path)
        return st is not None and st.st_size == f.size and file_sha256(path) == f.sha256

    @staticmethod
    def _describe(path: Path, f: FileRow, name: str | None = None) -> str:
        name = name or f.path
        if path.is_symlink():
            return f"{name}: a symbolic link, not a stored file"
        st = regular_stat(path)
        if st is None:
            return f"{name}: missing" if not path.exists() else f"{name}: not a regular file"
        if st.st_size != f.size:
            return f"{name}: {st.st_size} bytes, expected {f.size} (truncated or grown)"
        return f"{name}: sha256 {file_sha256(path)[:12]}…, expected {f.sha256[:12]}…"

    def _quarantine(self, model_ids: list[str], suspects: set[str]) -> None:
        """Hide corrupt models at once (one transaction); keep their bytes aside."""
        self.index.delete_models(model_ids)
        for mid in model_ids:
            self._quarantine_path(self.model_dir / mid, mid)
            (self.manifest_dir / f"{mid}.json").unlink(missing_ok=True)
        with self.locks.gc():
            for sha in suspects:  # unless another model's good copy restored it meanwhile
                blob = self.blob_path(sha)
                if regular_stat(blob) is None or file_sha256(blob) != sha:
                    self._quarantine_path(blob, f"blob-{sha[:16]}")
        self.gc_blobs()

    def _quarantine_path(self, path: Path, name: str) -> None:
        if not (path.exists() or path.is_symlink()):
            return
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.quarantine_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
        with contextlib.suppress(OSError):
            os.replace(path, self.quarantine_dir / f"{name}-{stamp}-{uuid.uuid4().hex[:4]}")


__all__ = ["CacheEntry", "DiskTier", "DiskUsage", "Prepared", "StagedFile", "VerifyResult",
           "dump_manifest"]
