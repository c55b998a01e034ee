"""Download progress: the public ``DownloadProgress``, an honest tracker, and a ready display.

A download reports through a :class:`ProgressTracker`: bytes as they land (from many threads),
stage changes (always reported at once), and a heartbeat, so a caller hears at least every 250 ms
whatever the chunk size or the link. Speed is measured over a sliding window of bytes that
arrived in this run (resumed bytes never inflate it); the ETA divides the bytes still to come by
that speed. Every download ends with one of three stages: ``DONE``, ``FAILED`` (``error`` says
why) or ``CANCELLED``.

:func:`display` (or ``on_progress="auto"`` in the registry) shows it without writing a callback: a
live bar in Jupyter or a terminal (tqdm), plain lines in a log.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal

#: The longest a caller waits between two reports while a download runs.
HEARTBEAT = 0.25


class Stage(str, Enum):
    QUEUED = "queued"
    DOWNLOADING = "downloading"
    VERIFYING = "verifying"
    EXTRACTING = "extracting"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return self in (Stage.DONE, Stage.FAILED, Stage.CANCELLED)


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
    #: Why the download failed (stage ``FAILED``) or was cancelled (``CANCELLED``).
    error: BaseException | None = None


ProgressCallback = Callable[[DownloadProgress], None]


class ProgressTracker:
    """Counts bytes from many threads and reports at most every ``interval`` seconds (stage
    changes at once).

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
        self._last_byte: float | None = None

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
            self._last_byte = now
            self._samples.append((now, self._arrived))
        if now - self._last_emit >= self._interval:
            self.emit()

    def grow(self, n: int) -> None:
        """The total changed by ``n`` bytes (negative: shrank): an exact size was learned where
        the catalog gave an estimate. Many fetch threads may learn sizes at once."""
        with self._lock:
            self.total += n

    def rewind(self, n: int) -> None:
        """Bytes that were counted but must be fetched again (a restart)."""
        with self._lock:
            self._loaded = max(0, self._loaded - n)

    def set_stage(self, stage: Stage, message: str = "",
                  error: BaseException | None = None) -> None:
        self.stage = stage
        self.emit(message, force=True, error=error)

    def speed(self) -> float:
        """Bytes/s that arrived over the sliding window (0 once the link went quiet for a whole
        window): a stall shows as a falling speed, not as the speed of the last burst."""
        now = time.monotonic()
        with self._lock:
            if self._first_byte is None:
                return 0.0
            start = max(now - self._window, self._first_byte)
            # Keep the last sample at or before the window's start: the bytes up to it are the
            # base. At the very start that is the first burst itself, which arrived at
            # ``start``: counting it over a time that begins after it would overstate the link
            # (a 20 KB burst 50 ms into a 400 KB/s link reads as 800 KB/s).
            while len(self._samples) >= 2 and self._samples[1][0] <= start:
                self._samples.popleft()
            base = self._samples[0][1] if self._samples[0][0] <= start else 0
            dt = now - start
            # Under a fifth of a second a rate is mostly the jitter of bursts: report none yet.
            return (self._arrived - base) / dt if dt >= 0.2 else 0.0

    def snapshot(self, message: str = "", error: BaseException | None = None) -> DownloadProgress:
        speed = self.speed()
        # A total of 0 is a size not known yet (a URL pulled without one): the bytes count
        # up, the share stays 0 until the origin says how many there are.
        loaded = min(self._loaded, self.total) if self.total else self._loaded
        left = max(self.total - loaded, 0)
        eta: float | None = left / speed if speed > 0 and self.total else (
            0.0 if self.total and left == 0 else None)
        pct = 100.0 * loaded / self.total if self.total else 0.0
        if self.stage is Stage.DONE:
            pct, eta = 100.0, 0.0
            # The window may have emptied while verifying: report the run's average instead.
            if self._first_byte is not None and self._last_byte is not None:
                elapsed = self._last_byte - self._first_byte
                speed = self._arrived / elapsed if elapsed > 0 else speed
        elif self.stage.final:
            eta = None
        return DownloadProgress(self.model_id, round(pct, 2), loaded, self.total, speed, eta,
                                self.stage, message or self.stage.value, self._resumed, error)

    def emit(self, message: str = "", *, force: bool = False,
             error: BaseException | None = None) -> None:
        if self._callback is None:
            return
        now = time.monotonic()
        with self._lock:  # many network threads race here: only one may take the slot
            if not force and now - self._last_emit < self._interval:
                return
            self._last_emit = now
        self._callback(self.snapshot(message, error))


