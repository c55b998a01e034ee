"""A progress tracker that forwards to the model's tracker and remembers its own share.

Imported lazily (it needs ``transfer.progress``, and ``transfer`` imports this package).
"""

from __future__ import annotations

import threading

from ..transfer.progress import ProgressTracker, Stage


class SubTracker(ProgressTracker):
    """Counts what one shared-tier fetch added, so a failed fetch can take it back."""

    def __init__(self, parent: ProgressTracker) -> None:
        super().__init__(parent.model_id, parent.total, None)
        self.parent = parent
        self.counted = 0
        self._count_lock = threading.Lock()

    def add(self, n: int) -> None:
        with self._count_lock:
            self.counted += n
        self.parent.add(n)

    def add_resumed(self, n: int) -> None:
        with self._count_lock:
            self.counted += n
        self.parent.add_resumed(n)

    def rewind(self, n: int) -> None:
        with self._count_lock:
            self.counted -= n
        self.parent.rewind(n)

    def set_stage(self, stage: Stage, message: str = "") -> None:
        self.parent.set_stage(stage, message)

    def take_back(self) -> None:
        """Undo every byte this fetch reported (it failed; the origin will report them again)."""
        with self._count_lock:
            n, self.counted = self.counted, 0
        if n > 0:
            self.parent.rewind(n)
