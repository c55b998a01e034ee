"""The disk tier: content-addressed blobs, a folder per model version, a SQLite index.

Layout under the cache root::

    index.db                     the index (see index.py)
    blobs/sha256/<hex>           every verified file, named by its hash (stored once)
    models/<id>/<version>/...    the model as users see it: hard links to blobs
    manifests/<id>.json          per-model manifest, enough to rebuild the index
    partials/                    downloads in progress (see transfer/partial.py)
    locks/                       advisory locks (an optimisation, never needed for correctness)
    quarantine/                  blobs that failed verification

Publishing is ordered so a crash at any point leaves nothing visible that is wrong: bytes are
verified and flushed, renamed into ``blobs/``, linked into a fresh model folder that is renamed
into place, the manifest is written, and only then the index row commits. Whatever a crash
leaves behind before the commit is an orphan that ``prune`` removes; a later download reuses a
blob that is already there instead of fetching it again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sqlite3
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import CacheError
from .fsutil import atomic_write, file_sha256, fsync_dir, link_or_copy, remove_tree
from .index import FileRow, Index, ModelRow

log = logging.getLogger("runanywhere")


@dataclass(frozen=True, slots=True)
class StagedFile:
    """A verified file waiting to be published: ``src`` is moved (not copied) into the store."""

    path: str
    src: Path
    sha256: str
    size: int


@dataclass(frozen=True)
class CacheEntry:
    model_id: str
    version: str
    path: Path
    kind: str  # "file" or "dir"
    size: int
    files: tuple[FileRow, ...]
    sha256: str | None
    created: float
    last_access: float
    hits: int
    pinned: bool
    tier: str = "disk"
    origin: str = "download"

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.model_id, "version": self.version, "path": str(self.path),
            "kind": self.kind, "size": self.size, "sha256": self.sha256, "tier": self.tier,
            "created": self.created, "last_access": self.last_access, "hits": self.hits,
            "pinned": self.pinned, "origin": self.origin,
            "files": [{"path": f.path, "sha256": f.sha256, "size": f.size} for f in self.files],
        }


@dataclass
class VerifyResult:
    model_id: str
    ok: bool
    problems: list[str] = field(default_factory=list)


def _safe_component(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text).strip(".") or "v"


class DiskTier:
    def __init__(self, root: Path, *, durable: bool = True) -> None:
        self.root = root
        self.durable = durable
        self.blob_dir = root / "blobs" / "sha256"
        self.model_dir = root / "models"
        self.manifest_dir = root / "manifests"
        self.partial_dir = root / "partials"
        self.lock_dir = root / "locks"
        self.quarantine_dir = root / "quarantine"
        for d in (self.blob_dir, self.model_dir, self.manifest_dir, self.partial_dir,
                  self.lock_dir, self.quarantine_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.index = self._open_index()

    # -- opening, recovery ------------------------------------------------------------------------
    def _open_index(self) -> Index:
        path = self.root / "index.db"
        try:
            index = Index(path, durable=self.durable)
            if index.query("PRAGMA quick_check")[0][0] != "ok":
                index.close()
                raise sqlite3.DatabaseError("quick_check failed")
            return index
        except CacheError:
            raise
        except sqlite3.OperationalError as e:
            if "locked" in str(e) or "busy" in str(e):
                raise
            return self._rebuild(path, e)
        except sqlite3.DatabaseError as e:
            return self._rebuild(path, e)

    def _rebuild(self, path: Path, why: Exception) -> Index:
        aside = path.with_name(f"index.db.corrupt-{int(time.time())}")
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.replace(str(path) + suffix, str(aside) + suffix)
        log.warning("cache index %s is damaged (%s); moved it to %s and rebuilt it from the"
                    " manifests", path, why, aside.name)
        index = Index(path, durable=self.durable)
        n = 0
        for mf in sorted(self.manifest_dir.glob("*.json")):
            try:
                m = json.loads(mf.read_text())
                files = [FileRow(f["path"], f["sha256"], int(f["size"])) for f in m["files"]]
                mtimes = {}
                for f in files:
                    st = (self.blob_dir / f.sha256).stat()
                    if st.st_size != f.size:
                        raise ValueError(f"blob {f.sha256} has the wrong size")
                    mtimes[f.sha256] = st.st_mtime_ns
                row = ModelRow(m["id"], m["version"], m["kind"], m["entry"], int(m["size"]),
                               m.get("source_sha256"), float(m["created"]), float(m["created"]),
                               0, bool(m.get("pinned", False)), m.get("origin", "download"))
                index.put_model(row, files, mtimes)
                n += 1
            except (OSError, ValueError, KeyError, TypeError) as e:
                log.warning("not restoring %s: %s", mf.name, e)
        log.warning("rebuilt the cache index: %d model(s) restored", n)
        return index

    def close(self) -> None:
        self.index.close()

    # -- paths ---------------------------------------------------------------------------------
    def blob_path(self, sha256: str) -> Path:
        return self.blob_dir / sha256

    def has_blob(self, sha256: str, size: int) -> bool:
        """A blob file of the right size exists (its bytes were verified when it was stored)."""
        try:
            st = self.blob_path(sha256).stat()
        except OSError:
            return False
        return st.st_size == size and self.blob_path(sha256).is_file()

    # -- lookups ---------------------------------------------------------------------------------
    def lookup(self, model_id: str) -> CacheEntry | None:
        """The entry if it is present and intact as far as a cheap ``stat`` can tell."""
        row = self.index.model(model_id)
        if row is None:
            return None
        files = self.index.files(model_id)
        entry = self._entry(row, files)
        if not self._stat_ok(entry):
            return None
        return entry

    def _entry(self, row: ModelRow, files: list[FileRow]) -> CacheEntry:
        return CacheEntry(row.id, row.version, self.root / row.entry, row.kind, row.size,
                          tuple(files), row.source_sha256, row.created, row.last_access, row.hits,
                          row.pinned, "disk", row.origin)

    def _stat_ok(self, entry: CacheEntry) -> bool:
        """Catch a deleted, truncated or rewritten file without reading it."""
        base = entry.path if entry.kind == "dir" else entry.path.parent
        for f in entry.files:
            p = base / f.path
            try:
                st = p.lstat()
            except OSError:
                return False
            known = self.index.blob(f.sha256)
            if (not p.is_file() or p.is_symlink() or st.st_size != f.size
                    or (known is not None and known[1] != st.st_mtime_ns)):
                return False
        return True

    def entries(self) -> list[CacheEntry]:
        files = self.index.all_files()
        return [self._entry(r, files.get(r.id, [])) for r in self.index.models()]

    def size(self) -> int:
        return self.index.total_size()

    # -- publishing ------------------------------------------------------------------------------
    def store_blob(self, staged: StagedFile) -> Path:
        """Move a verified file into ``blobs/`` (or drop it if the blob is already there)."""
        dst = self.blob_path(staged.sha256)
        if self.has_blob(staged.sha256, staged.size):
            with contextlib.suppress(FileNotFoundError):
                staged.src.unlink()
            return dst
        if self.durable:
            fd = os.open(staged.src, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        with contextlib.suppress(OSError):
            os.chmod(staged.src, 0o444)
        os.replace(staged.src, dst)
        if self.durable:
            fsync_dir(self.blob_dir)
        return dst

    def publish(self, model_id: str, version: str, files: list[StagedFile], *,
                kind: str, source_sha256: str | None, origin: str = "download",
                pinned: bool = False) -> CacheEntry:
        for f in files:
            self.store_blob(f)
        ver = _safe_component(version)
        mdir = self.model_dir / model_id
        mdir.mkdir(parents=True, exist_ok=True)
        tmp = mdir / f".tmp-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            for f in files:
                link_or_copy(self.blob_path(f.sha256), tmp / f.path, durable=self.durable)
            if self.durable:
                for d in {(tmp / f.path).parent for f in files}:
                    fsync_dir(d)
            final = mdir / ver
            if final.exists():
                old = mdir / f".old-{uuid.uuid4().hex[:8]}"
                os.replace(final, old)
                os.replace(tmp, final)
                remove_tree(old)
            else:
                os.replace(tmp, final)
            if self.durable:
                fsync_dir(mdir)
        except BaseException:
            remove_tree(tmp)
            raise
        entry_rel = f"models/{model_id}/{ver}" + (f"/{files[0].path}" if kind == "file" else "")
        size = sum(f.size for f in files)
        now = time.time()
        rows = [FileRow(f.path, f.sha256, f.size) for f in files]
        manifest = {"id": model_id, "version": version, "kind": kind, "entry": entry_rel,
                    "size": size, "source_sha256": source_sha256, "created": now,
                    "origin": origin, "pinned": pinned,
                    "files": [{"path": r.path, "sha256": r.sha256, "size": r.size} for r in rows]}
        atomic_write(self.manifest_dir / f"{model_id}.json", json.dumps(manifest).encode(),
                     durable=self.durable)
        mtimes = {f.sha256: self.blob_path(f.sha256).stat().st_mtime_ns for f in files}
        row = ModelRow(model_id, version, kind, entry_rel, size, source_sha256, now, now, 0,
                       pinned, origin)
        self.index.put_model(row, rows, mtimes)
        return self._entry(row, rows)

    # -- removal ---------------------------------------------------------------------------------
    def remove(self, model_ids: list[str]) -> int:
        """Delete models (index first, then files); returns the bytes freed."""
        before = self.size()
        self.index.delete_models(model_ids)
        for mid in model_ids:
            with contextlib.suppress(FileNotFoundError):
                (self.manifest_dir / f"{mid}.json").unlink()
            remove_tree(self.model_dir / mid)
        self.gc_blobs()
        return max(0, before - self.size())

    def gc_blobs(self) -> list[str]:
        gone = self.index.delete_unreferenced_blobs()
        for sha in gone:
            with contextlib.suppress(FileNotFoundError):
                self.blob_path(sha).unlink()
        return gone

    # -- integrity -------------------------------------------------------------------------------
    def verify(self, model_ids: list[str] | None = None, *, quarantine: bool = True
               ) -> list[VerifyResult]:
        """Re-hash every file of the given models (all by default)."""
        results = []
        targets = model_ids if model_ids is not None else [r.id for r in self.index.models()]
        bad_models: list[str] = []
        for mid in targets:
            row = self.index.model(mid)
            if row is None:
                results.append(VerifyResult(mid, False, ["not in the cache"]))
                continue
            entry = self._entry(row, self.index.files(mid))
            base = entry.path if entry.kind == "dir" else entry.path.parent
            problems = []
            for f in entry.files:
                p = base / f.path
                if p.is_symlink() or not p.is_file():
                    problems.append(f"{f.path}: missing or not a regular file")
                    continue
                if p.stat().st_size != f.size:
                    problems.append(f"{f.path}: size {p.stat().st_size}, expected {f.size}")
                    continue
                actual = file_sha256(p)
                if actual != f.sha256:
                    problems.append(f"{f.path}: sha256 {actual}, expected {f.sha256}")
                blob = self.blob_path(f.sha256)
                if blob.is_symlink() or (blob.exists() and not os.path.samefile(blob, p)
                                         and file_sha256(blob) != f.sha256):
                    problems.append(f"blob {f.sha256[:12]}: corrupt")
            results.append(VerifyResult(mid, not problems, problems))
            if problems:
                bad_models.append(mid)
        if quarantine and bad_models:
            self._quarantine(bad_models)
        return results

    def _quarantine(self, model_ids: list[str]) -> None:
        """Hide corrupt models at once; keep their bytes aside for inspection."""
        shas = {f.sha256 for mid in model_ids for f in self.index.files(mid)}
        self.index.delete_models(model_ids)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for mid in model_ids:
            src = self.model_dir / mid
            if src.exists():
                with contextlib.suppress(OSError):
                    os.replace(src, self.quarantine_dir / f"{mid}-{stamp}-{uuid.uuid4().hex[:4]}")
            with contextlib.suppress(FileNotFoundError):
                (self.manifest_dir / f"{mid}.json").unlink()
        refs = self.index.blob_refs()
        for sha in shas - refs:
            blob = self.blob_path(sha)
            if blob.is_symlink() or blob.exists():
                with contextlib.suppress(OSError):
                    os.replace(blob, self.quarantine_dir / f"{sha}-{stamp}")
        self.gc_blobs()
