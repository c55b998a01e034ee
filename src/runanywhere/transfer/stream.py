"""One connection's share of a file: claim a range, ask for it, read it into the partial.

A :class:`Stream` runs in a thread of its own with one :class:`~.http.Client` (its connection
kept alive from one range to the next). For each range the :class:`~.filejob.FileJob` hands it:

* it asks the URL the roster names now (``Range``, and ``If-Range`` with the validator seen
  first, so every byte comes from one version of the file), going straight to where that URL's
  redirect led before; a 4xx there (an expired signed link) asks the URL again once;
* ``response.classify`` decides what the answer means, and the job records it (validators, a
  server that ignores ``Range``);
* the body is read with ``readinto1`` into the stream's buffer and written at its offset,
  hashed inline and reported as it lands (at least every ``WRITE_EVERY`` s, so a slow link
  still shows progress); bytes that arrived before a connection broke are kept;
* a failure that may heal is retried under the config's :class:`~.retry.RetryPolicy` (bytes
  that arrived reset its budget); one that cannot, or a spent budget, moves the file to the next
  URL; a URL caught sending the wrong file makes the partial start over (``BadBytes``).
"""

from __future__ import annotations

import time
from typing import NoReturn

from ..errors import DownloadCancelledError, DownloadError, IntegrityError, ModelError
from ..logs import logger
from ..retry import RETRY_STATUSES, RetriesExhausted, TransientError
from .filejob import BadBytes, FileJob
from .http import Client, Response
from .response import SourceChanged, classify, one_line
from .schedule import Segment
from .watch import Request

log = logger(__name__)
#: Bytes in hand are written (and reported) at least this often, whatever the chunk size.
WRITE_EVERY = 0.1
_HTML_START = (b"<!doctype html", b"<html", b"<?xml", b"<head")


def stale_link(status: int) -> bool:
    """Does this answer at a remembered redirect target call for a fresh link? Any 4xx (an
    expired signed URL is a 403 at S3, a 400 at GCS, a 410 elsewhere) but "try again later"."""
    return 400 <= status < 500 and status not in RETRY_STATUSES


class _Shed(Exception):
    """This stream stops: the host refused it (429, 503) or it stalled with streams to spare
    (``FileJob.shed``); its range goes back to the schedule for the others."""


