"""Fetch one file: parallel HTTP ranges written in place, resumable, verified as it lands.

Design (numbers are the defaults of :class:`FetchConfig`):

* Which ranges each connection fetches is ``schedule.py``'s job: one range first, then pieces of
  at least 8 MiB on up to 8 connections after a ``206``; a ``200`` means the server ignores
  ``Range`` and the same response is streamed from byte 0 instead. When every stream looks
  capped (the rate rises with each one added, the CPU is not busy) more are opened, up to 16
  (``streams.py``). If a server stops honouring
  ``Range`` midway (same validator), one worker becomes that single stream and skips the bytes
  already held; the others stop.
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
* Each range retries alone with backoff (``Retry-After`` wins); after ``retry_attempts`` the next
  mirror is used. A 4xx moves to the next mirror at once. Local disk failures are typed
  (``InsufficientStorageError``, ``CacheError``) and never retried as network errors.
* Wrong bytes are blamed on the URLs that sent them: the fetch records which URLs supplied the
  bytes now in the partial. A URL caught sending the wrong file (a size, a length, an HTML page,
  or the whole file's hash when it alone supplied it) is not used again; when several shared in
  a wrong file, each is used again only alone, after the URLs not suspected. Either way the
  partial starts over from byte 0 with the next URL, until every URL had its chance.
* A file the catalog gives only an estimate for learns its size first (``probe.py``: the same
  retries, token rules and watchdog), from the first URL that can say.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from ..errors import DownloadCancelledError, DownloadError, IntegrityError, ModelError
from ..progress import ProgressTracker, Stage
from ..store.fsutil import crash_point, disk_error
from ..store.hashing import git_blob_sha1, write_all
from ..store.partial import Partial, PartialMeta, adopt, new_owner
from .hasher import PrefixHasher
from .http import Client, Origin, Response
from .probe import probe_size
from .response import SourceChanged, classify, one_line
from .retry import RETRY_STATUSES, TransientError, backoff
from .roster import UrlRoster
from .schedule import Schedule, Segment
from .streams import StreamGrowth, cpu_clock
from .watch import Request, police

log = logging.getLogger(__name__)
MiB = 2**20
#: Bytes in hand are written (and reported) at least this often, whatever the chunk size.
WRITE_EVERY = 0.1
_HTML_START = (b"<!doctype html", b"<html", b"<?xml", b"<head")


@dataclass(frozen=True)
class FetchConfig:
    connections: int = 8
    #: Streams may grow to this many while each batch added raises the total rate and the CPU is
    #: not busy (a CDN that caps each connection; ``streams.py``). Equal to ``connections``: a
    #: fixed number.
    max_connections: int = 16
    #: Files smaller than this use one connection.
    split_threshold: int = 32 * MiB
    min_part: int = 8 * MiB
    #: Ranges are handed out in file order as pieces of about this size (None: a quarter of the
    #: file per connection, 16-128 MiB), so the verified prefix grows while bytes arrive and the
    #: hash has little left to catch up on at the end. One request per piece.
    piece_size: int | None = None
    chunk_size: int = MiB
    retry_attempts: int = 3
    retry_delay: float = 1.0
    retry_cap: float = 30.0
    timeout: float = 60.0
    #: A connection averaging fewer bytes/s than this over ``stall_window`` is dropped and retried.
    min_speed: float = 16 * 1024
    stall_window: float = 20.0
    durable: bool = True
    flush_every: int = 64 * MiB
    #: A bearer token (the Hub's) and the origins (scheme, host, port) it may be sent to.
    token: str | None = None
    token_origins: tuple[Origin, ...] = ()


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


class _BadBytes(Exception):
    """A URL that supplied bytes of the partial was caught sending the wrong file: the partial
    starts over from the next URL."""

    def __init__(self, error: IntegrityError) -> None:
        super().__init__(str(error))
        self.error = error


def _stale_link(status: int) -> bool:
    """Does this answer at a remembered redirect target call for a fresh link? Any 4xx (an
    expired signed URL is a 403 at S3, a 400 at GCS, a 410 elsewhere) but "try again later"."""
    return 400 <= status < 500 and status not in RETRY_STATUSES


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
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._plan = Schedule(self.size, connections=config.connections,
                              split_threshold=config.split_threshold, min_part=config.min_part,
                              chunk_size=config.chunk_size, piece_size=config.piece_size)
        self._conns: dict[int, Request] = {}
        self._error: BaseException | None = None
        self._validators: dict[str, tuple[str | None, str | None]] = {}
        self._hasher: PrefixHasher | None = None
        self._unflushed = 0
        self._arrived = 0  # bytes written by this fetch's workers (for StreamGrowth)
        self._partial: Partial | None = None
        self._html_checked = False

    # -- public --------------------------------------------------------------------------------
    def run(self) -> FetchedFile:
        if not self.size_known:
            self._learn_size()
        meta = PartialMeta(url=self.roster.primary, size=self.size, sha256=self.expected)
        try:
            partial = adopt(self.partial_dir, self.key, meta, new_owner())
            partial.open(meta)
        except OSError as e:
            raise disk_error(e, f"opening a partial file in {self.partial_dir}") from e
        self._partial = partial
        self._hasher = PrefixHasher(partial.fd)
        if meta.etag or meta.last_modified:
            self._validators[self.roster.primary] = (meta.etag, meta.last_modified)
        resumed = partial.ranges.covered()
        self.tracker.add_resumed(resumed)
        if resumed:
            log.info("%s: resuming with %d of %d bytes already here (%d ranges missing)",
                     self.roster.primary, resumed, self.size,
                     len(partial.ranges.missing(self.size)))
            self.tracker.emit(f"resuming: {resumed} of {self.size} bytes already here",
                              force=True)
        restarted = False
        try:
            while True:
                try:
                    self._download()
                    crash_point("fetch:complete")  # every byte journaled, not yet verified
                    digest = self._finish_hash()
                    wrong = self._wrong_bytes(digest)
                    if wrong is None:
                        break
                    if resumed and not restarted:
                        # Bytes we kept from before were bad (power loss, or a changed
                        # source): never trust them again, start over once.
                        raise SourceChanged("the bytes kept from an earlier run were bad")
                    senders = self.roster.blame(wrong)
                    self._start_over_from_next(IntegrityError(
                        f"{wrong} from {' and '.join(senders)}",
                        expected=self.expected or self.git_sha1, actual=digest, url=senders[0]))
                    restarted, resumed = False, 0  # a new source: the bytes start over
                except _BadBytes as bad:
                    self._start_over_from_next(bad.error)
                    restarted, resumed = False, 0
                except SourceChanged as why:
                    log.warning("%s: starting the file over: %s", self.roster.primary, why)
                    if restarted:
                        raise DownloadError(
                            f"{self.roster.primary}: had to start over twice ({why})",
                            url=self.roster.primary) from None
                    restarted, resumed = True, 0
                    self.tracker.rewind(partial.ranges.covered())
                    self._reset()
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

    def _wrong_bytes(self, digest: str) -> str | None:
        """What is wrong with the complete file, or None if it is what was asked for."""
        if self.expected:
            if digest != self.expected:
                return f"sha256 mismatch (expected {self.expected}, got {digest})"
            return None
        if self.git_sha1:
            assert self._partial is not None
            actual = git_blob_sha1(self._partial.fd, self.size)
            if actual != self.git_sha1:
                return f"git blob id mismatch (expected {self.git_sha1}, got {actual})"
        return None

    def _start_over_from_next(self, error: IntegrityError) -> None:
        """Drop the partial's bytes and start over from byte 0 with the next URL; raise
        ``error`` when every URL had its chance."""
        assert self._partial is not None
        nxt = self.roster.move_on()
        if nxt is None:
            error.args = (f"{error}{self.roster.tried_note()}",)  # every URL tried, named
            raise error
        log.warning("%s; starting over from %s", error, nxt)
        self.tracker.rewind(self._partial.ranges.covered())
        self._reset()

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
        self._plan.size = found.total

    def _client(self) -> Client:
        return Client(timeout=self.cfg.timeout, token=self.cfg.token,
                      token_origins=self.cfg.token_origins)

    def abort_all(self) -> None:
        """Break every blocked read now (used by cancel)."""
        with self._lock:
            conns = list(self._conns.values())
        for c in conns:
            c.abort()

    def discard(self) -> None:
        """Drop the bytes this fetch holds on disk (a source that turned out bad)."""
        if self._partial is not None:
            self._partial.discard()

    # -- the download proper ---------------------------------------------------------------------
    def _reset(self) -> None:
        assert self._partial is not None
        self._partial.reset()
        self._validators.clear()
        assert self._hasher is not None
        self._hasher.reset()
        self._plan.ranges_ok = None
        self._error = None
        self._html_checked = False
        self.roster.fresh_partial()

    def _download(self) -> None:
        assert self._partial is not None
        gaps = self._partial.ranges.missing(self.size)
        if not gaps:
            return
        self._plan.begin(gaps)
        self._error = None
        stop = threading.Event()
        assert self._hasher is not None
        hasher = threading.Thread(target=self._hasher.follow,
                                  args=(self._prefix_end, self._wait_for_bytes, stop),
                                  daemon=True, name="ra-hash")
        watchdog = threading.Thread(target=self._watch_loop, args=(stop,), daemon=True,
                                    name="ra-watchdog")
        hasher.start()
        watchdog.start()
        workers: list[threading.Thread] = []
        try:
            first = threading.Thread(target=self._worker, args=(0,), daemon=True, name="ra-get-0")
            first.start()
            workers.append(first)
            with self._cond:
                while (self._plan.ranges_ok is None and self._error is None
                       and first.is_alive() and not self.cancel.is_set()):
                    self._cond.wait(0.1)
                parallel = self._plan.parallel
                waiting = self._plan.plan()
                self._cond.notify_all()
            growth = StreamGrowth(self.cfg.connections,
                                  max(self.cfg.connections, self.cfg.max_connections))
            if parallel:
                self._start_workers(workers, min(self.cfg.connections, 1 + waiting) - 1)
            i = 0
            while i < len(workers):  # grows while it runs
                workers[i].join(0.2)
                if self.cancel.is_set():
                    self.abort_all()
                if parallel and not growth.done and self._error is None:
                    with self._lock:
                        unclaimed, arrived = self._plan.unclaimed(), self._arrived
                    add = growth.more(time.monotonic(), arrived, cpu_clock(), unclaimed)
                    if add:
                        log.info("%s: every stream looks capped; %d more (%d in all)",
                                 self.roster.primary, add, len(workers) + add)
                        self._start_workers(workers, add)
                if not workers[i].is_alive():
                    i += 1
        finally:
            stop.set()
            hasher.join()
            watchdog.join()
        if self.cancel.is_set():
            raise DownloadCancelledError("download cancelled")
        if self._error is not None:
            raise self._error
        if self._plan.pending:  # single-connection mode leaves gaps for the next pass
            self._download()

    def _start_workers(self, workers: list[threading.Thread], n: int) -> None:
        for _ in range(n):
            idx = len(workers)
            t = threading.Thread(target=self._worker, args=(idx,), daemon=True,
                                 name=f"ra-get-{idx}")
            t.start()
            workers.append(t)

    def _worker(self, idx: int) -> None:
        buf = bytearray(self.cfg.chunk_size)
        view = memoryview(buf)
        try:
            with self._client() as client:  # one kept-alive connection per origin, for all
                kept = True  # this worker's pieces
                while self._error is None and not self.cancel.is_set():
                    with self._lock:  # no steal without a kept-alive connection to steal with
                        seg = self._plan.claim(idx, steal=kept)
                    if seg is None:
                        return
                    kept = self._fetch_segment(idx, client, seg, view)
        except BaseException as e:  # handed to run() through self._error
            with self._cond:
                if self._error is None:
                    self._error = e
                self._cond.notify_all()
            self.abort_all()

    def _fetch_segment(self, idx: int, client: Client, seg: Segment, view: memoryview) -> bool:
        """Fetch ``seg`` to its (possibly moving) end; True if the last answer was read to its
        end, so the connection is kept alive for the next piece."""
        attempt = 0
        kept = False
        while seg.pos < seg.end:
            if self.cancel.is_set():
                raise DownloadCancelledError("download cancelled")
            url = self.roster.current
            before = seg.pos
            kept = False
            try:
                kept = self._request_into(idx, client, url, seg, view)
            except TransientError as e:
                if seg.pos - before >= self.cfg.chunk_size:
                    attempt = 0  # progress was made: this is a new failure, not the same one
                attempt += 1
                if attempt > self.cfg.retry_attempts:
                    why = f"failed {attempt} times, last: {e}"
                    if self.roster.leave(url, why) is None:
                        raise DownloadError(
                            f"giving up on {url} after {self.cfg.retry_attempts} retries:"
                            f" {e}{self.roster.tried_note()}", url=url, status=e.status) from e
                    attempt = 0
                    continue
                delay = backoff(attempt - 1, self.cfg.retry_delay, self.cfg.retry_cap,
                                e.retry_after)
                log.info("%s: %s; retry %d of %d in %.1fs (at byte %d)", url, e, attempt,
                         self.cfg.retry_attempts, delay, seg.pos)
                if self.cancel.wait(delay):
                    raise DownloadCancelledError("download cancelled") from None
            except DownloadError as e:
                # Not worth retrying here (a 4xx, the wrong file, a host that does not resolve,
                # a certificate that does not verify): the next mirror, if there is one.
                if isinstance(e, IntegrityError) and self.roster.caught(url, one_line(str(e))):
                    raise _BadBytes(e) from e  # its earlier bytes are suspect: start over
                if self.roster.leave(url, one_line(str(e))) is None:
                    e.args = (f"{e}{self.roster.tried_note()}",)  # every URL tried, named
                    raise
        with self._lock:
            seg.owner = None
        return kept

    def _request_into(self, idx: int, client: Client, url: str, seg: Segment,
                      view: memoryview) -> bool:
        """One request for the rest of ``seg``; True if its connection stays open (the answer
        was read to its end; not so when another worker took the tail meanwhile)."""
        etag, last_mod = self._validators.get(url, (None, None))
        headers = {"Range": f"bytes={seg.pos}-{seg.end - 1}"}
        if etag or last_mod:
            headers["If-Range"] = etag or last_mod or ""
        conn = Request(time.monotonic())
        with self._lock:
            self._conns[idx] = conn
        try:
            resp = self._get(client, url, headers, conn)
            conn.answered = time.monotonic()
            try:
                start, length = self._check_response(resp, url, seg)
                resp.expect_body(length)
                self._read_body(resp, url, conn, seg, view, start, length)
            except (ModelError, SourceChanged):  # typed already (download, disk, cancel)
                raise
            except Exception as e:  # OSError, ValueError, http.client protocol errors
                self._raise_transient(conn, url, "connection failed:", e)
            finally:
                resp.close()
            return resp.kept_alive
        finally:
            with self._lock:
                self._conns.pop(idx, None)

    def _get(self, client: Client, url: str, headers: dict[str, str], conn: Request
             ) -> Response:
        """GET the piece from where ``url`` redirected before (no second redirect), or from
        ``url``. A 4xx at the remembered place (a signed link that expired: 400, 403, 404,
        410...) goes back to ``url`` once for a fresh one."""
        target = self.roster.target(url)
        try:
            resp = client.get(target, headers, watch=conn)
            if target != url and _stale_link(resp.status):
                log.info("%s answered %d: asking %s again for a fresh link", resp.url,
                         resp.status, url)
                resp.close()
                self.roster.redirected(url, None)
                target = url
                resp = client.get(url, headers, watch=conn)
        except TransientError as e:  # refused, timeout, aborted (by us?), not HTTP
            self._raise_transient(conn, url, "cannot get an answer from", e)
        except ModelError:
            raise
        except Exception as e:  # a last guard: the client raises DownloadError only
            self._raise_transient(conn, url, "cannot get an answer from", e)
        self.roster.redirected(url, resp.url)
        return resp

    def _raise_transient(self, conn: Request, url: str, what: str, e: Exception) -> NoReturn:
        """A failed request, as its real cause: a cancel, the watchdog, or ``e``."""
        if self.cancel.is_set():
            raise DownloadCancelledError("download cancelled") from None
        if not conn.stalled and isinstance(e, TransientError):
            raise e
        reason = ("stalled (below the minimum speed)" if conn.stalled
                  else one_line(f"{type(e).__name__}: {e}"))
        raise TransientError(f"{url}: {what} {reason}", url=url) from e

    def _check_response(self, resp: Response, url: str, seg: Segment) -> tuple[int, int | None]:
        """Classify the answer (``response.classify``) and act on it; returns (offset the body
        starts at, body length)."""
        assert self._partial is not None
        with self._lock:
            known = self._validators.get(url)
            had_bytes = self._partial.ranges.covered() > 0 or seg.pos > 0
        answer = classify(resp.status, resp.header, url=url, size=self.size, asked_from=seg.pos,
                          known=known, had_bytes=had_bytes, error_body=resp.read_small)
        with self._lock:
            if not (answer.ranged and known):  # a 200 always names the version it sends
                self._validators[url] = answer.validators
                self._save_validators(url)
            self._plan.ranges_ok = answer.ranged
            self._cond.notify_all()
            if answer.ranged:
                return answer.start, answer.length
            if seg.remaining > 0:  # else another worker took over as the one stream already
                self._plan.single_stream(seg, self._partial.ranges.prefix_end())
            return 0, answer.length

    def _save_validators(self, url: str) -> None:
        p = self._partial
        if p is not None and p.meta is not None and url == self.roster.primary:
            p.meta.etag, p.meta.last_modified = self._validators[url]
            p.save_meta()

    def _read_body(self, resp: Response, url: str, conn: Request, seg: Segment,
                   view: memoryview, start: int, length: int | None) -> None:
        assert self._partial is not None
        fd = self._partial.fd
        body_end = start + length if length is not None else None
        with self._lock:
            if seg.pos >= seg.end:
                return  # the segment was taken over while we waited for the answer
        if start < seg.pos:  # a 200 to a resumed request: skip to where we are
            self._skip(resp, conn, seg.pos - start, view)
            start = seg.pos
        pos = start
        chunk = len(view)
        while True:
            with self._lock:
                end = seg.end  # may shrink when another worker steals the tail
            if body_end is not None:
                # A server may answer a shorter range than asked (RFC 9110 14.1); what follows
                # on the wire is not ours to write. The caller asks again for the rest.
                end = min(end, body_end)
            if pos >= end:
                return
            want = min(chunk, end - pos)
            filled, broken, paused = self._fill(resp, conn, view, want)
            if filled:
                if not self._html_checked and pos == 0:
                    self._reject_html(resp, bytes(view[:min(filled, 64)]))
                try:
                    written = write_all(fd, view[:filled], pos)  # a short write: rest is ours
                    assert self._hasher is not None
                    self._hasher.offer(pos, view[:written])
                    with self._lock:
                        self._partial.record(pos, pos + written)
                        self.roster.supplied(url)
                        self._unflushed += written
                        self._arrived += written
                        seg.pos = pos + written
                        self._cond.notify_all()
                except OSError as e:
                    raise disk_error(e, f"writing {self._partial.data_path.name}") from e
                pos += written
                self.tracker.add(written)
            if self.cancel.is_set():
                raise DownloadCancelledError("download cancelled")
            if broken is not None:
                raise broken
            short = filled < want and not paused
            if short and conn.stalled:
                raise TransientError(f"{resp.url}: stalled (below the minimum speed of"
                                     f" {self.cfg.min_speed:.0f} bytes/s)", url=resp.url)
            if short:
                if body_end is None and pos < self.size and filled == 0:
                    raise TransientError(f"{resp.url}: connection closed at byte {pos} of"
                                         f" {self.size}", url=resp.url)
                if body_end is not None and pos < body_end:
                    raise TransientError(f"{resp.url}: body ended early at byte {pos}"
                                         f" (expected {body_end})", url=resp.url)
                if pos < end:
                    raise TransientError(f"{resp.url}: connection closed at byte {pos}",
                                         url=resp.url)
            if pos >= self.size and length is None:
                # No Content-Length: the server must close now; more bytes mean a wrong file.
                extra = resp.readinto1(view[:1])
                if extra:
                    raise IntegrityError(f"{resp.url} sent more than the {self.size} bytes the"
                                         " catalog says", expected=str(self.size), url=resp.url)
                return

    @staticmethod
    def _fill(resp: Response, conn: Request, view: memoryview, want: int
              ) -> tuple[int, Exception | None, bool]:
        """Read up to ``want`` bytes into ``view``: ``(filled, error, paused)``.

        Stops early (``paused``) once ``WRITE_EVERY`` seconds passed with bytes in hand, so what
        arrived is written, journaled and reported while a slow link fills a large chunk. If the
        connection breaks, returns what arrived before it did (with the error): those bytes are
        good and must not be fetched again."""
        filled = 0
        started = time.monotonic()
        try:
            while filled < want:
                n = resp.readinto1(view[filled:want])
                if n == 0:
                    break
                filled += n
                conn.bytes += n
                if filled < want and time.monotonic() - started >= WRITE_EVERY:
                    return filled, None, True
        except (OSError, ValueError) as e:
            return filled, e, False
        return filled, None, False

    def _skip(self, resp: Response, conn: Request, n: int, view: memoryview) -> None:
        """Read and drop ``n`` bytes of the body (bytes we hold already)."""
        while n > 0:
            got = resp.readinto1(view[: min(len(view), n)])
            if got == 0:
                raise TransientError(f"{resp.url}: connection closed before the resume point",
                                     url=resp.url)
            n -= got
            conn.bytes += got
            if self.cancel.is_set():
                raise DownloadCancelledError("download cancelled")

    def _reject_html(self, resp: Response, head: bytes) -> None:
        self._html_checked = True
        ctype = (resp.header("Content-Type") or "").lower()
        if "html" in ctype and head.lstrip().lower().startswith(_HTML_START):
            raise IntegrityError(f"{resp.url} returned an HTML page instead of the model",
                                 expected="model bytes", actual=ctype, url=resp.url)

    # -- hashing, flushing, watchdog -------------------------------------------------------------
    def _prefix_end(self) -> int:
        assert self._partial is not None
        with self._lock:
            return self._partial.ranges.prefix_end()

    def _wait_for_bytes(self, seconds: float) -> None:
        with self._cond:
            self._cond.wait(seconds)

    def _finish_hash(self) -> str:
        assert self._partial is not None and self._hasher is not None
        end = self._partial.ranges.prefix_end()
        if end != self.size or self._partial.ranges.covered() != self.size:
            raise DownloadError(f"download of {self.roster.primary} ended with {end} of"
                                f" {self.size} bytes")
        if self._hasher.hashed < self.size:  # the follower stopped with the workers
            self.tracker.set_stage(Stage.VERIFYING, "verifying sha256")
        try:
            return self._hasher.finish(self.size)
        except OSError as e:
            raise DownloadError(f"hashing {self._partial.data_path.name} failed: {e}") from e

    def _watch_loop(self, stop: threading.Event) -> None:
        assert self._partial is not None
        while not stop.wait(min(0.25, self.cfg.stall_window / 4)):
            now = time.monotonic()
            with self._lock:
                conns = list(self._conns.values())
                flush = self.cfg.durable and self._unflushed >= self.cfg.flush_every
                if flush:
                    self._unflushed = 0
            # Cancel breaks every wait (connect, headers, body); the watchdog, the slow ones.
            police(conns, now, cancelled=self.cancel.is_set(), timeout=self.cfg.timeout,
                   window=self.cfg.stall_window, min_speed=self.cfg.min_speed)
            # Reports are otherwise made when bytes arrive: without this, the end of a burst
            # (or a stall, with its falling speed) would go unreported until the next bytes.
            self.tracker.emit()
            if flush:
                with contextlib.suppress(OSError):
                    os.fdatasync(self._partial.fd)
