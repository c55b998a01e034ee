"""Publishing: the one order in which verified files become a visible model.

1. ``blobs``: each verified file is flushed and renamed into ``blobs/sha256/<hex>``;
2. ``folder``: the model folder is built beside its final name (hard links to the blobs) and
   renamed into ``models/<id>/<version>``;
3. ``manifest``: ``manifests/<id>.json`` is written;
4. ``commit``: the index row commits -- the moment the model becomes visible.

A crash at any point leaves nothing visible that is wrong: what a crash leaves before the commit
is an orphan that ``prune`` removes, and a later publish reuses a blob already there (after
re-hashing it, as no index row vouches for it). A publish holds ``gc`` shared and ``model-<id>``
exclusive until its commit. An index locked for too long raises ``CacheBusy`` carrying the
:class:`Prepared` publish, whose files are in place: :meth:`Installer.retry_commit` finishes it.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sqlite3
import stat
import time
from pathlib import Path

from ..errors import CacheBusy, CacheError, InsufficientStorageError
from .blobs import BlobStore
from .entry import CacheEntry, Prepared, StagedFile
from .fsutil import (
    crash_point,
    disk_error,
    fsync_dir,
    is_enospc,
    link_or_copy,
    planted_link,
    random_hex,
    real_dirs,
    regular_stat,
    remove_tree,
    remove_tree_counted,
)
from .index import Index, is_busy, is_full, make_manifest
from .layout import Layout, ignored
from .locks import Locks
from .manifests import Manifests
from .quarantine import Quarantine

log = logging.getLogger("runanywhere")

#: The steps of a publish, in order (each is also a crash point of the same name).
PUBLISH_STEPS = ("publish:blobs", "publish:tmp-folder", "publish:folder", "publish:manifest",
                 "publish:committed")


class Installer:
    def __init__(self, layout: Layout, index: Index, blobs: BlobStore, manifests: Manifests,
                 locks: Locks, quarantine: Quarantine, *, durable: bool) -> None:
        self.layout = layout
        self.index = index
        self.blobs = blobs
        self.manifests = manifests
        self.locks = locks
        self.quarantine = quarantine
        self.durable = durable

    def entry(self, model_id: str) -> CacheEntry | None:
        """The model's committed entry; None if it has none, or an unsafe one (a publish
        replaces that row, never building a path from it)."""
        row = self.index.row(model_id)
        if row is None:
            return None
        entry = CacheEntry.from_row(str(self.layout.root), row)
        problem = entry.problem()
        if problem is not None:
            ignored(self.layout.root, model_id, problem)
            return None
        return entry

    def publish(self, model_id: str, version: str, files: list[StagedFile], *, kind: str,
                source_sha256: str | None, origin: str = "download",
                pinned: bool | None = None) -> CacheEntry:
        """Store verified files and make them visible as one model (see the module doc).

        Raises ``InsufficientStorageError`` when the disk is full (nothing becomes visible) and
        ``CacheBusy`` (carrying ``.pending``, a :class:`Prepared`) when the index stays locked.
        """
        if kind not in ("file", "dir") or not files or (kind == "file" and len(files) != 1):
            raise ValueError(f"cannot publish {len(files)} file(s) as kind {kind!r}")
        # Locks until the commit: gc must not take a blob, nor prune a folder, before its row.
        with self.locks.gc(shared=True), self.locks.model(model_id):
            for f in files:
                self.blobs.store(f)
            crash_point("publish:blobs")
            try:
                prepared = self._install(model_id, version, files, kind, source_sha256, origin,
                                         pinned)
            except OSError as e:
                if is_enospc(e):
                    raise disk_error(e, f"publishing {model_id}", self.layout.root) from e
                raise
            entry = self._commit(prepared)
        self.drop_old_versions(model_id)
        return entry

    def retry_commit(self, p: Prepared) -> CacheEntry:
        """Commit a model whose publish met a locked index (``CacheBusy.pending``)."""
        with self.locks.gc(shared=True), self.locks.model(p.doc["id"]):
            base = self.layout.base(p.doc)
            for path, mtime in p.file_mtimes.items():
                st = regular_stat(base / path)
                if st is None or st.st_mtime_ns != mtime:
                    raise CacheError(f"{p.doc['id']}: its files changed before the index"
                                     " accepted them")
            return self._commit(p)

    # -- old versions ------------------------------------------------------------------------------
    def old_versions(self, model_id: str, current: Path | None) -> list[Path]:
        """Version folders of a model other than ``current`` (the one its row shows), e.g. left
        when the catalog moved the model to a new version while it was in use. None when
        ``models/<id>`` is not a real folder: a link planted there is never listed through."""
        folder = self.layout.model_folder(model_id)
        try:
            if not stat.S_ISDIR(os.lstat(folder).st_mode):
                return []
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
                entry = self.entry(model_id)
                if entry is None:
                    return 0
                old = self.old_versions(model_id, entry.base)
                for folder in old:
                    freed += remove_tree_counted(folder)
        except (OSError, CacheError, sqlite3.Error) as e:
            log.warning("could not remove old versions of %s (%s); prune will", model_id, e)
            return freed
        finally:
            os.close(fd)
        if old:  # their blobs (linked from the folders, so not counted yet) may be unused now
            with contextlib.suppress(OSError, CacheError, sqlite3.Error):
                freed += self.blobs.gc()
        return freed

    # -- the steps ---------------------------------------------------------------------------------
    def _install(self, model_id: str, version: str, files: list[StagedFile], kind: str,
                 source_sha256: str | None, origin: str, pinned: bool | None) -> Prepared:
        final = self.layout.version_folder(model_id, version)
        current = self.entry(model_id)
        keep_pin = pinned if pinned is not None else bool(current and current.pinned)
        shown = current is not None and current.base.is_relative_to(final)
        created = self._install_folder(model_id if shown else None, final, files)
        crash_point("publish:folder")
        entry = self.layout.entry(model_id, version, kind, files[0].path)
        doc = make_manifest(model_id, version, kind, entry, sum(f.size for f in files),
                            source_sha256, time.time(), origin,
                            [{"path": f.path, "sha256": f.sha256, "size": f.size}
                             for f in sorted(files, key=lambda f: f.path)])
        try:
            self.manifests.write(doc, keep_pin)
            crash_point("publish:manifest")
            file_mtimes = {f.path: os.lstat(final / f.path).st_mtime_ns for f in files}
            blob_mtimes = {f.sha256: os.lstat(self.blobs.path(f.sha256)).st_mtime_ns
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
                raise InsufficientStorageError(f"no space left in {self.layout.root} for the"
                                               f" cache index ({e})") from e
            raise
        crash_point("publish:committed")
        entry = self.entry(mid)
        assert entry is not None
        return entry

    def _install_folder(self, shown: str | None, final: Path, files: list[StagedFile]) -> bool:
        """Put the model folder in place; True if it was created (not already right).

        A folder a committed row points to is never changed under it: replacing the version
        that model ``shown`` shows with other bytes first hides the model (its own
        transaction), then swaps the folder.
        """
        if self._folder_matches(final, files):
            return False
        # models/<id> must be a folder of ours: a link (or file) planted there is set aside,
        # never written through.
        real_dirs(self.layout.root, final.parent,
                  lambda p: self.quarantine.put(p, f"{p.name}.planted"))
        tmp = final.parent / f".tmp-{random_hex(8)}"
        tmp.mkdir()
        try:
            for f in files:
                link_or_copy(self.blobs.path(f.sha256), tmp / f.path, durable=self.durable)
            if self.durable:
                for d in {(tmp / f.path).parent for f in files}:
                    fsync_dir(d)
            crash_point("publish:tmp-folder")
            if final.exists() or final.is_symlink():
                if shown is not None:
                    self.index.delete_models([shown])
                crash_point("publish:hidden-old")
            if not self._swap_in(tmp, final, files):
                remove_tree(tmp)
                return False
            if self.durable:
                fsync_dir(final.parent)
        except BaseException:
            remove_tree(tmp)
            raise
        return True

    def _swap_in(self, tmp: Path, final: Path, files: list[StagedFile]) -> bool:
        """Rename ``tmp`` to ``final``, setting aside what is there; False when another process
        put the same files there first. The model lock makes that impossible, except where
        ``flock`` silently grants every lock (some network filesystems): there two processes
        can both find no folder and rename at once, and the loser sees ENOTEMPTY."""
        for attempt in range(3):
            old = final.parent / f".old-{random_hex(8)}"
            try:
                if final.exists() or final.is_symlink():
                    os.replace(final, old)
                    os.replace(tmp, final)
                    remove_tree(old)
                else:
                    os.replace(tmp, final)
                return True
            except OSError as e:
                remove_tree(old)  # set aside, then another process's folder took its place
                raced = e.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT)
                if not raced or attempt == 2:
                    raise
                if self._folder_matches(final, files):
                    return False
        raise AssertionError("unreachable")

    def _folder_matches(self, final: Path, files: list[StagedFile]) -> bool:
        """Is the folder already exactly these blobs (hard links, nothing else), reached
        without a link?"""
        try:
            for f in files:
                target = final / f.path
                if (planted_link(self.layout.root, target) is not None or target.is_symlink()
                        or not os.path.samefile(self.blobs.path(f.sha256), target)):
                    return False
            count = sum(len(names) for _, _, names in os.walk(final))
        except OSError:
            return False
        return count == len(files)

    def _undo_install(self, model_id: str, created: Path | None) -> None:
        """A publish failed before its commit: leave what the index says, nothing more."""
        with contextlib.suppress(OSError, sqlite3.Error):
            current = self.entry(model_id)
            if current is None:
                self.manifests.remove(model_id)
            else:
                self.manifests.write(current.manifest, current.pinned)
            if created is not None and (current is None or current.base != created):
                remove_tree(created)
                created.parent.rmdir()  # the model's folder, if nothing else is in it
