"""ModelCache on a real SQLite file: tiers, dedup, reporting, schema, quota, verify, import."""

from __future__ import annotations

import errno
import hashlib
import json
import mmap
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from runanywhere.catalog import parse_model
from runanywhere.errors import CacheError, IntegrityError, ModelError
from runanywhere.registry import ModelRegistry
from runanywhere.store import ModelCache, StagedFile
from runanywhere.store import fsutil as fsutil_mod
from runanywhere.store.index import SCHEMA_VERSION
from runanywhere.store.reads import map_file
from support.catalogs import model_entry
from support.invariants import check_cache
from support.tamper import flip_byte

Stage = Callable[..., StagedFile]


@pytest.fixture
def stage(tmp_path: Path) -> Stage:
    """A verified file waiting to be published (``src`` lives beside the cache, same disk)."""
    counter = iter(range(10**6))

    def make(name: str, data: bytes | None = None, size: int = 1000) -> StagedFile:
        data = os.urandom(size) if data is None else data
        src = tmp_path / f"staged-{next(counter)}"
        src.write_bytes(data)
        return StagedFile(name, src, hashlib.sha256(data).hexdigest(), len(data))

    return make


@pytest.fixture
def cache(home: Path) -> Iterator[ModelCache]:
    c = ModelCache(directory=home, durable=False)
    yield c
    c.close()


def put(cache: ModelCache, stage: Stage, model_id: str, data: bytes | None = None,
        size: int = 1000, **kw: Any) -> bytes:
    """Publish a one-file model; returns its bytes."""
    data = os.urandom(size) if data is None else data
    f = stage(f"{model_id}.bin", data)
    cache.publish(model_id, "1", [f], kind="file", source_sha256=f.sha256, **kw)
    return data


# -- tiers ---------------------------------------------------------------------------------------
def test_disk_hit_maps_the_file_then_memory_hit(cache: ModelCache, stage: Stage,
                                                home: Path) -> None:
    data = put(cache, stage, "a", size=5000)
    hit = cache.get("a")
    assert hit is not None and hit.tier == "disk"
    assert isinstance(hit.buffer, mmap.mmap) and hit.buffer[:] == data
    assert hit.path == home / "models" / "a" / "1" / "a.bin" and hit.path.read_bytes() == data
    again = cache.get("a")
    assert again is not None and again.tier == "memory" and again.buffer[:] == data
    assert cache.memory_size() == 5000
    assert cache.size() == 5000  # the memory copy is not counted again
    assert check_cache(home) == ["a"]


def test_entry_bigger_than_memory_limit_is_served_from_disk(home: Path, stage: Stage) -> None:
    with ModelCache(directory=home, durable=False, memory_limit=100) as cache:
        put(cache, stage, "big", size=101)
        for _ in range(3):
            hit = cache.get("big")
            assert hit is not None and hit.tier == "disk" and len(hit.buffer) == 101
        assert cache.memory_size() == 0


def test_memory_tier_is_lru_and_limit_change_evicts(home: Path, stage: Stage) -> None:
    with ModelCache(directory=home, durable=False, memory_limit=3000) as cache:
        for m in ("a", "b", "c"):
            put(cache, stage, m, size=1000)
            cache.get(m)
        cache.get("a")  # refresh a: b is now the least recently used
        put(cache, stage, "d", size=1000)
        cache.get("d")
        assert cache.memory.keys() == ["c", "a", "d"]
        cache.set_max_memory_size(1500)
        assert cache.memory.keys() == ["d"] and cache.memory_size() == 1000
        assert {e.model_id: e.tier for e in cache.entries()} == {
            "a": "disk", "b": "disk", "c": "disk", "d": "memory"}


def test_multi_file_model_is_a_folder_of_links_to_blobs(cache: ModelCache, stage: Stage,
                                                        home: Path) -> None:
    files = [stage("enc/model.onnx", size=300), stage("tokens.txt", size=20)]
    entry = cache.publish("w", "2.0", files, kind="dir", source_sha256=None)
    assert entry.path == home / "models" / "w" / "2.0" and entry.kind == "dir"
    for f in files:
        p = entry.path / f.path
        assert os.path.samefile(p, cache.disk.blobs.path(f.sha256))
        assert p.stat().st_nlink == 2
    hit = cache.get("w")
    assert hit is not None and hit.buffer is None and hit.path == entry.path
    assert check_cache(home) == ["w"]


