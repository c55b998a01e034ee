"""Space and versions: what a cache frees is what leaves the disk, and nothing stays forever.

* a model moved to a new version by the catalog: the old version folder goes (at once, or at the
  next prune while a process holds the model), and ``cache size`` shows it while it is there;
* a killed pull's partial is removed whole by ``prune --orphan-age 0`` (its metadata last);
* a prune plan never evicts a model whose bytes a pinned model keeps on the disk;
* the quarantine is sized and pruned;
* zip and tar bombs are refused before their bytes are written (``InsufficientStorageError``
  beyond the free space, ``UnsafeArchiveError`` beyond the declared or ratio bound);
* two model ids with identical bytes in one command are downloaded once.

"Really leaves the disk" is measured independently: the bytes of every file under the cache
folder, each inode once (``disk_bytes``), before and after. Every case ends with ``check_cache``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from runanywhere.cli.main import main
from runanywhere.errors import InsufficientStorageError, UnsafeArchiveError
from runanywhere.store import ModelCache, StagedFile
from support import fault_server as fs
from support.catalogs import model_entry
from support.fault_server import FaultServer
from support.invariants import check_cache
from support.pulls import MiB, make_registry, pull, spawn_pull, wait_until

pytestmark = pytest.mark.timeout(180, method="thread")

Catalog = Callable[[list[dict[str, Any]]], Path]
METADATA = ("index.db", "locks", "manifests", "trusted")


def disk_bytes(home: Path) -> int:
    """Bytes of the files under ``home`` (each inode once; a sparse file by its blocks),
    bookkeeping (index, locks, manifests, trust records) left out."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for root, dirs, files in os.walk(home):
        if Path(root) == home:
            dirs[:] = [d for d in dirs if d not in METADATA]
            files = [f for f in files if not f.startswith("index.db")]
        for name in files:
            st = os.lstat(os.path.join(root, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += min(st.st_size, st.st_blocks * 512)
    return total


def cli(home: Path, catalog: Path, capsys: pytest.CaptureFixture[str], *argv: str
        ) -> tuple[int, Any, str]:
    """Run the CLI; the JSON document it printed (``--json`` is added) or None."""
    code = main(["--home", str(home), "--catalog", str(catalog), "--no-durable", *argv,
                 "--json"])
    out, err = capsys.readouterr()
    return code, json.loads(out) if out.strip() else None, err


def publish(cache: ModelCache, mid: str, data: bytes, version: str = "1") -> str:
    src = cache.directory.parent / f"src-{mid}-{os.urandom(4).hex()}"
    src.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    cache.publish(mid, version, [StagedFile(f"{mid}.bin", src, sha, len(data))], kind="file",
                  source_sha256=sha)
    return sha


# -- a new version --------------------------------------------------------------------------------
def _versions(server: FaultServer, write_catalog: Catalog, name: str
              ) -> tuple[Path, Path, bytes, bytes]:
    old, new = os.urandom(300_000), os.urandom(250_000)
    cat1 = write_catalog([model_entry(name, server.add(f"{name}-v1", old), len(old),
                                      hashlib.sha256(old).hexdigest(), version="1")])
    cat2 = write_catalog([model_entry(name, server.add(f"{name}-v2", new), len(new),
                                      hashlib.sha256(new).hexdigest(), version="2")])
    return cat1, cat2, old, new


def test_a_new_version_replaces_the_old_folder(fault_server: FaultServer, write_catalog: Catalog,
                                               home: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    cat1, cat2, _old, new = _versions(fault_server, write_catalog, "moved")
    assert cli(home, cat1, capsys, "pull", "moved")[0] == 0
    code, doc, err = cli(home, cat2, capsys, "pull", "moved")
    assert code == 0, err
    assert doc["models"][0]["path"] == str(home / "models" / "moved" / "2" / "moved-v2")
    assert sorted(p.name for p in (home / "models" / "moved").iterdir()) == ["2"]
    _, size, _ = cli(home, cat2, capsys, "cache", "size")
    assert size["size"] == len(new) == disk_bytes(home)
    assert size["disk"]["other"] == 0 and size["disk"]["models"] >= len(new)  # + manifest
    sha = hashlib.sha256(new).hexdigest()
    assert check_cache(home, {"moved": {"moved-v2": sha}}) == ["moved"]


HOLDER = textwrap.dedent("""
    import sys
    from runanywhere.store import ModelCache
    cache = ModelCache(directory=sys.argv[1])
    cache.hold(sys.argv[2])
    print("holding", flush=True)
    sys.stdin.readline()
""")


def test_an_old_version_in_use_stays_is_counted_and_pruned_later(
        fault_server: FaultServer, write_catalog: Catalog, home: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    cat1, cat2, old, new = _versions(fault_server, write_catalog, "held")
    assert cli(home, cat1, capsys, "pull", "held")[0] == 0
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(home), "held"], text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        assert cli(home, cat2, capsys, "pull", "held")[0] == 0
        assert (home / "models" / "held" / "1").exists(), "removed under a process using it"
        _, size, _ = cli(home, cat2, capsys, "cache", "size")
        assert size["size"] == len(new)
        assert size["disk"]["other"] == len(old) and disk_bytes(home) == len(old) + len(new)
        _, plan, _ = cli(home, cat2, capsys, "cache", "prune", "--orphan-age", "0", "--dry-run")
        assert plan["freed_bytes"] == 0 and plan["stray"] == []  # still in use
    finally:
        holder.communicate("done\n", timeout=30)
    before = disk_bytes(home)
    _, plan, _ = cli(home, cat2, capsys, "cache", "prune", "--orphan-age", "0", "--dry-run")
    assert plan["stray"] == [str(home / "models" / "held" / "1")]
    assert plan["freed_bytes"] == len(old)
    code, done, _ = cli(home, cat2, capsys, "cache", "prune", "--orphan-age", "0")
    assert code == 0 and done["freed"] == len(old) == before - disk_bytes(home)
    assert sorted(p.name for p in (home / "models" / "held").iterdir()) == ["2"]
    sha = hashlib.sha256(new).hexdigest()
    assert check_cache(home, {"held": {"held-v2": sha}}) == ["held"]


# -- a killed pull's partial ----------------------------------------------------------------------
def test_prune_removes_a_killed_pulls_partial_whole(fault_server: FaultServer,
                                                    write_catalog: Catalog,
                                                    home: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    data = os.urandom(3 * MiB)
    sha = hashlib.sha256(data).hexdigest()
    cat = write_catalog([model_entry("killed", fault_server.add("killed", data), len(data), sha)])
    marker = tmp_path / "marker"
    proc = spawn_pull({"home": str(home), "catalog": str(cat), "model": "killed"},
                      crash_at="fetch:complete", marker=marker)
    wait_until(lambda: marker.exists() or proc.poll() is not None, what="the crash point")
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    left = sorted(p.name for p in (home / "partials").iterdir())
    assert {n.rsplit(".", 1)[1] for n in left} == {"part", "log", "json"}, left
    before = disk_bytes(home)

    code, plan, _ = cli(home, cat, capsys, "cache", "prune", "--orphan-age", "0", "--dry-run")
    assert sorted(Path(p).name for p in plan["orphan_partials"]) == left
    assert plan["freed_bytes"] == before > len(data)  # the data, its journal and metadata
    code, done, _ = cli(home, cat, capsys, "cache", "prune", "--orphan-age", "0")
    assert code == 0 and sorted(Path(p).name for p in done["removed"]) == left
    assert done["skipped"] == []
    assert list((home / "partials").iterdir()) == [], "listed as removed, but left"
    assert done["freed"] == before and disk_bytes(home) == 0
    assert cli(home, cat, capsys, "pull", "killed")[0] == 0
    assert check_cache(home, {"killed": {"killed": sha}}) == ["killed"]


# -- eviction next to a pinned model --------------------------------------------------------------
def test_a_plan_never_evicts_what_a_pinned_model_keeps(home: Path) -> None:
    shared, own = os.urandom(30_000), os.urandom(6)
    with ModelCache(directory=home, durable=False) as cache:
        publish(cache, "pinned", shared)
        cache.pin("pinned")
        publish(cache, "alias-a", shared)
        publish(cache, "alias-b", shared)
        publish(cache, "small", own)
        plan = cache.plan_prune(0, orphan_age=0)
        assert [e.model_id for e in plan.evict] == ["small"]
        assert sorted(plan.spared) == ["alias-a", "alias-b"] and plan.kept == ("pinned",)
        assert plan.freed_bytes == 6
        before = disk_bytes(home)
        freed = plan.execute()
        assert freed == plan.freed_bytes == before - disk_bytes(home)
        assert {e.model_id for e in cache.entries()} == {"pinned", "alias-a", "alias-b"}
        # Unpinned, the aliases go with it and the shared bytes leave the disk once.
        cache.pin("pinned", False)
        plan = cache.plan_prune(0, orphan_age=0)
        assert plan.freed_bytes == len(shared) and plan.spared == ()
        before = disk_bytes(home)
        assert plan.execute() == len(shared) == before - disk_bytes(home)
    assert check_cache(home) == []


# -- the quarantine -------------------------------------------------------------------------------
def test_the_quarantine_is_sized_and_pruned(home: Path, write_catalog: Catalog,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    data = os.urandom(40_000)
    with ModelCache(directory=home, durable=False) as cache:
        publish(cache, "rotten", data)
        publish(cache, "fine", os.urandom(1000))
        blob = home / "blobs" / "sha256" / hashlib.sha256(data).hexdigest()
        os.chmod(blob, 0o644)
        with open(blob, "r+b") as f:
            f.seek(20_000)
            b = f.read(1)
            f.seek(20_000)
            f.write(bytes([b[0] ^ 0x5A]))
        assert not cache.verify("rotten")[0].ok
    assert list((home / "quarantine").iterdir())
    cat = write_catalog([])
    _, size, _ = cli(home, cat, capsys, "cache", "size")
    assert size["disk"]["quarantine"] == len(data)
    before = disk_bytes(home)
    _, plan, _ = cli(home, cat, capsys, "cache", "prune", "--orphan-age", "0", "--dry-run")
    assert plan["quarantine"] and plan["freed_bytes"] == len(data)
    _, done, _ = cli(home, cat, capsys, "cache", "prune", "--orphan-age", "0")
    assert done["freed"] == len(data) == before - disk_bytes(home)
    assert list((home / "quarantine").iterdir()) == []
    assert check_cache(home) == ["fine"]


# -- decompression bombs --------------------------------------------------------------------------
@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 100 MiB tmpfs: a bomb that fills it would be seen."""
    if os.geteuid() != 0:
        pytest.fail("these tests need root (mount); run them as CI does")
    point = tmp_path / "fs100"
    point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=100m", "tmpfs", str(point)], check=True,
                   capture_output=True, timeout=60)
    try:
        yield point
    finally:
        r = subprocess.run(["umount", str(point)], capture_output=True, timeout=60)
        if r.returncode != 0:
            subprocess.run(["umount", "-l", str(point)], capture_output=True, timeout=60)


def tar_bomb(members: dict[str, int]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, size in members.items():
            info = tarfile.TarInfo(name)
            info.size = size
            tar.addfile(info, _Zeros(size))
    return buf.getvalue()


def zip_bomb(members: dict[str, int]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, size in members.items():
            with zf.open(name, "w", force_zip64=True) as out:
                for _ in range(size // MiB):
                    out.write(bytes(MiB))
    return buf.getvalue()


class _Zeros(io.RawIOBase):
    def __init__(self, n: int) -> None:
        self.left = n

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = min(len(b), self.left)
        b[:n] = bytes(n)
        self.left -= n
        return n


def _bomb_pull(server: FaultServer, write_catalog: Catalog, home: Path, name: str, data: bytes,
               kind: str, **extra: Any) -> Any:
    url = server.add(name, data)
    cat = write_catalog([model_entry(name, url, len(data), hashlib.sha256(data).hexdigest(),
                                     archive=kind, **extra)])
    return pull(make_registry(home, cat), name)


def _assert_nothing_unpacked(home: Path, point: Path, name: str) -> None:
    assert not list((home / "partials").glob("unpack-*")), "scratch folder left behind"
    assert not (home / "models" / name).exists() or not any((home / "models" / name).iterdir())
    used = os.statvfs(point)
    assert (used.f_blocks - used.f_bfree) * used.f_frsize < 8 * MiB, "the disk was filled"
    assert check_cache(home) == []


@pytest.mark.parametrize("kind", ["tar.gz", "zip"])
def test_a_bomb_bigger_than_the_disk_is_insufficient_storage_before_writing(
        fault_server: FaultServer, write_catalog: Catalog, small_fs: Path, kind: str) -> None:
    home = small_fs / "home"
    data = (tar_bomb if kind == "tar.gz" else zip_bomb)({"weights.bin": 200 * MiB})
    assert len(data) < 400_000
    name = f"bomb-{kind.replace('.', '')}"
    r = _bomb_pull(fault_server, write_catalog, home, name, data, kind)
    assert isinstance(r.error, InsufficientStorageError), r
    assert "weights.bin" in str(r.error) and "\n" not in str(r.error)
    _assert_nothing_unpacked(home, small_fs, name)
    assert check_cache(home) == []


def test_many_small_members_past_the_ratio_are_refused(fault_server: FaultServer,
                                                       write_catalog: Catalog,
                                                       small_fs: Path) -> None:
    home = small_fs / "home"
    data = zip_bomb({f"part-{i:02d}.bin": MiB for i in range(30)})  # 30 MiB from ~30 KB
    r = _bomb_pull(fault_server, write_catalog, home, "many", data, "zip")
    assert isinstance(r.error, UnsafeArchiveError), r
    assert "decompression bomb" in str(r.error) and "unpacked_size" in str(r.error)
    _assert_nothing_unpacked(home, small_fs, "many")
    # Declared in the catalog, the same archive is fine.
    r = _bomb_pull(fault_server, write_catalog, home, "many", data, "zip", unpacked_size=30 * MiB)
    assert r.success, r.error
    assert len(list(Path(r.value).iterdir())) == 30
    assert check_cache(home) == ["many"]


def test_a_declared_size_that_cannot_fit_is_refused_before_the_download(
        fault_server: FaultServer, write_catalog: Catalog, small_fs: Path) -> None:
    home = small_fs / "home"
    data = tar_bomb({"weights.bin": 200 * MiB})
    r = _bomb_pull(fault_server, write_catalog, home, "declared", data, "tar.gz",
                   unpacked_size=200 * MiB)
    assert isinstance(r.error, InsufficientStorageError), r
    assert "to unpack" in str(r.error)
    assert fault_server.requests("/declared") == 0, "bytes were asked for although they cannot fit"
    assert check_cache(home) == []


def test_an_archive_bigger_than_declared_is_refused(fault_server: FaultServer,
                                                    write_catalog: Catalog,
                                                    home: Path) -> None:
    data = tar_bomb({"a.bin": 2 * MiB, "b.bin": 2 * MiB})
    r = _bomb_pull(fault_server, write_catalog, home, "liar", data, "tar.gz", unpacked_size=3 * MiB)
    assert isinstance(r.error, UnsafeArchiveError), r
    assert "b.bin" in str(r.error) and "unpacked_size" in str(r.error)
    assert check_cache(home) == []


# -- identical bytes under two ids ----------------------------------------------------------------
def test_two_ids_with_identical_bytes_download_once(fault_server: FaultServer,
                                                    write_catalog: Catalog,
                                                    home: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    data = os.urandom(2 * MiB)
    sha = hashlib.sha256(data).hexdigest()
    cat = write_catalog([
        model_entry("twin-one", fault_server.add("twin-one", data, then=fs.slow(2_000_000)),
                    len(data), sha),
        model_entry("twin-two", fault_server.add("twin-two", data, then=fs.slow(2_000_000)),
                    len(data), sha)])
    code, doc, err = cli(home, cat, capsys, "pull", "twin-one", "twin-two")
    assert code == 0, err
    assert all(m["ok"] for m in doc["models"])
    total = fault_server.bytes_served("/twin-one") + fault_server.bytes_served("/twin-two")
    assert total == len(data), f"{total / len(data):.2f} copies downloaded"
    assert [p.name for p in (home / "blobs" / "sha256").iterdir()] == [sha]
    assert check_cache(home, {"twin-one": {"twin-one": sha}, "twin-two": {"twin-two": sha}}) == [
        "twin-one", "twin-two"]
