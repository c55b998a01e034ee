"""The SQLite index of the disk tier: which models exist, which blobs they are made of.

One transaction per change (``BEGIN IMMEDIATE`` so writers queue instead of failing mid-way), WAL
so readers never wait for a writer, ``synchronous=FULL`` in durable mode. The schema is versioned
with ``PRAGMA user_version``; an index from a newer version of the code is refused untouched.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import CacheError

SCHEMA_VERSION = 1

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS blobs (
        sha256   TEXT PRIMARY KEY,
        size     INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        created  REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS models (
        id            TEXT PRIMARY KEY,
        version       TEXT NOT NULL,
        kind          TEXT NOT NULL CHECK (kind IN ('file', 'dir')),
        entry         TEXT NOT NULL,
        size          INTEGER NOT NULL,
        source_sha256 TEXT,
        created       REAL NOT NULL,
        last_access   REAL NOT NULL,
        hits          INTEGER NOT NULL DEFAULT 0,
        pinned        INTEGER NOT NULL DEFAULT 0,
        origin        TEXT NOT NULL DEFAULT 'download'
    )""",
    """CREATE TABLE IF NOT EXISTS model_files (
        model_id TEXT NOT NULL REFERENCES models(id) ON DELETE CASCADE,
        path     TEXT NOT NULL,
        sha256   TEXT NOT NULL REFERENCES blobs(sha256),
        size     INTEGER NOT NULL,
        PRIMARY KEY (model_id, path)
    )""",
    "CREATE INDEX IF NOT EXISTS model_files_sha ON model_files(sha256)",
    "CREATE INDEX IF NOT EXISTS models_access ON models(last_access)",
    # Trust on first use: the sha256 first seen for a file the catalog gives no hash for.
    """CREATE TABLE IF NOT EXISTS trusted (
        model_id TEXT NOT NULL,
        path     TEXT NOT NULL,
        url      TEXT NOT NULL,
        sha256   TEXT NOT NULL,
        size     INTEGER NOT NULL,
        recorded REAL NOT NULL,
        PRIMARY KEY (model_id, path)
    )""",
]


@dataclass(frozen=True, slots=True)
class FileRow:
    path: str
    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class ModelRow:
    id: str
    version: str
    kind: str
    entry: str
    size: int
    source_sha256: str | None
    created: float
    last_access: float
    hits: int
    pinned: bool
    origin: str


_MODEL_COLS = ("id, version, kind, entry, size, source_sha256, created, last_access, hits, pinned,"
               " origin")


def _model(row: tuple[object, ...]) -> ModelRow:
    return ModelRow(*row[:9], bool(row[9]), row[10])  # type: ignore[arg-type]


