"""``SharedTier``: a team cache on S3-compatible object storage, keyed by sha256.

Read path (a local miss): ``HEAD <prefix>/blobs/sha256/<hex>``; on a hit, a presigned GET URL is
handed to our own :class:`~runanywhere.transfer.fetch.FileFetch`, so the bytes come in parallel
ranges, resume after a crash (partial key ``s3-<hex>``) and are hashed as they land. The store is
never trusted: a size or sha256 that differs from the catalog's is reported, the partial is
discarded (nothing reaches the local cache) and the origin is used; the object is marked corrupt
and the verified origin bytes overwrite it later.

Write path (after the loader published an origin download): ``HEAD`` (present: done), then one
``PUT`` with ``If-None-Match: *`` and ``x-amz-checksum-sha256`` (the server rejects bytes that
do not match), or from 64 MiB on a multipart upload (16 MiB parts, 4 in flight, a SHA256
checksum per part, the whole file re-hashed while it is read) completed with ``If-None-Match:
*``. A ``412`` (or AWS's ``409 ConditionalRequestConflict``) means another machine uploaded the
same bytes first: success. SeaweedFS 4.x and AWS enforce the condition on
``CompleteMultipartUpload`` too; a store that ignores it lets two machines overwrite the key
with the same bytes, which is harmless for a content-addressed key.

Fleet single-flight (the lease): a machine that misses on a blob creates
``<prefix>/locks/<hex>`` with ``If-None-Match: *``. The one that wins fetches the origin,
re-writes the lock every ``stale / 3`` s with ``If-Match`` (a heartbeat; losing it means it was
taken over) and deletes it after its upload. The others poll for the blob (0.25 s, growing to
1 s) while the lock keeps changing, for at most ``wait`` s (default 600); a lock whose ETag has not
changed for ``stale`` s (default 30, measured on the follower's own clock: no clock skew) is taken
over with ``If-Match``. On a store without conditional writes every machine "wins", which is
the plain behaviour without a shared tier.

Credentials that may read but not write (a 403 on a PUT) make the tier read-only for the
process, with one warning: hits are still served, nothing is uploaded, no lease is taken.

Failure policy: any other error of the store (down, slow, wrong credentials, wrong region) makes the
tier step aside for ``retry_after`` s (default 60) and logs one warning per process; the caller
then uses the origin. Connections to the store time out after 3 s; a shared-tier download
slower than 256 KiB/s per connection over 10 s counts as failed (the origin is usually better).
"""

from __future__ import annotations

import atexit
import base64
import concurrent.futures
import contextlib
import hashlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DownloadCancelledError, IntegrityError, RuntimeUnavailableError
from .location import SharedLocation, is_sha256

if TYPE_CHECKING:
    from ..transfer.fetch import FetchConfig, FetchedFile
    from ..transfer.progress import ProgressTracker

log = logging.getLogger("runanywhere")
MiB = 2**20
INSTALL_HINT = "pip install 'runanywhere[s3]'"
_LOCAL_MISMATCH_CODES = {"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch",
                         "InvalidChecksum"}

_warned: set[str] = set()
_warned_lock = threading.Lock()


def warn_once(key: str, message: str, *args: object) -> bool:
    """Log ``message`` as a warning the first time ``key`` is seen in this process."""
    with _warned_lock:
        first = key not in _warned
        _warned.add(key)
    (log.warning if first else log.debug)(message, *args)
    return first


def reset_warnings() -> None:
    """Forget which warnings were given (for tests)."""
    with _warned_lock:
        _warned.clear()


def load_boto3() -> Any:
    """Import boto3, or raise the error that names the extra to install."""
    try:
        import boto3
        import botocore.config  # noqa: F401
    except ImportError as e:
        raise RuntimeUnavailableError(
            f"the shared cache on S3 needs boto3, which is not installed: {INSTALL_HINT}") from e
    return boto3


# -- small helpers over botocore's errors (duck-typed: botocore is imported lazily) --------------
def _status(e: BaseException) -> int | None:
    resp = getattr(e, "response", None)
    if isinstance(resp, dict):
        status = resp.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if isinstance(status, int):
            return status
    return None


