"""The S3 calls the shared tier makes, and the few answers it acts on.

boto3 is imported only when a client is first needed (the ``s3`` extra); botocore's errors are
read duck-typed, so nothing here imports botocore at module level. A conditional write that lost
(``412``, or AWS's ``409 ConditionalRequestConflict``) is :class:`Conflict`; a ``403`` on a write
is :class:`ReadOnly`; a checksum the store rejects is :class:`LocalMismatch`.

Every call goes through :meth:`Bucket.call`, under the tier's retry policy (botocore's own
retries are off, so there is one retry loop, not two nested): a throttle
(``SlowDown``, 429), a 5xx, a connection refused, dropped or timed out is tried again; anything
else (and the last failure) is raised as botocore raised it, for the caller to read.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from dataclasses import dataclass
from typing import Any

from ..errors import RuntimeUnavailableError, install_hint
from ..retry import RETRY_STATUSES, RetriesExhausted, TransientError
from .config import SharedConfig
from .location import SharedLocation

INSTALL_HINT = install_hint("s3")
LOCAL_MISMATCH_CODES = {"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch",
                        "InvalidChecksum"}


def load_boto3() -> Any:
    """Import boto3, or raise the error that names the extra to install."""
    try:
        import boto3
        import botocore.config  # noqa: F401
    except ImportError as e:
        raise RuntimeUnavailableError(
            f"the shared cache on S3 needs boto3, which is not installed: {INSTALL_HINT}") from e
    return boto3


def status_of(e: BaseException) -> int | None:
    resp = getattr(e, "response", None)
    if isinstance(resp, dict):
        status = resp.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if isinstance(status, int):
            return status
    return None


def code_of(e: BaseException) -> str:
    resp = getattr(e, "response", None)
    if isinstance(resp, dict):
        return str(resp.get("Error", {}).get("Code", ""))
    return ""


def is_conflict(e: BaseException) -> bool:
    """A conditional write lost: the object exists (412) or one is being written (AWS 409)."""
    return status_of(e) == 412 or code_of(e) in ("PreconditionFailed", "ConditionalRequestConflict")


def is_denied(e: BaseException) -> bool:
    return status_of(e) == 403 or code_of(e) == "AccessDenied"


#: botocore's errors for a connection that failed in a way another try may not meet.
_HEALING_ERRORS = {"ConnectTimeoutError", "ReadTimeoutError", "EndpointConnectionError",
                   "ConnectionClosedError", "ResponseStreamingError", "IncompleteReadError"}
#: S3 error codes that say "again, later".
_HEALING_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout",
                  "InternalError", "ServiceUnavailable", "RequestLimitExceeded"}


def heals(e: BaseException) -> bool:
    """May another try of the S3 call that raised ``e`` succeed? A throttle, a 5xx, a refused,
    dropped or timed-out connection: yes. A host that does not resolve (but for a resolver that
    did not answer), a certificate, a 4xx: no."""
    if status_of(e) in RETRY_STATUSES or code_of(e) in _HEALING_CODES:
        return True
    if not any(c.__name__ in _HEALING_ERRORS for c in type(e).__mro__):
        return False
    cause: BaseException | None = getattr(e, "kwargs", {}).get("error")
    dns = False
    while cause is not None:  # urllib3's NameResolutionError wraps the resolver's gaierror
        if isinstance(cause, socket.gaierror):
            return cause.errno == socket.EAI_AGAIN
        dns = dns or type(cause).__name__ == "NameResolutionError"
        cause = cause.__cause__ or cause.__context__
    return not dns


class _Healing(TransientError):
    """An S3 error worth another try, carried through the retry loop."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(describe(error))
        self.error = error


def describe(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0][:300]


class Conflict(Exception):
    """A conditional write was refused (412/409)."""


class ReadOnly(Exception):
    """These credentials may read the shared tier but not write to it."""


class LocalMismatch(Exception):
    """The local file is not the blob it claims to be (size or sha256)."""


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    etag: str
    body: bytes = b""