# -- a ready display ------------------------------------------------------------------------------

def cache_hit(model_id: str, size: int) -> DownloadProgress:
    """The one report a cache hit makes: done, every byte there, "already in the cache"."""
    done = ProgressTracker(model_id, size, None)
    done.add_resumed(size)
    done.stage = Stage.DONE
    return done.snapshot("already in the cache")


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        ip = shell.get_ipython()
    except Exception:
        return False
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


class ProgressDisplay:
    """A progress callback that shows itself: tqdm bars (``tqdm.auto``: a widget in Jupyter, a
    bar on a terminal) or, where nothing can be redrawn (a log file, a pipe), one plain line per
    model every ``every`` seconds and at each stage change."""

    def __init__(self, *, file: Any = None, every: float = 5.0, bars: bool | None = None) -> None:
        self.file = file if file is not None else sys.stderr
        self.every = every
        if bars is None:
            bars = _in_notebook() or bool(getattr(self.file, "isatty", lambda: False)())
        self.bars = bars
        self._bars: dict[str, Any] = {}
        self._last: dict[str, tuple[float, Stage]] = {}
        self._lock = threading.Lock()

    def __call__(self, p: DownloadProgress) -> None:
        with self._lock:
            if self.bars:
                self._bar(p)
            else:
                self._line(p)

    def _bar(self, p: DownloadProgress) -> None:
        bar = self._bars.get(p.model_id)
        if bar is None:
            from tqdm.auto import tqdm

            bar = tqdm(total=p.total_bytes, desc=p.model_id, unit="B", unit_scale=True,
                       unit_divisor=1024, file=None if _in_notebook() else self.file,
                       leave=True, dynamic_ncols=True)
            self._bars[p.model_id] = bar
        bar.total = p.total_bytes or None  # learned during the download, or still unknown
        bar.n = p.bytes_loaded
        bar.set_postfix_str(p.stage.value if not p.error else f"{p.stage.value}: {p.error}",
                            refresh=False)
        bar.refresh()
        if p.stage.final:
            bar.close()
            del self._bars[p.model_id]

    def _line(self, p: DownloadProgress) -> None:
        from .units import human_rate, human_size

        now = time.monotonic()
        last = self._last.get(p.model_id)
        if last is not None and last[1] == p.stage and now - last[0] < self.every:
            return
        self._last[p.model_id] = (now, p.stage)
        eta = f" eta {p.estimated_time_remaining:.0f}s" if p.estimated_time_remaining else ""
        why = f": {p.error}" if p.error is not None else ""
        print(f"{p.model_id}: {p.stage.value}{why} {p.progress:.1f}%"
              f" {human_size(p.bytes_loaded)}/{shown_total(p)}"
              f" {human_rate(p.speed)}{eta}", file=self.file, flush=True)


def shown_total(p: DownloadProgress) -> str:
    """The total as a person reads it: ``?`` while a download does not know it yet."""
    from .units import human_size

    return human_size(p.total_bytes) if p.total_bytes or p.stage is Stage.DONE else "?"


def display(**options: Any) -> ProgressDisplay:
    """A ready progress callback: ``registry.download_model(id, on_detail=display())``."""
    return ProgressDisplay(**options)


#: The design note's ``onProgress(progress, message)``, or ``"auto"`` for a ready display (a bar
#: in Jupyter or a terminal, plain lines in a log), or one made by
#: ``runanywhere.progress.display(...)`` with options of its own.
SimpleProgress = Callable[[float, str], None] | ProgressDisplay | Literal["auto"]


def progress_callback(on_progress: SimpleProgress | None,
                      on_detail: Callable[[DownloadProgress], None] | None
                      ) -> Callable[[DownloadProgress], None]:
    """One callback for the loader out of the registry's two: ``on_progress`` (the design
    note's ``(percent, message)``, ``"auto"``, or a :func:`display`) and ``on_detail`` (the
    whole :class:`DownloadProgress`)."""
    simple: Callable[[float, str], None] | None = None
    if on_progress == "auto":
        on_detail = on_detail or display()
    elif isinstance(on_progress, ProgressDisplay):  # display(...) takes the whole progress
        detail, display_cb = on_detail, on_progress

        def both(p: DownloadProgress) -> None:
            display_cb(p)
            if detail is not None:
                detail(p)

        on_detail = both
    else:
        simple = on_progress

    def cb(p: DownloadProgress) -> None:
        if simple is not None:
            simple(p.progress, p.message)
        if on_detail is not None:
            on_detail(p)

    return cb
