"""A damaged, locked or too-new index: the cache keeps answering, with one clear warning.

Corrupt (garbage header, a damaged page in the middle): the index is set aside (kept) and rebuilt
from the blobs and ``manifests/``. Locked by another process (``BEGIN EXCLUSIVE``): reads go on,
a publish stays usable by this process and is committed once the lock is gone. A newer schema:
a clear ``CacheError`` and the file byte-identical.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runanywhere.errors import CacheError
from runanywhere.store import ModelCache, StagedFile
from runanywhere.store.index import _SCHEMA_1
from support.invariants import check_cache
from support.tamper import flip_byte, xor_range


def _publish(cache: ModelCache, model_id: str, size: int = 2000) -> str:
    data = os.urandom(size)
    src = cache.directory.parent / f"src-{model_id}-{time.monotonic_ns()}"
    src.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    cache.publish(model_id, "1", [StagedFile(f"{model_id}.bin", src, sha, size)], kind="file",
                  source_sha256=sha)
    return sha


@pytest.fixture
def populated(home: Path) -> dict[str, str]:
    """40 models (enough index pages to damage one in the middle), one of them pinned."""
    with ModelCache(directory=home, durable=False) as cache:
        shas = {f"model-{i:02d}": _publish(cache, f"model-{i:02d}") for i in range(40)}
        cache.pin("model-07")
    assert (home / "index.db").stat().st_size > 8 * 4096
    assert not (home / "index.db-wal").exists()  # checkpointed on close
    return shas


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "runanywhere" and r.levelno >= logging.WARNING]


def _assert_rebuilt(home: Path, shas: dict[str, str], caplog: pytest.LogCaptureFixture) -> None:
    with ModelCache(directory=home, durable=False) as cache:
        entries = cache.entries()
        assert {e.model_id: e.sha256 for e in entries} == shas
        assert [e.model_id for e in entries if e.pinned] == ["model-07"]  # pins survive
        hit = cache.get("model-03")
        assert hit is not None and hashlib.sha256(hit.buffer).hexdigest() == shas["model-03"]
        _publish(cache, "after")  # and it takes new models
    (warning,) = _warnings(caplog)
    assert "damaged" in warning and "40 model(s) restored" in warning
    kept = [p for p in home.iterdir() if p.name.startswith("index.db.corrupt-")]
    assert kept, "the damaged index must be kept aside, not deleted"
    assert check_cache(home, {m: {f"{m}.bin": s} for m, s in shas.items()}) == sorted(
        [*shas, "after"])


def test_garbage_header_is_rebuilt_from_manifests(home: Path, populated: dict[str, str],
                                                  caplog: pytest.LogCaptureFixture) -> None:
    xor_range(home / "index.db", 0, 100)  # "SQLite format 3" and the page size: garbage
    _assert_rebuilt(home, populated, caplog)


def test_damaged_page_in_the_middle_is_rebuilt(home: Path, populated: dict[str, str],
                                               caplog: pytest.LogCaptureFixture) -> None:
    db = home / "index.db"
    xor_range(db, db.stat().st_size // 2 - 2048, 4096, 0xA5)
    _assert_rebuilt(home, populated, caplog)


def test_truncated_database_is_rebuilt(home: Path, populated: dict[str, str],
                                       caplog: pytest.LogCaptureFixture) -> None:
    db = home / "index.db"
    os.truncate(db, db.stat().st_size // 3)
    _assert_rebuilt(home, populated, caplog)


def test_rebuild_never_restores_wrong_bytes(home: Path, populated: dict[str, str],
                                            caplog: pytest.LogCaptureFixture) -> None:
    blob = home / "blobs" / "sha256" / populated["model-05"]
    flip_byte(blob, 0)  # same size, other bytes, and the index that knew its mtime is gone
    (home / "index.db").write_bytes(b"not a database at all" * 10)
    with ModelCache(directory=home, durable=False) as cache:
        assert "model-05" not in {e.model_id for e in cache.entries()}
        assert len(cache.entries()) == 39
    (warning,) = _warnings(caplog)
    assert "not restored: model-05" in warning
    check_cache(home)


def test_corruption_found_while_running_is_repaired(home: Path, populated: dict[str, str],
                                                    caplog: pytest.LogCaptureFixture,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A query that meets a malformed page (after the open's check passed) rebuilds once."""
    from runanywhere.store.index import Index

    cache = ModelCache(directory=home, durable=False)
    real = Index.listing
    calls = []

    def malformed_once(self: Index) -> list[tuple[str, str, float, int, int]]:
        calls.append(1)
        if len(calls) == 1:
            raise sqlite3.DatabaseError("database disk image is malformed")
        return real(self)

    monkeypatch.setattr(Index, "listing", malformed_once)
    try:
        assert {e.model_id for e in cache.entries()} == set(populated)
        assert cache.get("model-09") is not None
    finally:
        cache.close()
    (warning,) = _warnings(caplog)
    assert "malformed" in warning and "40 model(s) restored" in warning
    check_cache(home)