class Stream:
    """Stream ``idx`` of a file's download."""

    def __init__(self, idx: int, job: FileJob, connect_to: str | None = None) -> None:
        """``connect_to``: a stream started before the pieces are planned connects there
        first, then waits for the plan (``FileJob.wait_for_plan``)."""
        self.idx = idx
        self.job = job
        self.connect_to = connect_to
        self.view = memoryview(bytearray(job.config.streams.chunk_size))

    def run(self) -> None:
        """Fetch ranges until none is left; a failure goes to the job (``FileJob.fail``)."""
        job = self.job
        auth = job.config.auth
        job.enter()
        counted = True
        try:
            with Client(timeout=job.config.stalls.timeout, token=auth.token,
                        token_origins=auth.origins) as client:
                if self.connect_to is not None:
                    self._connect_early(client, self.connect_to)
                    if not job.wait_for_plan():
                        return  # one stream after all (or the pass ended): not needed
                kept = True  # no steal without a kept-alive connection to steal with
                while job.error is None and not job.cancel.is_set():
                    if job.over_limit():
                        counted = False
                        return
                    seg = job.claim(self.idx, steal=kept)
                    if seg is None:
                        return
                    try:
                        kept = self._fetch_segment(client, seg)
                    except _Shed:
                        counted = False
                        job.release(seg)
                        return
        except BaseException as e:  # handed to FileFetch through the job
            job.fail(e)
        finally:
            if counted:
                job.leave()

    def _connect_early(self, client: Client, url: str) -> None:
        """Connect to ``url``'s server while the first answer is awaited (watched, so a cancel
        or a hung connect is broken like a request's); a failure is the first request's to
        meet."""
        watch = Request(time.monotonic())
        self.job.track(self.idx, watch)
        try:
            client.preconnect(url, watch)
        finally:
            self.job.untrack(self.idx)

    def _check_cancel(self) -> None:
        if self.job.cancel.is_set():
            raise DownloadCancelledError("download cancelled")

    # -- one range, retried --------------------------------------------------------------------
    def _fetch_segment(self, client: Client, seg: Segment) -> bool:
        """Fetch ``seg`` to its (possibly moving) end; True if the last answer was read to its
        end, so the connection is kept alive for the next piece."""
        job, roster = self.job, self.job.roster
        kept = False
        used = [roster.current]  # the URL of the last try

        def once() -> bool:
            if job.segment_end(seg) <= seg.pos:
                return False  # its tail was taken while the last try failed: nothing to ask
            used[0] = url = roster.current  # another stream may have moved on meanwhile
            try:
                return self._request_into(client, url, seg)
            except TransientError as e:
                if (e.slow or e.status in (429, 503)) and job.shed(stalled=e.slow):
                    raise _Shed from e
                raise

        while seg.pos < seg.end:
            self._check_cancel()
            kept = False
            try:
                kept = job.config.retry.call(once, cancel=job.cancel, progress=lambda: seg.pos)
            except RetriesExhausted as e:
                url = used[0]
                if roster.leave(url, f"failed {e.retries + 1} times, last: {e.last}") is None:
                    raise DownloadError(
                        f"giving up on {url} after {e.retries} retries: {e.last}"
                        f"{roster.tried_note()}", url=url, status=e.status) from e
            except DownloadError as e:
                # Not worth retrying here (a 4xx, the wrong file, a host that does not resolve,
                # a certificate that does not verify): the next mirror, if there is one.
                url = used[0]
                if isinstance(e, IntegrityError) and roster.caught(url, one_line(str(e))):
                    raise BadBytes(e) from e  # its earlier bytes are suspect: start over
                if roster.leave(url, one_line(str(e))) is None:
                    e.args = (f"{e}{roster.tried_note()}",)  # every URL tried, named
                    raise
        job.release(seg)
        return kept

    def _request_into(self, client: Client, url: str, seg: Segment) -> bool:
        """One request for the rest of ``seg``; True if its connection stays open (the answer
        was read to its end; not so when another stream took the tail meanwhile)."""
        job = self.job
        etag, last_mod = job.validators(url)
        headers = {"Range": f"bytes={seg.pos}-{seg.end - 1}"}
        if etag or last_mod:
            headers["If-Range"] = etag or last_mod or ""
        conn = Request(time.monotonic())
        job.track(self.idx, conn)
        try:
            resp = self._get(client, url, headers, conn)
            conn.answered = time.monotonic()
            try:
                start, length = self._check_response(resp, url, seg)
                resp.expect_body(length)
                self._read_body(resp, url, conn, seg, start, length)
            except (ModelError, SourceChanged, BadBytes):  # typed already (download, disk, ...)
                raise
            except Exception as e:  # OSError, ValueError, http.client protocol errors
                self._raise_transient(conn, url, "connection failed:", e)
            finally:
                resp.close()
            return resp.kept_alive
        finally:
            job.untrack(self.idx)

    def _get(self, client: Client, url: str, headers: dict[str, str], conn: Request
             ) -> Response:
        """GET the piece from where ``url`` redirected before (no second redirect), or from
        ``url``. A 4xx at the remembered place (a signed link that expired: 400, 403, 404,
        410...) goes back to ``url`` once for a fresh one."""
        roster = self.job.roster
        target = roster.target(url)
        try:
            # The first stream's redirect tells where the others will ask (FileFetch).
            seen = self.job.redirect_seen if self.idx == 0 else None
            resp = client.get(target, headers, watch=conn, on_redirect=seen)
            if target != url and stale_link(resp.status):
                log.info("%s answered %d: asking %s again for a fresh link", resp.url,
                         resp.status, url)
                resp.close()
                roster.redirected(url, None)
                resp = client.get(url, headers, watch=conn)
        except TransientError as e:  # refused, timeout, aborted (by us?), not HTTP
            self._raise_transient(conn, url, "cannot get an answer from", e)
        except ModelError:
            raise
        except Exception as e:  # a last guard: the client raises DownloadError only
            self._raise_transient(conn, url, "cannot get an answer from", e)
        roster.redirected(url, resp.url)
        return resp

    def _raise_transient(self, conn: Request, url: str, what: str, e: Exception) -> NoReturn:
        """A failed request, as its real cause: a cancel, the watchdog, or ``e``."""
        self._check_cancel()
        if not conn.stalled and isinstance(e, TransientError):
            raise e
        reason = ("stalled (below the minimum speed)" if conn.stalled
                  else one_line(f"{type(e).__name__}: {e}"))
        raise TransientError(f"{url}: {what} {reason}", url=url, slow=conn.stalled) from e

    def _check_response(self, resp: Response, url: str, seg: Segment) -> tuple[int, int | None]:
        """Classify the answer (``response.classify``) and have the job act on it; returns
        (offset the body starts at, body length)."""
        job = self.job
        known, had_bytes = job.known(url, seg)
        answer = classify(resp.status, resp.header, url=url, size=job.size, asked_from=seg.pos,
                          known=known, had_bytes=had_bytes, error_body=resp.read_small)
        return job.answered(url, seg, answer, known)

    # -- the body ------------------------------------------------------------------------------
    def _read_body(self, resp: Response, url: str, conn: Request, seg: Segment, start: int,
                   length: int | None) -> None:
        job = self.job
        body_end = start + length if length is not None else None
        if job.segment_end(seg) <= seg.pos:
            return  # the segment was taken over while we waited for the answer
        if start < seg.pos:  # a 200 to a resumed request: skip to where we are
            self._skip(resp, conn, seg.pos - start)
            start = seg.pos
        pos = start
        chunk = len(self.view)
        while True:
            end = job.segment_end(seg)  # may shrink when another stream steals the tail
            if body_end is not None:
                # A server may answer a shorter range than asked (RFC 9110 14.1); what follows
                # on the wire is not ours to write. The caller asks again for the rest.
                end = min(end, body_end)
            if pos >= end:
                return
            want = min(chunk, end - pos)
            filled, broken, paused = self._fill(resp, conn, want)
            if filled:
                if not job.html_checked and pos == 0:
                    self._reject_html(resp, bytes(self.view[:min(filled, 64)]))
                pos += job.land(seg, pos, self.view[:filled], url)  # a short write: rest ours
            self._check_cancel()
            if broken is not None:
                raise broken
            self._check_short(resp, conn, pos, filled, want, paused, end, body_end)
            if pos >= job.size and length is None:
                # No Content-Length: the server must close now; more bytes mean a wrong file.
                extra = resp.readinto1(self.view[:1])
                if extra:
                    raise IntegrityError(f"{resp.url} sent more than the {job.size} bytes the"
                                         " catalog says", expected=str(job.size), url=resp.url)
                return

    def _check_short(self, resp: Response, conn: Request, pos: int, filled: int, want: int,
                     paused: bool, end: int, body_end: int | None) -> None:
        """A read that brought less than asked (and not because it paused to write): why."""
        if filled >= want or paused:
            return
        if conn.stalled:
            raise TransientError(f"{resp.url}: stalled (below the minimum speed of"
                                 f" {self.job.config.stalls.min_speed:.0f} bytes/s)",
                                 url=resp.url, slow=True)
        if body_end is None and pos < self.job.size and filled == 0:
            raise TransientError(f"{resp.url}: connection closed at byte {pos} of"
                                 f" {self.job.size}", url=resp.url)
        if body_end is not None and pos < body_end:
            raise TransientError(f"{resp.url}: body ended early at byte {pos}"
                                 f" (expected {body_end})", url=resp.url)
        if pos < end:
            raise TransientError(f"{resp.url}: connection closed at byte {pos}", url=resp.url)

    def _fill(self, resp: Response, conn: Request, want: int
              ) -> tuple[int, Exception | None, bool]:
        """Read up to ``want`` bytes into the buffer: ``(filled, error, paused)``.

        Stops early (``paused``) once ``WRITE_EVERY`` seconds passed with bytes in hand, so what
        arrived is written, journaled and reported while a slow link fills a large chunk. If the
        connection breaks, returns what arrived before it did (with the error): those bytes are
        good and must not be fetched again."""
        view = self.view
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

    def _skip(self, resp: Response, conn: Request, n: int) -> None:
        """Read and drop ``n`` bytes of the body (bytes we hold already)."""
        while n > 0:
            got = resp.readinto1(self.view[: min(len(self.view), n)])
            if got == 0:
                raise TransientError(f"{resp.url}: connection closed before the resume point",
                                     url=resp.url)
            n -= got
            conn.bytes += got
            self._check_cancel()

    def _reject_html(self, resp: Response, head: bytes) -> None:
        self.job.html_checked = True
        ctype = (resp.header("Content-Type") or "").lower()
        if "html" in ctype and head.lstrip().lower().startswith(_HTML_START):
            raise IntegrityError(f"{resp.url} returned an HTML page instead of the model",
                                 expected="model bytes", actual=ctype, url=resp.url)
