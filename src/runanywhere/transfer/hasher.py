"""sha256 of a file being written out of order, computed while it downloads.

Network threads ``pwrite`` pieces anywhere in the partial file. The hash must see the bytes in
file order, so it follows the contiguous prefix of written bytes: a writer whose piece is the next
one in order hands it over from memory (:meth:`PrefixHasher.offer`, never waiting); everything else
is read back from the file (from the page cache) by one thread (:meth:`PrefixHasher.follow`) as
the prefix grows. The hash is ready a moment after the last byte, and a large file is never read a
second time afterwards.

With several streams most bytes land out of order, so most are read back: through a read-only
``mmap`` of the file, whose page-cache pages sha256 reads in place (its page tables filled in
one call, ``MADV_POPULATE_READ``), rather than ``pread`` copying each byte into a buffer first
(that copy was 0.17 CPU s per GiB of a 2 GiB download, ``bench/profile.py``). Where a file
cannot be mapped, ``pread`` it is. The file is never truncated while mapped: :meth:`reset` takes
the same lock as the reading and runs the caller's truncation under it. A page the kernel cannot
read (a disk error, a file cut short by someone else) would kill the process with ``SIGBUS`` when
touched; populating the window first turns that into an error (``EFAULT``, ``EIO``), raised as
an ``OSError`` the fetch reports, before sha256 touches a page.
"""

from __future__ import annotations

import errno
import hashlib
import mmap
import os
import threading
from collections.abc import Callable

MiB = 2**20
#: The most of the file mapped at once. The pages are the page cache's, but the ones touched
#: count in the process's RSS while mapped: 8 MiB keeps that small (64 MiB took a download's
#: peak RSS from 54 to 118 MiB), and one map per 8 MiB costs nothing next to hashing it.
MAP_WINDOW = 8 * MiB
#: ``madvise(MADV_POPULATE_READ)`` (Linux 5.14; Python names it from 3.12 on).
_POPULATE_READ = getattr(mmap, "MADV_POPULATE_READ", 22)
#: What ``madvise`` answers where populating is not supported (an older kernel): the pages are
#: then faulted in one by one as sha256 reads them.
_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP}


class PrefixHasher:
    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._hasher = hashlib.sha256()
        self.hashed = 0
        #: Guards the hasher: the follower thread and, for in-order bytes, the writers.
        self._lock = threading.Lock()
        #: Whether reading back maps the file (None: not tried yet).
        self._mapped: bool | None = None

    def offer(self, pos: int, data: memoryview) -> None:
        """Hash bytes just written at ``pos`` from memory if they are the next ones in order.

        Never waits: if the follower is busy, it reads these bytes back from the file later.
        """
        if pos != self.hashed or not self._lock.acquire(blocking=False):
            return
        try:
            if pos == self.hashed:
                self._hasher.update(data)
                self.hashed += len(data)
        finally:
            self._lock.release()

    def catch_up(self, upto: int, buf: memoryview) -> None:
        """Hash the file's bytes from where the hash stands up to ``upto``, reading them back."""
        with self._lock:
            while self.hashed < upto:
                if self._mapped is not False:
                    try:
                        self._hash_mapped(upto)
                        self._mapped = True
                        continue
                    except (OSError, ValueError):
                        if self._mapped:
                            raise  # mapping worked before: a real read failure
                        self._mapped = False  # this file system does not map: read it back
                n = os.preadv(self.fd, [buf[: min(len(buf), upto - self.hashed)]], self.hashed)
                if n <= 0:
                    raise OSError(f"the partial file ended at byte {self.hashed} while hashing")
                self._hasher.update(buf[:n])
                self.hashed += n

    def _hash_mapped(self, upto: int) -> None:
        """Hash up to ``MAP_WINDOW`` bytes from where the hash stands, in place in the page
        cache (called with the lock held)."""
        base = self.hashed - self.hashed % mmap.ALLOCATIONGRANULARITY
        end = min(upto, base + MAP_WINDOW)
        with mmap.mmap(self.fd, end - base, prot=mmap.PROT_READ, offset=base) as m:
            try:
                m.madvise(_POPULATE_READ)
            except OSError as e:
                if e.errno not in _UNSUPPORTED:
                    raise  # a page that cannot be read: an error now, not SIGBUS below
            view = memoryview(m)
            try:
                self._hasher.update(view[self.hashed - base:])
            finally:
                view.release()
        self.hashed = end

    def follow(self, prefix_end: Callable[[], int], wait: Callable[[float], object],
               stop: threading.Event) -> None:
        """Thread body: keep the hash up with ``prefix_end()`` until ``stop`` is set.

        ``wait(seconds)`` blocks until more bytes may have arrived (a condition variable).
        """
        buf = memoryview(bytearray(4 * MiB))
        while True:
            upto = prefix_end()
            if upto <= self.hashed:
                if stop.is_set():
                    return
                wait(0.05)
                continue
            try:
                self.catch_up(upto, buf)
            except OSError:
                return  # the writers failed first; the final check reports what is missing

    def finish(self, size: int) -> str:
        """The digest of the first ``size`` bytes (reads back whatever is not hashed yet)."""
        self.catch_up(size, memoryview(bytearray(4 * MiB)))
        return self._hasher.hexdigest()

    def reset(self, truncate: Callable[[], None] = lambda: None) -> None:
        """Start the hash over; ``truncate`` (the partial's reset) runs under the lock, so the
        file never shrinks under a mapping being read."""
        with self._lock:
            truncate()
            self._hasher = hashlib.sha256()
            self.hashed = 0