class Bucket:
    """One bucket of one S3-compatible store; thread-safe, every call blocking.

    Credentials, region and endpoint come from the standard AWS chain (``AWS_ACCESS_KEY_ID``,
    ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_PROFILE``, ``AWS_REGION``,
    ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``) unless given.
    """

    def __init__(self, location: SharedLocation, config: SharedConfig) -> None:
        self.location = location
        self.name = location.bucket
        self.config = config
        self.endpoint_url = config.endpoint_url
        self.region = config.region
        self._pool = max(10, 2 * max(1, config.upload_concurrency))
        self._s3: Any = None
        self._lock = threading.Lock()

    def endpoint(self) -> str | None:
        return (self.endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3")
                or os.environ.get("AWS_ENDPOINT_URL") or None)

    def client(self) -> Any:
        """The boto3 S3 client, built on first use (raises RuntimeUnavailableError w/o boto3)."""
        with self._lock:
            if self._s3 is None:
                boto3 = load_boto3()
                from botocore.config import Config

                session = boto3.session.Session()
                endpoint = self.endpoint()
                opts: dict[str, Any] = {
                    "signature_version": "s3v4",
                    "connect_timeout": self.config.connect_timeout,
                    "read_timeout": self.config.read_timeout,
                    # One try each: the retries are ours (Bucket.call).
                    "retries": {"total_max_attempts": 1, "mode": "standard"},
                    "s3": {"addressing_style": "path" if endpoint else "auto"},
                    "max_pool_connections": self._pool,
                }
                try:  # botocore >= 1.36: no CRC32 of its own on top of our SHA256
                    config = Config(**opts, request_checksum_calculation="when_required",
                                    response_checksum_validation="when_required")
                except TypeError:
                    config = Config(**opts)
                self._s3 = session.client(
                    "s3", endpoint_url=endpoint,
                    region_name=self.region or session.region_name or "us-east-1",
                    config=config, **self.config.credentials())
            return self._s3

    def call(self, operation: str, **params: Any) -> Any:
        """``client().<operation>(**params)`` under the tier's retry policy. A body that is a
        file is rewound before each try. Raises botocore's error (the last one when every try
        failed), or ``RuntimeUnavailableError`` without boto3."""
        client = self.client()

        def once() -> Any:
            seek = getattr(params.get("Body"), "seek", None)
            if seek is not None:
                seek(0)
            try:
                return getattr(client, operation)(**params)
            except Exception as e:
                if heals(e):
                    raise _Healing(e) from e
                raise

        try:
            return self.config.retry.call(once)
        except RetriesExhausted as e:
            last = e.last
            raise (last.error if isinstance(last, _Healing) else last) from None

    def head(self, key: str) -> ObjectInfo | None:
        try:
            r = self.call("head_object", Bucket=self.name, Key=key)
        except Exception as e:
            if status_of(e) == 404:
                return None
            raise
        return ObjectInfo(int(r.get("ContentLength", -1)), str(r.get("ETag", "")))

    def get_small(self, key: str, limit: int = 4096) -> ObjectInfo | None:
        """A small object (a lease), or None if it is absent or unreadable to us."""
        try:
            r = self.call("get_object", Bucket=self.name, Key=key)
        except Exception as e:
            if status_of(e) == 404 or is_denied(e):
                return None
            raise
        with contextlib.closing(r["Body"]) as body:
            data = body.read(limit)
        return ObjectInfo(int(r.get("ContentLength", len(data))), str(r.get("ETag", "")), data)

    def put_small(self, key: str, body: bytes, *, create: bool, if_match: str | None) -> str:
        """A conditional write: create (``If-None-Match: *``) or replace ``if_match``; returns
        the new ETag. Raises :class:`Conflict` when the condition fails, :class:`ReadOnly`."""
        cond = {"IfNoneMatch": "*"} if create else {"IfMatch": if_match or ""}
        try:
            r = self.call("put_object", Bucket=self.name, Key=key, Body=body,
                          ContentType="application/json", **cond)
        except Exception as e:
            if is_conflict(e) or (not create and status_of(e) == 404):
                raise Conflict(str(e)) from e
            if is_denied(e):
                raise ReadOnly(describe(e)) from e
            raise
        return str(r.get("ETag", ""))

    def delete_if_match(self, key: str, etag: str) -> None:
        """Delete ``key`` if it is still ``etag`` (taken over meanwhile: left alone)."""
        args = {"Bucket": self.name, "Key": key}
        try:
            self.call("delete_object", **args, IfMatch=etag)
        except Exception as e:
            if is_conflict(e) or status_of(e) == 404:
                return
            if type(e).__name__ == "ParamValidationError":  # botocore without conditional delete
                with contextlib.suppress(Exception):
                    self.call("delete_object", **args)
                return
            raise

    def presigned_get(self, key: str, expires: int) -> str:
        return str(self.client().generate_presigned_url(
            "get_object", Params={"Bucket": self.name, "Key": key}, ExpiresIn=expires))
