"""How many streams one file's download should use, decided by what more streams deliver.

CDNs often cap each connection (20 MiB/s is common); then the way to go faster is more
connections, which aria2c and hf_transfer open up front. So does a fetch, as far as the file's
size says (``Streams.start_for``: one stream per 8 MiB, 8 to 32), since a download of a few
seconds is over before measuring could widen it; a file under 256 MiB starts with fewer, and
one of 1 GiB or more (whose download lasts long enough) with 8, and they may grow here. A link
or a server that is the limit as a whole gains nothing from more streams, and neither does a
download whose own CPU (TLS, sha256, copies) is the limit. Other work on the machine is no
reason to hold back: it slows every stream alike, and only the rate says whether more streams
help. So a fetch measures, window by window:

* after a settle time (connects, TLS handshakes and the first answers say nothing about the
  link; on a far server they take several round trips, so the settle time follows the first
  answer's latency), the aggregate rate of a window of ``window`` s;
* it doubles the streams (up to ``limit``, and only as many as there are pieces nobody has
  started, so a new stream never cuts into another's range), then lets them settle and measures
  again: the batch must have raised the rate by at least ``gain_share`` of what it would if every
  stream were capped (8 -> 16 streams: +50% at the default share of one half);
* a batch that did not, while this process's CPU was not busy, means a shared limit (the whole
  link, the server): no more additions, for good;
* with this process's CPU busy (at least ``busy_share`` of the cores' time in the window: TLS and
  sha256 of a fast download), or the hash falling behind the bytes it could hash (by more than
  ``lag_limit`` over the window: sha256 runs on one core, and on a machine busy with other work
  that core is what runs out first, long before this process reaches its share), it adds
  nothing and does not conclude either: nginx-like servers let each new connection burst for a
  second before pacing it, and that burst is CPU-bound;
* a ``429`` or ``503`` from the host sets its limit: the streams alive then, less the refused
  one (:meth:`StreamGrowth.throttled`); the fetch sheds the streams growth added down to it (never
  below the configured start, whose streams wait out `Retry-After`) and never grows again.

Pure bookkeeping, no threads: :class:`~.fetch.FileFetch` calls :meth:`StreamGrowth.more` and
starts the workers.
"""

from __future__ import annotations

import os
import time


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def cpu_clock() -> float:
    """CPU seconds this process has used so far (every thread, user and system)."""
    return time.process_time()


class StreamGrowth:
    def __init__(self, start: int, limit: int, *, window: float = 0.5, settle: float = 0.25,
                 gain_share: float = 0.5, busy_share: float = 0.5, cpus: int | None = None,
                 lag_limit: int = 8 * 2**20) -> None:
        self.streams = start
        self.limit = limit
        self.window = window
        #: How long streams just started are left alone before a window is measured.
        self.settle = settle
        self.gain_share = gain_share
        self.busy_share = busy_share
        self.cpus = cpus or cores()
        self.lag_limit = lag_limit
        #: No more additions (the limit reached, a shared limit found, the host's limit known).
        self.done = limit <= start
        #: The host's limit after a 429 or 503 (None: none seen).
        self.host_limit: int | None = None
        self._since: tuple[float, int, float, int] | None = None  # time, bytes, cpu, lag
        self._settled = False
        self._before: tuple[float, int] | None = None  # the rate and streams before a batch

    def latency(self, seconds: float) -> None:
        """The first answer took ``seconds`` (connect, TLS, request): new streams need about as
        long before their bytes count, so the settle time is at least twice that."""
        self.settle = max(self.settle, 2 * seconds)

    def more(self, now: float, arrived: int, cpu: float, unclaimed: int, lag: int = 0) -> int:
        """How many streams to add now, given the bytes that ``arrived`` so far, this process's
        ``cpu`` clock (:func:`cpu_clock`), the pieces nobody has started and the hash's ``lag``
        (bytes in order on disk, not hashed yet)."""
        if self.done:
            return 0
        if self._since is None:
            self._since = (now, arrived, cpu, lag)
            return 0
        t0, b0, c0, lag0 = self._since
        dt = now - t0
        if not self._settled:
            if dt >= self.settle:
                self._settled = True  # measure from here on
                self._since = (now, arrived, cpu, lag)
            return 0
        if dt < self.window:
            return 0
        self._since = (now, arrived, cpu, lag)
        rate = (arrived - b0) / dt
        busy = ((cpu - c0) / dt >= self.busy_share * self.cpus
                or lag - lag0 > self.lag_limit)
        before, self._before = self._before, None
        if before is not None:
            rate0, streams0 = before
            expected = self.streams / streams0 - 1  # the rise if every stream were capped
            if rate < rate0 * (1 + self.gain_share * expected):
                if not busy:
                    self.done = True  # the batch brought too little: a shared limit
                return 0
        if busy:
            return 0  # more streams would only share the same CPU
        n = min(self.streams, self.limit - self.streams, unclaimed)
        if n <= 0:
            self.done = self.streams >= self.limit
            return 0
        self._before = (rate, self.streams)
        self.streams += n
        self.done = self.streams >= self.limit
        self._settled = False  # the new streams connect first
        return n

    def throttled(self, alive: int) -> int:
        """The host refused a request (429, 503) while ``alive`` streams ran: at most one fewer
        from now on (never below one, never above a limit it set before); returns the limit."""
        cap = max(1, alive - 1)
        self.host_limit = cap if self.host_limit is None else min(self.host_limit, cap)
        self.done = True
        return self.host_limit
