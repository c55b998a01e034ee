"""Rebuilding a lost or damaged index from what the folder holds, and the ``trusted/`` files
that carry first-use hashes through a rebuild.

The index is derived data: ``manifests/<id>.json`` say what each model is, ``blobs/`` hold its
bytes, ``trusted/<id>.json`` the sha256 first seen for files without a catalog hash. A rebuild
re-hashes every blob a manifest names (no index row vouches for it any more) and restores only
what hashes right.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from .fsutil import atomic_write, regular_stat, replace_with_link, same_file
from .hashing import file_sha256
from .index import Index

if TYPE_CHECKING:
    from .disk import DiskTier

log = logging.getLogger("runanywhere")


def index_lost(disk: DiskTier, path: Path) -> str | None:
    """Why the index must be rebuilt before it is opened: it is missing or empty (deleted,
    truncated to nothing) while the manifests or trust records it was built from are here.
    An empty SQLite file is a valid empty database: opened as is, every model would vanish."""
    try:
        if os.stat(path).st_size > 0:
            return None
        why = "empty (0 bytes)"
    except FileNotFoundError:
        why = "missing"
    if any(disk.manifest_dir.glob("*.json")) or any(disk.trusted_dir.glob("*.json")):
        return why
    return None


def rebuild_index(disk: DiskTier, path: Path, why: Exception | str) -> Index:
    """Set ``path`` aside (when damaged) and build a new index from the manifests, the
    blobs they name (re-hashed) and ``trusted/``; logs one warning saying what it did."""
    damaged = not isinstance(why, str)
    aside = path.with_name(f"index.db.corrupt-{time.strftime('%Y%m%d-%H%M%S')}"
                           f"-{uuid.uuid4().hex[:4]}")
    moved = False
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            if suffix == "" and not damaged:  # an empty file holds nothing to keep
                path.unlink()
                continue
            os.replace(str(path) + suffix, str(aside) + suffix)
            moved = moved or suffix == ""
    index = Index(path, durable=disk.durable, busy_timeout=disk.busy_timeout)
    restored: list[str] = []
    skipped: list[str] = []
    hashed: dict[str, bool] = {}
    for mf in sorted(disk.manifest_dir.glob("*.json")):
        problem = _restore_manifest(disk, index, mf, hashed)
        (skipped if problem else restored).append(f"{mf.stem} ({problem})" if problem
                                                  else mf.stem)
    trusted = _restore_trust(disk, index)
    state = (f"was damaged ({why}): kept it as {aside.name}" if damaged and moved
             else f"was {why}")
    log.warning("cache index %s %s; rebuilt the index from the blobs and manifests;"
                " %d model(s) restored%s%s", path, state, len(restored),
                f", not restored: {', '.join(skipped)}" if skipped else "",
                f"; {trusted} first-use hash(es) restored" if trusted else "")
    return index


def _restore_manifest(disk: DiskTier, index: Index, manifest_file: Path,
                      hashed: dict[str, bool]) -> str | None:
    """Re-index one manifest if every blob is present and hashes right (no index row
    vouches for it any more), relinking missing model files; returns what prevented it."""
    try:
        doc = json.loads(manifest_file.read_text())
        pinned = bool(doc.pop("pinned", False))
        base = Path(disk.root, doc["entry"])
        base = base if doc["kind"] == "dir" else base.parent
        file_mtimes, blob_mtimes = {}, {}
        for f in doc["files"]:
            blob = disk.blob_path(f["sha256"])
            st = regular_stat(blob)
            if st is None or st.st_size != f["size"]:
                return f"blob {f['sha256'][:12]} is missing or the wrong size"
            if f["sha256"] not in hashed:
                hashed[f["sha256"]] = file_sha256(blob) == f["sha256"]
            if not hashed[f["sha256"]]:
                return f"blob {f['sha256'][:12]} has the wrong bytes"
            target = base / f["path"]
            if not same_file(blob, target):  # only the verified blob is trusted
                replace_with_link(blob, target)
            file_mtimes[f["path"]] = os.lstat(target).st_mtime_ns
            blob_mtimes[f["sha256"]] = st.st_mtime_ns
        index.put_model(doc, pinned=pinned, file_mtimes=file_mtimes, blob_mtimes=blob_mtimes)
        return None
    except (OSError, ValueError, KeyError, TypeError) as e:
        return str(e) or type(e).__name__


def write_trust_file(disk: DiskTier, index: Index, model_id: str) -> None:
    """``trusted/<id>.json``: the model's first-use records as the index holds them now."""
    records = index.trust_records(model_id)
    target = disk.trusted_dir / f"{model_id}.json"
    if not records:
        target.unlink(missing_ok=True)
        return
    doc = {"id": model_id, "files": [
        {k: v for k, v in r.to_dict().items() if k != "id"} for r in records]}
    atomic_write(target, json.dumps(doc, indent=1, sort_keys=True).encode(),
                 durable=disk.durable)


def save_unsaved_trust(disk: DiskTier, index: Index) -> None:
    """Trust records from before ``trusted/`` existed get their file (one query)."""
    with contextlib.suppress(OSError, sqlite3.Error):
        for mid in {r.model_id for r in index.trust_records()}:
            if not (disk.trusted_dir / f"{mid}.json").exists():
                write_trust_file(disk, index, mid)


def _restore_trust(disk: DiskTier, index: Index) -> int:
    """Put the first-use hashes of ``trusted/`` back into a rebuilt index."""
    count = 0
    for tf in sorted(disk.trusted_dir.glob("*.json")):
        try:
            doc = json.loads(tf.read_text())
            for r in doc["files"]:
                index.set_trusted(doc["id"], r["path"], r["url"], r["sha256"],
                                  int(r["size"]), float(r["recorded"]))
                count += 1
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.warning("cannot read the first-use hashes in %s (%s)", tf, e)
    return count
