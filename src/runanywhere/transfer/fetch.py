"""Fetch one file: parallel HTTP ranges written in place, resumable, verified as it lands.

:class:`FileFetch` orchestrates; each connection's work (a range asked for, its answer judged,
its body read into the partial) is a :class:`~.stream.Stream`, and what the streams share is a
:class:`~.filejob.FileJob`. Design (numbers are the defaults of :class:`~.config.FetchConfig`):

* Which ranges each connection fetches is ``schedule.py``'s job: one range first, then pieces of
  at least 8 MiB after a ``206`` on as many streams as the file starts with (one per 8 MiB,
  8 to 32, for a file under 1 GiB: ``Streams.start_for``); a ``200`` means the server ignores
  ``Range`` and the same response is streamed from byte 0 instead. If the first request is
  redirected (a Hub's 302 to its CDN), the other streams connect there while its answer is
  awaited. While doubling the streams raises the rate (a CDN that caps each connection), more
  are opened, up to 32; a ``429`` or ``503`` sheds streams down to the host's limit
  (``streams.py``). If a server stops honouring ``Range`` midway (same validator), one worker
  becomes that single stream and skips the bytes already held; the others stop.
* Every range carries ``If-Range`` with the validator (strong ETag, else Last-Modified) seen first,
  so all bytes come from one version of the file; a change restarts cleanly from zero (once).
* Bytes are ``pwrite``-n into one sparse partial file and journaled (see ``store/partial.py``),
  including what arrived before a connection broke.
* sha256 is computed while the bytes arrive (``hasher.py``): the hash is ready a moment after the
  last byte, and a large file is never read a second time afterwards.
* What each answer means is decided by ``response.classify`` from its status and headers alone.
* A watchdog (``watch.py``) aborts connections slower than ``min_speed`` over ``stall_window`` (a
  trickle that a socket timeout never catches), requests whose headers take longer than
  ``timeout`` (a dribbled header), and every request on cancel. In durable mode it also
  ``fdatasync``-s as the download goes, so the final flush before publication is short.
* Each range retries alone under the config's :class:`~.retry.RetryPolicy` (backoff,
  ``Retry-After`` wins, bytes that arrived reset the budget); when its budget is spent the next
  mirror is used. A 4xx moves to the next mirror at once. Local disk failures are typed
  (``InsufficientStorageError``, ``CacheError``) and never retried as network errors.
* Wrong bytes are blamed on the URLs that sent them: the fetch records which URLs supplied the
  bytes now in the partial. A URL caught sending the wrong file (a size, a length, an HTML page,
  or the whole file's hash when it alone supplied it) is not used again; when several shared in
  a wrong file, each is used again only alone, after the URLs not suspected. Either way the
  partial starts over from byte 0 with the next URL, until every URL had its chance.
* A file the catalog gives only an estimate for learns its size first (``probe.py``: the same
  retry policy, credential rules and watchdog), from the first URL that can say.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DownloadCancelledError, DownloadError, IntegrityError
from ..logs import logger
from ..progress import ProgressTracker, Stage
from ..redact import redact_url
from ..store.fsutil import crash_point, disk_error
from ..store.hashing import git_blob_sha1
from ..store.partial import Partial, PartialMeta, adopt, new_owner
from .config import FetchConfig
from .filejob import BadBytes, FileJob
from .probe import probe_size
from .response import SourceChanged
from .roster import UrlRoster
from .stream import Stream
from .streams import cpu_clock
from .watch import police

log = logger(__name__)


@dataclass(frozen=True)
class FetchedFile:
    """A complete, verified file, still in the partials folder, ready to be published."""

    path: Path
    sha256: str
    size: int
    partial: Partial = field(repr=False, compare=False)

    def release(self) -> None:
        """Drop the journal and metadata once the data file was moved into the store.

        If it is still here (publishing failed), they stay: the next run adopts the complete,
        journaled partial and re-hashes it instead of downloading it again.
        """
        if not self.path.exists():
            self.partial.drop_sidecars()


class FileFetch:
    """Downloads one file into a partial and verifies it. Blocking; run it in a thread."""

    def __init__(self, urls: Sequence[str], size: int | None, sha256: str | None, *,
                 partial_dir: Path, key: str, config: FetchConfig,
                 tracker: ProgressTracker, cancel: threading.Event,
                 git_sha1: str | None = None, size_estimate: int | None = None) -> None:
        """``size`` None: learned from the origin (then ``sha256`` decides; ``size_estimate``
        stands in for progress until then). ``git_sha1``: the git blob id the bytes must have
        (what the Hub publishes for a small file) when no sha256 is known."""
        if size is None and not sha256:
            raise ValueError("a file of unknown size needs a sha256")
        self.roster = UrlRoster(urls)
        self.size = size if size is not None else 0
        self.size_known = size is not None
        self.size_estimate = size_estimate
        self.expected = sha256
        self.git_sha1 = git_sha1
        self.partial_dir = partial_dir
        self.key = key
        self.cfg = config
        self.tracker = tracker
        self.cancel = cancel
        self._job: FileJob | None = None

    # -- public --------------------------------------------------------------------------------
    def run(self) -> FetchedFile:
        if not self.size_known:
            self._learn_size()
        # The partial's metadata is written to disk: no password or token goes there.
        meta = PartialMeta(url=redact_url(self.roster.primary), size=self.size,
                           sha256=self.expected)
        try:
            partial = adopt(self.partial_dir, self.key, meta, new_owner())
            partial.open(meta)
        except OSError as e:
            raise disk_error(e, f"opening a partial file in {self.partial_dir}") from e
        job = self._job = FileJob(config=self.cfg, size=self.size, roster=self.roster,
                                  partial=partial, tracker=self.tracker, cancel=self.cancel)
        resumed = partial.ranges.covered()
        self.tracker.add_resumed(resumed)
        if resumed:
            log.info("%s: resuming with %d of %d bytes already here (%d ranges missing)",
                     self.roster.primary, resumed, self.size,
                     len(partial.ranges.missing(self.size)))
            self.tracker.emit(f"resuming: {resumed} of {self.size} bytes already here",
                              force=True)
        try:
            digest = self._fetch_until_right(job, resumed)
            if self.cfg.durable:
                try:
                    os.fdatasync(partial.fd)
                except OSError as e:
                    raise disk_error(e, f"flushing {partial.data_path.name}") from e
            partial.close()
            return FetchedFile(partial.data_path, digest, self.size, partial)
        except DownloadCancelledError:
            partial.close()  # keep the bytes for a later resume
            raise
        except IntegrityError:
            partial.discard()  # known bad: nothing to resume from
            raise
        except BaseException:
            partial.close()
            raise

    def _fetch_until_right(self, job: FileJob, resumed: int) -> str:
        """Download and verify until the bytes are right; returns their sha256. Wrong bytes
        start the file over from the next URL; a changed source starts it over once."""
        restarted = False
        while True:
            try:
                self._download(job)
                crash_point("fetch:complete")  # every byte journaled, not yet verified
                digest = self._finish_hash(job)
                wrong = self._wrong_bytes(job, digest)
                if wrong is None:
                    return digest
                if resumed and not restarted:
                    # Bytes we kept from before were bad (power loss, or a changed
                    # source): never trust them again, start over once.
                    raise SourceChanged("the bytes kept from an earlier run were bad")
                senders = self.roster.blame(wrong)
                self._start_over_from_next(job, IntegrityError(
                    f"{wrong} from {' and '.join(senders)}",
                    expected=self.expected or self.git_sha1, actual=digest, url=senders[0]))
                restarted, resumed = False, 0  # a new source: the bytes start over
            except BadBytes as bad:
                self._start_over_from_next(job, bad.error)
                restarted, resumed = False, 0
            except SourceChanged as why:
                log.warning("%s: starting the file over: %s", self.roster.primary, why)
                if restarted:
                    raise DownloadError(
                        f"{self.roster.primary}: had to start over twice ({why})",
                        url=self.roster.primary) from None
                restarted, resumed = True, 0
                self.tracker.rewind(job.partial.ranges.covered())
                job.reset()

    def _wrong_bytes(self, job: FileJob, digest: str) -> str | None:
        """What is wrong with the complete file, or None if it is what was asked for."""
        if self.expected:
            if digest != self.expected:
                return f"sha256 mismatch (expected {self.expected}, got {digest})"
            return None
        if self.git_sha1:
            actual = git_blob_sha1(job.partial.fd, self.size)
            if actual != self.git_sha1:
                return f"git blob id mismatch (expected {self.git_sha1}, got {actual})"
        return None

    def _start_over_from_next(self, job: FileJob, error: IntegrityError) -> None:
        """Drop the partial's bytes and start over from byte 0 with the next URL; raise
        ``error`` when every URL had its chance."""
        nxt = self.roster.move_on()
        if nxt is None:
            error.args = (f"{error}{self.roster.tried_note()}",)  # every URL tried, named
            raise error
        log.warning("%s; starting over from %s", error, nxt)
        self.tracker.rewind(job.partial.ranges.covered())
        job.reset()

    def _learn_size(self) -> None:
        """Ask the origin how big the file is (the catalog gave only an estimate), through
        ``probe.py``; the URL that answered is where the bytes are fetched from."""
        found = probe_size(self.roster.urls, self.cfg, self.cancel)
        url = self.roster.urls[found.index]
        log.info("%s: %d bytes (the catalog estimated %s)", url, found.total,
                 self.size_estimate)
        self.roster.settle_on(found.index, found.failed)
        self.roster.redirected(url, found.final)
        self.tracker.grow(found.total - (self.size_estimate or 0))
        self.size, self.size_known = found.total, True

    def abort_all(self) -> None:
        """Break every blocked read now (used by cancel)."""
        if self._job is not None:
            self._job.abort_all()

    def discard(self) -> None:
        """Drop the bytes this fetch holds on disk (a source that turned out bad)."""
        if self._job is not None:
            self._job.partial.discard()

    # -- one pass over the missing bytes ---------------------------------------------------------
    def _download(self, job: FileJob) -> None:
        """Fetch every missing byte: the first stream asks for one range, its answer says
        whether the others may follow (``Range`` honoured), and more streams open while that
        raises the rate (``streams.py``)."""
        gaps = job.partial.ranges.missing(self.size)
        if not gaps:
            return
        with job.cond:
            job.plan.begin(gaps)
            job.error = None
            job.heading_to, job.planned = None, False
        stop = threading.Event()
        hasher = threading.Thread(target=job.hasher.follow,
                                  args=(job.prefix_end, job.wait_for_bytes, stop),
                                  daemon=True, name="ra-hash")
        watchdog = threading.Thread(target=self._watch_loop, args=(job, stop), daemon=True,
                                    name="ra-watchdog")
        hasher.start()
        watchdog.start()
        workers: list[threading.Thread] = []
        growth = job.growth
        try:
            started = time.monotonic()
            self._start_streams(job, workers, 1)
            self._await_first_answer(job, workers)
            with job.cond:
                parallel = job.plan.parallel
                waiting = job.plan.plan()
                job.planned = True
                job.cond.notify_all()
            growth.latency(time.monotonic() - started)
            if parallel:  # as many as the plan has pieces for, counting any started early
                self._start_streams(job, workers,
                                    min(growth.streams, 1 + waiting) - len(workers))
            i = 0
            while i < len(workers):  # grows while it runs
                workers[i].join(0.1)
                if self.cancel.is_set():
                    job.abort_all()
                if parallel and not growth.done and job.error is None:
                    unclaimed, arrived, lag = job.unclaimed()
                    add = growth.more(time.monotonic(), arrived, cpu_clock(), unclaimed, lag)
                    if add:
                        log.info("%s: more streams raise the rate; %d more (%d in all)",
                                 self.roster.primary, add, len(workers) + add)
                        self._start_streams(job, workers, add)
                if not workers[i].is_alive():
                    i += 1
                if i == len(workers) and self._orphaned(job):
                    self._start_streams(job, workers, 1)  # a shed stream's range, left over
        finally:
            stop.set()
            hasher.join()
            watchdog.join()
        if self.cancel.is_set():
            raise DownloadCancelledError("download cancelled")
        if job.error is not None:
            raise job.error
        if job.plan.pending:  # single-connection mode leaves gaps for the next pass
            self._download(job)

    def _await_first_answer(self, job: FileJob, workers: list[threading.Thread]) -> None:
        """Wait for the first stream's answer (does the server honour ``Range``?). If that
        request is redirected meanwhile (a Hub's 302 to its CDN), the other streams start now
        and connect where it went, so they ask for their pieces as soon as the answer comes:
        on a CDN 80 ms away that saves two round trips (TCP, TLS) of every stream."""
        early = False
        while True:
            with job.cond:
                if (job.plan.ranges_ok is not None or job.error is not None
                        or not workers[0].is_alive() or self.cancel.is_set()):
                    return
                target = None if early else job.heading_to
                if target is None:
                    job.cond.wait(0.1)
                    continue
                n = min(job.growth.streams, 1 + job.plan.pieces_if_parallel()) - 1
            early = True
            self._start_streams(job, workers, n, connect_to=target)

    def _orphaned(self, job: FileJob) -> bool:
        """Are ranges left that no stream will take (the last streams ended as one was shed)?"""
        if self.cancel.is_set():
            return False
        with job.cond:
            return job.error is None and job.plan.unclaimed() > 0

    @staticmethod
    def _start_streams(job: FileJob, workers: list[threading.Thread], n: int,
                       connect_to: str | None = None) -> None:
        for _ in range(n):
            idx = len(workers)
            t = threading.Thread(target=Stream(idx, job, connect_to).run, daemon=True,
                                 name=f"ra-get-{idx}")
            t.start()
            workers.append(t)

    # -- hashing, flushing, watchdog -------------------------------------------------------------
    def _finish_hash(self, job: FileJob) -> str:
        partial = job.partial
        end = partial.ranges.prefix_end()
        if end != self.size or partial.ranges.covered() != self.size:
            raise DownloadError(f"download of {self.roster.primary} ended with {end} of"
                                f" {self.size} bytes")
        if job.hasher.hashed < self.size:  # the follower stopped with the streams
            self.tracker.set_stage(Stage.VERIFYING, "verifying sha256")
        try:
            return job.hasher.finish(self.size)
        except OSError as e:
            raise DownloadError(f"hashing {partial.data_path.name} failed: {e}") from e

    def _watch_loop(self, job: FileJob, stop: threading.Event) -> None:
        stalls = self.cfg.stalls
        while not stop.wait(min(0.25, stalls.window / 4)):
            # Cancel breaks every wait (connect, headers, body); the watchdog, the slow ones.
            police(job.requests(), time.monotonic(), cancelled=self.cancel.is_set(),
                   timeout=stalls.timeout, window=stalls.window, min_speed=stalls.min_speed)
            # Reports are otherwise made when bytes arrive: without this, the end of a burst
            # (or a stall, with its falling speed) would go unreported until the next bytes.
            self.tracker.emit()
            if job.take_flush():
                with contextlib.suppress(OSError):
                    os.fdatasync(job.partial.fd)
