"""The hash that follows a partial file written out of order (transfer/hasher.py): bytes offered
in order are hashed from memory, the rest read back, through a mapping of the file or, where a
file cannot be mapped, with pread; either way the digest is the file's."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runanywhere.transfer import hasher as hasher_mod
from runanywhere.transfer.hasher import PrefixHasher

MiB = 2**20


def _write_out_of_order(path: Path, data: bytes, piece: int) -> tuple[int, PrefixHasher]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.ftruncate(fd, len(data))
    h = PrefixHasher(fd)
    starts = list(range(0, len(data), piece))
    for start in starts[1::2] + starts[0::2]:  # odd pieces first: most bytes land out of order
        chunk = memoryview(data)[start:start + piece]
        os.pwrite(fd, chunk, start)
        h.offer(start, chunk)
    return fd, h


@pytest.mark.parametrize("mapped", [True, False])
def test_the_digest_is_the_files_whichever_way_bytes_are_read_back(tmp_path: Path,
                                                                    mapped: bool) -> None:
    data = os.urandom(5 * MiB + 12345)  # not a multiple of a page or of the window
    fd, h = _write_out_of_order(tmp_path / "part", data, 3 * MiB // 2 + 7)
    try:
        if not mapped:
            h._mapped = False  # as on a file system that cannot map the file
        assert h.finish(len(data)) == hashlib.sha256(data).hexdigest()
        assert h._mapped is mapped
    finally:
        os.close(fd)


def test_windows_smaller_than_the_file_join_up(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hasher_mod, "MAP_WINDOW", MiB)
    data = os.urandom(4 * MiB + 100)
    fd, h = _write_out_of_order(tmp_path / "part", data, MiB // 3)
    try:
        h.catch_up(2 * MiB + 5, memoryview(bytearray(MiB)))  # stops inside a window
        assert h.hashed == 2 * MiB + 5
        assert h.finish(len(data)) == hashlib.sha256(data).hexdigest()
    finally:
        os.close(fd)


def test_reset_truncates_under_the_hashers_lock(tmp_path: Path) -> None:
    data = os.urandom(MiB)
    fd, h = _write_out_of_order(tmp_path / "part", data, MiB // 4)
    held = []
    try:
        h.reset(truncate=lambda: held.append(h._lock.locked()))
        assert held == [True] and h.hashed == 0
    finally:
        os.close(fd)


_CUT_UNDER_THE_MAPPING = """
import hashlib, mmap, os, sys
from runanywhere.transfer import hasher
path, size = sys.argv[1], int(sys.argv[2])
fd = os.open(path, os.O_RDWR)
real = mmap.mmap

class Cut:  # the real mapping; then the file is cut short under it, as by a disk gone bad
    def __init__(self, *args, **kwargs):
        self.m = real(*args, **kwargs)
        os.ftruncate(fd, 4096)
    def __enter__(self):
        return self.m.__enter__()
    def __exit__(self, *exc):
        return self.m.__exit__(*exc)

hasher.mmap.mmap = Cut
try:
    hasher.PrefixHasher(fd).finish(size)
except OSError as e:
    print("OSError:", e)
"""


def test_a_page_that_cannot_be_read_is_an_error_not_a_crash(tmp_path: Path) -> None:
    """Pages of the mapping that the kernel cannot read (here: the file cut short under it)
    would kill the process with SIGBUS when sha256 touched them; populating the window first
    makes that an OSError the fetch reports. In a process of its own: the old way died."""
    part = tmp_path / "part"
    part.write_bytes(os.urandom(2 * MiB))
    r = subprocess.run([sys.executable, "-c", _CUT_UNDER_THE_MAPPING, str(part), str(2 * MiB)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"died with {r.returncode}: {r.stderr[-500:]}"
    assert r.stdout.startswith("OSError:"), r.stdout + r.stderr
