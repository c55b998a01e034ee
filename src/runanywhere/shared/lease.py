"""The fleet lease: "this machine is fetching <hex> from the origin", kept alive by heartbeats.

A machine that misses on a blob creates ``<prefix>/locks/<hex>`` with ``If-None-Match: *``. The
one that wins fetches the origin, re-writes the lock every ``stale / 3`` s with ``If-Match`` (a
heartbeat; losing it means it was taken over) and deletes it after its upload. The others wait
for the blob while the lock keeps changing; a lock whose ETag has not changed for ``stale`` s
(measured on the follower's own clock: no clock skew) is taken over with ``If-Match``.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time

from ..logs import log
from .client import Bucket, Conflict, ObjectInfo


def lease_body(owner: str, beat: int) -> bytes:
    return json.dumps({"holder": owner, "host": socket.gethostname(), "pid": os.getpid(),
                       "beat": beat, "time": time.time()}).encode()


def holder(lock: ObjectInfo) -> str:
    """Who holds a lease, for messages."""
    try:
        info = json.loads(lock.body)
        return f"{info['host']} (pid {info['pid']})"
    except (ValueError, KeyError, TypeError):
        return "another machine"


class Lease:
    """A lease this process holds: a thread re-writes the lock object until released."""

    def __init__(self, bucket: Bucket, key: str, etag: str, owner: str, *, every: float,
                 join_timeout: float) -> None:
        self.bucket = bucket
        self.key = key
        self.etag = etag
        self.owner = owner
        self.every = every
        self.join_timeout = join_timeout
        self.lost = False
        self.hold_until: float | None = None  # None: keep beating until released
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True,
                                        name=f"ra-lease-{key.rsplit('/', 1)[-1][:8]}")
        self._thread.start()

    def hold(self, seconds: float | None) -> None:
        """Keep beating for at most ``seconds`` more (None: until released)."""
        self.hold_until = None if seconds is None else time.monotonic() + seconds

    def stop_beating(self) -> None:
        """Stop the heartbeat without deleting the lock (it goes stale: a crash, for tests)."""
        self._stop.set()

    def _beat(self) -> None:
        n = 0
        while not self._stop.wait(self.every):
            if self.hold_until is not None and time.monotonic() > self.hold_until:
                return  # nobody came back for it: let the lease go stale
            n += 1
            try:
                self.etag = self.bucket.put_small(self.key, lease_body(self.owner, n),
                                                  create=False, if_match=self.etag)
            except Conflict:
                self.lost = True  # taken over: someone else fetches it too now
                return
            except Exception as e:  # the store hiccups: the next beat may pass
                log.debug("lease heartbeat for %s failed: %s", self.key, e)

    def release(self) -> None:
        self._stop.set()
        self._thread.join(self.join_timeout)
        if not self.lost:
            try:
                self.bucket.delete_if_match(self.key, self.etag)
            except Exception as e:
                log.debug("could not delete the lease %s: %s", self.key, e)
