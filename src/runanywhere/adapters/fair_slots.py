"""Fair turns on one model: a fixed number of generations at a time, the rest first come, first
served (an LLM backend decodes one sequence at a time unless it batches)."""

from __future__ import annotations

import threading
from collections import deque


class FairSlots:
    """``slots`` generations at a time on one model; the others wait, first come first served
    (``threading.Lock`` promises no order). A waiter whose ``cancelled`` event is set leaves the
    queue within ``POLL`` seconds."""

    POLL = 0.05

    def __init__(self, slots: int = 1) -> None:
        if slots < 1:
            raise ValueError(f"slots must be at least 1, got {slots}")
        self.slots = slots
        self._free = slots
        self._waiting: deque[threading.Event] = deque()
        self._lock = threading.Lock()

    def acquire(self, cancelled: threading.Event | None = None) -> bool:
        """Take a slot (True), or give up because ``cancelled`` was set (False)."""
        with self._lock:
            if self._free and not self._waiting:
                self._free -= 1
                return True
            turn = threading.Event()
            self._waiting.append(turn)
        while not turn.wait(self.POLL):
            if cancelled is not None and cancelled.is_set():
                with self._lock:
                    if turn in self._waiting:
                        self._waiting.remove(turn)
                        return False
                # handed the slot just now: pass it on
                self.release()
                return False
        return True

    def release(self) -> None:
        with self._lock:
            if self._waiting:
                self._waiting.popleft().set()  # the slot goes straight to the next in line
            else:
                self._free += 1

    @property
    def waiting(self) -> int:
        with self._lock:
            return len(self._waiting)