class Index:
    """Thread-safe wrapper over one SQLite connection."""

    def __init__(self, path: Path, *, durable: bool = True, busy_timeout: float = 10.0,
                 readonly: bool = False) -> None:
        self.path = path
        self.readonly = readonly
        if readonly:
            uri = f"file:{path}?mode=ro&immutable=1"
            self._db = sqlite3.connect(uri, uri=True, isolation_level=None,
                                       check_same_thread=False, timeout=busy_timeout)
        else:
            self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False,
                                       timeout=busy_timeout)
        self._lock = threading.RLock()
        try:
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise CacheError(
                    f"the cache index {path} was written by a newer runanywhere (schema {version},"
                    f" this one knows {SCHEMA_VERSION}); upgrade runanywhere or use another"
                    " RUNANYWHERE_HOME. The file was left untouched.")
            if not readonly:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
                self._db.execute("PRAGMA foreign_keys=ON")
                if version < SCHEMA_VERSION:
                    self._migrate(version)
        except BaseException:
            self._db.close()
            raise

    def _migrate(self, version: int) -> None:
        with self.transaction() as db:
            again = db.execute("PRAGMA user_version").fetchone()[0]
            if again >= SCHEMA_VERSION:
                return  # another process migrated while we waited
            # Version 0 -> 1: the initial schema. Later versions append steps here.
            for stmt in _SCHEMA:
                db.execute(stmt)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on any error)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def query(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # -- reads ----------------------------------------------------------------------------------
    def model(self, model_id: str) -> ModelRow | None:
        rows = self.query(f"SELECT {_MODEL_COLS} FROM models WHERE id=?", (model_id,))
        return _model(rows[0]) if rows else None

    def models(self) -> list[ModelRow]:
        return [_model(r) for r in self.query(f"SELECT {_MODEL_COLS} FROM models ORDER BY id")]

    def files(self, model_id: str) -> list[FileRow]:
        rows = self.query("SELECT path, sha256, size FROM model_files WHERE model_id=? ORDER BY"
                          " path", (model_id,))
        return [FileRow(*r) for r in rows]  # type: ignore[arg-type]

    def all_files(self) -> dict[str, list[FileRow]]:
        out: dict[str, list[FileRow]] = {}
        for mid, p, s, n in self.query("SELECT model_id, path, sha256, size FROM model_files"):
            out.setdefault(str(mid), []).append(FileRow(str(p), str(s), int(n)))  # type: ignore[call-overload]
        return out

    def blob(self, sha256: str) -> tuple[int, int] | None:
        rows = self.query("SELECT size, mtime_ns FROM blobs WHERE sha256=?", (sha256,))
        return (int(rows[0][0]), int(rows[0][1])) if rows else None  # type: ignore[call-overload]

    def blob_refs(self) -> set[str]:
        return {str(r[0]) for r in self.query("SELECT DISTINCT sha256 FROM model_files")}

    def total_size(self) -> int:
        """Bytes on disk, each blob counted once however many models share it."""
        rows = self.query("SELECT COALESCE(SUM(size), 0) FROM blobs WHERE sha256 IN"
                          " (SELECT sha256 FROM model_files)")
        return int(rows[0][0])  # type: ignore[call-overload]

    def trusted(self, model_id: str, path: str) -> tuple[str, int] | None:
        rows = self.query("SELECT sha256, size FROM trusted WHERE model_id=? AND path=?",
                          (model_id, path))
        return (str(rows[0][0]), int(rows[0][1])) if rows else None  # type: ignore[call-overload]

    # -- writes ---------------------------------------------------------------------------------
    def put_model(self, row: ModelRow, files: list[FileRow], blob_mtimes: dict[str, int]) -> None:
        now = time.time()
        with self.transaction() as db:
            for f in files:
                db.execute("INSERT INTO blobs(sha256, size, mtime_ns, created) VALUES (?,?,?,?)"
                           " ON CONFLICT(sha256) DO UPDATE SET mtime_ns=excluded.mtime_ns",
                           (f.sha256, f.size, blob_mtimes[f.sha256], now))
            old = db.execute("SELECT hits, pinned FROM models WHERE id=?", (row.id,)).fetchone()
            hits, pinned = (old[0], old[1]) if old else (0, int(row.pinned))
            db.execute("DELETE FROM model_files WHERE model_id=?", (row.id,))
            db.execute("DELETE FROM models WHERE id=?", (row.id,))
            db.execute(f"INSERT INTO models({_MODEL_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                       (row.id, row.version, row.kind, row.entry, row.size, row.source_sha256,
                        row.created, now, hits, pinned, row.origin))
            db.executemany("INSERT INTO model_files(model_id, path, sha256, size) VALUES"
                           " (?,?,?,?)", [(row.id, f.path, f.sha256, f.size) for f in files])

    def delete_models(self, ids: list[str]) -> None:
        with self.transaction() as db:
            db.executemany("DELETE FROM model_files WHERE model_id=?", [(i,) for i in ids])
            db.executemany("DELETE FROM models WHERE id=?", [(i,) for i in ids])

    def delete_unreferenced_blobs(self) -> list[str]:
        """Drop blob rows no model uses; returns their hashes (files are removed by the caller)."""
        with self.transaction() as db:
            gone = [str(r[0]) for r in db.execute(
                "SELECT sha256 FROM blobs WHERE sha256 NOT IN (SELECT sha256 FROM model_files)")]
            db.executemany("DELETE FROM blobs WHERE sha256=?", [(s,) for s in gone])
        return gone

    def record_access(self, hits: dict[str, tuple[int, float]]) -> None:
        """Apply batched hit counts and last-access times in one transaction."""
        if not hits:
            return
        with self.transaction() as db:
            db.executemany("UPDATE models SET hits=hits+?, last_access=max(last_access, ?)"
                           " WHERE id=?", [(n, t, k) for k, (n, t) in hits.items()])

    def set_pinned(self, model_id: str, pinned: bool) -> bool:
        with self.transaction() as db:
            cur = db.execute("UPDATE models SET pinned=? WHERE id=?", (int(pinned), model_id))
            return cur.rowcount > 0

    def set_trusted(self, model_id: str, path: str, url: str, sha256: str, size: int) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR IGNORE INTO trusted(model_id, path, url, sha256, size, recorded)"
                       " VALUES (?,?,?,?,?,?)", (model_id, path, url, sha256, size, time.time()))

    def integrity_check(self) -> str:
        return str(self.query("PRAGMA integrity_check")[0][0])
