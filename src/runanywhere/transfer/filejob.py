"""What the streams of one file's download share, behind one lock.

:class:`FileJob` owns the state every connection of a file reads and changes: the schedule of
ranges (``schedule.py``), the partial the bytes land in with the hasher that follows them
(``store/partial.py``, ``hasher.py``), the validators each URL answered with (for ``If-Range``),
the requests in flight (for the watchdog and cancel) and the first error. Each
:class:`~.stream.Stream` is handed the job; :class:`~.fetch.FileFetch` makes one job per file and
orchestrates the passes over it. Nothing here talks to the network.
"""

from __future__ import annotations

import threading

from ..errors import IntegrityError
from ..progress import ProgressTracker
from ..store.fsutil import disk_error
from ..store.hashing import write_all
from ..store.partial import Partial
from .config import FetchConfig
from .hasher import PrefixHasher
from .response import Answer, Validators
from .roster import UrlRoster
from .schedule import Schedule, Segment
from .streams import StreamGrowth
from .watch import Request


class BadBytes(Exception):
    """A URL that supplied bytes of the partial was caught sending the wrong file: the partial
    starts over from the next URL."""

    def __init__(self, error: IntegrityError) -> None:
        super().__init__(str(error))
        self.error = error


class FileJob:
    """One file's download as its streams share it (thread-safe)."""

    def __init__(self, *, config: FetchConfig, size: int, roster: UrlRoster, partial: Partial,
                 tracker: ProgressTracker, cancel: threading.Event) -> None:
        self.config = config
        self.size = size
        self.roster = roster
        self.partial = partial
        self.tracker = tracker
        self.cancel = cancel
        self.hasher = PrefixHasher(partial.fd)
        #: The one lock over the job (the schedule's methods are called with it held).
        self.cond = threading.Condition()
        s = config.streams
        start = s.start_for(size)
        self.plan = Schedule(size, connections=start, split_threshold=s.split_threshold,
                             min_part=s.min_part, chunk_size=s.chunk_size,
                             piece_size=s.piece_size)
        #: The first error of a stream: the pass ends with it.
        self.error: BaseException | None = None
        #: How many streams to run (``streams.py``); streams alive now.
        self.growth = StreamGrowth(start, max(start, s.max_connections))
        self.alive = 0
        #: Bytes written by this job's streams (for stream growth), and not yet flushed.
        self.arrived = 0
        self.unflushed = 0
        #: Whether the first bytes of the file were looked at (an HTML page instead of a model?).
        self.html_checked = False
        #: Where the first request was redirected to while its answer is awaited (the CDN the
        #: other streams will ask), and whether the pieces are planned (``FileFetch._download``).
        self.heading_to: str | None = None
        self.planned = False
        self._requests: dict[int, Request] = {}
        self._validators: dict[str, Validators] = {}
        meta = partial.meta
        if meta is not None and (meta.etag or meta.last_modified):
            self._validators[roster.primary] = (meta.etag, meta.last_modified)

    # -- starting over -----------------------------------------------------------------------------
    def reset(self) -> None:
        """Drop every byte held: the file starts over from byte 0."""
        with self.cond:
            self.hasher.reset(truncate=self.partial.reset)  # never under a mapping being read
            self._validators.clear()
            self.plan.ranges_ok = None
            self.error = None
            self.html_checked = False
        self.roster.fresh_partial()

    def fail(self, error: BaseException) -> None:
        """A stream failed: keep the first error, wake the others and break their requests."""
        with self.cond:
            if self.error is None:
                self.error = error
            self.cond.notify_all()
        self.abort_all()

    # -- ranges ------------------------------------------------------------------------------------
    def claim(self, idx: int, *, steal: bool) -> Segment | None:
        with self.cond:
            return self.plan.claim(idx, steal=steal)

    def segment_end(self, seg: Segment) -> int:
        """Where ``seg`` ends now (it shrinks when another stream steals its tail)."""
        with self.cond:
            return seg.end

    def release(self, seg: Segment) -> None:
        with self.cond:
            seg.owner = None

    def unclaimed(self) -> tuple[int, int, int]:
        """(pieces nobody started, bytes arrived so far, bytes in order not hashed yet): what
        stream growth looks at."""
        with self.cond:
            lag = self.partial.ranges.prefix_end() - self.hasher.hashed
            return self.plan.unclaimed(), self.arrived, max(0, lag)

    def redirect_seen(self, url: str) -> None:
        """The first request was sent on to ``url`` (a Hub's 302 to its CDN): streams may
        connect there before its answer says whether ranges work."""
        with self.cond:
            if self.plan.ranges_ok is None:
                self.heading_to = url
                self.cond.notify_all()

    def wait_for_plan(self) -> bool:
        """Block until the pieces are planned (or the pass failed, or was cancelled); True if
        they are, for several streams."""
        with self.cond:
            while not self.planned and self.error is None and not self.cancel.is_set():
                self.cond.wait(0.1)
            return self.planned and self.plan.parallel and self.error is None

    # -- how many streams ------------------------------------------------------------------------
    def enter(self) -> None:
        with self.cond:
            self.alive += 1

    def leave(self) -> None:
        with self.cond:
            self.alive -= 1

    def shed(self, *, stalled: bool) -> bool:
        """A stream was refused (429, 503: ``stalled`` False) or stalled: should it stop? Only
        streams that growth added beyond the configured start are shed (within it, the stream
        waits and retries as its ``Retry-After`` says); a refusal sets the host's limit below
        the streams alive now (``StreamGrowth.throttled``), and either stops growth. True: this
        stream stops (counted out)."""
        with self.cond:
            self.growth.done = True  # a stream more did not help, or the host says no more
            if self.alive <= self.config.streams.connections:
                return False
            cap = self.alive - 1 if stalled else self.growth.throttled(self.alive)
            if self.alive <= cap:
                return False
            self.alive -= 1
            return True

    def over_limit(self) -> bool:
        """Should a stream about to claim a range stop instead (more alive than the host's
        limit)? True: it stops (counted out)."""
        with self.cond:
            cap = self.growth.host_limit
            if cap is None or self.alive <= cap:
                return False
            self.alive -= 1
            return True

    # -- answers -----------------------------------------------------------------------------------
    def known(self, url: str, seg: Segment) -> tuple[Validators | None, bool]:
        """The validators recorded for ``url`` and whether any byte of the file is held (what
        ``response.classify`` weighs an answer against)."""
        with self.cond:
            return (self._validators.get(url),
                    self.partial.ranges.covered() > 0 or seg.pos > 0)

    def validators(self, url: str) -> Validators:
        with self.cond:
            return self._validators.get(url, (None, None))

    def answered(self, url: str, seg: Segment, answer: Answer, known: Validators | None
                 ) -> tuple[int, int | None]:
        """Act on a classified answer: record what it says about the file and the server;
        returns (offset its body starts at, body length)."""
        with self.cond:
            if not (answer.ranged and known):  # a 200 always names the version it sends
                self._validators[url] = answer.validators
                self._save_validators(url)
            self.plan.ranges_ok = answer.ranged
            self.cond.notify_all()
            if answer.ranged:
                return answer.start, answer.length
            if seg.remaining > 0:  # else another stream took over as the one stream already
                self.plan.single_stream(seg, self.partial.ranges.prefix_end())
            return 0, answer.length

    def _save_validators(self, url: str) -> None:
        meta = self.partial.meta
        if meta is not None and url == self.roster.primary:
            meta.etag, meta.last_modified = self._validators[url]
            self.partial.save_meta()

    # -- bytes -------------------------------------------------------------------------------------
    def land(self, seg: Segment, pos: int, data: memoryview, url: str) -> int:
        """Write ``data`` at ``pos`` (the rest of a short write is the caller's), hash it as it
        lands, journal it and count it; returns the bytes written."""
        try:
            written = write_all(self.partial.fd, data, pos)
            self.hasher.offer(pos, data[:written])
            with self.cond:
                self.partial.record(pos, pos + written)
                self.unflushed += written
                self.arrived += written
                seg.pos = pos + written
                self.cond.notify_all()
        except OSError as e:
            raise disk_error(e, f"writing {self.partial.data_path.name}") from e
        self.roster.supplied(url)
        self.tracker.add(written)
        return written

    def prefix_end(self) -> int:
        with self.cond:
            return self.partial.ranges.prefix_end()

    def wait_for_bytes(self, seconds: float) -> None:
        with self.cond:
            self.cond.wait(seconds)

    def take_flush(self) -> bool:
        """True (once) when ``flush_every`` bytes were written since the last flush."""
        if not self.config.durable:
            return False
        with self.cond:
            if self.unflushed < self.config.flush_every:
                return False
            self.unflushed = 0
            return True

    # -- requests in flight ------------------------------------------------------------------------
    def track(self, idx: int, request: Request) -> None:
        with self.cond:
            self._requests[idx] = request

    def untrack(self, idx: int) -> None:
        with self.cond:
            self._requests.pop(idx, None)

    def requests(self) -> list[Request]:
        with self.cond:
            return list(self._requests.values())

    def abort_all(self) -> None:
        """Break every blocked request now (cancel, or another stream's failure)."""
        for r in self.requests():
            r.abort()
