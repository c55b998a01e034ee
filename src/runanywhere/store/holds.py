"""Models this process is using: each held with a shared flock on ``locks/use-<id>.lock``, so
no process (this one included) evicts it; an eviction takes that lock exclusively."""

from __future__ import annotations

import os

from .locks import Locks


class Holds:
    def __init__(self, locks: Locks) -> None:
        self.locks = locks
        self._fds: dict[str, list[int]] = {}

    def hold(self, model_id: str) -> None:
        """Mark a model as in use by this process (waits while an eviction of it runs)."""
        fd = self.locks.hold_use(model_id)
        self._fds.setdefault(model_id, []).append(fd)

    def release(self, model_id: str) -> None:
        """Undo one :meth:`hold`."""
        fds = self._fds.get(model_id)
        if fds:
            fd = fds.pop()
            if fd >= 0:
                os.close(fd)
        if not fds:
            self._fds.pop(model_id, None)

    def release_all(self, model_id: str | None = None) -> None:
        """Undo every hold of a model (of every model with None)."""
        for mid in list(self._fds) if model_id is None else [model_id]:
            for fd in self._fds.pop(mid, []):
                if fd >= 0:
                    os.close(fd)

    def ids(self) -> set[str]:
        """The models this process holds."""
        return set(self._fds)

    def held(self, model_id: str) -> bool:
        """Is the model held by any process (this one included)?"""
        return bool(self._fds.get(model_id)) or self.locks.used_elsewhere(model_id)
