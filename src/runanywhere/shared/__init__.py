"""The shared tier: a team cache on S3-compatible object storage (``RUNANYWHERE_SHARED_CACHE``).

Between the local cache and the origin::

    local cache (hit: done) -> shared tier (hit: verified download) -> origin (then upload once)

Configure it with ``RUNANYWHERE_SHARED_CACHE=s3://bucket/prefix`` (or ``Settings.shared_cache``)
and the standard AWS variables (``AWS_ENDPOINT_URL``, credentials, ``AWS_REGION``). Blobs are
keyed by sha256 and always re-verified by the downloader: the store is a cache, never a source of
truth. Design and protocol: ``tier.py`` (read path, failure policy), ``lease.py`` (fleet
single-flight), ``upload.py`` (checksummed, conditional uploads). Importing this package does not
import boto3 (the ``s3`` extra); without it the tier steps aside with one warning.

The tier says where a blob can be read; it never downloads. The transfer layer uses these calls,
each a plain pass-through when ``tier`` is None::

    tier = shared_tier_from_settings(settings)              # once
    source = tier.locate(sha, size, cancel=..., lead=True)   # a presigned URL, or None
    cache.publish(..., origin=shared_origin(tier, shas))     # "shared" or "download"
    upload_after_publish(tier, [(sha, blob_path, size)])     # after publishing
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from ..logs import log, warn_once
from .client import INSTALL_HINT
from .config import SharedConfig
from .location import SharedLocation
from .push import push_models, shared_presence
from .tier import BlobSource, SharedStats, SharedTier

if TYPE_CHECKING:
    from ..settings import Settings

#: How long a lease is kept between a finished origin download and its upload (publishing).
PUBLISH_GRACE = 300.0


def shared_tier_from_settings(settings: Settings) -> SharedTier | None:
    """The tier ``settings.shared_cache`` names, or None (not set, or malformed: one warning)."""
    url = settings.shared_cache
    if not url:
        return None
    try:
        return SharedTier(SharedLocation.parse(url))
    except ValueError as e:
        warn_once("shared:config", "ignoring the shared cache setting: %s", e)
        return None


def upload_after_publish(tier: SharedTier | None,
                         blobs: Iterable[tuple[str, Path | str, int]]) -> list[str]:
    """Upload published blobs that did not come from the tier; never raises.

    Returns one of ``"uploaded"``, ``"exists"``, ``"failed"`` per blob (``[]`` without a tier).
    """
    if tier is None:
        return []
    out = []
    for sha, path, size in blobs:
        try:
            out.append(tier.upload_blob(sha, path, size))
        except Exception:  # upload_blob handles its own errors; this is a last guard
            log.debug("shared upload of %s failed", sha, exc_info=True)
            out.append("failed")
    return out


def shared_origin(tier: SharedTier | None, shas: Iterable[str]) -> str:
    """The ``origin`` to record for a published entry: ``"shared"`` if every file came from the
    shared tier in this process, else ``"download"``."""
    shas = list(shas)
    if tier is not None and shas and all(tier.served(s) for s in shas):
        return "shared"
    return "download"


__all__ = [
    "INSTALL_HINT",
    "PUBLISH_GRACE",
    "BlobSource",
    "SharedConfig",
    "SharedLocation",
    "SharedStats",
    "SharedTier",
    "push_models",
    "shared_origin",
    "shared_presence",
    "shared_tier_from_settings",
    "upload_after_publish",
]
