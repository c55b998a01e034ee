"""``SharedTier``: a team cache on S3-compatible object storage, keyed by sha256.

Read path (a local miss): ``HEAD <prefix>/blobs/sha256/<hex>``; on a hit :meth:`SharedTier.locate`
returns a presigned GET URL. The tier does not download: the caller fetches that URL with its own
downloader (parallel ranges, resume, hashing as bytes land) and reports back. The store is never
trusted: a size or sha256 that differs from the catalog's is reported with
:meth:`~SharedTier.report_corrupt` (the object is not used again by this process, and the verified
origin bytes overwrite it later).

Write path (after a publish of origin bytes): :meth:`~SharedTier.upload_blob`, see ``upload.py``.

Fleet single-flight: on a miss, ``locate(lead=True)`` may take the lease (``lease.py``); the caller
then fetches the origin and ends with ``upload_blob`` or ``release``. Followers wait for the blob
(polling 0.25 s, growing to 1 s) while the lease keeps beating, for at most ``wait`` s. On a
store without conditional writes every machine "wins", which is the plain behaviour without a
shared tier.

Credentials that may read but not write (a 403 on a PUT) make the tier read-only for the
process, with one warning: hits are still served, nothing is uploaded, no lease is taken.

Failure policy: each S3 call is tried again under ``SharedConfig.retry`` (a throttle, a 5xx, a
dropped connection); any other error of the store, or the last, (down, slow, wrong credentials,
wrong region) makes the tier step aside for ``SharedConfig.step_aside`` s (default 60) with one
warning per process; the caller then uses the origin. Connections to the store time out after
3 s. Every setting is in one :class:`~.config.SharedConfig`.
"""

from __future__ import annotations

import atexit
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import DownloadCancelledError, RuntimeUnavailableError
from ..logs import log, warn_once
from .client import Bucket, Conflict, LocalMismatch, ObjectInfo, ReadOnly, describe
from .config import SharedConfig
from .lease import Lease, holder, lease_body
from .location import SharedLocation, is_sha256
from .upload import put_blob

MiB = 2**20


@dataclass
class SharedStats:
    """What the tier did in this process (for tests, benchmarks and ``--debug``)."""

    hits: int = 0
    misses: int = 0
    bytes_fetched: int = 0
    uploaded: int = 0
    bytes_uploaded: int = 0
    exists: int = 0
    failed: int = 0
    corrupt: int = 0
    led: int = 0
    waited: float = 0.0


@dataclass(frozen=True)
class BlobSource:
    """Where a blob can be read: a presigned URL, and the settings to read it with."""

    sha256: str
    size: int
    url: str
    #: ``s3://bucket/key``, to name the object in messages instead of the (secret) URL.
    label: str
    #: A connection slower than this (bytes/s over ``stall_window`` s) counts as failed: the
    #: origin is usually better.
    min_speed: float
    stall_window: float


