"""Catalogs at http(s) URLs (``--catalog http://host:8765/catalog.json``, the catalog a
``runanywhere serve`` hands out): fetched when the catalog is first read, checked, kept under
``<home>/catalogs/``; that copy is used, with a one-line warning, whenever the server cannot be
reached, answers an error or sends something that is not a catalog (and in offline mode). The
request is retried under :data:`CATALOG_RETRY`, shorter than a download's: a copy is at hand.
Credentials in the URL go as Basic auth (``http.py``) and are masked in every message."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from ..catalog import parse_catalog
from ..errors import DownloadError, InvalidCatalogError, OfflineError
from ..logs import log
from ..retry import RetryPolicy
from ..settings import Settings
from ..store.fsutil import atomic_write
from .http import get_small

#: Seconds a catalog server has to answer (connect, then each read).
CATALOG_TIMEOUT = 15.0
#: No catalog is this big; a larger body is a wrong URL, not a catalog.
CATALOG_MAX_BYTES = 64 * 2**20
#: Two retries within a few seconds: a server that is away falls back to the copy soon.
CATALOG_RETRY = RetryPolicy(attempts=2, delay=0.5, cap=2.0)


def catalog_copy_path(settings: Settings, url: str) -> Path:
    """Where the copy of a catalog URL is kept: ``<home>/catalogs/<sha256 of the URL>.json``."""
    return settings.home / "catalogs" / f"{hashlib.sha256(url.encode()).hexdigest()}.json"


def fetch_catalog(url: str, settings: Settings) -> Path:
    """A catalog URL as a local file: fetched, checked, kept; or the kept copy (with a warning)
    when the server cannot be reached, answers an error, or sends something that is not a
    catalog. Raises ``InvalidCatalogError`` (``OfflineError`` in offline mode) without a copy."""
    copy = catalog_copy_path(settings, url)
    if settings.offline:
        if copy.is_file():
            return copy
        raise OfflineError(f"offline mode is on and catalog {url} was never fetched")
    try:
        body = _download(url)
        parse_catalog(json.loads(body), url)  # a copy is only ever a valid catalog
    except (DownloadError, ValueError) as e:  # ValueError: not JSON
        why = str(e) or type(e).__name__
        if not copy.is_file():
            if isinstance(e, InvalidCatalogError):
                raise
            raise InvalidCatalogError(f"catalog {url}: {why} (and no copy of it is kept"
                                      " here yet)") from None
        age = time.time() - copy.stat().st_mtime
        log.warning("catalog %s: %s; using the copy fetched %s ago", url, why, _age(age))
        return copy
    atomic_write(copy, body, durable=settings.durable)
    return copy


def _download(url: str) -> bytes:
    # get_small raises DownloadError only (a reply that is not HTTP at all included).
    status, _, body = get_small(url, {"Accept": "application/json"}, timeout=CATALOG_TIMEOUT,
                                limit=CATALOG_MAX_BYTES, retry=CATALOG_RETRY)
    if status != 200:
        raise DownloadError(f"the server answered HTTP {status}", url=url, status=status)
    return body


def _age(seconds: float) -> str:
    for unit, n in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= n:
            return f"{seconds / n:.0f} {unit}"
    return f"{max(seconds, 0):.0f} s"
