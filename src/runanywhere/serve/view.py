"""What can be served, as one snapshot: the cache listing joined with the catalog.

Routes read a :class:`View` instead of asking the cache and the catalog on every request; the
:class:`Snapshots` keeper rebuilds it (in a thread) when it is older than ``VIEW_TTL``, or
sooner when a route needs to notice a model published a moment ago.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .hub_repos import HubRepo, build_hub

if TYPE_CHECKING:
    from ..catalog import ModelMetadata
    from ..store import CacheEntry

#: Seconds a snapshot of the cache listing and the catalog is reused before it is rebuilt.
VIEW_TTL = 1.0


@dataclass
class View:
    built: float
    entries: dict[str, CacheEntry]
    metas: dict[str, ModelMetadata]
    #: sha256 -> (model id, file path in the model) of every cached file.
    blobs: dict[str, tuple[str, str]]
    #: sha256 -> model id of every catalog file with a hash that is not cached (pull-through).
    pullable: dict[str, str]
    repos: dict[tuple[str, str], HubRepo] = field(default_factory=dict)


def build_view(entries: Iterable[CacheEntry], metas: Iterable[ModelMetadata]) -> View:
    by_id = {e.model_id: e for e in entries}
    known = {m.id: m for m in metas}
    blobs: dict[str, tuple[str, str]] = {}
    for e in by_id.values():
        for f in e.files:
            blobs.setdefault(f.sha256, (e.model_id, f.path))
    pullable = {f.sha256: m.id for m in known.values() if not m.archive
                for f in m.files if f.sha256 and f.sha256 not in blobs}
    return View(time.monotonic(), by_id, known, blobs, pullable,
                build_hub(known.values(), by_id))


class Snapshots:
    """The current :class:`View`, rebuilt by ``build`` (blocking; run in a thread) when stale."""

    def __init__(self, build: Callable[[], View]) -> None:
        self._build = build
        self._view: View | None = None
        self._lock = asyncio.Lock()

    async def get(self, *, fresher_than: float | None = None) -> View:
        """The snapshot; rebuilt when older than ``VIEW_TTL`` (or ``fresher_than`` seconds)."""
        limit = VIEW_TTL if fresher_than is None else fresher_than
        v = self._view
        if v is not None and time.monotonic() - v.built < limit:
            return v
        async with self._lock:
            v = self._view
            if v is None or time.monotonic() - v.built >= limit:
                v = self._view = await asyncio.to_thread(self._build)
            return v

    def forget(self) -> None:
        """The next :meth:`get` rebuilds (the cache changed: a pull, a file that vanished)."""
        self._view = None
