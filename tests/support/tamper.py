"""Damage on purpose, always for real: every helper here changes the bytes it touches.

Writing a constant over random data (``f.write(b"X")``) leaves the file as it was whenever the
byte already held that value -- one run in 256 -- and the test that expected damage fails for
nothing. These helpers XOR instead (``b ^ mask`` with a non-zero mask is never ``b``), or check
that what they wrote differs.
"""

from __future__ import annotations

import os
from pathlib import Path


def flipped(data: bytes, offset: int = -1, mask: int = 0xFF) -> bytes:
    """``data`` with the byte at ``offset`` XORed with ``mask`` (same length, never equal)."""
    if not 0 < mask < 256:
        raise ValueError("mask must be 1..255: XOR with 0 changes nothing")
    if not data:
        raise ValueError("no byte to flip in empty data")
    out = bytearray(data)
    out[offset] ^= mask
    return bytes(out)


def xor_range(path: Path, offset: int, length: int, mask: int = 0xFF, *,
              keep_mtime: bool = False) -> None:
    """XOR ``length`` bytes of ``path`` from ``offset`` with ``mask``: every one changes. The
    file is made writable first (cached files are read-only); ``keep_mtime`` restores the
    modification time, as bit rot would leave it."""
    if not 0 < mask < 256:
        raise ValueError("mask must be 1..255: XOR with 0 changes nothing")
    st = path.stat()
    if length <= 0 or offset < 0 or offset + length > st.st_size:
        raise ValueError(f"range {offset}+{length} is not inside {path} ({st.st_size} bytes)")
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.seek(offset)
        old = f.read(length)
        f.seek(offset)
        f.write(bytes(b ^ mask for b in old))
    if keep_mtime:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def flip_byte(path: Path, offset: int | None = None, mask: int = 0xFF, *,
              keep_mtime: bool = False) -> int:
    """XOR one byte of ``path`` (default: the middle one) with ``mask``; returns its offset."""
    size = path.stat().st_size
    at = size // 2 if offset is None else (offset if offset >= 0 else size + offset)
    xor_range(path, at, 1, mask, keep_mtime=keep_mtime)
    return at


def zero_range(path: Path, offset: int, length: int) -> None:
    """Overwrite ``length`` bytes with zeroes (a page lost to a crash reads back as zeroes);
    fails if they already were all zero, since then nothing would be damaged."""
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.seek(offset)
        old = f.read(length)
        if len(old) != length:
            raise ValueError(f"range {offset}+{length} is not inside {path}")
        if not any(old):
            raise AssertionError(f"{path}[{offset}:{offset + length}] is already zero: "
                                 "zeroing it would change nothing")
        f.seek(offset)
        f.write(bytes(length))
