"""sha256 while bytes move: the one copy-while-hashing loop, and whole writes.

Everything that moves verified bytes (a sideload, an archive member, a multipart upload, a plain
re-hash) goes through :func:`copy_hashing`: it reads into one reused buffer (no per-chunk
allocation), fills each chunk completely before handing it on (so a consumer that needs fixed
sizes, like S3 parts, gets them), and hashes exactly what it hands on.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

MiB = 2**20


class Readable(Protocol):
    def readinto(self, buffer: memoryview, /) -> int | None: ...


def copy_hashing(src: Readable, sink: Callable[[memoryview], object] | None = None, *,
                 chunk: int = 4 * MiB) -> tuple[str, int]:
    """Read ``src`` to its end, hashing it; each full chunk (the last may be short) goes to
    ``sink`` (valid only during the call). Returns ``(sha256 hex, bytes read)``."""
    import hashlib  # OpenSSL's library loads when something is hashed, not with the store

    h = hashlib.sha256()
    buf = bytearray(chunk)
    view = memoryview(buf)
    total = 0
    while True:
        filled = 0
        while filled < chunk:
            n = src.readinto(view[filled:])
            if not n:
                break
            filled += n
        if not filled:
            return h.hexdigest(), total
        h.update(view[:filled])
        if sink is not None:
            sink(view[:filled])
        total += filled
        if filled < chunk:
            return h.hexdigest(), total


def file_sha256(path: Path) -> str:
    with open(path, "rb", buffering=0) as f:
        return copy_hashing(f)[0]


def write_all(fd: int, data: memoryview, offset: int | None = None) -> int:
    """Write every byte of ``data`` to ``fd`` (at ``offset`` with ``pwrite``); a short write is
    followed by another for the rest, never dropped."""
    written = 0
    while written < len(data):
        part = data[written:]
        n = os.write(fd, part) if offset is None else os.pwrite(fd, part, offset + written)
        if n <= 0:
            raise OSError(errno.EIO, "write wrote nothing")
        written += n
    return written



def git_blob_sha1(fd: int, size: int) -> str:
    """The id git (and the Hugging Face Hub) gives a file: sha1 of ``blob <size>\\0`` and the
    bytes, read from ``fd`` (the first ``size`` bytes)."""
    import hashlib

    h = hashlib.sha1(b"blob %d\x00" % size)
    buf = bytearray(4 * MiB)
    view = memoryview(buf)
    pos = 0
    while pos < size:
        n = os.preadv(fd, [view[: min(len(buf), size - pos)]], pos)
        if n <= 0:
            raise OSError(errno.EIO, f"file ended at byte {pos} of {size}")
        h.update(view[:n])
        pos += n
    return h.hexdigest()
