"""Rebuilding a lost or damaged index from what the folder holds.

The index is derived data: ``manifests/<id>.json`` say what each model is, ``blobs/`` hold its
bytes, ``trusted/<id>.json`` the sha256 first seen for files without a catalog hash. A rebuild
re-hashes every blob a manifest names (no index row vouches for it any more) and restores only
what hashes right.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path

from ..errors import UnsafeCacheError
from .fsutil import planted_link, random_hex, real_dirs, regular_stat, replace_with_link, same_file
from .hashing import file_sha256
from .index import Index
from .layout import Layout
from .manifests import Manifests
from .quarantine import Quarantine
from .trust import TrustRecords

log = logging.getLogger("runanywhere")


def index_lost(layout: Layout) -> str | None:
    """Why the index must be rebuilt before it is opened: it is missing or empty (deleted,
    truncated to nothing) while the manifests or trust records it was built from are here.
    An empty SQLite file is a valid empty database: opened as is, every model would vanish."""
    try:
        if os.stat(layout.index_path).st_size > 0:
            return None
        why = "empty (0 bytes)"
    except FileNotFoundError:
        why = "missing"
    if any(layout.manifest_dir.glob("*.json")) or any(layout.trusted_dir.glob("*.json")):
        return why
    return None


def set_aside(path: Path, damaged: bool) -> Path | None:
    """Move a damaged index (and its journal files) aside, or drop an empty one; returns where
    the damaged copy went (None if there was none)."""
    aside = path.with_name(f"index.db.corrupt-{time.strftime('%Y%m%d-%H%M%S')}"
                           f"-{random_hex(4)}")
    moved = None
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            if suffix == "" and not damaged:  # an empty file holds nothing to keep
                path.unlink()
                continue
            os.replace(str(path) + suffix, str(aside) + suffix)
            moved = moved or (aside if suffix == "" else None)
    return moved


def rebuild(layout: Layout, index: Index, why: Exception | str, aside: Path | None) -> None:
    """Fill ``index`` (new and empty) from the manifests, the blobs they name (re-hashed) and
    ``trusted/``; logs one warning saying what it did."""
    restored: list[str] = []
    skipped: list[str] = []
    hashed: dict[str, bool] = {}
    manifests = Manifests(layout, durable=index.durable)
    quarantine = Quarantine(layout)
    for mf in manifests.files():
        problem = _restore_manifest(layout, index, quarantine, mf, hashed)
        (skipped if problem else restored).append(f"{mf.stem} ({problem})" if problem
                                                  else mf.stem)
    trusted = TrustRecords(layout, index, durable=index.durable).restore()
    state = (f"was damaged ({why}): kept it as {aside.name}" if aside is not None
             else f"was {why}")
    log.warning("cache index %s %s; rebuilt the index from the blobs and manifests;"
                " %d model(s) restored%s%s", layout.index_path, state, len(restored),
                f", not restored: {', '.join(skipped)}" if skipped else "",
                f"; {trusted} first-use hash(es) restored" if trusted else "")


def _restore_manifest(layout: Layout, index: Index, quarantine: Quarantine, manifest_file: Path,
                      hashed: dict[str, bool]) -> str | None:
    """Re-index one manifest if every blob is present and hashes right (no index row
    vouches for it any more), relinking missing model files; returns what prevented it."""
    try:
        doc, pinned = Manifests.read(manifest_file)  # checked: its paths stay in its folder
        base = layout.base(doc)
        file_mtimes, blob_mtimes = {}, {}
        for f in doc["files"]:
            blob = layout.blob(f["sha256"])
            st = regular_stat(blob)
            if st is None or st.st_size != f["size"]:
                return f"blob {f['sha256'][:12]} is missing or the wrong size"
            if f["sha256"] not in hashed:
                hashed[f["sha256"]] = file_sha256(blob) == f["sha256"]
            if not hashed[f["sha256"]]:
                return f"blob {f['sha256'][:12]} has the wrong bytes"
            target = base / f["path"]
            if planted_link(layout.root, target) is not None or not same_file(blob, target):
                # Only the verified blob is trusted, and only in real folders of ours.
                real_dirs(layout.root, target.parent,
                          lambda p: quarantine.put(p, f"{p.name}.planted"))
                replace_with_link(blob, target)
            file_mtimes[f["path"]] = os.lstat(target).st_mtime_ns
            blob_mtimes[f["sha256"]] = st.st_mtime_ns
        index.put_model(doc, pinned=pinned, file_mtimes=file_mtimes, blob_mtimes=blob_mtimes)
        return None
    except (OSError, ValueError, KeyError, TypeError, UnsafeCacheError) as e:
        return str(e) or type(e).__name__
