"""Everything in a cache folder that would lead outside it, one line each (for ``doctor``).

The store ignores all of it (layout.py's rule, ``fsutil.planted_link``); this lists it, reading
only: the index (an open read-only connection), ``manifests/``, ``trusted/``, ``sources.json``,
and a no-follow walk for links planted where a folder or file of the cache should be.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

from ..errors import ModelError, UnsafeCacheError
from .layout import Layout, check_id, check_manifest, check_relpath, check_sha256
from .manifests import Manifests

#: The folders whose entries are all files of ours: a link among them is planted.
FLAT = ("blobs/sha256", "manifests", "trusted", "partials", "locks")


def unsafe_things(home: Path, db: sqlite3.Connection | None) -> list[str]:
    """One line per planted row, file or link."""
    layout = Layout(home)
    lines = list(_links(layout))
    if db is not None:
        lines += _rows(db)
    lines += _manifests(layout)
    lines += _trust_files(layout)
    lines += _sources(layout)
    return lines


def _link_line(layout: Layout, p: Path) -> str:
    rel = p.relative_to(layout.root)
    try:
        return f"{rel} is a symbolic link (to {os.readlink(p)}): never followed"
    except OSError:
        return f"{rel} is a symbolic link: never followed"


def _links(layout: Layout) -> Iterator[str]:
    for name in FLAT:
        folder = layout.root / name
        try:
            children = sorted(folder.iterdir()) if not folder.is_symlink() else []
        except OSError:
            continue
        for p in children:
            if p.is_symlink():
                yield _link_line(layout, p)
    if layout.model_dir.is_symlink():
        return  # permissions.py reports it
    for root, dirs, files in os.walk(layout.model_dir):  # never into a linked folder
        for name in sorted(dirs + files):
            p = Path(root, name)
            if p.is_symlink():
                yield _link_line(layout, p)
    sources = layout.sources_path
    if sources.is_symlink():
        yield _link_line(layout, sources)


def _rows(db: sqlite3.Connection) -> list[str]:
    out: list[str] = []
    try:
        models = db.execute("SELECT id, manifest FROM models ORDER BY id").fetchall()
        files = db.execute("SELECT model_id, path, sha256 FROM model_files").fetchall()
        blobs = db.execute("SELECT sha256 FROM blobs ORDER BY sha256").fetchall()
        trusted = db.execute("SELECT model_id, path, sha256 FROM trusted"
                             " ORDER BY model_id, path").fetchall()
    except sqlite3.Error:
        return out  # the index check reports an index that cannot be read
    for mid, manifest in models:
        try:
            check_id(mid)
            check_manifest(json.loads(manifest), mid)
        except (ValueError, TypeError, UnsafeCacheError) as e:
            out.append(f"index row of model {mid!r}: {e} (`runanywhere cache verify` removes it)")
    for mid, path, sha in files:
        try:
            check_relpath(path, f"file row of {mid!r}")
            check_sha256(sha, f"file row of {mid!r}")
        except UnsafeCacheError as e:
            out.append(f"index: {e}")
    for (sha,) in blobs:
        try:
            check_sha256(sha, "blob row")
        except UnsafeCacheError as e:
            out.append(f"index: {e} (any `runanywhere cache rm` or `prune` drops it)")
    for mid, path, sha in trusted:
        try:
            check_id(mid, "first-use record of")
            check_sha256(sha, f"first-use sha256 of {mid} {path}")
        except UnsafeCacheError as e:
            out.append(f"index: {e} (`runanywhere cache forget {mid}` drops it)")
    return out


def _manifests(layout: Layout) -> Iterator[str]:
    for mf in Manifests(layout, durable=False).files():
        if mf.is_symlink():
            continue  # listed with the links
        try:
            Manifests.read(mf)
        except (OSError, ValueError, UnsafeCacheError) as e:
            yield f"manifests/{mf.name}: {e}"


def _trust_files(layout: Layout) -> Iterator[str]:
    for tf in sorted(layout.trusted_dir.glob("*.json")):
        if tf.is_symlink():
            continue  # listed with the links
        try:
            doc = json.loads(tf.read_bytes())
            check_id(doc["id"], "model id")
            if tf.stem != doc["id"]:
                raise UnsafeCacheError(f"holds the records of {doc['id']!r}")
            for r in doc["files"]:
                check_relpath(r["path"])
                check_sha256(r["sha256"])
        except (OSError, ValueError, KeyError, TypeError, UnsafeCacheError) as e:
            yield f"trusted/{tf.name}: {e}"


def _sources(layout: Layout) -> Iterator[str]:
    path = layout.sources_path
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(st.st_mode):
        return  # a link is listed with the links
    from ..catalog import load_catalog_file

    try:
        load_catalog_file(path)
    except (ModelError, OSError, ValueError) as e:
        yield f"sources.json: {e}"
