"""Requests in flight, as the watchdog sees them: how long they wait, how fast they read.

A socket timeout only catches silence. A server that dribbles its headers a byte at a time, or a
body at a few bytes a second, would hold a connection forever; the watchdog thread of a fetch
checks each :class:`Request` every 0.25 s with :func:`too_slow` and breaks it (``abort``) from
the outside, as it does for every request on cancel (:func:`police`). A request is watched from
its connect on: ``http.Client`` hands over the socket before it connects and stops a connect in
progress once ``aborted`` is set.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

#: How often a watchdog looks at its requests (and at the cancel event).
EVERY = 0.25


def shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


@dataclass
class Request:
    """One request in flight, from the connect on: watched by the watchdog, broken by cancel."""

    opened: float
    sock: socket.socket | None = None
    #: When the response headers arrived (None while connecting or waiting for them).
    answered: float | None = None
    bytes: int = 0
    samples: deque[tuple[float, int]] = field(default_factory=deque)
    stalled: bool = False
    aborted: bool = False

    def attach(self, sock: socket.socket) -> None:
        """Called by ``Client.get`` with each socket: before it connects, once connected, and
        before a kept-alive one carries the next request."""
        self.sock = sock
        if self.aborted:  # abort() ran before the socket existed
            shutdown(sock)

    def abort(self) -> None:
        """Break a connect in progress (``Client`` looks at ``aborted``), a header wait or a
        body read (the socket is shut down) from another thread."""
        self.aborted = True
        sock = self.sock
        if sock is not None:
            shutdown(sock)


def too_slow(r: Request, now: float, *, timeout: float, window: float, min_speed: float) -> bool:
    """Headers later than ``timeout`` after the request, or fewer than ``min_speed`` bytes/s
    over the last ``window`` seconds of the body."""
    if r.answered is None:
        return now - r.opened > timeout
    r.samples.append((now, r.bytes))
    # Keep one sample at least a window old, so the rate always spans a whole window.
    while len(r.samples) >= 2 and now - r.samples[1][0] >= window:
        r.samples.popleft()
    t0, b0 = r.samples[0]
    return now - t0 >= window and (r.bytes - b0) / (now - t0) < min_speed


def police(requests: Iterable[Request], now: float, *, cancelled: bool, timeout: float,
           window: float, min_speed: float) -> None:
    """One look of the watchdog: on cancel every request is broken, else each one too slow
    (marked ``stalled``, so its failure says why)."""
    for r in requests:
        if cancelled:
            r.abort()
        elif too_slow(r, now, timeout=timeout, window=window, min_speed=min_speed):
            r.stalled = True
            r.abort()


@contextlib.contextmanager
def ticking(every: float, tick: Callable[[], object], name: str) -> Iterator[None]:
    """Call ``tick()`` every ``every`` seconds from a thread of its own while the block runs;
    the thread is gone when the block is left."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every):
            tick()

    thread = threading.Thread(target=loop, daemon=True, name=name)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def watchdog(requests: Callable[[], Iterable[Request]], cancel: threading.Event, *,
             timeout: float, window: float, min_speed: float
             ) -> contextlib.AbstractContextManager[None]:
    """A thread policing ``requests()`` every ``EVERY`` s while the block runs (for callers
    without a watchdog of their own, such as the size probe)."""
    def tick() -> None:
        police(list(requests()), time.monotonic(), cancelled=cancel.is_set(),
               timeout=timeout, window=window, min_speed=min_speed)

    return ticking(min(EVERY, window / 4), tick, "ra-watchdog")
