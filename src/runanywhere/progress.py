"""Download progress: the public ``DownloadProgress`` record and a throttled, honest tracker."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum


class Stage(str, Enum):
    QUEUED = "queued"
    DOWNLOADING = "downloading"
    VERIFYING = "verifying"
    EXTRACTING = "extracting"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class DownloadProgress:
    model_id: str
    progress: float  # 0-100
    bytes_loaded: int
    total_bytes: int
    speed: float  # bytes/s over a recent window, resumed bytes excluded
    estimated_time_remaining: float | None  # seconds; None while unknown
    stage: Stage
    message: str
    #: bytes that were already on disk when this run started (resumed or deduplicated)
    resumed_bytes: int = 0


ProgressCallback = Callable[[DownloadProgress], None]


class ProgressTracker:
    """Counts bytes from many threads and reports at most every ``interval`` seconds.

    Speed is measured over the last ``window`` seconds of bytes that actually arrived in this run,
    so a resume does not inflate it; the ETA divides what is left by that speed.
    """

    def __init__(self, model_id: str, total: int, callback: ProgressCallback | None,
                 *, interval: float = 0.1, window: float = 3.0) -> None:
        self.model_id = model_id
        self.total = total
        self._callback = callback
        self._interval = interval
        self._window = window
        self._lock = threading.Lock()
        self._loaded = 0
        self._resumed = 0
        self._samples: deque[tuple[float, int]] = deque()
        self._last_emit = 0.0
        self.stage = Stage.QUEUED
        self._arrived = 0
        self._first_byte: float | None = None  # when this run's first network byte arrived

    @property
    def loaded(self) -> int:
        return self._loaded

    def add_resumed(self, n: int) -> None:
        with self._lock:
            self._resumed += n
            self._loaded += n

    def add(self, n: int) -> None:
        """Record ``n`` bytes that just arrived from the network (may be called from any thread)."""
        now = time.monotonic()
        with self._lock:
            self._loaded += n
            self._arrived += n
            if self._first_byte is None:
                self._first_byte = now
        if now - self._last_emit >= self._interval:
            self.emit()

    def rewind(self, n: int) -> None:
        """Bytes that were counted but must be fetched again (a restart)."""
        with self._lock:
            self._loaded = max(0, self._loaded - n)

    def set_stage(self, stage: Stage, message: str = "") -> None:
        self.stage = stage
        self.emit(message, force=True)

    def speed(self) -> float:
        now = time.monotonic()
        with self._lock:
            self._samples.append((now, self._arrived))
            while len(self._samples) > 2 and now - self._samples[0][0] > self._window:
                self._samples.popleft()
            t0, b0 = self._samples[0]
            dt = now - t0
            return (self._arrived - b0) / dt if dt > 0.05 else 0.0

    def snapshot(self, message: str = "") -> DownloadProgress:
        speed = self.speed()
        loaded = min(self._loaded, self.total)
        left = self.total - loaded
        eta: float | None = left / speed if speed > 0 else (0.0 if left == 0 else None)
        pct = 100.0 * loaded / self.total if self.total else 100.0
        if self.stage is Stage.DONE:
            pct, eta = 100.0, 0.0
            # The window may have emptied while verifying: report the run's average instead.
            if self._first_byte is not None:
                elapsed = time.monotonic() - self._first_byte
                speed = self._arrived / elapsed if elapsed > 0 else 0.0
        return DownloadProgress(self.model_id, round(pct, 2), loaded, self.total, speed, eta,
                                self.stage, message or self.stage.value, self._resumed)

    def emit(self, message: str = "", *, force: bool = False) -> None:
        if self._callback is None:
            return
        now = time.monotonic()
        with self._lock:  # many network threads race here: only one may take the slot
            if not force and now - self._last_emit < self._interval:
                return
            self._last_emit = now
        self._callback(self.snapshot(message))
