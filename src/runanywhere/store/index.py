"""The SQLite index of the disk tier: which models exist, which blobs they are made of.

One transaction per change (``BEGIN IMMEDIATE`` so writers queue instead of failing mid-way), a
batch of changes in one transaction, WAL so readers never wait for a writer, ``synchronous=FULL``
in durable mode. The schema is versioned with ``PRAGMA user_version`` and migrated step by step;
an index from a newer version of the code is refused before SQLite even opens it (untouched).

Each model row carries its manifest (the JSON of ``manifests/<id>.json``) so a listing is one
query over five columns, parsed lazily: 10,000 models list in a few tens of milliseconds.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CacheError
from .fsutil import crash_point

SCHEMA_VERSION = 2
_SQLITE_MAGIC = b"SQLite format 3\x00"

_SCHEMA_1 = [
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


def _create_v1(db: sqlite3.Connection) -> None:
    for stmt in _SCHEMA_1:
        db.execute(stmt)


def _v1_to_v2(db: sqlite3.Connection) -> None:
    """Add the manifest to each model row and the expected mtime of each model file."""
    db.execute("ALTER TABLE models ADD COLUMN manifest TEXT")
    db.execute("ALTER TABLE model_files ADD COLUMN mtime_ns INTEGER")
    db.execute("UPDATE model_files SET mtime_ns=(SELECT b.mtime_ns FROM blobs b"
               " WHERE b.sha256=model_files.sha256)")
    rows = db.execute("SELECT id, version, kind, entry, size, source_sha256, created, origin"
                      " FROM models").fetchall()
    for mid, version, kind, entry, size, sha, created, origin in rows:
        files = [{"path": p, "sha256": s, "size": n} for p, s, n in db.execute(
            "SELECT path, sha256, size FROM model_files WHERE model_id=? ORDER BY path", (mid,))]
        doc = make_manifest(mid, version, kind, entry, size, sha, created, origin, files)
        db.execute("UPDATE models SET manifest=? WHERE id=?", (dump_manifest(doc), mid))


#: ``_MIGRATIONS[v]`` takes a database at version ``v`` to ``v + 1``.
_MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {0: _create_v1, 1: _v1_to_v2}


def make_manifest(model_id: str, version: str, kind: str, entry: str, size: int,
                  source_sha256: str | None, created: float, origin: str,
                  files: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": model_id, "version": version, "kind": kind, "entry": entry, "size": size,
            "source_sha256": source_sha256, "created": created, "origin": origin,
            "files": files}


def dump_manifest(doc: dict[str, Any]) -> str:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True)


def peek_user_version(path: Path) -> int | None:
    """``PRAGMA user_version`` read from the file header without opening it with SQLite."""
    try:
        with open(path, "rb") as f:
            head = f.read(100)
    except OSError:
        return None
    if len(head) < 100 or not head.startswith(_SQLITE_MAGIC):
        return None
    return int.from_bytes(head[60:64], "big")


def is_busy(e: BaseException) -> bool:
    text = str(e).lower()
    return isinstance(e, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


def is_full(e: BaseException) -> bool:
    return isinstance(e, sqlite3.OperationalError) and "full" in str(e).lower()


@dataclass(frozen=True, slots=True)
class FileRow:
    path: str
    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class TrustRecord:
    """The sha256 first seen for a file the catalog gives no hash for (trust on first use)."""

    model_id: str
    path: str
    sha256: str
    size: int
    url: str
    recorded: float

    def to_dict(self) -> dict[str, object]:
        return {"id": self.model_id, "path": self.path, "sha256": self.sha256,
                "size": self.size, "url": self.url, "recorded": self.recorded}


#: (id, manifest JSON, last_access, hits, pinned): what a CacheEntry is built from.
ListingRow = tuple[str, str, float, int, int]
_LISTING = "SELECT id, manifest, last_access, hits, pinned FROM models"


class Index:
    """Thread-safe wrapper over one SQLite connection."""

    def __init__(self, path: Path, *, durable: bool = True, busy_timeout: float = 10.0,
                 readonly: bool = False) -> None:
        self.path = path
        self.readonly = readonly
        self.durable = durable
        self.busy_timeout = busy_timeout
        self._lock = threading.RLock()
        self._stats_db: sqlite3.Connection | None = None
        self._stats_lock = threading.Lock()
        self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        path = self.path
        self._refuse_newer(peek_user_version(path))
        if self.readonly:
            db = self._connect_readonly(path, self.busy_timeout)
        else:
            db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False,
                                 timeout=self.busy_timeout)
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            self._refuse_newer(version)
            if self.readonly:
                if version < SCHEMA_VERSION:
                    raise CacheError(f"the cache index {path} needs an upgrade and is read-only")
                return db
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={'FULL' if self.durable else 'NORMAL'}")
            db.execute("PRAGMA foreign_keys=ON")
            if version < SCHEMA_VERSION:
                self._migrate(db)
        except BaseException:
            db.close()
            raise
        return db

    def reopen(self) -> None:
        """Open the file again on the same object (after a damaged index was set aside): every
        part of the store that holds this index sees the new one."""
        self.close()
        with self._lock:
            self._db = self._open()

    @staticmethod
    def _connect_readonly(path: Path, busy_timeout: float) -> sqlite3.Connection:
        """Read-only with normal locking (sees other writers' WAL); on read-only media, where
        SQLite cannot create the ``-shm`` file, as an immutable file instead."""
        for query in ("mode=ro", "mode=ro&immutable=1"):
            db = sqlite3.connect(f"file:{path}?{query}", uri=True, isolation_level=None,
                                 check_same_thread=False, timeout=busy_timeout)
            try:
                db.execute("SELECT count(*) FROM sqlite_master").fetchone()
                return db
            except sqlite3.OperationalError:
                db.close()
                if "immutable" in query:
                    raise
        raise AssertionError("unreachable")

    def _refuse_newer(self, version: int | None) -> None:
        if version is not None and version > SCHEMA_VERSION:
            raise CacheError(
                f"the cache index {self.path} was written by a newer runanywhere (schema"
                f" {version}, this one knows {SCHEMA_VERSION}); upgrade runanywhere or use"
                " another RUNANYWHERE_HOME. The file was left untouched.")

    @staticmethod
    def _migrate(db: sqlite3.Connection) -> None:
        db.execute("BEGIN IMMEDIATE")
        try:
            # Read again inside the write lock: another process may have migrated meanwhile.
            version = db.execute("PRAGMA user_version").fetchone()[0]
            while version < SCHEMA_VERSION:
                _MIGRATIONS[version](db)
                version += 1
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        with self._lock:
            self._db.close()
        with self._stats_lock:
            if self._stats_db is not None:
                self._stats_db.close()
                self._stats_db = None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on any error)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise
            try:
                self._db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise

    @contextlib.contextmanager
    def unless_busy(self) -> Iterator[bool]:
        """Yield True while holding the index for this thread, or False at once if another
        thread holds it (it may be waiting out another process's write): for callers on an
        event loop, which must not block, and can take the slow path instead."""
        got = self._lock.acquire(blocking=False)
        try:
            yield got
        finally:
            if got:
                self._lock.release()

    def query(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def quick_check(self) -> str:
        return str(self.query("PRAGMA quick_check")[0][0])

    # -- reads ----------------------------------------------------------------------------------
    def row(self, model_id: str) -> ListingRow | None:
        rows = self.query(_LISTING + " WHERE id=?", (model_id,))
        return rows[0] if rows else None

    def row_and_files(self, model_id: str
                      ) -> tuple[ListingRow, list[tuple[str, int, int | None]]] | None:
        """A model's row and (path, size, expected mtime_ns) of its files, in one statement
        (one consistent snapshot even while another process replaces the model)."""
        rows = self.query("SELECT m.id, m.manifest, m.last_access, m.hits, m.pinned, f.path,"
                          " f.size, f.mtime_ns FROM models m JOIN model_files f"
                          " ON f.model_id = m.id WHERE m.id=?", (model_id,))
        if not rows:
            return None
        return rows[0][:5], [r[5:] for r in rows]

    def listing(self) -> list[ListingRow]:
        return self.query(_LISTING + " ORDER BY id")

    def ids(self) -> list[str]:
        return [r[0] for r in self.query("SELECT id FROM models ORDER BY id")]

    def blob(self, sha256: str) -> tuple[int, int] | None:
        rows = self.query("SELECT size, mtime_ns FROM blobs WHERE sha256=?", (sha256,))
        return (int(rows[0][0]), int(rows[0][1])) if rows else None

    def blob_refs(self) -> set[str]:
        return {str(r[0]) for r in self.query("SELECT DISTINCT sha256 FROM model_files")}

    def users_of(self, shas: set[str]) -> set[str]:
        """Models that reference any of the given blobs."""
        out: set[str] = set()
        for sha in shas:
            out.update(r[0] for r in self.query(
                "SELECT model_id FROM model_files WHERE sha256=?", (sha,)))
        return out

    def total_size(self) -> int:
        """Bytes on disk, each blob counted once however many models share it."""
        rows = self.query("SELECT COALESCE(SUM(size), 0) FROM blobs WHERE sha256 IN"
                          " (SELECT sha256 FROM model_files)")
        return int(rows[0][0])

    def trusted(self, model_id: str, path: str) -> tuple[str, int, str] | None:
        """``(sha256, size, url it was recorded from)`` of a file's first-use record."""
        rows = self.query("SELECT sha256, size, url FROM trusted WHERE model_id=? AND path=?",
                          (model_id, path))
        return (str(rows[0][0]), int(rows[0][1]), str(rows[0][2])) if rows else None

    def trust_records(self, model_id: str | None = None) -> list[TrustRecord]:
        sql = "SELECT model_id, path, sha256, size, url, recorded FROM trusted"
        rows = (self.query(sql + " WHERE model_id=? ORDER BY path", (model_id,)) if model_id
                else self.query(sql + " ORDER BY model_id, path"))
        return [TrustRecord(str(m), str(p), str(h), int(n), str(u), float(t))
                for m, p, h, n, u, t in rows]

    # -- writes ---------------------------------------------------------------------------------
    def put_model(self, doc: dict[str, Any], *, pinned: bool | None,
                  file_mtimes: dict[str, int], blob_mtimes: dict[str, int]) -> None:
        """Insert or replace one model from its manifest, in one transaction.

        ``pinned=None`` keeps the pin of the row being replaced; hit counts are always kept.
        """
        now = time.time()
        mid = doc["id"]
        with self.transaction() as db:
            for f in doc["files"]:
                db.execute("INSERT INTO blobs(sha256, size, mtime_ns, created) VALUES (?,?,?,?)"
                           " ON CONFLICT(sha256) DO UPDATE SET mtime_ns=excluded.mtime_ns,"
                           " size=excluded.size",
                           (f["sha256"], f["size"], blob_mtimes[f["sha256"]], now))
            old = db.execute("SELECT hits, pinned FROM models WHERE id=?", (mid,)).fetchone()
            hits = old[0] if old else 0
            pin = int(pinned) if pinned is not None else (old[1] if old else 0)
            db.execute("DELETE FROM model_files WHERE model_id=?", (mid,))
            db.execute("DELETE FROM models WHERE id=?", (mid,))
            db.execute("INSERT INTO models(id, version, kind, entry, size, source_sha256,"
                       " created, last_access, hits, pinned, origin, manifest)"
                       " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                       (mid, doc["version"], doc["kind"], doc["entry"], doc["size"],
                        doc["source_sha256"], doc["created"], now, hits, pin, doc["origin"],
                        dump_manifest(doc)))
            db.executemany("INSERT INTO model_files(model_id, path, sha256, size, mtime_ns)"
                           " VALUES (?,?,?,?,?)",
                           [(mid, f["path"], f["sha256"], f["size"], file_mtimes[f["path"]])
                            for f in doc["files"]])
            crash_point("index:put-uncommitted")

    def delete_models(self, ids: list[str]) -> None:
        with self.transaction() as db:
            db.executemany("DELETE FROM model_files WHERE model_id=?", [(i,) for i in ids])
            db.executemany("DELETE FROM models WHERE id=?", [(i,) for i in ids])
            crash_point("index:delete-uncommitted")

    def delete_unreferenced_blobs(self) -> list[tuple[str, int]]:
        """Drop blob rows no model uses; returns (sha256, size) (the caller removes files)."""
        with self.transaction() as db:
            gone = db.execute("SELECT sha256, size FROM blobs WHERE sha256 NOT IN"
                              " (SELECT sha256 FROM model_files)").fetchall()
            db.executemany("DELETE FROM blobs WHERE sha256=?", [(s,) for s, _ in gone])
        return [(str(s), int(n)) for s, n in gone]

    def record_access(self, hits: dict[str, tuple[int, float]]) -> None:
        """Apply batched hit counts and last-access times in one transaction.

        Uses a connection of its own that waits at most 50 ms for a lock: statistics must never
        hold up a hit (the caller keeps them for next time).
        """
        if not hits:
            return
        with self._stats_lock:
            if self._stats_db is None:
                self._stats_db = sqlite3.connect(str(self.path), isolation_level=None,
                                                 check_same_thread=False, timeout=0.05)
            db = self._stats_db
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany("UPDATE models SET hits=hits+?, last_access=max(last_access, ?)"
                               " WHERE id=?", [(n, t, k) for k, (n, t) in hits.items()])
                db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                raise

    def set_pinned(self, model_id: str, pinned: bool) -> bool:
        with self.transaction() as db:
            cur = db.execute("UPDATE models SET pinned=? WHERE id=?", (int(pinned), model_id))
            return cur.rowcount > 0

    def refresh_mtimes(self, model_id: str, file_mtimes: dict[str, int],
                       blob_mtimes: dict[str, int]) -> None:
        """After a full re-hash proved the bytes right: trust the files' current mtimes."""
        with self.transaction() as db:
            db.executemany("UPDATE model_files SET mtime_ns=? WHERE model_id=? AND path=?",
                           [(m, model_id, p) for p, m in file_mtimes.items()])
            db.executemany("UPDATE blobs SET mtime_ns=? WHERE sha256=?",
                           [(m, s) for s, m in blob_mtimes.items()])

    def refresh_blob_mtime(self, sha256: str, mtime_ns: int) -> None:
        with self.transaction() as db:
            db.execute("UPDATE blobs SET mtime_ns=? WHERE sha256=?", (mtime_ns, sha256))

    def set_trusted(self, model_id: str, path: str, url: str, sha256: str, size: int,
                    recorded: float | None = None, *, replace: bool = False) -> None:
        """Record a first-use hash; the first record of a file wins (later ones are ignored)
        unless ``replace`` (a file whose identity the Hub vouches for: see ModelCache)."""
        verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
        with self.transaction() as db:
            db.execute(f"{verb} INTO trusted(model_id, path, url, sha256, size, recorded)"
                       " VALUES (?,?,?,?,?,?)",
                       (model_id, path, url, sha256, size,
                        time.time() if recorded is None else recorded))

    def delete_trusted(self, model_id: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM trusted WHERE model_id=?", (model_id,))
