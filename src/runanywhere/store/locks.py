"""The cache's lock files: the one place that names them, and the one way to wait for one.

All are ``flock`` locks on files in ``locks/`` (the kernel drops them when a process dies, so a
crash never leaves a lock behind)::

    index.lock          exclusive while a process opens (and maybe rebuilds) the index
    gc.lock             shared by publishers, exclusive while blobs are garbage-collected
    model-<id>.lock     exclusive while a model is published, removed or its strays pruned
    use-<id>.lock       shared by every process using the model; exclusive to evict it
    download-<id>.lock  exclusive while one process downloads the model (an optimisation only:
                        partials have one writer each and publishing is idempotent)
    sources.lock        exclusive while ``sources.json`` (where pulled URLs came from) changes

Lock files are opened with ``O_NOFOLLOW`` (a link planted in their place is never followed)
and named only from checked model ids (``layout.check_id``).

``flock`` has no timeout: waiting polls with a growing delay, gives up with ``CacheBusy`` after
the timeout, and stops early on a cancel event or when the caller's ``done`` check says the lock
is no longer needed (another process finished the work).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from ..errors import CacheBusy, DownloadCancelledError
from .layout import check_id

#: How a lock file is opened: created if missing, never through a planted link.
_OPEN = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW


def _acquire(fd: int, *, shared: bool, timeout: float | None, what: str,
             cancel: threading.Event | None = None, done: Callable[[], bool] | None = None,
             max_delay: float = 0.05) -> bool:
    """Take the flock on ``fd``: True once held, False if ``done()`` turned true first."""
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.002
    while True:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            pass
        if done is not None and done():
            return False
        if deadline is not None and time.monotonic() >= deadline:
            raise CacheBusy(f"{what} is held by another process for more than {timeout:g}s")
        if cancel is not None:
            if cancel.wait(delay):
                raise DownloadCancelledError(f"cancelled while waiting for {what}")
        else:
            time.sleep(delay)
        delay = min(delay * 1.5, max_delay)


@contextlib.contextmanager
def flocked(path: Path, *, shared: bool = False, timeout: float | None = None) -> Iterator[None]:
    """Hold ``flock`` on ``path`` (created if needed); ``CacheBusy`` after ``timeout`` seconds."""
    fd = os.open(path, _OPEN, 0o644)
    try:
        _acquire(fd, shared=shared, timeout=timeout, what=path.name)
        yield
    finally:
        os.close(fd)


def try_flock(path: Path, *, shared: bool = False) -> int | None:
    """An fd holding the lock, or None if someone else holds it (or it cannot be opened)."""
    try:
        fd = os.open(path, _OPEN, 0o644)
    except OSError:
        return None
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        return fd
    except OSError:
        os.close(fd)
        return None


class Locks:
    """The lock files of one cache folder (see the module doc)."""

    def __init__(self, folder: Path, timeout: float) -> None:
        self.folder = folder
        self.timeout = timeout

    def _path(self, name: str) -> Path:
        return self.folder / f"{name}.lock"

    def index(self) -> contextlib.AbstractContextManager[None]:
        return flocked(self._path("index"), timeout=self.timeout)

    def gc(self, *, shared: bool = False) -> contextlib.AbstractContextManager[None]:
        return flocked(self._path("gc"), shared=shared, timeout=self.timeout)

    def sources(self) -> contextlib.AbstractContextManager[None]:
        return flocked(self._path("sources"), timeout=self.timeout)

    def model(self, model_id: str) -> contextlib.AbstractContextManager[None]:
        return flocked(self._path(f"model-{check_id(model_id)}"), timeout=self.timeout)

    def try_model(self, model_id: str) -> int | None:
        return try_flock(self._path(f"model-{check_id(model_id)}"))

    # -- use and eviction ------------------------------------------------------------------------
    def try_evict(self, model_id: str) -> int | None:
        """The model's use lock, exclusively (nobody uses it), or None."""
        return try_flock(self._path(f"use-{check_id(model_id)}"))

    def used_elsewhere(self, model_id: str) -> bool:
        """Does any process hold the model (this one included, through another fd)?"""
        fd = self.try_evict(model_id)
        if fd is None:
            return True
        os.close(fd)
        return False

    def hold_use(self, model_id: str) -> int:
        """Take the model's use lock shared (waits while an eviction of it runs); returns the fd
        to close to release it, or -1 where no lock file can exist (then nobody can evict)."""
        path = self._path(f"use-{check_id(model_id)}")
        try:
            fd = os.open(path, _OPEN, 0o644)
        except OSError:
            try:  # a read-only cache: a shared flock needs only a readable file
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            except OSError:
                return -1
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
        except BaseException:
            os.close(fd)
            raise
        return fd

    # -- downloads -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def download(self, model_id: str, *, cancel: threading.Event,
                 done: Callable[[], bool]) -> Iterator[bool]:
        """Hold the model's download lock (yields True), or yield False as soon as ``done()``
        says another process finished the download while we waited."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o755)  # someone may have removed it
        fd = os.open(self._path(f"download-{check_id(model_id)}"), _OPEN, 0o644)
        try:
            yield _acquire(fd, shared=False, timeout=None, what=f"the download of {model_id}",
                           cancel=cancel, done=done, max_delay=0.25)
        finally:
            os.close(fd)  # releases the flock