def test_copies_where_links_are_impossible(cache: ModelCache, stage: Stage, home: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    def no_links(*a: object, **k: object) -> None:
        raise OSError(errno.EPERM, "links not supported here")

    monkeypatch.setattr(fsutil_mod.os, "link", no_links)
    data = put(cache, stage, "c", size=2000)
    hit = cache.get("c", promote=False)
    assert hit is not None and hit.buffer[:] == data  # the copy passes the cheap checks
    assert hit.path.stat().st_nlink == 1
    assert cache.verify("c")[0].ok
    assert check_cache(home) == ["c"]


# -- dedup and reporting ------------------------------------------------------------------------
def test_same_bytes_stored_once_and_counted_once(cache: ModelCache, stage: Stage,
                                                 home: Path) -> None:
    data = os.urandom(4000)
    put(cache, stage, "one", data)
    put(cache, stage, "two", data)
    blobs = list((home / "blobs" / "sha256").iterdir())
    assert len(blobs) == 1 and blobs[0].stat().st_nlink == 3  # blob + two model links
    assert cache.size() == 4000
    assert sum(e.size for e in cache.entries()) == 8000  # each model still reports its size
    assert cache.delete("one") == 0  # the blob is still used by "two"
    assert cache.get("two") is not None and cache.size() == 4000
    assert cache.delete("two") == 4000
    assert list((home / "blobs" / "sha256").iterdir()) == [] and cache.size() == 0


def test_loader_path_reusing_a_stored_blob_keeps_it(cache: ModelCache, stage: Stage,
                                                    home: Path) -> None:
    """The loader publishes an already-stored blob as its own source: it must survive."""
    data = os.urandom(500)
    put(cache, stage, "first", data)
    sha = hashlib.sha256(data).hexdigest()
    assert cache.disk.blobs.has(sha, 500)
    blob = cache.disk.blobs.path(sha)
    cache.publish("second", "1", [StagedFile("s.bin", blob, sha, 500)], kind="file",
                  source_sha256=sha)
    assert blob.read_bytes() == data
    assert check_cache(home) == ["first", "second"]


def test_orphan_blob_is_rehashed_before_reuse(cache: ModelCache, home: Path) -> None:
    data = os.urandom(300)
    sha = hashlib.sha256(data).hexdigest()
    blob = cache.disk.blobs.path(sha)
    blob.write_bytes(data)  # left by a crash before its index row
    assert cache.disk.blobs.has(sha, 300)
    flip_byte(blob)  # same size, wrong bytes
    assert not cache.disk.blobs.has(sha, 300)


def test_info_reports_size_hash_tier_hits_and_pin(cache: ModelCache, stage: Stage) -> None:
    data = put(cache, stage, "m", size=700)
    before = time.time()
    for _ in range(3):
        cache.get("m")
    cache.pin("m")
    info = cache.entry("m")
    assert info is not None
    d = info.to_dict()
    assert d["size"] == 700 and d["sha256"] == hashlib.sha256(data).hexdigest()
    assert d["tier"] == "memory" and d["hits"] == 3 and d["pinned"] is True
    assert d["last_access"] >= before - 1 and d["origin"] == "download"
    assert d["files"] == [{"path": "m.bin", "sha256": d["sha256"], "size": 700}]
    assert cache.entry("nope") is None


def test_hits_survive_a_restart(home: Path, stage: Stage) -> None:
    with ModelCache(directory=home, durable=False) as cache:
        put(cache, stage, "m")
        cache.get("m")
        cache.get("m")
    with ModelCache(directory=home, durable=False) as cache:
        assert cache.entries()[0].hits == 2


def test_cheap_checks_catch_size_and_mtime_changes(cache: ModelCache, stage: Stage) -> None:
    put(cache, stage, "t", size=1000)
    put(cache, stage, "u", size=1000)
    t, u = cache.entry("t"), cache.entry("u")
    assert t is not None and u is not None
    os.chmod(t.path, 0o644)
    with open(t.path, "r+b") as f:
        f.truncate(999)
    st = u.path.stat()
    os.utime(u.path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # rewritten in place?
    assert cache.get("t") is None  # another size: gone at once
    hit = cache.get("u")  # only the mtime moved: re-hashed, its bytes are intact, served
    assert hit is not None and hashlib.sha256(hit.buffer).hexdigest() == hit.entry.sha256
    results = {r.model_id: r for r in cache.verify()}
    assert not results["t"].ok and results["u"].ok
    assert cache.entry("t") is None


def test_a_file_replaced_after_the_check_is_never_mapped(cache: ModelCache, stage: Stage,
                                                          tmp_path: Path) -> None:
    """entry() checks one inode; if another process swaps the file before it is opened, the
    open notices (the race the multi-process test once caught)."""
    put(cache, stage, "r", size=600)
    entry = cache.entry("r")
    assert entry is not None and entry.checked_inode is not None
    other = tmp_path / "other"
    other.write_bytes(os.urandom(600))
    os.replace(other, entry.path)
    with pytest.raises(FileNotFoundError, match="replaced"):
        map_file(entry)
    # The new file fails the cheap check (other mtime): re-hashed, found wrong, restored from
    # the blob (another link to the right bytes); never served as it is.
    hit = cache.get("r")
    assert hit is not None and hashlib.sha256(hit.buffer).hexdigest() == entry.sha256


# -- schema --------------------------------------------------------------------------------------
def test_schema_version_and_wal(cache: ModelCache, home: Path) -> None:
    con = sqlite3.connect(home / "index.db")
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()


def test_migrates_a_version_1_index(home: Path, stage: Stage) -> None:
    from runanywhere.store.index import _SCHEMA_1

    home.mkdir(parents=True)
    f = stage("old.bin", size=64)
    blob = home / "blobs" / "sha256" / f.sha256
    blob.parent.mkdir(parents=True)
    os.replace(f.src, blob)
    (home / "models" / "old" / "1").mkdir(parents=True)
    os.link(blob, home / "models" / "old" / "1" / "old.bin")
    con = sqlite3.connect(home / "index.db")
    for stmt in _SCHEMA_1:
        con.execute(stmt)
    now = time.time()
    con.execute("INSERT INTO blobs VALUES (?,?,?,?)", (f.sha256, 64, blob.stat().st_mtime_ns, now))
    con.execute("INSERT INTO models VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                ("old", "1", "file", "models/old/1/old.bin", 64, f.sha256, now, now, 5, 1,
                 "download"))
    con.execute("INSERT INTO model_files VALUES (?,?,?,?)", ("old", "old.bin", f.sha256, 64))
    con.execute("PRAGMA user_version=1")
    con.commit()
    con.close()
    with ModelCache(directory=home, durable=False) as cache:
        (e,) = cache.entries()
        assert (e.model_id, e.size, e.sha256, e.hits, e.pinned) == ("old", 64, f.sha256, 5, True)
        assert cache.get("old") is not None
    con = sqlite3.connect(home / "index.db")
    assert con.execute("PRAGMA user_version").fetchone()[0] == 2
    con.close()
    assert check_cache(home) == ["old"]


def test_newer_schema_is_refused_and_left_untouched(home: Path) -> None:
    home.mkdir(parents=True)
    db = home / "index.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE future (x)")
    con.execute("PRAGMA user_version=99")
    con.commit()
    con.close()
    before = db.read_bytes()
    with pytest.raises(CacheError, match="newer runanywhere"):
        ModelCache(directory=home)
    assert db.read_bytes() == before
    assert sorted(p.name for p in home.iterdir() if p.name.startswith("index")) == ["index.db"]


