"""sha256 of a file being written out of order, computed while it downloads.

Network threads ``pwrite`` pieces anywhere in the partial file. The hash must see the bytes in
file order, so it follows the contiguous prefix of written bytes: a writer whose piece is the next
one in order hands it over from memory (:meth:`PrefixHasher.offer`, never waiting); everything else
is read back from the file (from the page cache) by one thread (:meth:`PrefixHasher.follow`) as
the prefix grows. The hash is ready a moment after the last byte, and a large file is never read a
second time afterwards.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable

MiB = 2**20


class PrefixHasher:
    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._hasher = hashlib.sha256()
        self.hashed = 0
        #: Guards the hasher: the follower thread and, for in-order bytes, the writers.
        self._lock = threading.Lock()

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
                n = os.preadv(self.fd, [buf[: min(len(buf), upto - self.hashed)]], self.hashed)
                if n <= 0:
                    raise OSError(f"the partial file ended at byte {self.hashed} while hashing")
                self._hasher.update(buf[:n])
                self.hashed += n

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

    def reset(self) -> None:
        with self._lock:
            self._hasher = hashlib.sha256()
            self.hashed = 0
