"""The shared tier: a team cache on S3-compatible object storage (``RUNANYWHERE_SHARED_CACHE``).

Between the local cache and the origin::

    local cache (hit: done) -> shared tier (hit: verified download) -> origin (then upload once)

Configure it with ``RUNANYWHERE_SHARED_CACHE=s3://bucket/prefix`` (or ``Settings.shared_cache``)
and the standard AWS variables (``AWS_ENDPOINT_URL``, credentials, ``AWS_REGION``). Blobs are
keyed by sha256 and always re-verified here: the store is a cache, never a source of truth.
Design, protocol and numbers: ``s3.py``. Importing this package does not import boto3 (the
``s3`` extra); without it the tier steps aside with one warning.

The loader uses these calls, each a plain pass-through when ``tier`` is None::

    tier = shared_tier_from_settings(settings)            # once
    got = fetch_with_shared(tier, file_fetch)              # instead of file_fetch.run()
    cache.publish(..., origin=shared_origin(tier, shas))   # "shared" or "download"
    upload_after_publish(tier, [(sha, blob_path, size)])   # after publishing
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from .location import SharedLocation
from .push import push_models, shared_presence
from .s3 import INSTALL_HINT, SharedStats, SharedTier, warn_once

if TYPE_CHECKING:
    from ..settings import Settings
    from ..transfer.fetch import FetchedFile, FileFetch

log = logging.getLogger("runanywhere")
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


def fetch_with_shared(tier: SharedTier | None, fetch: FileFetch) -> FetchedFile:
    """Run ``fetch`` (an origin download), trying the shared tier first when there is one.

    Only files with a known sha256 use the tier. On a miss this process may take the fleet
    lease for the blob; it is kept until :func:`upload_after_publish` (or ``PUBLISH_GRACE``
    seconds), and dropped at once if the origin download fails.
    """
    sha = fetch.expected
    if tier is None or not sha:
        return fetch.run()
    got = tier.fetch_blob(sha, fetch.size, fetch.partial_dir, fetch.tracker, fetch.cancel,
                          fetch.cfg, lead=True)
    if got is not None:
        return got
    try:
        result = fetch.run()
    except BaseException:
        tier.release(sha)
        raise
    tier.hold(sha, PUBLISH_GRACE)
    return result


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
    "SharedLocation",
    "SharedStats",
    "SharedTier",
    "fetch_with_shared",
    "push_models",
    "shared_origin",
    "shared_presence",
    "shared_tier_from_settings",
    "upload_after_publish",
]
