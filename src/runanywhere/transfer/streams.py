"""When one file's download should open more streams than it started with.

CDNs often cap each connection (20 MiB/s is common); then the way to go faster is more
connections, which aria2c and hf_transfer open by default. A server or a link that is the limit
as a whole gains nothing from them, and a download that already keeps the CPU busy (TLS and
sha256 on a fast link) only loses. So a fetch probes: after a warm-up (the first half second
holds connects, TLS handshakes and the first answers, and says nothing about the link), once a
second it looks at what arrived and at how busy the machine's CPU was, and

* with the machine's CPU busy (at least ``busy_cpu`` of all cores, whoever uses them: TLS and
  sha256 here, a server or another job beside us), it adds nothing this time;
* otherwise it adds ``step`` streams (up to ``limit``, and only as many as there are pieces
  nobody has started, so a new stream never cuts into another's range);
* after an addition, if the rate did not rise by ``gain``, the bottleneck is shared and it stops
  adding for good.

Pure bookkeeping, no threads: :class:`FileFetch` calls :meth:`StreamGrowth.more` and starts
the workers.
"""

from __future__ import annotations

import os
import time


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def cpu_clock() -> tuple[float, float]:
    """(busy, total) CPU time of the whole machine so far (Linux ``/proc/stat``; idle and iowait
    are not busy, steal is); elsewhere this process's CPU time and the wall time of all cores."""
    try:
        with open("/proc/stat", "rb") as f:
            ticks = [int(x) for x in f.readline().split()[1:9]]
        idle = ticks[3] + ticks[4]
        return float(sum(ticks) - idle), float(sum(ticks))
    except (OSError, ValueError, IndexError):
        return time.process_time(), time.monotonic() * _cores()


class StreamGrowth:
    def __init__(self, start: int, limit: int, *, window: float = 1.0, warmup: float = 0.5,
                 step: int = 4, busy_cpu: float = 0.8, gain: float = 1.15) -> None:
        self.streams = start
        self.warmup = warmup
        self._warm = False
        self.limit = limit
        self.window = window
        self.step = step
        self.busy_cpu = busy_cpu
        self.gain = gain
        #: No more additions (the limit reached, or the last addition brought too little).
        self.done = limit <= start
        self._since: tuple[float, int, tuple[float, float]] | None = None  # time, bytes, cpu
        self._rate_before: float | None = None  # the rate before the last addition

    def more(self, now: float, arrived: int, cpu: tuple[float, float], unclaimed: int) -> int:
        """How many streams to add now, given the bytes that ``arrived`` so far, the machine's
        ``cpu`` clock (:func:`cpu_clock`: busy and total so far) and the pieces nobody has
        started."""
        if self.done:
            return 0
        if self._since is None:
            self._since = (now, arrived, cpu)
            return 0
        t0, b0, c0 = self._since
        dt = now - t0
        if not self._warm:
            if dt >= self.warmup:
                self._warm, self._since = True, (now, arrived, cpu)  # measure from here on
            return 0
        if dt < self.window:
            return 0
        self._since = (now, arrived, cpu)
        rate = (arrived - b0) / dt
        spent = cpu[1] - c0[1]
        busy = (cpu[0] - c0[0]) / spent if spent > 0 else 0.0
        added_before = self._rate_before
        self._rate_before = None
        if added_before is not None and rate < added_before * self.gain:
            self.done = True  # the streams added last brought too little: a shared limit
            return 0
        if busy >= self.busy_cpu:
            return 0  # more streams would only share the same CPU
        n = min(self.step, self.limit - self.streams, unclaimed)
        if n <= 0:
            self.done = self.streams >= self.limit
            return 0
        self.streams += n
        self.done = self.streams >= self.limit
        self._rate_before = rate
        return n
