"""The hash that follows a partial file written out of order (transfer/hasher.py): bytes offered
in order are hashed from memory, the rest read back, through a mapping of the file or, where a
file cannot be mapped, with pread; either way the digest is the file's."""

from __future__ import annotations

import hashlib
import os
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