class SharedTier:
    """The shared cache at ``s3://bucket/prefix``. Thread-safe; every method is blocking."""

    def __init__(self, location: str | SharedLocation, config: SharedConfig | None = None
                 ) -> None:
        self.location = (location if isinstance(location, SharedLocation)
                         else SharedLocation.parse(location))
        self.config = config = config or SharedConfig()
        self.upload_concurrency = max(1, config.upload_concurrency)
        self.bucket = Bucket(self.location, config)
        self.part_size = max(5 * MiB, config.part_size)
        self.stats = SharedStats()
        self.last_error: str | None = None
        self._lock = threading.RLock()
        self._down_until = 0.0
        self._disabled = False
        self._read_only = False
        self._fetched: set[str] = set()
        self._corrupt: set[str] = set()
        self._leases: dict[str, Lease] = {}
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._atexit = False

    def __repr__(self) -> str:
        return f"SharedTier({self.location.url()!r})"

    # -- state -----------------------------------------------------------------------------------
    def check(self) -> None:
        """Build the client now (raises RuntimeUnavailableError if boto3 is missing)."""
        self.bucket.client()

    def usable(self) -> bool:
        """False while the tier steps aside after a failure (or for good without boto3)."""
        return not self._disabled and time.monotonic() >= self._down_until

    def served(self, sha256: str) -> bool:
        """Did this process get these bytes from the shared tier?"""
        return sha256.lower() in self._fetched

    def leases(self) -> list[str]:
        """The blobs this process holds the fleet lease for."""
        with self._lock:
            return sorted(self._leases)

    def close(self) -> None:
        """Release every lease (their lock objects are deleted)."""
        with self._lock:
            leases, self._leases = list(self._leases.values()), {}
        for lease in leases:
            lease.release()

    # -- read path -------------------------------------------------------------------------------
    def locate(self, sha256: str, size: int | None, *, cancel: threading.Event,
               lead: bool = False, on_wait: Callable[[str], None] | None = None
               ) -> BlobSource | None:
        """Where the blob can be read, or None on a miss (or when the tier cannot help).

        ``size`` None: the catalog knows only an estimate, so the object's size is taken (the
        sha256 still decides what is kept) and returned in the ``BlobSource``.

        With ``lead=True`` a miss takes the fleet lease when nobody holds it (the caller then
        fetches the origin and must end with :meth:`upload_blob` or :meth:`release`); without
        it, a miss only waits for a lease somebody else holds. ``on_wait(message)`` says whom
        we wait for. Raises only ``DownloadCancelledError``.
        """
        sha = sha256.lower()
        if not is_sha256(sha) or (size is not None and size <= 0) or not self.usable():
            return None
        with self._lock:
            if sha in self._corrupt or sha in self._leases:
                return None  # known bad here, or we are the ones fetching it from the origin
        key = self.location.blob_key(sha)
        try:
            obj = self._head(key)
            if obj is None:
                obj = self._await_blob(sha, cancel, lead, on_wait)
                if obj is None:
                    self.stats.misses += 1
                    return None
            if size is not None and obj.size != size:
                self.report_corrupt(sha, f"it has {obj.size} bytes, the catalog says {size}")
                return None
            if obj.size <= 0:
                self.report_corrupt(sha, "it is empty")
                return None
            # Long enough for a slow link, within SigV4's 7-day limit.
            expires = int(min(7 * 86400, 3600 + obj.size / MiB))
            url = self.bucket.presigned_get(key, expires)
        except DownloadCancelledError:
            raise
        except Exception as e:
            self._step_aside("lookup", e)
            return None
        return BlobSource(sha, obj.size, url, self.location.url(key), self.config.min_speed,
                          self.config.stall_window)

    def note_served(self, source: BlobSource) -> None:
        """The caller verified and kept the bytes of ``source``."""
        with self._lock:
            self._fetched.add(source.sha256)
        self.stats.hits += 1
        self.stats.bytes_fetched += source.size

    def note_failed(self, source: BlobSource, message: str, *, corrupt: bool) -> None:
        """Reading ``source`` failed: wrong bytes (``corrupt``) or the store misbehaved."""
        if corrupt:
            self.report_corrupt(source.sha256, message)
        else:
            self._step_aside("download", RuntimeError(message))

    def report_corrupt(self, sha: str, reason: str) -> None:
        with self._lock:
            self._corrupt.add(sha)
        self.stats.corrupt += 1
        log.warning("shared cache object %s is corrupt (%s): not used, fetching from the origin"
                    " instead", self.location.url(self.location.blob_key(sha)), reason)

    def _head(self, key: str) -> ObjectInfo | None:
        return self.bucket.head(key)

    def _await_blob(self, sha: str, cancel: threading.Event, lead: bool,
                    on_wait: Callable[[str], None] | None) -> ObjectInfo | None:
        """After a miss: take the lease, or wait while another machine holds it."""
        if self.location.wait <= 0:
            return None
        key = self.location.blob_key(sha)
        start = time.monotonic()
        deadline = start + self.location.wait
        seen_etag, seen_at = "", start
        delay = self.config.poll_interval
        told, first = False, True
        lead = lead and not self._read_only
        try:
            while True:
                if not first:
                    obj = self._head(key)
                    if obj is not None:
                        return obj
                first = False
                lock = self.bucket.get_small(self.location.lock_key(sha))
                now = time.monotonic()
                stale = lock is not None and lock.etag == seen_etag and (
                    now - seen_at >= self.location.stale)
                if lock is None or stale:
                    if not lead:
                        return None
                    if lock is not None:
                        log.info("lease on %s by %s went stale; taking it over", sha[:12],
                                 holder(lock))
                    try:
                        won = self._try_lead(sha, lock.etag if lock else None)
                    except ReadOnly as e:
                        self._note_read_only(e)
                        return None
                    if won:
                        obj = self._head(key)  # it may have landed between our two looks
                        if obj is not None:
                            self.release(sha)
                        return obj
                    seen_etag, seen_at = "", now
                    continue
                if lock.etag != seen_etag:
                    seen_etag, seen_at = lock.etag, now
                if now >= deadline:
                    log.warning("waited %.0fs for %s to fetch %s from the origin; fetching it"
                                " here too", now - start, holder(lock), sha[:12])
                    return None
                if not told and on_wait is not None:
                    on_wait(f"waiting for {holder(lock)} to fetch {sha[:12]} from the origin")
                    told = True
                if cancel.wait(delay):
                    raise DownloadCancelledError("download cancelled")
                delay = min(delay * 1.5, self.config.max_poll_interval)
        finally:
            self.stats.waited += time.monotonic() - start

    # -- the lease -------------------------------------------------------------------------------
    def _try_lead(self, sha: str, stale_etag: str | None) -> bool:
        try:
            etag = self.bucket.put_small(self.location.lock_key(sha), lease_body(self._owner, 0),
                                         create=stale_etag is None, if_match=stale_etag)
        except Conflict:
            return False
        with self._lock:
            self._leases[sha] = Lease(self.bucket, self.location.lock_key(sha), etag,
                                      self._owner, every=self.location.stale / 3,
                                      join_timeout=self.config.read_timeout + 5)
            if not self._atexit:
                atexit.register(self.close)
                self._atexit = True
        self.stats.led += 1
        log.info("%s: took the fleet lease; fetching it from the origin for the team",
                 sha[:12])
        return True

    def hold(self, sha256: str, seconds: float | None) -> None:
        """Keep our lease on ``sha256`` for at most ``seconds`` more (None: until released)."""
        with self._lock:
            lease = self._leases.get(sha256.lower())
        if lease is not None:
            lease.hold(seconds)

    def release(self, sha256: str) -> None:
        """Give up our lease on ``sha256`` (no-op without one)."""
        with self._lock:
            lease = self._leases.pop(sha256.lower(), None)
        if lease is not None:
            lease.release()

    # -- write path ------------------------------------------------------------------------------
    def upload_blob(self, sha256: str, path: Path | str, size: int) -> str:
        """Put verified bytes in the shared tier: ``"uploaded"``, ``"exists"`` or ``"failed"``.

        Never raises; releases our lease on the blob whatever happens.
        """
        sha = sha256.lower()
        try:
            if not is_sha256(sha):
                return "failed"
            if sha in self._fetched:
                return "exists"  # it came from there a moment ago
            if not self.usable() or self._read_only:
                self.stats.failed += 1
                return "failed"
            self.hold(sha, None)
            return self._upload(sha, Path(path), size)
        finally:
            self.release(sha)

    def _upload(self, sha: str, path: Path, size: int) -> str:
        with self._lock:
            overwrite = sha in self._corrupt
        key = self.location.blob_key(sha)
        try:
            if not overwrite:
                obj = self._head(key)
                if obj is not None and obj.size == size:
                    self.stats.exists += 1
                    return "exists"
                if obj is not None:
                    self.report_corrupt(sha, f"it has {obj.size} bytes, not {size}")
                    overwrite = True
            result = put_blob(self.bucket, key, sha, path, size, overwrite=overwrite,
                              multipart_threshold=self.config.multipart_threshold,
                              part_size=self.part_size, concurrency=self.upload_concurrency)
        except LocalMismatch as e:
            log.warning("not uploading %s to the shared cache: %s", sha[:12], e)
            self.stats.failed += 1
            return "failed"
        except ReadOnly as e:
            self._note_read_only(e)
            self.stats.failed += 1
            return "failed"
        except Exception as e:
            self._step_aside("upload", e)
            return "failed"
        if result == "uploaded":
            with self._lock:
                self._corrupt.discard(sha)
            self.stats.uploaded += 1
            self.stats.bytes_uploaded += size
            if overwrite:
                log.warning("replaced the corrupt shared cache object %s with verified bytes",
                            self.location.url(key))
        else:
            self.stats.exists += 1
        return result

    # -- presence (for ``cache ls``) -------------------------------------------------------------
    def exists(self, sha256: str, size: int | None = None) -> bool | None:
        """Is the blob in the shared tier (with this size)? None when the tier cannot tell."""
        if not self.usable():
            return None
        try:
            obj = self._head(self.location.blob_key(sha256.lower()))
        except Exception as e:
            self._step_aside("lookup", e)
            return None
        return obj is not None and (size is None or obj.size == size)

    # -- failures --------------------------------------------------------------------------------
    def _note_read_only(self, e: BaseException) -> None:
        self._read_only = True
        warn_once(f"shared-ro:{self.location.url()}:{self.bucket.endpoint()}",
                  "shared cache %s is read-only for these credentials (%s): using it to read,"
                  " not uploading to it", self.location.url(), e)

    def _step_aside(self, action: str, e: BaseException) -> None:
        reason = describe(e)
        self.last_error = f"{action}: {reason}"
        self.stats.failed += 1
        if isinstance(e, RuntimeUnavailableError):
            self._disabled = True
        else:
            self._down_until = time.monotonic() + self.config.step_aside
        if self.config.warn:
            warn_once(f"shared:{self.location.url()}:{self.bucket.endpoint()}",
                      "shared cache %s is not usable (%s failed: %s); using the origin instead",
                      self.location.url(), action, reason)
