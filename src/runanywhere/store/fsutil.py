"""Small filesystem primitives with the durability the cache promises."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

from ..errors import CacheError, InsufficientStorageError
from ..settings import TEST_HOOKS


def random_hex(n: int) -> str:
    """``n`` random hex digits for a temporary name (``uuid4().hex[:n]`` without importing
    uuid: a cached answer's start pays for every module the cache imports)."""
    return os.urandom((n + 1) // 2).hex()[:n]


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
                import shutil  # shutil (bz2, lzma, fnmatch): on use, as below

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
    tmp = path.with_name(f".{path.name}.{random_hex(8)}.tmp")
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
    tmp = dst.with_name(f".{dst.name}.{random_hex(8)}.tmp")
    import shutil

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
    tmp = dst.with_name(f".{dst.name}.{random_hex(8)}.tmp")
    try:
        link_or_copy(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def remove_tree(path: Path) -> None:
    import shutil

    with contextlib.suppress(FileNotFoundError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink()


def file_bytes(st: os.stat_result) -> int:
    """The bytes a file holds on the disk, in the unit ``cache size`` uses: its length, or its
    allocated blocks if fewer (a sparse partial). Folders and links count nothing."""
    if not stat.S_ISREG(st.st_mode):
        return 0
    return min(st.st_size, st.st_blocks * 512)


def unlink_counted(path: Path) -> int:
    """Unlink a file (or link); returns the bytes this freed on the disk: the file's bytes if
    this was its last name (a blob and a model file are often two names of one inode), else 0."""
    try:
        st = os.lstat(path)
        os.unlink(path)
    except FileNotFoundError:
        return 0
    return file_bytes(st) if st.st_nlink <= 1 else 0


def remove_tree_counted(path: Path) -> int:
    """``remove_tree`` that returns the bytes freed on the disk (see :func:`unlink_counted`).
    Files that cannot be removed are left (and not counted)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return 0
    if not stat.S_ISDIR(st.st_mode):
        with contextlib.suppress(OSError):
            return unlink_counted(path)
        return 0
    freed = 0
    for root, dirs, files in os.walk(path, topdown=False):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            with contextlib.suppress(OSError):
                freed += unlink_counted(Path(root, name))
        for name in dirs:
            with contextlib.suppress(OSError):
                os.rmdir(Path(root, name))
    with contextlib.suppress(OSError):
        os.rmdir(path)
    return freed


def bytes_freed_by(paths: list[Path]) -> int:
    """What removing all of ``paths`` (files or folders, recursively) would free on the disk:
    the bytes of every file all of whose names are among them (a prune's plan, made before
    anything is removed; :func:`unlink_counted` counts the removal itself the same way)."""
    names: dict[tuple[int, int], list[int]] = {}  # inode -> [names seen, st_nlink, bytes]
    seen: set[str] = set()

    def add(p: str) -> None:
        if p in seen:  # listed twice, or inside a listed folder: one name, counted once
            return
        seen.add(p)
        try:
            st = os.lstat(p)
        except OSError:
            return
        if stat.S_ISDIR(st.st_mode):
            with contextlib.suppress(OSError):
                for name in os.listdir(p):
                    add(os.path.join(p, name))
            return
        rec = names.setdefault((st.st_dev, st.st_ino), [0, st.st_nlink, file_bytes(st)])
        rec[0] += 1

    for p in paths:
        add(os.path.normpath(str(p)))
    return sum(size for count, nlink, size in names.values() if count >= nlink)


def is_writable_dir(path: Path) -> bool:
    """Can we create files in ``path`` (creating it if needed)? Tests real writes, not modes."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o755)  # never world-writable, whatever
        probe = path / f".probe-{random_hex(8)}"
        probe.write_bytes(b"")
        probe.unlink()
        return True
    except OSError:
        return False


def planted_link(root: Path, path: Path) -> Path | None:
    """The first folder on the way from ``root`` (not included) to ``path`` (not included) that
    is a symbolic link or not a folder at all, else None (a missing one ends the way: nothing
    past it can be followed). ``path`` must lie under ``root``. Where the store expects its own
    folders, a link planted there must never be followed: that would read or write elsewhere.
    (Strings, not pathlib: a disk hit makes this walk, a few microseconds.)"""
    top, full = os.fspath(root).rstrip(os.sep), os.fspath(path)
    if not full.startswith(top + os.sep):
        raise ValueError(f"{path} is not under {root}")
    cur = top
    for part in full[len(top) + 1:].split(os.sep)[:-1]:
        cur = f"{cur}{os.sep}{part}"
        try:
            st = os.lstat(cur)
        except FileNotFoundError:
            return None
        except OSError:
            return Path(cur)
        if not stat.S_ISDIR(st.st_mode):
            return Path(cur)
    return None


def real_dirs(root: Path, folder: Path, set_aside: Callable[[Path], object]) -> None:
    """Make ``folder`` (under ``root``) a real folder, and every folder on the way to it: one
    that is a link or a file is handed to ``set_aside`` (which moves the link itself, never
    what it points to) and made anew."""
    cur = root
    for part in folder.relative_to(root).parts:
        cur = cur / part
        try:
            st = os.lstat(cur)
        except FileNotFoundError:
            cur.mkdir(mode=0o755, exist_ok=True)
            continue
        if not stat.S_ISDIR(st.st_mode):
            set_aside(cur)
            cur.mkdir(mode=0o755, exist_ok=True)


def read_own(path: Path) -> bytes:
    """The bytes of a file of ours, never through a link planted in its place (``OSError``)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read()
    finally:
        os.close(fd)


def regular_stat(path: Path) -> os.stat_result | None:
    """``lstat`` of a regular file (not a link, not a folder), else None."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st if stat.S_ISREG(st.st_mode) else None


def same_file(a: Path, b: Path) -> bool:
    """Are ``a`` (a regular file) and ``b`` the same inode?"""
    try:
        sa, sb = os.lstat(a), os.lstat(b)
    except OSError:
        return False
    return stat.S_ISREG(sa.st_mode) and (sa.st_ino, sa.st_dev) == (sb.st_ino, sb.st_dev)