def _code(e: BaseException) -> str:
    resp = getattr(e, "response", None)
    if isinstance(resp, dict):
        return str(resp.get("Error", {}).get("Code", ""))
    return ""


def _is_conflict(e: BaseException) -> bool:
    """A conditional write lost: the object exists (412) or one is being written (AWS 409)."""
    return _status(e) == 412 or _code(e) in ("PreconditionFailed", "ConditionalRequestConflict")


def _is_denied(e: BaseException) -> bool:
    return _status(e) == 403 or _code(e) == "AccessDenied"


def _describe(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0][:300]


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    etag: str
    body: bytes = b""


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


class _Conflict(Exception):
    """A conditional write was refused (412/409)."""


class _ReadOnly(Exception):
    """These credentials may read the shared tier but not write to it."""


class _LocalMismatch(Exception):
    """The local file is not the blob it claims to be (size or sha256)."""


class _FetchFailed(Exception):
    def __init__(self, message: str, *, corrupt: bool) -> None:
        super().__init__(message)
        self.corrupt = corrupt


class _Lease:
    """This process fetches a blob from the origin; the lock object says so to the fleet."""

    def __init__(self, tier: SharedTier, sha256: str, etag: str) -> None:
        self.tier = tier
        self.sha256 = sha256
        self.etag = etag
        self.lost = False
        self.hold_until: float | None = None  # None: keep beating until released
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True,
                                        name=f"ra-lease-{sha256[:8]}")
        self._thread.start()

    def hold(self, seconds: float | None) -> None:
        self.hold_until = None if seconds is None else time.monotonic() + seconds

    def _beat(self) -> None:
        n = 0
        while not self._stop.wait(self.tier.location.stale / 3):
            if self.hold_until is not None and time.monotonic() > self.hold_until:
                return  # nobody came back for it: let the lease go stale
            n += 1
            try:
                self.etag = self.tier._put_lock(self.sha256, n, if_match=self.etag)
            except _Conflict:
                self.lost = True  # taken over: someone else fetches it too now
                return
            except Exception as e:  # the store hiccups: the next beat may pass
                log.debug("lease heartbeat for %s failed: %s", self.sha256[:12], e)

    def release(self) -> None:
        self._stop.set()
        self._thread.join(self.tier.read_timeout + 5)
        if not self.lost:
            self.tier._delete_lock(self.sha256, self.etag)


