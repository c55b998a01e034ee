"""Unpack a verified archive into a model's folder, safely.

No member may land outside the destination (absolute names, ``..``, drive letters), links may only
point at members inside the archive (they become plain copies), and device files, FIFOs and
sockets are refused. Each extracted file is hashed as it is written, so it can be published as a
content-addressed blob without being read again.

Decompression bombs: before a member is written, its size (from the tar header or the zip
directory; neither format lets a member outgrow it) is added to what was unpacked so far. Past
the free space the answer is ``InsufficientStorageError``; past the bound (the catalog's
``unpacked_size``, else ``UNPACK_RATIO`` times the archive and at least ``UNPACK_FLOOR``) it is
``UnsafeArchiveError``. Either way nothing of that member is written.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, cast

from ..errors import InsufficientStorageError, IntegrityError, UnsafeArchiveError
from .fsutil import disk_error, is_enospc
from .hashing import Readable, copy_hashing, write_all

#: Without a declared ``unpacked_size``, an archive may unpack to this many times its size ...
UNPACK_RATIO = 20
#: ... and at least to this many bytes (small archives of text compress well).
UNPACK_FLOOR = 16 * 2**20


def unpack_bound(archive_size: int, declared: int | None) -> int:
    """The most bytes an archive of ``archive_size`` bytes may unpack to."""
    return declared if declared else max(UNPACK_RATIO * archive_size, UNPACK_FLOOR)


class Budget:
    """Bytes an extraction may still write: refuses a member before a byte of it is written."""

    def __init__(self, archive: Path, limit: int, free: int, declared: bool) -> None:
        self.archive = archive
        self.limit = limit
        self.free = free
        self.declared = declared
        self.used = 0

    def admit(self, name: str, size: int) -> None:
        total = self.used + size
        if total > self.free:
            raise InsufficientStorageError(
                f"not enough disk space to unpack {self.archive.name}: member {name!r} brings"
                f" it to {total} bytes, {max(0, self.free)} bytes can be written",
                needed=total, available=max(0, self.free))
        if total > self.limit:
            why = ("the catalog's unpacked_size" if self.declared else
                   f"{UNPACK_RATIO}x the archive; declare unpacked_size in the catalog if this"
                   " is expected")
            raise UnsafeArchiveError(
                f"{self.archive.name} unpacks to more than {self.limit} bytes ({why}): member"
                f" {name!r} refused (a decompression bomb?)")
        self.used = total


@dataclass(frozen=True, slots=True)
class Extracted:
    path: str
    file: Path
    sha256: str
    size: int


def _safe_name(name: str) -> str:
    if "\x00" in name:
        raise UnsafeArchiveError(f"archive member name contains NUL: {name!r}")
    clean = name.replace("\\", "/")
    p = PurePosixPath(clean)
    if p.is_absolute() or clean.startswith("/") or (len(clean) > 1 and clean[1] == ":"):
        raise UnsafeArchiveError(f"archive member {name!r} has an absolute path")
    parts = [x for x in p.parts if x not in ("", ".")]
    if any(x == ".." for x in parts):
        raise UnsafeArchiveError(f"archive member {name!r} escapes the model folder")
    return "/".join(parts)


def _write(src: IO[bytes], dest: Path, rel: str) -> Extracted:
    target = dest / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "xb", buffering=0) as out:
        fd = out.fileno()
        digest, size = copy_hashing(cast(Readable, src), lambda chunk: write_all(fd, chunk),
                                    chunk=1 << 20)
    return Extracted(rel, target, digest, size)


def _copy_of(done: dict[str, Extracted], rel: str, target: str, dest: Path, kind: str
             ) -> Extracted:
    if target not in done:
        raise UnsafeArchiveError(f"archive {kind} {rel!r} points outside the archive's files"
                                 f" ({target!r})")
    with open(done[target].file, "rb") as src:
        return _write(src, dest, rel)


def extract(archive: Path, kind: str, dest: Path, *, limit: int | None = None,
            free: int | None = None, declared: bool = False) -> list[Extracted]:
    """Extract ``archive`` (``tar.gz``/``tar.bz2``/``tar.xz``/``zip``) into the empty ``dest``,
    writing at most ``limit`` bytes (default: :func:`unpack_bound`) and at most ``free``."""
    dest.mkdir(parents=True, exist_ok=True)
    size = archive.stat().st_size
    budget = Budget(archive, unpack_bound(size, None) if limit is None else limit,
                    2**63 if free is None else free, declared)
    try:
        if kind == "zip":
            return _extract_zip(archive, dest, budget)
        return _extract_tar(archive, kind, dest, budget)
    except OSError as e:
        if is_enospc(e):
            raise disk_error(e, f"unpacking {archive.name}", dest) from e
        raise


def _extract_tar(archive: Path, kind: str, dest: Path, budget: Budget) -> list[Extracted]:
    import tarfile  # here: tarfile and zipfile (bz2, lzma) are for archives, not a cache read

    mode = {"tar.gz": "r:gz", "tar.bz2": "r:bz2", "tar.xz": "r:xz"}.get(kind)
    if mode is None:
        raise ValueError(f"unknown archive kind {kind!r}")
    done: dict[str, Extracted] = {}
    try:
        with tarfile.open(archive, mode) as tar:  # type: ignore[call-overload]
            for m in tar:
                rel = _safe_name(m.name)
                if not rel or m.isdir():
                    continue
                if rel in done:
                    raise UnsafeArchiveError(f"archive member {rel!r} appears twice")
                if m.issym() or m.islnk():
                    base = PurePosixPath(rel).parent if m.issym() else PurePosixPath("")
                    raw = m.linkname
                    if raw.startswith("/"):
                        raise UnsafeArchiveError(f"archive link {rel!r} points to an absolute path")
                    target = os.path.normpath(str(base / raw)).replace("\\", "/")
                    if target.startswith("../") or target == "..":
                        raise UnsafeArchiveError(f"archive link {rel!r} points outside the folder")
                    if target in done:
                        budget.admit(rel, done[target].size)
                    done[rel] = _copy_of(done, rel, target, dest, "link")
                    continue
                if not m.isfile():
                    raise UnsafeArchiveError(f"archive member {rel!r} is a device, FIFO or other"
                                             " special file")
                budget.admit(rel, m.size)
                src = tar.extractfile(m)
                if src is None:
                    raise UnsafeArchiveError(f"archive member {rel!r} cannot be read")
                with src:
                    done[rel] = _write(src, dest, rel)
    except (tarfile.TarError, EOFError, OSError) as e:
        if isinstance(e, FileExistsError):
            raise UnsafeArchiveError(f"archive member clashes with another: {e}") from e
        if is_enospc(e) or isinstance(e, InsufficientStorageError):
            raise
        raise IntegrityError(f"cannot unpack {archive.name}: {e}") from e
    return list(done.values())


def _extract_zip(archive: Path, dest: Path, budget: Budget) -> list[Extracted]:
    import zipfile

    done: dict[str, Extracted] = {}
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                rel = _safe_name(info.filename)
                if not rel or info.is_dir():
                    continue
                mode = info.external_attr >> 16
                if stat.S_ISLNK(mode):
                    raise UnsafeArchiveError(f"archive member {rel!r} is a symbolic link")
                if mode and not (stat.S_ISREG(mode) or stat.S_IFMT(mode) == 0):
                    raise UnsafeArchiveError(f"archive member {rel!r} is a special file")
                if rel in done:
                    raise UnsafeArchiveError(f"archive member {rel!r} appears twice")
                budget.admit(rel, info.file_size)  # zipfile never reads past file_size
                with zf.open(info) as src:
                    done[rel] = _write(src, dest, rel)
    except (zipfile.BadZipFile, OSError) as e:
        if is_enospc(e) or isinstance(e, InsufficientStorageError):
            raise
        raise IntegrityError(f"cannot unpack {archive.name}: {e}") from e
    return list(done.values())
