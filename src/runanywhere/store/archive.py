"""Unpack a verified archive into a model's folder, safely.

No member may land outside the destination (absolute names, ``..``, drive letters), links may only
point at members inside the archive (they become plain copies), and device files, FIFOs and
sockets are refused. Each extracted file is hashed as it is written, so it can be published as a
content-addressed blob without being read again.
"""

from __future__ import annotations

import os
import stat
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, cast

from ..errors import IntegrityError, UnsafeArchiveError
from .hashing import Readable, copy_hashing, write_all


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


def extract(archive: Path, kind: str, dest: Path) -> list[Extracted]:
    """Extract ``archive`` (``tar.gz``/``tar.bz2``/``tar.xz``/``zip``) into the empty ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    if kind == "zip":
        return _extract_zip(archive, dest)
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
                    done[rel] = _copy_of(done, rel, target, dest, "link")
                    continue
                if not m.isfile():
                    raise UnsafeArchiveError(f"archive member {rel!r} is a device, FIFO or other"
                                             " special file")
                src = tar.extractfile(m)
                if src is None:
                    raise UnsafeArchiveError(f"archive member {rel!r} cannot be read")
                with src:
                    done[rel] = _write(src, dest, rel)
    except (tarfile.TarError, EOFError, OSError) as e:
        if isinstance(e, FileExistsError):
            raise UnsafeArchiveError(f"archive member clashes with another: {e}") from e
        raise IntegrityError(f"cannot unpack {archive.name}: {e}") from e
    return list(done.values())


def _extract_zip(archive: Path, dest: Path) -> list[Extracted]:
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
                with zf.open(info) as src:
                    done[rel] = _write(src, dest, rel)
    except (zipfile.BadZipFile, OSError) as e:
        raise IntegrityError(f"cannot unpack {archive.name}: {e}") from e
    return list(done.values())