class SharedTier:
    """The shared cache at ``s3://bucket/prefix``. Thread-safe; every method is blocking.

    Credentials, region and endpoint come from the standard AWS chain (``AWS_ACCESS_KEY_ID``,
    ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_PROFILE``, ``AWS_REGION``,
    ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``) unless given here.
    """

    def __init__(self, location: str | SharedLocation, *, endpoint_url: str | None = None,
                 region: str | None = None, aws_access_key_id: str | None = None,
                 aws_secret_access_key: str | None = None, aws_session_token: str | None = None,
                 connect_timeout: float = 3.0, read_timeout: float = 30.0,
                 retry_after: float = 60.0, multipart_threshold: int = 64 * MiB,
                 part_size: int = 16 * MiB, upload_concurrency: int = 4,
                 min_speed: float = 256 * 1024, stall_window: float = 10.0,
                 poll_interval: float = 0.25, max_poll_interval: float = 1.0) -> None:
        self.location = (location if isinstance(location, SharedLocation)
                         else SharedLocation.parse(location))
        self.endpoint_url = endpoint_url
        self.region = region
        self._credentials = {k: v for k, v in (("aws_access_key_id", aws_access_key_id),
                                                ("aws_secret_access_key", aws_secret_access_key),
                                                ("aws_session_token", aws_session_token)) if v}
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.retry_after = retry_after
        self.multipart_threshold = multipart_threshold
        self.part_size = max(5 * MiB, part_size)
        self.upload_concurrency = max(1, upload_concurrency)
        self.min_speed = min_speed
        self.stall_window = stall_window
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self.stats = SharedStats()
        self.last_error: str | None = None
        self._s3: Any = None
        self._lock = threading.RLock()
        self._down_until = 0.0
        self._disabled = False
        self._read_only = False
        self._fetched: set[str] = set()
        self._corrupt: set[str] = set()
        self._leases: dict[str, _Lease] = {}
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._atexit = False

    def __repr__(self) -> str:
        return f"SharedTier({self.location.url()!r})"

    # -- the client ------------------------------------------------------------------------------
    def _endpoint(self) -> str | None:
        return (self.endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3")
                or os.environ.get("AWS_ENDPOINT_URL") or None)

    def client(self) -> Any:
        """The boto3 S3 client, built on first use (raises RuntimeUnavailableError w/o boto3)."""
        with self._lock:
            if self._s3 is None:
                boto3 = load_boto3()
                from botocore.config import Config

                session = boto3.session.Session()
                endpoint = self._endpoint()
                opts: dict[str, Any] = {
                    "signature_version": "s3v4",
                    "connect_timeout": self.connect_timeout,
                    "read_timeout": self.read_timeout,
                    "retries": {"max_attempts": 2, "mode": "standard"},
                    "s3": {"addressing_style": "path" if endpoint else "auto"},
                    "max_pool_connections": max(10, 2 * self.upload_concurrency),
                }
                try:  # botocore >= 1.36: no CRC32 of its own on top of our SHA256
                    config = Config(**opts, request_checksum_calculation="when_required",
                                    response_checksum_validation="when_required")
                except TypeError:
                    config = Config(**opts)
                self._s3 = session.client(
                    "s3", endpoint_url=endpoint,
                    region_name=self.region or session.region_name or "us-east-1",
                    config=config, **self._credentials)
            return self._s3

    def check(self) -> None:
        """Build the client now (raises RuntimeUnavailableError if boto3 is missing)."""
        self.client()

    def usable(self) -> bool:
        """False while the tier steps aside after a failure (or for good without boto3)."""
        return not self._disabled and time.monotonic() >= self._down_until

    def served(self, sha256: str) -> bool:
        """Did this process get these bytes from the shared tier?"""
        return sha256.lower() in self._fetched

    def close(self) -> None:
        """Release every lease (their lock objects are deleted)."""
        with self._lock:
            leases, self._leases = list(self._leases.values()), {}
        for lease in leases:
            lease.release()

    # -- read path -------------------------------------------------------------------------------
    def fetch_blob(self, sha256: str, size: int, partial_dir: Path, tracker: ProgressTracker,
                   cancel: threading.Event, config: FetchConfig, *, lead: bool = False
                   ) -> FetchedFile | None:
        """The verified blob from the shared tier, in ``partial_dir``; None on a miss or failure.

        With ``lead=True`` a miss takes the fleet lease when nobody holds it (the caller then
        fetches the origin and must end with :meth:`upload_blob` or :meth:`release`); without
        it, a miss only waits for a lease somebody else holds. Raises only
        ``DownloadCancelledError``.
        """
        sha = sha256.lower()
        if not is_sha256(sha) or size <= 0 or not self.usable():
            return None
        with self._lock:
            if sha in self._corrupt or sha in self._leases:
                return None  # known bad here, or we are the ones fetching it from the origin
        key = self.location.blob_key(sha)
        try:
            obj = self._head(key)
            if obj is None:
                obj = self._await_blob(sha, tracker, cancel, lead)
                if obj is None:
                    self.stats.misses += 1
                    return None
            if obj.size != size:
                self._report_corrupt(sha, f"it has {obj.size} bytes, the catalog says {size}")
                return None
            got = self._download(sha, size, partial_dir, tracker, cancel, config)
        except DownloadCancelledError:
            raise
        except _FetchFailed as e:
            if e.corrupt:
                self._report_corrupt(sha, str(e))
            else:
                self._step_aside("download", e)
            return None
        except Exception as e:
            self._step_aside("lookup", e)
            return None
        with self._lock:
            self._fetched.add(sha)
        self.stats.hits += 1
        self.stats.bytes_fetched += size
        return got

    def _download(self, sha: str, size: int, partial_dir: Path, tracker: ProgressTracker,
                  cancel: threading.Event, config: FetchConfig) -> FetchedFile:
        from ..transfer.fetch import FileFetch
        from ._tracking import SubTracker

        key = self.location.blob_key(sha)
        # Long enough for a slow link, within SigV4's 7-day limit.
        expires = int(min(7 * 86400, 3600 + size / MiB))
        url = str(self.client().generate_presigned_url(
            "get_object", Params={"Bucket": self.location.bucket, "Key": key},
            ExpiresIn=expires))
        cfg = replace(config, retry_attempts=min(config.retry_attempts, 1),
                      retry_delay=min(config.retry_delay, 0.5), token=None,
                      min_speed=max(config.min_speed, self.min_speed),
                      stall_window=min(config.stall_window, self.stall_window))
        sub = SubTracker(tracker)
        fetch = FileFetch([url], size, sha, partial_dir=partial_dir, key=f"s3-{sha}",
                          config=cfg, tracker=sub, cancel=cancel)
        try:
            return fetch.run()
        except DownloadCancelledError:
            raise  # the partial stays for a resume from the shared tier
        except Exception as e:
            sub.take_back()
            partial = getattr(fetch, "_partial", None)
            if partial is not None:  # the origin brings these bytes now
                partial.discard()
            # Presigned URLs are short-lived credentials: keep them out of logs.
            message = _describe(e).replace(url, self.location.url(key))
            raise _FetchFailed(message, corrupt=isinstance(e, IntegrityError)) from None

    def _await_blob(self, sha: str, tracker: ProgressTracker, cancel: threading.Event,
                    lead: bool) -> ObjectInfo | None:
        """After a miss: take the lease, or wait while another machine holds it."""
        if self.location.wait <= 0:
            return None
        key = self.location.blob_key(sha)
        start = time.monotonic()
        deadline = start + self.location.wait
        seen_etag, seen_at = "", start
        delay = self.poll_interval
        told = False
        first = True
        if self._read_only:
            lead = False
        try:
            while True:
                if not first:
                    obj = self._head(key)
                    if obj is not None:
                        return obj
                first = False
                lock = self._get_lock(sha)
                now = time.monotonic()
                stale = lock is not None and lock.etag == seen_etag and (
                    now - seen_at >= self.location.stale)
                if lock is None or stale:
                    if not lead:
                        return None
                    if lock is not None:
                        log.info("lease on %s by %s went stale; taking it over", sha[:12],
                                 _holder(lock))
                    try:
                        won = self._try_lead(sha, lock.etag if lock else None)
                    except _ReadOnly as e:
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
                                " here too", now - start, _holder(lock), sha[:12])
                    return None
                if not told:
                    tracker.set_stage(tracker.stage, f"waiting for {_holder(lock)} to fetch"
                                                     f" {sha[:12]} from the origin")
                    told = True
                if cancel.wait(delay):
                    raise DownloadCancelledError("download cancelled")
                delay = min(delay * 1.5, self.max_poll_interval)
        finally:
            self.stats.waited += time.monotonic() - start

    # -- the lease -------------------------------------------------------------------------------
    def _try_lead(self, sha: str, stale_etag: str | None) -> bool:
        try:
            etag = self._put_lock(sha, 0, if_match=stale_etag, create=stale_etag is None)
        except _Conflict:
            return False
        with self._lock:
            self._leases[sha] = _Lease(self, sha, etag)
            if not self._atexit:
                atexit.register(self.close)
                self._atexit = True
        self.stats.led += 1
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

    def _put_lock(self, sha: str, beat: int, *, if_match: str | None = None,
                  create: bool = False) -> str:
        body = json.dumps({"holder": self._owner, "host": socket.gethostname(),
                           "pid": os.getpid(), "beat": beat, "time": time.time()}).encode()
        cond = {"IfNoneMatch": "*"} if create else {"IfMatch": if_match or ""}
        try:
            r = self.client().put_object(Bucket=self.location.bucket,
                                         Key=self.location.lock_key(sha), Body=body,
                                         ContentType="application/json", **cond)
        except Exception as e:
            if _is_conflict(e) or (not create and _status(e) == 404):
                raise _Conflict(str(e)) from e
            if _is_denied(e):
                raise _ReadOnly(_describe(e)) from e
            raise
        return str(r.get("ETag", ""))

    def _delete_lock(self, sha: str, etag: str) -> None:
        args = {"Bucket": self.location.bucket, "Key": self.location.lock_key(sha)}
        try:
            self.client().delete_object(**args, IfMatch=etag)
        except Exception as e:
            if _is_conflict(e) or _status(e) == 404:
                return  # taken over meanwhile: not ours to delete
            if type(e).__name__ == "ParamValidationError":  # botocore without conditional delete
                with contextlib.suppress(Exception):
                    self.client().delete_object(**args)
                return
            log.debug("could not delete the lease on %s: %s", sha[:12], e)

    def _get_lock(self, sha: str) -> ObjectInfo | None:
        try:
            r = self.client().get_object(Bucket=self.location.bucket,
                                         Key=self.location.lock_key(sha))
        except Exception as e:
            if _status(e) == 404:
                return None
            if _is_denied(e):  # no access to locks/: behave as if nobody held one
                return None
            raise
        with contextlib.closing(r["Body"]) as body:
            data = body.read(4096)
        return ObjectInfo(int(r.get("ContentLength", len(data))), str(r.get("ETag", "")), data)

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
                        self._report_corrupt(sha, f"it has {obj.size} bytes, not {size}")
                        overwrite = True
                put = self._put_multipart if size >= self.multipart_threshold else self._put
                result = put(key, sha, Path(path), size, overwrite)
            except _LocalMismatch as e:
                log.warning("not uploading %s to the shared cache: %s", sha[:12], e)
                self.stats.failed += 1
                return "failed"
            except _ReadOnly as e:
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
                    log.warning("replaced the corrupt shared cache object %s with verified"
                                " bytes", self.location.url(key))
            else:
                self.stats.exists += 1
            return result
        finally:
            self.release(sha)

    def _put(self, key: str, sha: str, path: Path, size: int, overwrite: bool) -> str:
        checksum = base64.b64encode(bytes.fromhex(sha)).decode()
        cond = {} if overwrite else {"IfNoneMatch": "*"}
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size != size:
                raise _LocalMismatch(f"{path} has {os.fstat(f.fileno()).st_size} bytes, not {size}")
            try:
                self.client().put_object(
                    Bucket=self.location.bucket, Key=key, Body=f, ContentLength=size,
                    ChecksumSHA256=checksum, ContentType="application/octet-stream",
                    Metadata={"sha256": sha}, **cond)
            except Exception as e:
                if _is_conflict(e):
                    return "exists"
                if _code(e) in _LOCAL_MISMATCH_CODES:
                    raise _LocalMismatch(f"the store says {path} does not have sha256 {sha}"
                                         f" ({_code(e)})") from e
                if _is_denied(e):
                    raise _ReadOnly(_describe(e)) from e
                raise
        return "uploaded"

    def _part_bytes(self, size: int) -> int:
        part = max(self.part_size, -(-size // 9000))  # S3 allows 10,000 parts
        return -(-part // MiB) * MiB

    def _upload_part(self, key: str, upload_id: str, number: int, data: bytes
                     ) -> dict[str, Any]:
        checksum = base64.b64encode(hashlib.sha256(data).digest()).decode()
        for attempt in range(3):  # one lost part must not cost the whole upload
            try:
                r = self.client().upload_part(Bucket=self.location.bucket, Key=key,
                                              UploadId=upload_id, PartNumber=number, Body=data,
                                              ChecksumSHA256=checksum)
                break
            except Exception as e:
                if attempt == 2 or _code(e) in _LOCAL_MISMATCH_CODES or _status(e) in (
                        400, 403, 404):
                    raise
                time.sleep(0.5 * (attempt + 1))
        return {"PartNumber": number, "ETag": r["ETag"], "ChecksumSHA256": checksum}

    def _put_multipart(self, key: str, sha: str, path: Path, size: int, overwrite: bool) -> str:
        s3, bucket = self.client(), self.location.bucket
        part = self._part_bytes(size)
        try:
            upload_id = s3.create_multipart_upload(
                Bucket=bucket, Key=key, ChecksumAlgorithm="SHA256",
                ContentType="application/octet-stream", Metadata={"sha256": sha})["UploadId"]
        except Exception as e:
            if _is_denied(e):
                raise _ReadOnly(_describe(e)) from e
            raise
        completed = False
        try:
            whole = hashlib.sha256()
            futures: list[concurrent.futures.Future[dict[str, Any]]] = []
            with open(path, "rb") as f, concurrent.futures.ThreadPoolExecutor(
                    self.upload_concurrency, thread_name_prefix="ra-s3-part") as pool:
                if os.fstat(f.fileno()).st_size != size:
                    raise _LocalMismatch(f"{path} does not have {size} bytes")
                offset = 0
                while offset < size:
                    data = f.read(min(part, size - offset))
                    if not data:
                        raise _LocalMismatch(f"{path} shrank while it was uploaded")
                    whole.update(data)
                    futures.append(pool.submit(self._upload_part, key, upload_id,
                                               len(futures) + 1, data))
                    offset += len(data)
                    del data
                    # Bound memory: at most one part read ahead of the parts in flight.
                    while sum(not x.done() for x in futures) > self.upload_concurrency:
                        concurrent.futures.wait(futures, return_when="FIRST_COMPLETED")
                    for x in futures:
                        if x.done() and x.exception() is not None:
                            raise x.exception()  # type: ignore[misc]
                parts = [x.result() for x in futures]
            if whole.hexdigest() != sha:
                raise _LocalMismatch(f"{path} does not have sha256 {sha} (it has"
                                     f" {whole.hexdigest()}): the local cache is damaged")
            cond = {} if overwrite else {"IfNoneMatch": "*"}
            try:
                s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id,
                                             MultipartUpload={"Parts": parts}, **cond)
            except Exception as e:
                if _is_conflict(e):
                    return "exists"
                raise
            completed = True
            return "uploaded"
        finally:
            if not completed:
                with contextlib.suppress(Exception):
                    s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)

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

    # -- internals -------------------------------------------------------------------------------
    def _head(self, key: str) -> ObjectInfo | None:
        try:
            r = self.client().head_object(Bucket=self.location.bucket, Key=key)
        except Exception as e:
            if _status(e) == 404:
                return None
            raise
        return ObjectInfo(int(r.get("ContentLength", -1)), str(r.get("ETag", "")))

    def _report_corrupt(self, sha: str, reason: str) -> None:
        with self._lock:
            self._corrupt.add(sha)
        self.stats.corrupt += 1
        log.warning("shared cache object %s is corrupt (%s): not used, fetching from the origin"
                    " instead", self.location.url(self.location.blob_key(sha)), reason)

    def _note_read_only(self, e: BaseException) -> None:
        self._read_only = True
        warn_once(f"shared-ro:{self.location.url()}:{self._endpoint()}",
                  "shared cache %s is read-only for these credentials (%s): using it to read,"
                  " not uploading to it", self.location.url(), e)

    def _step_aside(self, action: str, e: BaseException) -> None:
        reason = _describe(e)
        self.last_error = f"{action}: {reason}"
        self.stats.failed += 1
        if isinstance(e, RuntimeUnavailableError):
            self._disabled = True
        else:
            self._down_until = time.monotonic() + self.retry_after
        warn_once(f"shared:{self.location.url()}:{self._endpoint()}",
                  "shared cache %s is not usable (%s failed: %s); using the origin instead",
                  self.location.url(), action, reason)


def _holder(lock: ObjectInfo) -> str:
    try:
        info = json.loads(lock.body)
        return f"{info['host']} (pid {info['pid']})"
    except (ValueError, KeyError, TypeError):
        return "another machine"
