"""Putting a verified blob into the shared tier, so the store itself checks its bytes.

Below ``multipart_threshold``: one ``PUT`` with ``x-amz-checksum-sha256`` (the server rejects
bytes that do not match) and ``If-None-Match: *``. From it on: a multipart upload (parts of
``part_size``, ``concurrency`` in flight, a SHA256 checksum per part, the whole file re-hashed
while it is read) completed with ``If-None-Match: *``. A lost condition means another machine
uploaded the same bytes first: ``"exists"``, a success. ``overwrite`` drops the condition (the
object there is known corrupt). Every call, each part's included, goes through
:meth:`~.client.Bucket.call` (the tier's retry policy): one lost part does not cost the upload.
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import hashlib
import os
from pathlib import Path
from typing import Any

from ..store.hashing import copy_hashing
from .client import (
    LOCAL_MISMATCH_CODES,
    Bucket,
    LocalMismatch,
    ReadOnly,
    code_of,
    describe,
    is_conflict,
    is_denied,
)

MiB = 2**20


def put_blob(bucket: Bucket, key: str, sha: str, path: Path, size: int, *, overwrite: bool,
             multipart_threshold: int, part_size: int, concurrency: int) -> str:
    """Upload ``path`` (``size`` bytes, sha256 ``sha``) to ``key``: ``"uploaded"`` or
    ``"exists"``; raises :class:`LocalMismatch`, :class:`ReadOnly` or the store's error."""
    if size >= multipart_threshold:
        return _put_multipart(bucket, key, sha, path, size, overwrite, part_size, concurrency)
    return _put_single(bucket, key, sha, path, size, overwrite)


def _put_single(bucket: Bucket, key: str, sha: str, path: Path, size: int,
                overwrite: bool) -> str:
    checksum = base64.b64encode(bytes.fromhex(sha)).decode()
    cond = {} if overwrite else {"IfNoneMatch": "*"}
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size != size:
            raise LocalMismatch(f"{path} has {os.fstat(f.fileno()).st_size} bytes, not {size}")
        try:
            bucket.call("put_object", Bucket=bucket.name, Key=key, Body=f, ContentLength=size,
                        ChecksumSHA256=checksum, ContentType="application/octet-stream",
                        Metadata={"sha256": sha}, **cond)
        except Exception as e:
            if is_conflict(e):
                return "exists"
            if code_of(e) in LOCAL_MISMATCH_CODES:
                raise LocalMismatch(f"the store says {path} does not have sha256 {sha}"
                                    f" ({code_of(e)})") from e
            if is_denied(e):
                raise ReadOnly(describe(e)) from e
            raise
    return "uploaded"


def part_bytes(size: int, part_size: int) -> int:
    """Part size for a file: ``part_size``, raised so no file needs more than 9,000 parts (S3
    allows 10,000), rounded up to whole MiB."""
    part = max(part_size, -(-size // 9000))
    return -(-part // MiB) * MiB


def _upload_part(bucket: Bucket, key: str, upload_id: str, number: int, data: bytes
                 ) -> dict[str, Any]:
    checksum = base64.b64encode(hashlib.sha256(data).digest()).decode()
    r = bucket.call("upload_part", Bucket=bucket.name, Key=key, UploadId=upload_id,
                    PartNumber=number, Body=data, ChecksumSHA256=checksum)
    return {"PartNumber": number, "ETag": r["ETag"], "ChecksumSHA256": checksum}


def _put_multipart(bucket: Bucket, key: str, sha: str, path: Path, size: int, overwrite: bool,
                   part_size: int, concurrency: int) -> str:
    try:
        upload_id = bucket.call(
            "create_multipart_upload", Bucket=bucket.name, Key=key, ChecksumAlgorithm="SHA256",
            ContentType="application/octet-stream", Metadata={"sha256": sha})["UploadId"]
    except Exception as e:
        if is_denied(e):
            raise ReadOnly(describe(e)) from e
        raise
    completed = False
    try:
        futures: list[concurrent.futures.Future[dict[str, Any]]] = []
        with open(path, "rb", buffering=0) as f, concurrent.futures.ThreadPoolExecutor(
                concurrency, thread_name_prefix="ra-s3-part") as pool:
            if os.fstat(f.fileno()).st_size != size:
                raise LocalMismatch(f"{path} does not have {size} bytes")

            def send(part: memoryview) -> None:
                futures.append(pool.submit(_upload_part, bucket, key, upload_id,
                                           len(futures) + 1, bytes(part)))
                # Bound memory: at most one part read ahead of the parts in flight.
                while sum(not x.done() for x in futures) > concurrency:
                    concurrent.futures.wait(futures, return_when="FIRST_COMPLETED")
                for x in futures:
                    if x.done() and x.exception() is not None:
                        raise x.exception()  # type: ignore[misc]

            digest, read = copy_hashing(f, send, chunk=part_bytes(size, part_size))
            parts = [x.result() for x in futures]
        if read != size:
            raise LocalMismatch(f"{path} changed size while it was uploaded")
        if digest != sha:
            raise LocalMismatch(f"{path} does not have sha256 {sha} (it has {digest}): the local"
                                " cache is damaged")
        cond = {} if overwrite else {"IfNoneMatch": "*"}
        try:
            bucket.call("complete_multipart_upload", Bucket=bucket.name, Key=key,
                        UploadId=upload_id, MultipartUpload={"Parts": parts}, **cond)
        except Exception as e:
            if is_conflict(e):
                return "exists"
            raise
        completed = True
        return "uploaded"
    finally:
        if not completed:
            with contextlib.suppress(Exception):
                bucket.call("abort_multipart_upload", Bucket=bucket.name, Key=key,
                            UploadId=upload_id)
