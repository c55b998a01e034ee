"""Where the shared tier lives: ``s3://bucket/prefix[?wait=SECONDS&stale=SECONDS]``.

Keys under the prefix::

    <prefix>/blobs/sha256/<hex>   a verified file, named by its sha256 (the same layout as the
                                  local ``blobs/`` folder, so a bucket can be seeded with a sync)
    <prefix>/locks/<hex>          a short-lived lease: "this machine is fetching <hex> from the
                                  origin"; the others wait for the blob instead of fetching it too

The query string carries the two knobs of the lease protocol (see ``s3.py``): ``wait`` is how
long a machine waits for another one's origin download before fetching the origin itself
(``0`` turns the lease protocol off), ``stale`` how long a lease may go without a heartbeat
before another machine takes it over.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

#: S3 bucket names (lenient: S3-compatible stores also accept underscores and upper case).
_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,61}[A-Za-z0-9]")
_SHA256 = re.compile(r"[0-9a-f]{64}")
DEFAULT_WAIT = 600.0
DEFAULT_STALE = 30.0


def is_sha256(text: str) -> bool:
    return bool(_SHA256.fullmatch(text))


@dataclass(frozen=True)
class SharedLocation:
    bucket: str
    prefix: str = ""  # without leading or trailing "/"
    wait: float = DEFAULT_WAIT
    stale: float = DEFAULT_STALE

    @classmethod
    def parse(cls, url: str) -> SharedLocation:
        """Parse ``s3://bucket/prefix``; raises ``ValueError`` with a message fit for a user."""
        text = url.strip()
        parts = urlsplit(text)
        if parts.scheme.lower() != "s3":
            raise ValueError(f"shared cache must be an s3:// URL, not {url!r}"
                             " (example: s3://team-models/runanywhere)")
        bucket = parts.netloc
        if not _BUCKET.fullmatch(bucket or ""):
            raise ValueError(f"not a bucket name in {url!r} (example: s3://team-models/prefix)")
        segments = [s for s in parts.path.split("/") if s]
        if any(s in (".", "..") for s in segments):
            raise ValueError(f"the prefix of {url!r} must not contain '.' or '..'")
        query = parse_qs(parts.query, keep_blank_values=True)
        unknown = set(query) - {"wait", "stale"}
        if unknown:
            raise ValueError(f"unknown option(s) {', '.join(sorted(unknown))} in {url!r}"
                             " (known: wait, stale)")
        wait = _seconds(query, "wait", DEFAULT_WAIT, url)
        stale = _seconds(query, "stale", DEFAULT_STALE, url)
        if stale <= 0:
            raise ValueError(f"stale must be > 0 in {url!r}")
        return cls(bucket, "/".join(segments), wait, stale)

    def key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def blob_key(self, sha256: str) -> str:
        return self.key("blobs", "sha256", sha256)

    def lock_key(self, sha256: str) -> str:
        return self.key("locks", sha256)

    def url(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{key or self.prefix}"

    def __str__(self) -> str:
        return self.url()


def _seconds(query: dict[str, list[str]], name: str, default: float, url: str) -> float:
    values = query.get(name)
    if not values:
        return default
    try:
        value = float(values[-1])
    except ValueError:
        raise ValueError(f"{name}={values[-1]!r} in {url!r} is not a number of seconds") from None
    if value < 0 or value != value:
        raise ValueError(f"{name} must be >= 0 in {url!r}")
    return value
