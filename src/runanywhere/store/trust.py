"""Trust on first use: the sha256 first seen for a file the catalog gives no hash for.

Each record lives in the index (``trusted`` table) and in ``trusted/<id>.json``, so it outlives
``rm``, ``clear`` and an index rebuild; only :meth:`TrustRecords.forget` drops it. Every later
download or import of the file must match it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
from typing import TYPE_CHECKING

from ..errors import CacheError, UnsafeCacheError
from .fsutil import atomic_write, read_own
from .index import Index, TrustRecord
from .layout import Layout, check_id, check_relpath, check_sha256, ignored

if TYPE_CHECKING:
    from ..catalog import ModelFile

log = logging.getLogger("runanywhere")


class TrustRecords:
    def __init__(self, layout: Layout, index: Index, *, durable: bool,
                 readonly: bool = False) -> None:
        self.layout = layout
        self.index = index
        self.durable = durable
        self.readonly = readonly

    # -- what a download or an import asks ---------------------------------------------------------
    def expected(self, model_id: str, f: ModelFile) -> str | None:
        """The catalog's hash of a file, else the one recorded at its first verified download.

        A file the catalog knows by its git blob id (a small file of the Hub) changes with the
        commit its URL names: its record counts only for the URL it was recorded from, so a
        moved branch is fetched and checked against the new blob id, never served old bytes.
        """
        if f.sha256:
            return f.sha256
        t = self.index.trusted(model_id, f.path)
        if t is None or f.size not in (None, t[1]):
            return None
        if f.git_sha1 and t[2] != f.url:
            return None
        try:  # it names partials and blobs: never a path out of them
            return check_sha256(t[0], f"the first-use sha256 of {model_id} {f.path}")
        except UnsafeCacheError as e:
            raise UnsafeCacheError(f"{e}: the record is damaged; `runanywhere cache forget"
                                   f" {model_id}` drops it") from None

    def record_first_use(self, model_id: str, f: ModelFile, source: str, sha256: str,
                         size: int) -> None:
        """Every later download or import of this file must match ``sha256``. A file with a git
        blob id was checked against it: its record is replaced when its URL (the commit)
        changes, and names that URL whatever ``source`` was."""
        if f.git_sha1:
            self.record(model_id, f.path, f.url, sha256, size, replace=True)
        else:
            self.record(model_id, f.path, source, sha256, size)

    # -- the records -------------------------------------------------------------------------------
    def record(self, model_id: str, path: str, url: str, sha256: str, size: int, *,
               replace: bool = False) -> None:
        """Record a hash in the index and in ``trusted/<id>.json`` (so a rebuilt index keeps
        it); the first record of a file wins unless ``replace``."""
        self._writable()
        self.index.set_trusted(model_id, path, url, sha256, size, replace=replace)
        self.write_file(model_id)

    def records(self, model_id: str | None = None) -> list[TrustRecord]:
        return self.index.trust_records(model_id)

    def forget(self, model_id: str) -> list[TrustRecord]:
        """Forget a model's first-use hashes (the next download records new ones)."""
        self._writable()
        gone = self.index.trust_records(model_id)
        self.index.delete_trusted(model_id)
        with contextlib.suppress(UnsafeCacheError):  # a planted id names no file of ours
            self.layout.trust_file(model_id).unlink(missing_ok=True)
        return gone

    def _writable(self) -> None:
        if self.readonly:
            raise CacheError(f"the cache in {self.layout.root} is read-only")

    # -- the files in trusted/ ---------------------------------------------------------------------
    def write_file(self, model_id: str) -> None:
        """``trusted/<id>.json``: the model's records as the index holds them now."""
        records = self.index.trust_records(model_id)
        target = self.layout.trust_file(model_id)
        if not records:
            target.unlink(missing_ok=True)
            return
        doc = {"id": model_id, "files": [
            {k: v for k, v in r.to_dict().items() if k != "id"} for r in records]}
        atomic_write(target, json.dumps(doc, indent=1, sort_keys=True).encode(),
                     durable=self.durable)

    def save_unsaved(self) -> None:
        """Records from before ``trusted/`` existed get their file (one query)."""
        with contextlib.suppress(OSError, sqlite3.Error):
            for mid in {r.model_id for r in self.index.trust_records()}:
                try:
                    target = self.layout.trust_file(check_id(mid, "first-use record of"))
                except UnsafeCacheError as e:  # a planted row: no file is written for it
                    ignored(self.layout.root, f"trust {mid!r}", str(e))
                    continue
                if not target.exists():
                    self.write_file(mid)

    def restore(self) -> int:
        """Put the records of ``trusted/`` into the index (a rebuilt one); returns how many."""
        count = 0
        for tf in sorted(self.layout.trusted_dir.glob("*.json")):
            try:
                doc = json.loads(read_own(tf))
                mid = check_id(doc["id"])
                records = [(check_relpath(r["path"]), str(r["url"]), check_sha256(r["sha256"]),
                            int(r["size"]), float(r["recorded"])) for r in doc["files"]]
            except (OSError, ValueError, KeyError, TypeError, UnsafeCacheError) as e:
                log.warning("cannot read the first-use hashes in %s (%s)", tf, e)
                continue
            for path, url, sha, size, recorded in records:
                self.index.set_trusted(mid, path, url, sha, size, recorded)
                count += 1
        return count
