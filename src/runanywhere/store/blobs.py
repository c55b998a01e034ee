"""``blobs/sha256/<hex>``: every verified file, stored once under its hash.

A blob is only ever moved in (renamed from ``partials/``, or copied across filesystems), made
read-only, and removed by garbage collection once no model uses it. ``gc`` holds ``gc.lock``
exclusive; a publish holds it shared from storing its blobs until its index row commits, so gc
never takes a blob a publish is about to use.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
from pathlib import Path

from ..errors import CacheError, UnsafeCacheError
from .entry import StagedFile
from .fsutil import (
    copy_file,
    crash_point,
    disk_error,
    fsync_dir,
    fsync_file,
    is_enospc,
    regular_stat,
    unlink_counted,
)
from .hashing import file_sha256
from .index import Index
from .layout import Layout, check_sha256, ignored
from .locks import Locks
from .partial import link_for_publish
from .quarantine import Quarantine


class BlobStore:
    def __init__(self, layout: Layout, index: Index, locks: Locks, quarantine: Quarantine, *,
                 durable: bool, readonly: bool = False) -> None:
        self.layout = layout
        self.index = index
        self.locks = locks
        self.quarantine = quarantine
        self.durable = durable
        self.readonly = readonly

    def path(self, sha256: str) -> Path:
        return self.layout.blob(sha256)

    def has(self, sha256: str, size: int | None) -> bool:
        """Is a blob with these bytes stored? Cheap when the index vouches for the file (same
        size and mtime as recorded); a blob no row mentions (left by a crash) is re-hashed.
        ``size`` None: any size (the sha256 alone names the bytes)."""
        path = self.path(sha256)
        st = regular_stat(path)
        if st is None or st.st_size != (st.st_size if size is None else size):
            return False
        size = st.st_size
        known = self.index.blob(sha256)
        if known == (size, st.st_mtime_ns):
            return True
        try:  # no row vouches for it (left by a crash), or its mtime moved: the bytes decide
            good = file_sha256(path) == sha256
        except OSError:  # another process's gc removed it between the lstat and the open
            return False
        if good and known is not None and not self.readonly:
            with contextlib.suppress(sqlite3.Error):
                self.index.refresh_blob_mtime(sha256, st.st_mtime_ns)
        return good

    def store(self, staged: StagedFile) -> Path:
        """Move a verified file into ``blobs/`` (or drop it if the blob is already there)."""
        if self.readonly:
            raise CacheError(f"the cache in {self.layout.root} is read-only")
        dst = self.path(staged.sha256)
        if staged.src == dst:
            return dst  # the caller found the blob already stored
        if self.has(staged.sha256, staged.size):
            with contextlib.suppress(FileNotFoundError):
                staged.src.unlink()
            return dst
        if dst.is_symlink():  # never write through (or next to) a planted link
            self.quarantine.put(dst, f"{staged.sha256}.symlink")
        try:
            self._move_in(staged.src, dst)
        except OSError as e:
            if is_enospc(e):
                raise disk_error(e, "storing a blob", self.layout.root) from e
            raise
        if self.durable:
            fsync_dir(self.layout.blob_dir)
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

    def stage_link(self, folder: Path, path: str, sha256: str, size: int | None
                   ) -> StagedFile | None:
        """Stage in ``folder`` (``partials/``) a hard link to a stored blob with these bytes, or
        None if there is none.

        Publishing *moves* a staged file into ``blobs/`` and drops it when the blob exists, so the
        blob itself must never be staged: a link in ``partials/`` is, and it costs no copy. The
        link is a partial of this process (``prune`` leaves it alone), and it keeps the bytes
        even if another process removes the blob before the publish.
        """
        try:
            if not self.has(sha256, size):
                return None
            blob = self.path(sha256)
            if size is None:  # a catalog without sizes (a Hub file known by its hash)
                size = blob.stat().st_size
            link = link_for_publish(folder, blob, sha256, size)
        except OSError:  # removed by another process's clear or prune a moment ago: download
            return None
        return StagedFile(path, link, sha256, size)

    def gc(self) -> int:
        """Delete blobs no model references any more; returns the bytes freed on the disk (a
        blob still linked from a folder frees nothing until that folder goes too)."""
        freed = 0
        with self.locks.gc():
            for sha, _size in self.index.delete_unreferenced_blobs():
                crash_point("gc:unlink")
                try:
                    path = self.path(check_sha256(sha, "blob row"))
                except UnsafeCacheError as e:  # a planted row: it is gone, and that is all
                    ignored(self.layout.root, f"blob {sha!r}", str(e))
                    continue
                freed += unlink_counted(path)
        return freed

    def drop_unshared(self, sha256: str) -> None:
        """Drop a blob unless some model uses the same bytes (an unpacked archive's)."""
        with self.locks.gc():  # the guard against racing a publisher that uses it
            if sha256 not in self.index.blob_refs():
                with contextlib.suppress(FileNotFoundError):
                    self.path(sha256).unlink()
