"""The disk tier: one cache folder opened, and the parts that work on it.

``DiskTier`` builds the parts of one folder and hands each what it needs: the paths
(:class:`~.layout.Layout`), the lock files (locks.py), the index (index.py, opened here and
rebuilt from the manifests when it is lost or damaged: rebuild.py), the blob store (blobs.py),
the manifests (manifests.py), the first-use hashes (trust.py), the publish order (installer.py),
the checks (verifier.py) and the quarantine. What it does itself is what needs the whole folder:
listing, sizing and removing models.

Locks: a publish holds ``gc`` shared and ``model-<id>`` exclusive; blob garbage collection holds
``gc`` exclusive, so it never deletes a blob a publish is about to commit. An eviction holds
``use-<id>`` exclusive, which a process using the model holds shared.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sqlite3
import stat
import time
from collections.abc import Iterable
from pathlib import Path

from ..errors import CacheError
from .blobs import BlobStore
from .entry import CacheEntry, DiskUsage
from .fsutil import crash_point, file_bytes, planted_link, remove_tree_counted
from .index import Index, ListingRow, is_busy
from .installer import Installer
from .layout import HEX64, Layout, ignored, listable
from .locks import Locks
from .manifests import Manifests
from .quarantine import Quarantine
from .rebuild import index_lost, rebuild, set_aside
from .trust import TrustRecords
from .verifier import Verifier


class DiskTier:
    def __init__(self, root: Path, *, durable: bool = True, busy_timeout: float = 10.0,
                 readonly: bool = False) -> None:
        self.root = root
        self.durable = durable
        self.readonly = readonly
        self.busy_timeout = busy_timeout
        self.layout = layout = Layout(root)
        self.locks = Locks(layout.lock_dir, busy_timeout)
        if not readonly:
            for d in layout.folders:
                d.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
                d.mkdir(exist_ok=True, mode=0o755)  # the umask may take more, never add
        self.index = self._open_index()
        self.quarantine = Quarantine(layout)
        self.manifests = Manifests(layout, durable=durable)
        self.blobs = BlobStore(layout, self.index, self.locks, self.quarantine, durable=durable,
                               readonly=readonly)
        self.trust = TrustRecords(layout, self.index, durable=durable, readonly=readonly)
        self.installer = Installer(layout, self.index, self.blobs, self.manifests, self.locks,
                                   self.quarantine, durable=durable)
        self.verifier = Verifier(layout, self.index, self.blobs, self.manifests, self.locks,
                                 self.quarantine, readonly=readonly)

    # -- opening, recovery ------------------------------------------------------------------------
    def _open_index(self) -> Index:
        path = self.layout.index_path
        if self.readonly:
            return Index(path, readonly=True, busy_timeout=self.busy_timeout)
        # One process at a time checks (and maybe rebuilds) the index: a rebuild moves the file.
        with self.locks.index():
            lost = index_lost(self.layout)
            if lost is not None:
                return self._rebuilt(lost)
            try:
                index = self._connect(path)
            except sqlite3.OperationalError:
                raise  # locked, I/O error: not a reason to set the index aside
            except sqlite3.DatabaseError as e:
                return self._rebuilt(e)
            try:
                check = index.quick_check()
            except sqlite3.OperationalError:
                index.close()
                raise
            except sqlite3.DatabaseError as e:
                check = str(e)
            if check != "ok":
                index.close()
                return self._rebuilt(sqlite3.DatabaseError(check))
            TrustRecords(self.layout, index, durable=self.durable).save_unsaved()
            return index

    def _rebuilt(self, why: Exception | str) -> Index:
        aside = set_aside(self.layout.index_path, damaged=not isinstance(why, str))
        index = Index(self.layout.index_path, durable=self.durable,
                      busy_timeout=self.busy_timeout)
        rebuild(self.layout, index, why, aside)
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
        """The index turned out corrupt while in use: set it aside and rebuild it (in place:
        every part holding ``self.index`` sees the rebuilt one)."""
        with self.locks.index():
            with contextlib.suppress(sqlite3.Error):
                self.index.close()
            aside = set_aside(self.layout.index_path, damaged=True)
            self.index.reopen()
            rebuild(self.layout, self.index, why, aside)

    def close(self) -> None:
        self.index.close()

    def _writable(self) -> None:
        if self.readonly:
            raise CacheError(f"the cache in {self.root} is read-only")

    # -- listing -----------------------------------------------------------------------------------
    def entry(self, row: ListingRow, tier: str = "disk") -> CacheEntry:
        return CacheEntry.from_row(str(self.root), row, tier)

    def entries(self) -> list[CacheEntry]:
        """Every model of the index, but a row whose paths would lead outside its folder (it
        stays in the index, ignored, until ``cache verify`` removes it)."""
        root = str(self.root)
        out = []
        # Tens of thousands of new objects, none in a cycle: pausing the cyclic collector
        # spares several full collections (a third of the time for 10,000 models).
        paused = gc.isenabled()
        gc.disable()
        try:
            for r in self.index.listing():
                e = CacheEntry(root, *r)
                if not listable(r[0], r[1]):  # the fast check cannot tell: parse it
                    problem = e.problem()
                    if problem is not None:
                        ignored(self.root, r[0], problem)
                        continue
                out.append(e)
            return out
        finally:
            if paused:
                gc.enable()

    def size(self) -> int:
        return self.index.total_size()

    def usage(self) -> DiskUsage:
        """Walk the folder and say where its bytes are (see :class:`DiskUsage`)."""
        seen: set[tuple[int, int]] = set()

        def count(paths: Iterable[Path]) -> int:
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

        layout = self.layout
        entries = self.entries()
        # Never counted through a link planted where a folder of ours should be.
        shown = [e.base for e in entries if planted_link(self.root, e.base / "-") is None]
        shown += [layout.manifest(e.model_id) for e in entries]
        shown += [layout.blob(sha) for sha in self.index.blob_refs() if HEX64.fullmatch(sha)]
        models = count(shown)
        partials = count([layout.partial_dir])
        quarantine = count([layout.quarantine_dir])
        index = count(self.root.glob("index.db*"))
        other = count([self.root])
        return DiskUsage(models, partials, quarantine, index, other)

    # -- changes -----------------------------------------------------------------------------------
    def set_pinned(self, model_id: str, pinned: bool) -> bool:
        """Pin in the index and in the manifest (so a rebuilt index keeps the pin)."""
        self._writable()
        if not self.index.set_pinned(model_id, pinned):
            return False
        row = self.index.row(model_id)
        if row is not None:
            with contextlib.suppress(OSError):
                self.manifests.write(self.entry(row).manifest, pinned)
        return True

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
                self.manifests.remove(mid)
                freed += remove_tree_counted(self.layout.model_folder(mid))
            crash_point("remove:files")
        return freed + self.blobs.gc()
