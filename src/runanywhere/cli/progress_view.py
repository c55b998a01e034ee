"""Progress display for ``pull``, always on stderr: rich bars at a terminal, plain lines otherwise.

Sizes and speeds are in one unit family (KiB, MiB, MiB/s). A bar ends in the download's end
state: done, ``failed: <why>`` or ``cancelled``. Speeds and ETAs are the downloads' own (bytes
that arrived in this run; the total's is their sum), never rich's estimate from the bar's
jumps: a resumed model's kept bytes would count as speed.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Any

from ..progress import DownloadProgress, Stage, shown_total
from ..units import human_rate, human_size


def _speed_column() -> Any:
    from rich.progress import ProgressColumn, Task
    from rich.text import Text

    class BinarySpeed(ProgressColumn):
        """Transfer speed in MiB/s (rich's own column says MB/s)."""

        def render(self, task: Task) -> Text:
            rate = task.fields.get("rate")
            return Text(human_rate(rate) if rate else "-", style="progress.data.speed")

    return BinarySpeed()


def _eta_column() -> Any:
    from rich.progress import ProgressColumn, Task
    from rich.text import Text

    class Eta(ProgressColumn):
        """What is left over the download's own speed."""

        def render(self, task: Task) -> Text:
            rate = task.fields.get("rate")
            if task.finished:
                return Text("0:00:00", style="progress.remaining")
            if not rate or not task.total:
                return Text("-:--:--", style="progress.remaining")
            left = int(max(task.total - task.completed, 0) / rate)
            return Text(f"{left // 3600}:{left // 60 % 60:02d}:{left % 60:02d}",
                        style="progress.remaining")

    return Eta()


class PullProgress:
    """One bar per model plus a total, with speed and ETA. ``quiet`` shows nothing."""

    def __init__(self, models: list[tuple[str, int]], *, quiet: bool = False,
                 force_plain: bool = False) -> None:
        self.quiet = quiet
        self.plain = force_plain or not sys.stderr.isatty()
        self._sizes = dict(models)
        self._done: dict[str, int] = {m: 0 for m, _ in models}
        self._speeds: dict[str, float] = {m: 0.0 for m, _ in models}
        self._last_line: dict[str, tuple[float, str]] = {}
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}
        self._total_task: Any = None

    def __enter__(self) -> PullProgress:
        if self.quiet or self.plain:
            return self
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
        )

        self._progress = Progress(TextColumn("{task.description:<16}"), BarColumn(),
                                  DownloadColumn(binary_units=True), _speed_column(),
                                  _eta_column(), TextColumn("{task.fields[stage]}"),
                                  console=Console(stderr=True), transient=False,
                                  redirect_stdout=False)
        self._progress.__enter__()
        for mid, size in self._sizes.items():
            self._tasks[mid] = self._progress.add_task(mid, total=size or None, stage="queued",
                                                       rate=None)
        if len(self._sizes) > 1:
            self._total_task = self._progress.add_task(
                "total", total=sum(self._sizes.values()) or None, stage="", rate=None)
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.__exit__(et, e, tb)

    @staticmethod
    def stage_text(p: DownloadProgress) -> str:
        if p.error is not None and p.stage.value == "failed":
            return f"failed: {p.error}"
        return p.stage.value

    def update(self, p: DownloadProgress) -> None:
        if self.quiet:
            return
        self._done[p.model_id] = p.bytes_loaded
        self._speeds[p.model_id] = p.speed if p.stage is Stage.DOWNLOADING else 0.0
        if p.total_bytes:  # a URL without --size: the total is learned as it downloads
            self._sizes[p.model_id] = p.total_bytes
        if self._progress is not None:
            self._progress.update(self._tasks[p.model_id], completed=p.bytes_loaded,
                                  total=self._sizes[p.model_id] or None,
                                  stage=self.stage_text(p), rate=self._speeds[p.model_id])
            if self._total_task is not None:
                self._progress.update(self._total_task, completed=sum(self._done.values()),
                                      total=sum(self._sizes.values()) or None,
                                      rate=sum(self._speeds.values()))
            return
        now = time.monotonic()
        last_at, last_stage = self._last_line.get(p.model_id, (0.0, ""))
        if p.stage.value == last_stage and now - last_at < 1.0:
            return  # plain output: one line a second per model (and each stage change)
        self._last_line[p.model_id] = (now, p.stage.value)
        eta = f"{p.estimated_time_remaining:.0f}s" if p.estimated_time_remaining else "-"
        sys.stderr.write(f"{p.model_id}: {self.stage_text(p)} {p.progress:5.1f}%"
                         f" {human_size(p.bytes_loaded)}/{shown_total(p)}"
                         f" {human_rate(p.speed)} eta {eta}\n")
        sys.stderr.flush()
