"""``cache push``: seed the shared tier from a local cache; ``shared_presence`` for ``cache ls``."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import DownloadError, ModelError
from ..units import human_size
from .config import SharedConfig
from .location import SharedLocation
from .tier import SharedTier

if TYPE_CHECKING:
    from ..settings import Settings
    from ..store import CacheEntry, ModelCache


def tier_for(settings: Settings, tier: SharedTier | None = None) -> SharedTier:
    """The configured tier, or a clear error (for commands that need one)."""
    if tier is not None:
        return tier
    if not settings.shared_cache:
        raise ModelError("no shared cache is configured: set RUNANYWHERE_SHARED_CACHE="
                         "s3://bucket/prefix (and the AWS_* variables for the store)")
    try:
        location = SharedLocation.parse(settings.shared_cache)
    except ValueError as e:
        raise ModelError(f"RUNANYWHERE_SHARED_CACHE: {e}") from None
    t = SharedTier(location, SharedConfig(warn=False))  # the command reports failures itself
    t.check()  # RuntimeUnavailableError naming the extra when boto3 is missing
    return t


def entry_blobs(cache: ModelCache, entry: CacheEntry
                ) -> list[tuple[str, str, Path | None, int | None]]:
    """What other machines look up for this entry: ``(label, sha256, local path, size)``.

    For an unpacked archive that is the archive (``entry.sha256``), whose blob the loader keeps
    only while it unpacks; its local path (and size) are then None.
    """
    shas = {f.sha256 for f in entry.files}
    if entry.sha256 and entry.sha256 not in shas:  # an archive's unpacked files
        blob = cache.blob_path(entry.sha256)
        if _regular(blob):
            return [("archive", entry.sha256, blob, blob.stat().st_size)]
        return [("archive", entry.sha256, None, None)]
    base = entry.path if entry.kind == "dir" else entry.path.parent
    out: list[tuple[str, str, Path | None, int | None]] = []
    for f in entry.files:
        blob = cache.blob_path(f.sha256)
        path = blob if _regular(blob) else base / f.path
        out.append((f.path, f.sha256, path if _regular(path) else None, f.size))
    return out


def _regular(path: Path) -> bool:
    """A file of the cache, never one a link planted in its place points to."""
    return path.is_file() and not path.is_symlink()


def push_models(settings: Settings, cache: ModelCache, model_id: str | None = None, *,
                tier: SharedTier | None = None) -> list[str]:
    """Upload cached models (one, or all) to the shared tier; returns lines to print.

    Every blob goes up with its sha256 checksum, so the store refuses bytes that rotted on this
    disk. Raises ``ModelError`` when the model is not cached or when any upload failed (after
    trying all of them), ``RuntimeUnavailableError`` without boto3.
    """
    t = tier_for(settings, tier)
    if model_id is not None:
        entry = cache.entry(model_id)
        if entry is None:
            raise ModelError(f"{model_id} is not in the cache (pull it first)")
        entries = [entry]
    else:
        entries = cache.entries()
    lines: list[str] = []
    failed: list[str] = []
    for entry in entries:
        counts = {"uploaded": 0, "exists": 0, "failed": 0}
        sent = 0
        notes = []
        for label, sha, path, size in entry_blobs(cache, entry):
            if path is None or size is None:
                notes.append(f"{label} not kept locally (pull it again with the shared cache"
                             " configured to share it)")
                continue
            result = t.upload_blob(sha, path, size)
            counts[result] += 1
            if result == "uploaded":
                sent += size
            elif result == "failed":
                failed.append(f"{entry.model_id}/{label}")
        parts = [f"{counts['uploaded']} uploaded ({human_size(sent)})"
                 if counts["uploaded"] else "",
                 f"{counts['exists']} already there" if counts["exists"] else "",
                 f"{counts['failed']} failed" if counts["failed"] else "", *notes]
        lines.append(f"{entry.model_id}: {', '.join(p for p in parts if p) or 'nothing to push'}")
    if not entries:
        lines.append("the local cache is empty: nothing to push")
    if failed:
        why = f": {t.last_error}" if t.last_error else ""
        raise DownloadError(f"push to {t.location.url()} incomplete, {len(failed)} blob(s) failed"
                            f" ({', '.join(failed[:3])}{'...' if len(failed) > 3 else ''}){why}")
    lines.append(f"shared cache: {t.location.url()}")
    return lines


def shared_presence(settings: Settings, cache: ModelCache, entries: list[CacheEntry] | None = None,
                    tier: SharedTier | None = None) -> dict[str, str]:
    """For ``cache ls``: model id -> ``"yes"`` / ``"no"`` / ``"partial"`` / ``"?"``.

    One ``HEAD`` per blob, 8 at a time; ``"?"`` when the store cannot be asked. Returns ``{}``
    when no shared cache is configured.
    """
    if tier is None:
        if not settings.shared_cache:
            return {}
        try:
            tier = tier_for(settings)
        except ModelError:
            return {}
    entries = cache.entries() if entries is None else entries
    jobs: dict[str, list[tuple[str, int | None]]] = {
        e.model_id: [(sha, size) for _, sha, _, size in entry_blobs(cache, e)]
        for e in entries}
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = {mid: [pool.submit(tier.exists, sha, size) for sha, size in blobs]
                   for mid, blobs in jobs.items()}
        out = {}
        for mid, futs in answers.items():
            got = [f.result() for f in futs]
            if not got or any(g is None for g in got):
                out[mid] = "?"
            elif all(got):
                out[mid] = "yes"
            else:
                out[mid] = "partial" if any(got) else "no"
    return out
