"""The one way synchronous code (scripts, notebooks, other threads) calls the async API: an event
loop in a daemon thread that runs coroutines to completion for blocking callers, where Ctrl-C
cancels what the call started (``BlockingRegistry``, ``run_blocking``, adapters' ``*_sync``)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import signal
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

from .errors import ModelError

T = TypeVar("T")
#: How long a Ctrl-C'd blocking call waits for what it started to stop.
WIND_DOWN = 5.0


@contextlib.contextmanager
def interrupts_blocked() -> Iterator[None]:
    """SIGINT and SIGTERM blocked in this thread while the block runs, so a thread started
    in it is born with them blocked (and every thread IT starts: the mask is inherited).

    The Bridge's caller waits for its result in a lock, which only a signal delivered to the
    caller's own thread interrupts. The kernel gives a Ctrl-C to any thread that does not
    block it: one that landed in the loop's thread, or in a download thread the loop started,
    woke nobody, and the download ran to its end before the KeyboardInterrupt was raised.
    Blocked in all of them, it can only land in the caller's thread. A thread started in the
    block is born blocked (blocking it from the new thread itself would leave a window)."""
    if not hasattr(signal, "pthread_sigmask"):  # pragma: no cover - POSIX only
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)  # a pending Ctrl-C is delivered here


class Bridge:
    """An event loop in a daemon thread that runs coroutines for blocking callers: the one way
    synchronous code (scripts, notebooks, other threads) calls the async API."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="runanywhere-loop")
        with interrupts_blocked():
            self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` to completion; Ctrl-C cancels it (a download nobody else waits for
        stops, its partial kept) and lets it stop before the interrupt goes on."""
        finished = threading.Event()

        async def run() -> T:
            try:
                return await coro
            finally:
                finished.set()

        future = asyncio.run_coroutine_threadsafe(run(), self._loop)
        try:
            return future.result()
        except KeyboardInterrupt:
            future.cancel()
            finished.wait(WIND_DOWN)
            raise
        except concurrent.futures.CancelledError:
            raise ModelError("the call was cancelled") from None

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()


_shared_bridge: Bridge | None = None
_shared_bridge_lock = threading.Lock()


def run_blocking(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine of the API from synchronous code (works inside a running loop too)."""
    global _shared_bridge
    with _shared_bridge_lock:
        if _shared_bridge is None:
            _shared_bridge = Bridge()
    return _shared_bridge.run(coro)
