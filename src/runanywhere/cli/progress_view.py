"""Progress display for ``pull``: rich bars on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Any

from ..progress import DownloadProgress, Stage
from ..units import human_size


class PullProgress:
    """One bar per model plus a total, with speed and ETA. ``quiet`` shows nothing."""

    def __init__(self, models: list[tuple[str, int]], *, quiet: bool = False,
                 force_plain: bool = False) -> None:
        self.quiet = quiet
        self.plain = force_plain or not sys.stderr.isatty()
        self._sizes = dict(models)
        self._done: dict[str, int] = {m: 0 for m, _ in models}
        self._last_line: dict[str, float] = {}
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}
        self._total_task: Any = None

    def __enter__(self) -> PullProgress:
        if self.quiet or self.plain:
            return self
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress(TextColumn("{task.description:<16}"), BarColumn(),
                                  DownloadColumn(binary_units=True), TransferSpeedColumn(),
                                  TimeRemainingColumn(), TextColumn("{task.fields[stage]}"),
                                  transient=False)
        self._progress.__enter__()
        for mid, size in self._sizes.items():
            self._tasks[mid] = self._progress.add_task(mid, total=size, stage="queued")
        if len(self._sizes) > 1:
            self._total_task = self._progress.add_task("total", total=sum(self._sizes.values()),
                                                       stage="")
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.__exit__(et, e, tb)

    def update(self, p: DownloadProgress) -> None:
        if self.quiet:
            return
        self._done[p.model_id] = p.bytes_loaded
        if self._progress is not None:
            self._progress.update(self._tasks[p.model_id], completed=p.bytes_loaded,
                                  stage=p.stage.value)
            if self._total_task is not None:
                self._progress.update(self._total_task, completed=sum(self._done.values()))
            return
        now = time.monotonic()
        final = p.stage in (Stage.DONE, Stage.FAILED, Stage.CANCELLED)
        if not final and now - self._last_line.get(p.model_id, 0.0) < 1.0:
            return  # plain output: one line a second per model is plenty for logs
        self._last_line[p.model_id] = now
        eta = f"{p.estimated_time_remaining:.0f}s" if p.estimated_time_remaining else "-"
        sys.stderr.write(f"{p.model_id}: {p.stage.value} {p.progress:5.1f}%"
                         f" {human_size(p.bytes_loaded)}/{human_size(p.total_bytes)}"
                         f" {human_size(p.speed)}/s eta {eta}\n")
        sys.stderr.flush()
