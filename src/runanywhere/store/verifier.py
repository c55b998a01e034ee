"""Is a cached model still the bytes its index row promises?

* :meth:`Verifier.check`, the cheap check every hit makes: one ``lstat`` per file (present, a
  regular file, the recorded size and mtime); never a re-hash.
* :meth:`Verifier.recheck`: a file whose mtime alone moved is re-hashed once, under the model's
  lock: served again if right, quarantined if not.
* :meth:`Verifier.verify` (``cache verify``): re-hash every file and its blob. One good copy
  restores the other; with none the model is quarantined (no longer visible), and a corrupt blob
  condemns every model built from it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..errors import UnsafeCacheError
from .blobs import BlobStore
from .entry import CacheEntry, VerifyResult
from .fsutil import planted_link, real_dirs, regular_stat, replace_with_link, same_file
from .hashing import file_sha256
from .index import FileRow, Index
from .layout import Layout, check_relpath, ignored
from .locks import Locks
from .manifests import Manifests
from .quarantine import Quarantine

log = logging.getLogger("runanywhere")

#: A model ``verify`` was asked about that has no index row.
NOT_CACHED = "not in the cache"


class Verifier:
    def __init__(self, layout: Layout, index: Index, blobs: BlobStore, manifests: Manifests,
                 locks: Locks, quarantine: Quarantine, *, readonly: bool = False) -> None:
        self.layout = layout
        self.index = index
        self.blobs = blobs
        self.manifests = manifests
        self.locks = locks
        self.quarantine = quarantine
        self.readonly = readonly

    def check(self, model_id: str) -> tuple[CacheEntry | None, bool]:
        """The cheap check: ``(entry, False)`` if every file is there with the recorded size and
        mtime; ``(entry, True)`` if only an mtime moved (``touch``, a clock jump, a copy that
        kept the bytes): the bytes must be re-hashed before they are served; ``(None, False)``
        if the model is not there (no row, a file missing, a link, another size)."""
        found = self.index.row_and_files(model_id)
        if found is None:
            return None, False
        entry = CacheEntry.from_row(str(self.layout.root), found[0])
        try:
            base = entry.base
            files = [(check_relpath(path), size, mtime) for path, size, mtime in found[1]]
        except UnsafeCacheError as e:  # a tampered row: not there, whatever it points at
            ignored(self.layout.root, model_id, str(e))
            return None, False
        # Reached without a link: the model's folder once, then any subfolder of a file.
        if planted_link(self.layout.root, base / "-") is not None:
            return None, False
        stale = False
        for path, size, mtime_ns in files:
            target = base / path
            if "/" in path and planted_link(base, target) is not None:
                return None, False
            st = regular_stat(target)
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
        unsafe: list[str] = []
        root = str(self.layout.root)
        while targets:
            mid = targets.pop(0)
            if mid in results:
                continue
            row = self.index.row(mid)
            if row is None:
                results[mid] = VerifyResult(mid, False, [NOT_CACHED])
                continue
            entry = CacheEntry.from_row(root, row)
            problem = entry.problem()
            if problem is not None:  # never a path from it: the row alone goes
                unsafe.append(mid)
                gone = "removed from the index" if quarantine else "ignored"
                results[mid] = VerifyResult(mid, False, [f"{problem}: {gone}"])
                continue
            result, corrupt = self._verify_one(entry, fix=quarantine)
            results[mid] = result
            targets.extend(sorted(self.index.users_of(corrupt - suspects) - set(results)))
            suspects |= corrupt
        if quarantine and unsafe:
            self.index.delete_models(unsafe)
        bad = [r.model_id for r in results.values() if not r.ok
               and r.problems != [NOT_CACHED] and r.model_id not in unsafe]
        if quarantine and bad:
            self._quarantine(bad, suspects)
        return list(results.values())

    def _verify_one(self, entry: CacheEntry, *, fix: bool) -> tuple[VerifyResult, set[str]]:
        res = VerifyResult(entry.model_id, True)
        corrupt: set[str] = set()
        file_mtimes, blob_mtimes = {}, {}
        root = self.layout.root
        for f in entry.files:
            target, blob = entry.base / f.path, self.blobs.path(f.sha256)
            link = planted_link(root, target)  # never read or write through it
            file_ok = link is None and _hashes_to(target, f)
            blob_ok = (file_ok and same_file(blob, target)) or _hashes_to(blob, f)
            if not blob_ok and (blob.exists() or blob.is_symlink()):
                corrupt.add(f.sha256)
            if not file_ok:
                res.problems.append(
                    describe(target, f) if link is None else
                    f"{f.path}: reached through {link.relative_to(root)}, a link or a file"
                    " where a folder of the cache should be (never followed)")
            if not blob_ok:
                res.problems.append("blob " + describe(blob, f, name=f.sha256[:12]))
            if fix and file_ok != blob_ok:  # one good copy: restore the other from it
                good, bad = (target, blob) if file_ok else (blob, target)
                real_dirs(root, bad.parent, lambda p: self.quarantine.put(
                    p, f"{entry.model_id}-{p.name}.planted"))
                if bad.is_symlink() or bad.exists():
                    self.quarantine.put(bad, f"{entry.model_id}-{f.sha256[:12]}-{bad.name}")
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

    def _quarantine(self, model_ids: list[str], suspects: set[str]) -> None:
        """Hide corrupt models at once (one transaction); keep their bytes aside."""
        self.index.delete_models(model_ids)
        for mid in model_ids:
            self.quarantine.put(self.layout.model_folder(mid), mid)
            self.manifests.remove(mid)
        with self.locks.gc():
            for sha in suspects:  # unless another model's good copy restored it meanwhile
                blob = self.blobs.path(sha)
                if regular_stat(blob) is None or file_sha256(blob) != sha:
                    self.quarantine.put(blob, f"blob-{sha[:16]}")
        self.blobs.gc()


def _hashes_to(path: Path, f: FileRow) -> bool:
    st = regular_stat(path)
    return st is not None and st.st_size == f.size and file_sha256(path) == f.sha256


def describe(path: Path, f: FileRow, name: str | None = None) -> str:
    """What is wrong with a file that should hold ``f``'s bytes, in a few words."""
    name = name or f.path
    if path.is_symlink():
        return f"{name}: a symbolic link, not a stored file"
    st = regular_stat(path)
    if st is None:
        return f"{name}: missing" if not path.exists() else f"{name}: not a regular file"
    if st.st_size != f.size:
        return f"{name}: {st.st_size} bytes, expected {f.size} (truncated or grown)"
    return f"{name}: sha256 {file_sha256(path)[:12]}…, expected {f.sha256[:12]}…"
