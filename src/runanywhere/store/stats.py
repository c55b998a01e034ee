"""Hit counts and last-access times, batched: a hit costs a dict update, never a disk
transaction. The batch is written every ``FLUSH_EVERY`` seconds (on the next hit), on
``flush``, and at exit, with a short lock wait: a busy index keeps it for next time."""

from __future__ import annotations

import sqlite3
import threading
import time

from .index import Index

#: Seconds between two writes of batched hit statistics.
FLUSH_EVERY = 5.0


class HitStats:
    def __init__(self, index: Index) -> None:
        self.index = index
        self._pending: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()
        self._last_flush = time.monotonic()

    def touch(self, model_id: str) -> None:
        """Count a hit now."""
        now = time.time()
        with self._lock:
            n, _ = self._pending.get(model_id, (0, 0.0))
            self._pending[model_id] = (n + 1, now)
        if time.monotonic() - self._last_flush > FLUSH_EVERY:
            self.flush()

    def pending(self, model_id: str) -> tuple[int, float]:
        """``(hits, last access)`` counted but not written yet."""
        with self._lock:
            return self._pending.get(model_id, (0, 0.0))

    def flush(self) -> None:
        """Write the batch; a busy index keeps it for next time."""
        with self._lock:
            pending, self._pending = self._pending, {}
            self._last_flush = time.monotonic()
        if pending:
            try:
                self.index.record_access(pending)
            except sqlite3.Error:
                self._requeue(pending)

    def _requeue(self, pending: dict[str, tuple[int, float]]) -> None:
        with self._lock:
            for k, (n, t) in pending.items():
                n0, t0 = self._pending.get(k, (0, 0.0))
                self._pending[k] = (n + n0, max(t, t0))
