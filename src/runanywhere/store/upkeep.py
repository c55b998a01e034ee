"""Upkeep: removing, pruning, pinning and verifying models (``cache rm|clear|prune|pin|verify``).

What goes and how many bytes that frees is decided by a plan first (prune.py); a model another
process holds is never removed (``force`` aside), and the memory tier and the volatile publishes
forget whatever the disk lost.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from ..errors import CacheError
from .entry import VerifyResult
from .holds import Holds
from .layout import is_model_id
from .memory import MemoryLRU
from .modes import CacheModes
from .stats import HitStats
from .verifier import NOT_CACHED

if TYPE_CHECKING:
    from .prune import PrunePlan

log = logging.getLogger("runanywhere")


class Upkeep:
    def __init__(self, modes: CacheModes, memory: MemoryLRU, holds: Holds,
                 stats: HitStats) -> None:
        self.modes = modes
        self.memory = memory
        self.holds = holds
        self.stats = stats

    def forget(self, model_ids: list[str]) -> None:
        """The disk lost these models: so do the memory tier and the volatile publishes."""
        for mid in model_ids:
            self.memory.pop(mid)
        self.modes.forget(model_ids)

    def delete(self, model_id: str, *, force: bool = False) -> int:
        """Remove a model (even pinned); refuses one another process holds unless ``force``."""
        disk = self.modes.disk
        self.holds.release_all(model_id)  # this process asked for the deletion: its holds end
        if disk.index.row(model_id) is None and not self.modes.is_volatile(model_id):
            self.modes.refuse_readonly(model_id)
        fd = disk.locks.try_evict(model_id)
        if fd is None and not force:
            raise CacheError(f"{model_id} is in use by another process; close it first")
        try:
            freed = disk.remove([model_id])
        finally:
            if fd is not None:
                os.close(fd)
        self.forget([model_id])
        return freed

    def clear(self) -> int:
        """Remove every model nobody else is using (pinned ones too); returns bytes freed."""
        disk = self.modes.disk
        self.holds.release_all()
        ids: list[str] = self.modes.guarded(disk.index.ids, list[str](), "clear")
        unsafe = [i for i in ids if not is_model_id(i)]
        if unsafe:  # planted rows: they go from the index; no path is built from them
            disk.index.delete_models(unsafe)
            ids = [i for i in ids if i not in unsafe]
        from .prune import evict_unused  # prune.py on use: a cached read never needs it

        freed, removed = evict_unused(disk, ids, keep_pinned=False)
        left = sorted(set(ids) - set(removed))
        if left:
            log.warning("kept %s: in use by another process", ", ".join(left))
        self.memory.clear()
        self.modes.forget()
        return freed

    def pin(self, model_id: str, pinned: bool = True) -> bool:
        """Never evict this model (``pinned=False`` to undo). False if it is not cached."""
        if self.modes.disk.set_pinned(model_id, pinned):
            return True
        self.modes.refuse_readonly(model_id)
        return False

    def plan_prune(self, max_size: int | None, *, orphan_age: float) -> PrunePlan:
        """What ``prune`` would remove (nothing changes until ``plan.execute()``)."""
        from .prune import plan_prune

        self.stats.flush()
        return plan_prune(self.modes.disk, max_size=max_size, orphan_age=orphan_age,
                          in_use=self.holds.ids(), on_evict=self.forget)

    def enforce_limit(self, limit: int | None, protect: set[str] | None = None) -> int:
        """Evict least-recently-used models until ``limit`` holds; returns bytes freed."""
        if limit is None:
            return 0
        from .prune import plan_prune

        self.stats.flush()
        plan = plan_prune(self.modes.disk, max_size=limit, orphan_age=float("inf"),
                          in_use=self.holds.ids() | (protect or set()), on_evict=self.forget)
        if plan.size_after > limit:
            self.modes.warn("limit", f"the cache holds more than its disk limit of {limit}"
                            f" bytes: {', '.join(plan.kept) or 'nothing'} pinned or in use")
        return plan.execute() if plan.evict else 0

    def verify(self, model_id: str | None = None) -> list[VerifyResult]:
        """Re-hash cached files; corrupt models are quarantined (and no longer visible). A
        read-only view is checked too, without changing it."""
        ids = [model_id] if model_id else None
        results = self.modes.disk.verifier.verify(ids)
        view = self.modes.readonly
        if view is not None:
            fb_ids = ids or [e.model_id for e in view.entries()]
            known = {r.model_id for r in results if r.problems != [NOT_CACHED]}
            results = [r for r in results if r.model_id not in fb_ids or r.model_id in known]
            results += view.verifier.verify([i for i in fb_ids if i not in known],
                                            quarantine=False)
        for r in results:
            if not r.ok:
                self.memory.pop(r.model_id)
        return results
