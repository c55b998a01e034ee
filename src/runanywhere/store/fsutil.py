"""Small filesystem primitives with the durability the cache promises."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import time
import uuid
from pathlib import Path

from ..errors import CacheError, InsufficientStorageError
from ..settings import TEST_HOOKS


def crash_point(step: str) -> None:
    """Test hook (``settings.TestHooks``): hang at the named step so a test can ``kill -9``."""
    if TEST_HOOKS.crash_at is None or step != TEST_HOOKS.crash_at:
        return
    marker = TEST_HOOKS.crash_marker
    if marker:
        with open(marker, "a") as f:
            f.write(step + "\n")
    while True:  # wait for the SIGKILL
        time.sleep(3600)


def is_enospc(e: BaseException) -> bool:
    return isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)


def disk_error(e: OSError, doing: str, where: Path | None = None
               ) -> CacheError | InsufficientStorageError:
    """A local disk failure, typed (the one ENOSPC mapper): never retried as if the network had
    failed. ``where`` (a folder) adds the free space to a disk-full error."""
    if is_enospc(e):
        free = 0
        if where is not None:
            with contextlib.suppress(OSError):
                free = shutil.disk_usage(where).free
        return InsufficientStorageError(
            f"disk full: no space left in {where or 'the cache'} while {doing}"
            f" ({e.strerror or e})",
            available=free)
    return CacheError(f"disk error while {doing}: {e.strerror or e}")


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink inside ``path`` durable."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Write ``data`` to ``path`` so readers see the old or the new file, never a torn one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if durable:
        fsync_dir(path.parent)


def copy_file(src: Path, dst: Path, *, durable: bool = True) -> None:
    """Copy through a temporary name (readers never see half a file), keeping the mtime."""
    tmp = dst.with_name(f".{dst.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(src, "rb") as fi, open(tmp, "wb") as fo:
            shutil.copyfileobj(fi, fo, 4 << 20)
            if durable:
                fo.flush()
                os.fsync(fo.fileno())
        st = os.stat(src)
        os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.replace(tmp, dst)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def link_or_copy(src: Path, dst: Path, *, durable: bool = True) -> None:
    """Hard-link ``src`` at ``dst``; copy where links are impossible (other filesystem, FAT)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst, follow_symlinks=False)
        return
    except FileExistsError:
        raise
    except OSError as e:
        if is_enospc(e) or e.errno == errno.ENOENT:
            raise
    copy_file(src, dst, durable=durable)


def replace_with_link(src: Path, dst: Path) -> None:
    """Atomically make ``dst`` another name of ``src`` (a copy where links are impossible)."""
    tmp = dst.with_name(f".{dst.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        link_or_copy(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def remove_tree(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink()


def is_writable_dir(path: Path) -> bool:
    """Can we create files in ``path`` (creating it if needed)? Tests real writes, not modes."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".probe-{uuid.uuid4().hex[:8]}"
        probe.write_bytes(b"")
        probe.unlink()
        return True
    except OSError:
        return False
