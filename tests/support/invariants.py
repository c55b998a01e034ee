"""The one checker every reliability case ends with.

* every visible entry (index row) hashes to what the index and the catalog say,
* nothing from ``partials/`` is visible, no symlink stands where a blob should be,
* ``PRAGMA integrity_check`` is ``ok``.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def check_cache(home: Path, expected: dict[str, dict[str, str]] | None = None) -> list[str]:
    """Return the visible model ids; raise AssertionError on any broken invariant.

    ``expected`` maps model id -> {file path: sha256} from the catalog, when the test knows it.
    """
    db = home / "index.db"
    if not db.exists():
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok", "index corrupt"
        rows = con.execute("SELECT id, kind, entry FROM models").fetchall()
        files = con.execute("SELECT model_id, path, sha256, size FROM model_files").fetchall()
    finally:
        con.close()
    by_model: dict[str, list[tuple[str, str, int]]] = {}
    for mid, p, sha, size in files:
        by_model.setdefault(mid, []).append((p, sha, size))
    visible = []
    for mid, kind, entry in rows:
        assert "partials" not in entry, f"{mid}: entry points into partials/"
        path = home / entry
        base = path if kind == "dir" else path.parent
        assert by_model.get(mid), f"{mid}: visible with no files"
        for p, sha, size in by_model[mid]:
            f = base / p
            assert f.is_file() and not f.is_symlink(), f"{mid}: {p} missing or a link"
            assert f.stat().st_size == size, f"{mid}: {p} has the wrong size"
            assert sha256_file(f) == sha, f"{mid}: {p} has the wrong bytes"
            if expected and mid in expected and p in expected[mid]:
                assert sha == expected[mid][p], f"{mid}: {p} is not the catalog's bytes"
            blob = home / "blobs" / "sha256" / sha
            assert not blob.is_symlink(), f"blob {sha} is a symlink"
        visible.append(mid)
    return sorted(visible)