def test_newer_schema_is_refused_untouched(home: Path, populated: dict[str, str]) -> None:
    db = home / "index.db"
    con = sqlite3.connect(db)
    con.execute("PRAGMA user_version=99")
    con.commit()
    con.close()
    assert not (home / "index.db-wal").exists()
    before = db.read_bytes()
    for _ in range(2):
        with pytest.raises(CacheError, match=r"newer runanywhere \(schema 99"):
            ModelCache(directory=home)
    assert db.read_bytes() == before
    assert not (home / "index.db-wal").exists() and not (home / "index.db-shm").exists()


LOCKER = textwrap.dedent("""
    import sqlite3, sys
    con = sqlite3.connect(sys.argv[1], isolation_level=None)
    con.execute("BEGIN EXCLUSIVE")
    print("locked", flush=True)
    sys.stdin.readline()
    con.execute("ROLLBACK")
    con.close()
""")


@pytest.fixture
def locker(home: Path) -> Iterator[Callable[[], subprocess.Popen[str]]]:
    """Another process holding ``BEGIN EXCLUSIVE`` on the index until the test says stop."""
    holder: list[subprocess.Popen[str]] = []

    def start() -> subprocess.Popen[str]:
        p = subprocess.Popen([sys.executable, "-c", LOCKER, str(home / "index.db")], text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert p.stdout is not None and p.stdout.readline().strip() == "locked"
        holder.append(p)
        return p

    yield start
    for p in holder:
        if p.poll() is None:
            p.communicate("", timeout=30)


def _unlock(p: subprocess.Popen[str]) -> None:
    p.communicate("go\n", timeout=30)


def test_index_locked_by_another_process(home: Path, populated: dict[str, str],
                                         locker: Callable[[], subprocess.Popen[str]],
                                         caplog: pytest.LogCaptureFixture) -> None:
    child = locker()
    t = time.monotonic()
    cache = ModelCache(directory=home, durable=False, lock_timeout=0.3)
    try:
        hit = cache.get("model-01")  # WAL: readers never wait for the writer
        assert hit is not None and hashlib.sha256(hit.buffer).hexdigest() == populated["model-01"]
        assert len(cache.entries()) == 40
        sha = _publish(cache, "during-lock")  # the commit waits 0.3 s, then goes on
        got = cache.get("during-lock")
        assert got is not None and hashlib.sha256(got.buffer).hexdigest() == sha
        assert "during-lock" in {e.model_id for e in cache.entries()}
        assert time.monotonic() - t < 10
        (warning,) = _warnings(caplog)
        assert "locked by another process" in warning and "during-lock" in warning
        assert "during-lock" not in check_cache(home)  # not in the index yet
        _unlock(child)
        cache.flush()  # the lock is gone: the pending commit lands
        assert "during-lock" in check_cache(home)
    finally:
        cache.close()
    with ModelCache(directory=home, durable=False) as again:
        assert again.get("during-lock") is not None


def test_locked_index_that_needs_a_migration_degrades(home: Path,
                                                      locker: Callable[[], subprocess.Popen[str]],
                                                      caplog: pytest.LogCaptureFixture) -> None:
    home.mkdir(parents=True)
    con = sqlite3.connect(home / "index.db")
    for stmt in _SCHEMA_1:
        con.execute(stmt)
    con.execute("PRAGMA user_version=1")
    con.commit()
    con.close()
    before = (home / "index.db").read_bytes()
    child = locker()
    with ModelCache(directory=home, durable=False, lock_timeout=0.3,
                    scratch_fallback=True) as cache:
        assert cache.degraded is not None
        _publish(cache, "scratch-model")  # still works, in a scratch folder for this run
        assert cache.get("scratch-model") is not None
    (warning,) = _warnings(caplog)
    assert "locked" in warning and "temporary folder" in warning
    _unlock(child)
    assert (home / "index.db").read_bytes() == before
    with ModelCache(directory=home, durable=False) as cache:  # migrates now
        assert cache.degraded is None and cache.entries() == []

