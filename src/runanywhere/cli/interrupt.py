"""Ctrl-C the way a terminal user expects: the first one cancels what runs and lets it stop
(partials kept, each model reports), the second one exits at once.

``asyncio.run`` also cancels on the first Ctrl-C, but on the second it raises inside the loop and
then waits again for the tasks it cancels; a second Ctrl-C must not wait for anything.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_interruptible(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion. Ctrl-C cancels it (its own ``except CancelledError`` blocks
    run and may report) and then raises ``KeyboardInterrupt``; a second Ctrl-C ends the process
    with status 130 without waiting."""
    import asyncio  # here, not at import: the commands that answer without a loop skip it

    if threading.current_thread() is not threading.main_thread():
        return asyncio.run(coro)
    loop = asyncio.new_event_loop()
    task = loop.create_task(coro)
    interrupts = 0

    def on_sigint(signum: int, frame: object) -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts == 1:
            loop.call_soon_threadsafe(task.cancel)
            return
        sys.stderr.write("\nrunanywhere: interrupted again: exiting now\n")
        sys.stderr.flush()
        os._exit(130)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        return loop.run_until_complete(task)
    except asyncio.CancelledError:
        if interrupts:
            raise KeyboardInterrupt from None
        raise
    finally:
        signal.signal(signal.SIGINT, previous)
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()
