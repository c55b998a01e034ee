"""Fair turns on one model: ``slots`` requests run at once, the others wait first come, first
served, and a bounded number of them: one more is refused (the route answers 429 with
``Retry-After``) instead of piling up behind a model that cannot keep up.

Asyncio only (every caller is a request handler on the server's loop). A waiter that is
cancelled (its client went away) leaves the line; a waiter handed a slot at the moment it was
cancelled passes the slot on, so no slot is ever lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque

#: Weight of the newest request in the running mean of how long one takes.
_EWMA = 0.3


class QueueFull(Exception):
    """Too many requests wait for this model; ``retry_after`` is a guess in whole seconds."""

    def __init__(self, model_id: str, waiting: int, retry_after: int) -> None:
        super().__init__(f"{waiting} requests already wait for {model_id}; try again in"
                         f" {retry_after} s")
        self.retry_after = retry_after


class Turns:
    def __init__(self, model_id: str, slots: int, max_waiting: int) -> None:
        self.model_id = model_id
        self.slots = slots
        self.max_waiting = max_waiting
        self._free = slots
        self._waiting: deque[asyncio.Future[None]] = deque()
        #: Mean seconds a turn takes (for Retry-After); None before the first one ends.
        self.mean_turn: float | None = None

    @property
    def busy(self) -> int:
        return self.slots - self._free

    @property
    def waiting(self) -> int:
        return sum(1 for f in self._waiting if not f.done())

    def resize(self, slots: int) -> None:
        """The model turned out to run ``slots`` requests at once (known once it is loaded)."""
        grow = slots - self.slots
        self.slots = slots
        self._free += grow
        while self._free > 0 and self._hand_over():
            self._free -= 1

    def refuse_if_full(self, already_waiting: int) -> None:
        """Raise :class:`QueueFull` when ``already_waiting`` requests wait for this model."""
        if already_waiting >= self.max_waiting:
            raise QueueFull(self.model_id, already_waiting, self.retry_after(already_waiting))

    def retry_after(self, waiting: int) -> int:
        """Seconds until the line ahead of a newcomer has likely moved on (at least 1)."""
        per_turn = self.mean_turn if self.mean_turn is not None else 1.0
        return max(1, math.ceil(per_turn * (waiting + 1) / max(1, self.slots)))

    async def acquire(self) -> None:
        if self._free > 0 and not self._waiting:
            self._free -= 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # handed the slot just as it was cancelled: pass it on
            else:
                self._forget(fut)
            raise

    def release(self, took: float | None = None) -> None:
        if took is not None:
            self.mean_turn = took if self.mean_turn is None else (
                _EWMA * took + (1 - _EWMA) * self.mean_turn)
        if not self._hand_over():
            self._free += 1

    def _hand_over(self) -> bool:
        """Give a free slot to the first in line that still waits; False if nobody does."""
        while self._waiting:
            fut = self._waiting.popleft()
            if not fut.done():
                fut.set_result(None)
                return True
        return False

    def _forget(self, fut: asyncio.Future[None]) -> None:
        with contextlib.suppress(ValueError):
            self._waiting.remove(fut)