# -- quota, pins, use -----------------------------------------------------------------------------
HOLDER = textwrap.dedent("""
    import sys
    from runanywhere.store import ModelCache
    cache = ModelCache(directory=sys.argv[1])
    for mid in sys.argv[2:]:
        cache.hold(mid)
    print("held", flush=True)
    sys.stdin.readline()
""")


@pytest.fixture
def holder(home: Path) -> Iterator[Callable[..., None]]:
    """Hold models from another process until the test ends."""
    procs: list[subprocess.Popen[str]] = []

    def hold(*ids: str) -> None:
        p = subprocess.Popen([sys.executable, "-c", HOLDER, str(home), *ids], text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        procs.append(p)
        assert p.stdout is not None and p.stdout.readline().strip() == "held"

    yield hold
    for p in procs:
        p.communicate("", timeout=30)


def test_disk_limit_evicts_lru_never_pinned_or_in_use(home: Path, stage: Stage,
                                                      holder: Callable[..., None]) -> None:
    with ModelCache(directory=home, durable=False, disk_limit=4000) as cache:
        for m in ("pinned", "used", "old", "newer"):
            put(cache, stage, m, size=1000)
            time.sleep(0.01)  # distinct last-access times
        cache.pin("pinned")
        holder("used")
        cache.get("newer")
        cache.disk_limit = 3000
        put(cache, stage, "fresh", size=1000)  # 5000 > 3000: two must go
        left = {e.model_id for e in cache.entries()}
        assert left == {"pinned", "used", "fresh"}  # old and newer went, oldest first
        assert cache.size() == 3000
    assert check_cache(home) == ["fresh", "pinned", "used"]


def test_disk_limit_from_environment(home: Path, stage: Stage,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNANYWHERE_DISK_LIMIT", "2KB")
    with ModelCache(directory=home, durable=False) as cache:
        assert cache.disk_limit == 2000
        for m in ("a", "b", "c"):
            put(cache, stage, m, size=900)
            time.sleep(0.01)
        assert [e.model_id for e in cache.entries()] == ["b", "c"]


def test_in_use_in_this_process_is_never_evicted(cache: ModelCache, stage: Stage) -> None:
    put(cache, stage, "a", size=1000)
    put(cache, stage, "b", size=1000)
    with cache.in_use("a") as entry:
        assert entry is not None and entry.model_id == "a"
        assert cache.held("a") and not cache.held("b")
        plan = cache.plan_prune(0)
        assert [e.model_id for e in plan.evict] == ["b"] and plan.kept == ("a",)
        plan.execute()
    assert not cache.held("a")
    assert [e.model_id for e in cache.entries()] == ["a"]


def test_delete_refuses_a_model_another_process_uses(cache: ModelCache, stage: Stage,
                                                     holder: Callable[..., None]) -> None:
    put(cache, stage, "busy")
    holder("busy")
    with pytest.raises(CacheError, match="in use"):
        cache.delete("busy")
    assert cache.get("busy") is not None
    assert cache.delete("busy", force=True) == 1000


def test_clear_removes_pinned_but_not_models_in_use(cache: ModelCache, stage: Stage,
                                                    holder: Callable[..., None]) -> None:
    for m in ("p", "u", "x"):
        put(cache, stage, m)
    cache.pin("p")
    holder("u")
    assert cache.clear() == 2000
    assert [e.model_id for e in cache.entries()] == ["u"]


def test_prune_plan_dry_run_then_execute(cache: ModelCache, stage: Stage, home: Path) -> None:
    for i, m in enumerate(("a", "b", "c")):
        put(cache, stage, m, size=1000 * (i + 1))
        time.sleep(0.01)
    plan = cache.plan_prune(3500)
    assert [e.model_id for e in plan.evict] == ["a", "b"]  # least recently used first
    assert plan.freed_bytes == 3000 and plan.size_before == 6000 and plan.size_after == 3000
    assert json.loads(json.dumps(plan.to_dict()))["freed_bytes"] == 3000
    assert len(cache.entries()) == 3 and cache.size() == 6000  # the plan changed nothing
    assert plan.execute() == 3000
    assert [e.model_id for e in cache.entries()] == ["c"]
    assert check_cache(home) == ["c"]


def test_prune_frees_shared_blobs_only_with_their_last_user(cache: ModelCache,
                                                            stage: Stage) -> None:
    data = os.urandom(1000)
    put(cache, stage, "a", data)
    time.sleep(0.01)
    put(cache, stage, "b", data)
    time.sleep(0.01)
    put(cache, stage, "c", size=1000)
    plan = cache.plan_prune(1000)
    assert [e.model_id for e in plan.evict] == ["a", "b"] and plan.freed_bytes == 1000


# -- orphans ---------------------------------------------------------------------------------------
PARTIAL_WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from runanywhere.store.partial import Partial, PartialMeta
    p = Partial(Path(sys.argv[1]), "f" * 64, "live-owner")
    p.open(PartialMeta(url="http://127.0.0.1/x", size=10, sha256="f" * 64))
    print("open", flush=True)
    sys.stdin.readline()
""")


def test_prune_removes_orphans_but_never_a_live_partial(cache: ModelCache, stage: Stage,
                                                        home: Path) -> None:
    put(cache, stage, "kept")
    layout = cache.disk.layout
    orphan_blob = layout.blob("0" * 64)
    orphan_blob.write_bytes(b"left by a crash")
    dead = layout.partial_dir / f"{'e' * 64}.999999-dead.part"
    dead.write_bytes(b"x" * 100)
    (layout.partial_dir / f"{'e' * 64}.999999-dead.json").write_text(json.dumps(
        {"host": os.uname().nodename, "pid": 2**22 + 1}))
    old = time.time() - 3600
    for p in layout.partial_dir.iterdir():
        os.utime(p, (old, old))
    (layout.model_dir / "ghost" / "1").mkdir(parents=True)
    (layout.manifest_dir / "ghost.json").write_text("{}")
    (layout.model_dir / "kept" / ".tmp-deadbeef").mkdir()
    writer = subprocess.Popen([sys.executable, "-c", PARTIAL_WRITER, str(layout.partial_dir)],
                              text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "open"
        live = sorted(layout.partial_dir.glob("*live-owner*"))
        for p in live:
            os.utime(p, (old, old))  # idle for an hour, but its writer is alive
        plan = cache.plan_prune(orphan_age=0)  # even "idle for 0 s" spares a live writer
        assert orphan_blob in plan.orphan_blobs
        assert dead in plan.orphan_partials and not set(live) & set(plan.orphan_partials)
        assert {p.name for p in plan.stray} == {"ghost", "ghost.json", ".tmp-deadbeef"}
        assert plan.freed_bytes >= 100
        plan.execute()
        assert not orphan_blob.exists() and not dead.exists()
        assert all(p.exists() for p in live)
        assert not (layout.model_dir / "ghost").exists()
        assert not (layout.manifest_dir / "ghost.json").exists()
        assert not (layout.model_dir / "kept" / ".tmp-deadbeef").exists()
    finally:
        writer.communicate("", timeout=30)
    assert check_cache(home) == ["kept"]


def test_prune_keeps_young_orphans(cache: ModelCache) -> None:
    blob = cache.disk.blobs.path("1" * 64)
    blob.write_bytes(b"maybe a publish in progress")
    assert cache.plan_prune().empty
    assert blob.exists()


# -- verify ----------------------------------------------------------------------------------------
def _quarantined(home: Path) -> list[str]:
    return sorted(p.name for p in (home / "quarantine").iterdir())


def test_verify_quarantines_a_flipped_bit(cache: ModelCache, stage: Stage, home: Path) -> None:
    put(cache, stage, "good")
    put(cache, stage, "bad", size=2000)
    entry = cache.entry("bad")
    assert entry is not None
    cache.get("bad")  # in memory too: must go with the disk entry
    flip_byte(entry.path, 1234, 0x01, keep_mtime=True)  # bit rot keeps the mtime
    assert cache.entry("bad") is not None  # a normal hit trusts the index: no re-hash
    results = {r.model_id: r for r in cache.verify()}
    assert results["good"].ok and not results["bad"].ok
    assert "sha256" in results["bad"].problems[0]
    assert cache.get("bad") is None and "bad" not in cache.memory
    assert any(n.startswith("bad-") for n in _quarantined(home))
    assert any(n.startswith("blob-") for n in _quarantined(home))
    assert check_cache(home) == ["good"]


def test_verify_quarantines_a_truncated_blob(cache: ModelCache, stage: Stage,
                                             home: Path) -> None:
    put(cache, stage, "t", size=3000)
    entry = cache.entry("t")
    assert entry is not None
    blob = cache.disk.blobs.path(entry.files[0].sha256)
    os.chmod(blob, 0o644)
    os.truncate(blob, 100)
    (r,) = cache.verify("t")
    assert not r.ok and "100 bytes, expected 3000" in " ".join(r.problems)
    assert cache.entries() == [] and check_cache(home) == []


def test_corrupt_shared_blob_condemns_every_model_built_from_it(cache: ModelCache,
                                                                stage: Stage) -> None:
    data = os.urandom(500)
    put(cache, stage, "x", data)
    put(cache, stage, "y", data)
    blob = cache.disk.blobs.path(hashlib.sha256(data).hexdigest())
    flip_byte(blob)
    results = {r.model_id: r.ok for r in cache.verify("x")}
    assert results == {"x": False, "y": False}
    assert cache.entries() == []


def test_verify_restores_a_deleted_blob_from_the_model_file(cache: ModelCache, stage: Stage,
                                                            home: Path) -> None:
    data = put(cache, stage, "d")
    blob = cache.disk.blobs.path(hashlib.sha256(data).hexdigest())
    blob.unlink()
    (r,) = cache.verify("d")
    assert r.ok and r.repaired and "missing" in r.repaired[0]
    assert blob.read_bytes() == data
    assert check_cache(home) == ["d"]


def test_verify_catches_a_symlink_planted_as_blob(cache: ModelCache, stage: Stage, home: Path,
                                                  tmp_path: Path) -> None:
    data = put(cache, stage, "s", size=800)
    sha = hashlib.sha256(data).hexdigest()
    evil = tmp_path / "evil"
    evil.write_bytes(b"e" * 800)
    blob = cache.disk.blobs.path(sha)
    blob.unlink()
    blob.symlink_to(evil)
    assert not cache.disk.blobs.has(sha, 800)  # never trusted for dedup
    (r,) = cache.verify("s")
    assert r.ok and "symbolic link" in r.repaired[0]
    assert not blob.is_symlink() and blob.read_bytes() == data
    assert any(p.is_symlink() for p in (home / "quarantine").iterdir())
    assert evil.read_bytes() == b"e" * 800  # the link's target was not touched
    assert check_cache(home) == ["s"]


def test_verify_replaces_a_symlinked_model_file_from_its_blob(cache: ModelCache, stage: Stage,
                                                              home: Path, tmp_path: Path) -> None:
    data = put(cache, stage, "m", size=800)
    entry = cache.entry("m")
    assert entry is not None
    outside = tmp_path / "outside"
    outside.write_bytes(data)
    entry.path.unlink()
    entry.path.symlink_to(outside)
    assert cache.get("m") is None  # a link is not a stored file
    (r,) = cache.verify("m")
    assert r.ok and r.repaired
    assert not entry.path.is_symlink() and cache.get("m") is not None
    assert check_cache(home) == ["m"]


def test_verify_unknown_model(cache: ModelCache) -> None:
    (r,) = cache.verify("nope")
    assert not r.ok and r.problems == ["not in the cache"]


# -- import -------------------------------------------------------------------------------------
@pytest.fixture
def registry(home: Path, write_catalog: Callable[..., Path], tmp_path: Path
             ) -> Iterator[tuple[ModelRegistry, bytes, Path]]:
    data = os.urandom(3000)
    sha = hashlib.sha256(data).hexdigest()
    src = tmp_path / "downloaded.bin"
    src.write_bytes(data)
    cat = write_catalog([
        model_entry("side", "http://127.0.0.1/side.bin", len(data), sha),
        model_entry("tofu", "http://127.0.0.1/tofu.bin", len(data), None),
        {**{k: v for k, v in model_entry("multi", "", 3010, None).items() if k != "url"},
         "files": [
            {"path": "a/weights.bin", "url": "http://127.0.0.1/w", "size": 3000,
             "hash": f"sha256:{sha}"},
            {"path": "config.json", "url": "http://127.0.0.1/c", "size": 10,
             "hash": "sha256:" + hashlib.sha256(b"0123456789").hexdigest()}]},
    ])
    reg = ModelRegistry(home=home, catalogs=[cat], include_builtin=False)
    yield reg, data, src
    if reg._cache is not None:
        reg.cache.close()


def test_import_rejects_the_wrong_file(registry: tuple[ModelRegistry, bytes, Path],
                                       tmp_path: Path, home: Path) -> None:
    reg, data, _ = registry
    wrong = tmp_path / "wrong.bin"
    wrong.write_bytes(os.urandom(len(data)))
    with pytest.raises(IntegrityError, match="does not match"):
        reg.import_model("side", wrong)
    short = tmp_path / "short.bin"
    short.write_bytes(data[:-1])
    with pytest.raises(IntegrityError, match="bytes"):
        reg.import_model("side", short)
    assert reg.cache.entries() == [] and reg.cache.get("side") is None
    assert list((home / "partials").iterdir()) == []
    assert list((home / "blobs" / "sha256").iterdir()) == []
    assert wrong.exists()


def test_import_right_file_is_visible_and_the_source_kept(
        registry: tuple[ModelRegistry, bytes, Path], home: Path) -> None:
    reg, data, src = registry
    entry = reg.import_model("side", src)
    assert entry.origin == "import" and entry.sha256 == hashlib.sha256(data).hexdigest()
    hit = reg.cache.get("side")
    assert hit is not None and hit.buffer[:] == data
    assert src.read_bytes() == data  # copied, never moved
    assert list((home / "partials").iterdir()) == []
    assert check_cache(home, {"side": {"side.bin": entry.sha256 or ""}}) == ["side"]


def test_import_folder_of_a_multi_file_model(registry: tuple[ModelRegistry, bytes, Path],
                                             tmp_path: Path, home: Path) -> None:
    reg, data, _ = registry
    folder = tmp_path / "multi"
    (folder / "a").mkdir(parents=True)
    (folder / "a" / "weights.bin").write_bytes(data)
    with pytest.raises(ModelError, match=r"lacks config\.json"):
        reg.import_model("multi", folder)
    (folder / "config.json").write_bytes(b"0123456789")
    entry = reg.import_model("multi", folder)
    assert entry.kind == "dir" and (entry.path / "a" / "weights.bin").read_bytes() == data
    assert check_cache(home) == ["multi"]


def test_import_without_catalog_hash_trusts_first_use(
        registry: tuple[ModelRegistry, bytes, Path], tmp_path: Path) -> None:
    reg, data, src = registry
    reg.import_model("tofu", src)
    other = tmp_path / "other.bin"
    other.write_bytes(os.urandom(len(data)))
    with pytest.raises(IntegrityError):
        reg.import_model("tofu", other)  # must match what was trusted first
    assert reg.cache.get("tofu") is not None


def test_import_archive_unpacks_into_a_folder_of_blobs(home: Path, tmp_path: Path) -> None:
    import io
    import tarfile

    members = {"model/encoder.onnx": os.urandom(2000), "model/vocab.txt": b"a b c\n"}
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    meta = parse_model(model_entry("packed", "http://127.0.0.1/model.tar.gz",
                                   archive.stat().st_size, sha, archive="tar.gz"))
    with ModelCache(directory=home, durable=False) as cache:
        entry = cache.import_path(meta, archive)
        assert entry.kind == "dir" and entry.sha256 == sha  # the archive's hash, as downloaded
        for name, data in members.items():
            f = entry.path / name
            assert f.read_bytes() == data
            assert os.path.samefile(f, cache.disk.blobs.path(hashlib.sha256(data).hexdigest()))
        assert cache.size() == sum(len(d) for d in members.values())
        assert list(cache.disk.layout.partial_dir.iterdir()) == []
    assert check_cache(home) == ["packed"]


def test_import_path_api(home: Path, tmp_path: Path) -> None:
    data = b"model bytes" * 100
    src = tmp_path / "m.bin"
    src.write_bytes(data)
    meta = parse_model(model_entry("api", "http://127.0.0.1/m.bin", len(data),
                                   hashlib.sha256(data).hexdigest()))
    with ModelCache(directory=home, durable=False) as cache:
        entry = cache.import_path(meta, src)
        assert entry.path.read_bytes() == data and cache.get("api") is not None
