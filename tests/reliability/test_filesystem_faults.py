"""Real mounts (tests run as root, so chmod proves nothing): read-only cache folders and full disks.

* a cache on a tmpfs remounted read-only, and on a read-only bind mount: the cache serves what it
  holds, refuses additions with a CacheError that says why (or, with ``scratch_fallback``, takes
  new models into a scratch folder for the run), warns once, and writes nothing there;
* a cache folder that cannot be created (its parent is read-only): refused, or memory + scratch;
* a small tmpfs that fills up during publish: ``InsufficientStorageError``, nothing visible, and
  the cache works again once space is back;
* a staged file on another filesystem is copied in (not renamed) and its source removed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runanywhere.errors import CacheError, InsufficientStorageError
from runanywhere.store import ModelCache, StagedFile
from support.invariants import check_cache

Mount = Callable[..., Path]


def _sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)


@pytest.fixture
def mounts(tmp_path: Path) -> Iterator[Mount]:
    """``mount(kind, size=...)`` -> a fresh mount point; everything is unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.fail("these tests need root (mount); run them as CI does")
    done: list[Path] = []

    def mount(kind: str = "tmpfs", size: str = "8m", source: Path | None = None) -> Path:
        point = tmp_path / f"mnt{len(done)}"
        point.mkdir()
        if kind == "tmpfs":
            _sh("mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point))
        else:
            _sh("mount", "--bind", str(source), str(point))
        done.append(point)
        return point

    yield mount
    for point in reversed(done):
        r = subprocess.run(["umount", str(point)], capture_output=True, timeout=60)
        if r.returncode != 0:  # busy: detach it now, the kernel frees it when unused
            subprocess.run(["umount", "-l", str(point)], capture_output=True, timeout=60)


def _remount_ro(point: Path, bind: bool = False) -> None:
    _sh("mount", "-o", "remount,ro,bind" if bind else "remount,ro", str(point))


def _staged(folder: Path, name: str, size: int) -> StagedFile:
    data = os.urandom(size)
    src = folder / f"staged-{name}"
    src.write_bytes(data)
    return StagedFile(f"{name}.bin", src, hashlib.sha256(data).hexdigest(), size)


def _populate(home: Path, staging: Path) -> dict[str, str]:
    shas = {}
    with ModelCache(directory=home) as cache:
        for name in ("alpha", "beta"):
            f = _staged(staging, name, 30_000)
            cache.publish(name, "1", [f], kind="file", source_sha256=f.sha256)
            shas[name] = f.sha256
        cache.get("alpha")  # a hit: statistics are flushed on close
    return shas


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else b"dir"
            for p in sorted(root.rglob("*"))}


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "runanywhere" and r.levelno >= logging.WARNING]


def _use_readonly_cache(home: Path, shas: dict[str, str], tmp_path: Path,
                        caplog: pytest.LogCaptureFixture) -> None:
    before = _snapshot(home)
    with ModelCache(directory=home) as cache:  # the default: read-only, additions refused
        assert cache.degraded is not None
        assert sorted(e.model_id for e in cache.entries()) == ["alpha", "beta"]
        new = _staged(tmp_path, "gamma", 5000)
        with pytest.raises(CacheError, match=r"not writable.*nothing can be added"):
            cache.publish("gamma", "1", [new], kind="file", source_sha256=new.sha256)
        assert new.src.exists() and cache.get("gamma") is None
    caplog.clear()
    with ModelCache(directory=home, scratch_fallback=True) as cache:
        assert cache.degraded is not None
        assert sorted(e.model_id for e in cache.entries()) == ["alpha", "beta"]
        assert cache.size() == 60_000
        for mid, sha in shas.items():
            hit = cache.get(mid)
            assert hit is not None and hashlib.sha256(hit.buffer).hexdigest() == sha
        assert cache.get("alpha") is not None and cache.get("alpha").tier == "memory"  # type: ignore[union-attr]
        new = _staged(tmp_path, "gamma", 5000)  # a download during the run still lands
        entry = cache.publish("gamma", "1", [new], kind="file", source_sha256=new.sha256)
        assert not str(entry.path).startswith(str(home))
        assert cache.get("gamma") is not None
        assert sorted(e.model_id for e in cache.entries()) == ["alpha", "beta", "gamma"]
        assert all(r.ok for r in cache.verify())
        with pytest.raises(CacheError, match="cannot change"):
            cache.pin("alpha")
        with pytest.raises(CacheError, match="cannot change"):
            cache.delete("beta")
    (warning,) = _warnings(caplog)
    assert "not writable" in warning and "read-only" in warning and "temporary" in warning
    assert _snapshot(home) == before  # not a byte written


