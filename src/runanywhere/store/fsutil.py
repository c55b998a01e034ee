"""Small filesystem primitives with the durability the cache promises, plus its file locks."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from ..errors import CacheError, InsufficientStorageError

#: Test hook: ``RUNANYWHERE_CRASH_AT=<step>`` makes the process write the step's name (and a
#: newline) to the file ``RUNANYWHERE_CRASH_MARKER`` (``/dev/stdout`` works) and hang at that named
#: step, so a test can ``kill -9`` it at an exact point.
_CRASH_AT = os.environ.get("RUNANYWHERE_CRASH_AT")


class CacheBusy(CacheError):
    """Another process holds the cache index (or a cache lock) longer than the timeout."""


def crash_point(step: str) -> None:
    if _CRASH_AT is None or step != _CRASH_AT:
        return
    marker = os.environ.get("RUNANYWHERE_CRASH_MARKER")
    if marker:
        with open(marker, "a") as f:
            f.write(step + "\n")
    while True:  # wait for the SIGKILL
        time.sleep(3600)


def is_enospc(e: BaseException) -> bool:
    return isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)


def no_space(e: OSError, where: Path) -> InsufficientStorageError:
    try:
        free = shutil.disk_usage(where).free
    except OSError:
        free = 0
    return InsufficientStorageError(f"no space left in {where} ({e.strerror})", available=free)


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


def file_sha256(path: Path, *, chunk: int = 4 << 20) -> str:
    import hashlib

    h = hashlib.sha256()
    buf = bytearray(chunk)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


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


# -- advisory locks (flock: released by the kernel when a process dies) ---------------------------
def _acquire(fd: int, mode: int, timeout: float | None, what: Path) -> None:
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        if timeout is None:
            fcntl.flock(fd, mode)
            return
    deadline = time.monotonic() + timeout
    delay = 0.002
    while True:  # flock has no timeout of its own: poll with a growing delay
        time.sleep(delay)
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise CacheBusy(f"{what.name} is held by another process for more than"
                                f" {timeout:g}s") from None
            delay = min(delay * 2, 0.05)


@contextlib.contextmanager
def flocked(path: Path, *, shared: bool = False, timeout: float | None = None) -> Iterator[None]:
    """Hold ``flock`` on ``path`` (created if needed); ``CacheBusy`` after ``timeout`` seconds."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _acquire(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX, timeout, path)
        yield
    finally:
        os.close(fd)


def try_flock(path: Path, *, shared: bool = False) -> int | None:
    """An fd holding the lock, or None if someone else holds it (or it cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return None
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        return fd
    except OSError:
        os.close(fd)
        return None
