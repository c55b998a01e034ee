"""Is a cached entry the model the catalog describes now? (The one decision behind a hit.)"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .entry import CacheEntry

if TYPE_CHECKING:
    from ..catalog import ModelFile, ModelMetadata

#: ``expected(model_id, file)``: the sha256 a file must have (catalog, else first use), or None.
Expected = Callable[[str, "ModelFile"], "str | None"]


def matches(entry: CacheEntry, meta: ModelMetadata, expected: Expected) -> bool:
    """Same files, sizes and hashes (recorded first-use hashes included). An archive matches by
    the archive's own hash; a file known only by its git blob id never matches without a
    recorded sha256 (it is fetched and checked instead)."""
    if meta.archive:
        want = expected(meta.id, meta.files[0])
        return want is not None and entry.sha256 == want
    have = {f.path: f for f in entry.files}
    if set(have) != {f.path for f in meta.files}:
        return False
    for f in meta.files:
        if f.size is not None and have[f.path].size != f.size:
            return False
        want = expected(meta.id, f)
        if want is None and f.git_sha1:
            return False  # no sha256 vouches for these bytes: fetch (and check) them
        if want is not None and have[f.path].sha256 != want:
            return False
    return True