def test_readonly_tmpfs_remount(mounts: Mount, tmp_path: Path,
                                caplog: pytest.LogCaptureFixture) -> None:
    point = mounts("tmpfs")
    home = point / "home"
    shas = _populate(home, point)
    _remount_ro(point)
    _use_readonly_cache(home, shas, tmp_path, caplog)
    _sh("mount", "-o", "remount,rw", str(point))  # check_cache's SQLite needs a writable -shm
    assert check_cache(home) == ["alpha", "beta"]


def test_readonly_bind_mount(mounts: Mount, tmp_path: Path,
                             caplog: pytest.LogCaptureFixture) -> None:
    real = tmp_path / "real"
    shas = _populate(real / "home", tmp_path)
    point = mounts("bind", source=real)
    _remount_ro(point, bind=True)
    _use_readonly_cache(point / "home", shas, tmp_path, caplog)
    assert check_cache(real / "home") == ["alpha", "beta"]


def test_missing_cache_folder_under_a_readonly_parent(mounts: Mount, tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    point = mounts("tmpfs")
    _remount_ro(point)
    with ModelCache(directory=point / "does" / "not" / "exist") as cache:
        assert cache.degraded is not None and cache.entries() == []
        with pytest.raises(CacheError, match="nothing can be added"):
            cache.require_writable()
    caplog.clear()
    with ModelCache(directory=point / "does" / "not" / "exist", scratch_fallback=True) as cache:
        assert cache.degraded is not None and cache.entries() == []
        f = _staged(tmp_path, "m", 1000)
        cache.publish("m", "1", [f], kind="file", source_sha256=f.sha256)
        hit = cache.get("m")
        assert hit is not None and hashlib.sha256(hit.buffer).hexdigest() == f.sha256
    assert len(_warnings(caplog)) == 1
    assert not (point / "does").exists()


def _nothing_visible_or_left(home: Path) -> None:
    assert check_cache(home) == []
    assert [p for p in (home / "blobs" / "sha256").iterdir() if p.name.startswith(".")] == []
    assert list((home / "models").rglob("*")) == []
    assert list((home / "manifests").iterdir()) == []


def test_disk_full_while_copying_from_another_filesystem(mounts: Mount, tmp_path: Path) -> None:
    point = mounts("tmpfs", size="1m")
    home = point / "home"
    big = _staged(tmp_path, "big", 2 * 2**20)  # on another filesystem: must be copied in
    with ModelCache(directory=home) as cache:
        with pytest.raises(InsufficientStorageError, match="no space"):
            cache.publish("big", "1", [big], kind="file", source_sha256=big.sha256)
        assert cache.get("big") is None and cache.entries() == []
    _nothing_visible_or_left(home)
    assert list((home / "blobs" / "sha256").iterdir()) == []
    assert big.src.exists()  # never lost: the source stays where it was


def test_disk_full_during_publish_then_space_comes_back(mounts: Mount) -> None:
    point = mounts("tmpfs", size="2m")
    home = point / "home"
    with ModelCache(directory=home) as cache:
        f = _staged(point, "small", 20_000)  # already on the cache's disk (as a partial is)
        filler = point / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        try:
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError:
            pass  # the disk is full
        finally:
            os.close(fd)
        with pytest.raises(InsufficientStorageError):
            cache.publish("small", "1", [f], kind="file", source_sha256=f.sha256)
        assert cache.get("small") is None and cache.entries() == []
        _nothing_visible_or_left(home)
        filler.unlink()
        again = _staged(point, "small", 20_000)
        cache.publish("small", "1", [again], kind="file", source_sha256=again.sha256)
        hit = cache.get("small")
        assert hit is not None and hashlib.sha256(hit.buffer).hexdigest() == again.sha256
        cache.prune(orphan_age=0)
    assert check_cache(home) == ["small"]


def test_staged_file_on_another_filesystem_is_moved_in(mounts: Mount, tmp_path: Path) -> None:
    point = mounts("tmpfs", size="4m")
    home = point / "home"
    f = _staged(tmp_path, "x", 100_000)
    with ModelCache(directory=home) as cache:
        entry = cache.publish("x", "1", [f], kind="file", source_sha256=f.sha256)
        assert hashlib.sha256(entry.path.read_bytes()).hexdigest() == f.sha256
    assert not f.src.exists()  # moved: copied, then the source removed
    assert check_cache(home) == ["x"]
