"""File responses of ``runanywhere serve``: verified files out with sendfile, conditionals, ranges.

aiohttp runs the connections, parses requests and owns the event loop; this module decides what a
file request gets and sends the bytes with the same primitive aiohttp's ``FileResponse`` uses,
``loop.sendfile``. ``FileResponse`` itself does not fit (read in aiohttp 3.14,
``web_fileresponse.py``): its ETag is ``<mtime>-<size>`` and overwrites any other, so the content
address cannot be the validator; its If-Range understands dates only (an ETag there is ignored,
so a resumed range of *new* bytes would be glued to old ones); it opens the path by name,
following symlinks; and it answers with a ``.gz``/``.br`` sibling when the client accepts that
encoding (a model holding ``x.json`` and ``x.json.gz`` would answer one with the other). Here:

* ETag is strong and names the bytes (the sha256, or the Hub's git oid); Last-Modified is the
  file's mtime.
* Preconditions in the order of RFC 9110 §13.2.2: If-Match and If-Unmodified-Since (412), then
  If-None-Match and If-Modified-Since (304), then Range: one ``bytes=`` range gives 206 (416 when
  it starts past the end), unless If-Range names another ETag or date, which gives the whole
  file. Several ranges, or a Range that does not parse, also give the whole file (§14.2 lets a
  server ignore Range); numbers too long to mean anything are clamped, never parsed.
* Files are opened with ``O_NOFOLLOW`` below the cache folder (``realpath`` checked) and must be
  regular files of the size the index records: a planted symlink or a swapped file is refused.
* The body leaves in pieces (1 MiB, doubling up to 32 MiB while the client keeps up); each piece
  must be taken within ``stall_timeout`` seconds, so a client that stops reading is disconnected
  instead of holding a file and a connection forever. Every connection is its own coroutine:
  a slow one never delays another.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import mimetypes
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter

from .options import STALL_TIMEOUT
from .responses import json_error

FIRST_PIECE = 1 << 20
MAX_PIECE = 32 << 20
_RANGE = re.compile(r"bytes=(\d*)-(\d*)", re.ASCII | re.IGNORECASE)
#: Longer decimal numbers than this are past any file size: clamped, never parsed.
_MAX_DIGITS = 18


class NotServable(Exception):
    """The file the index names cannot be served safely (missing, swapped, outside the cache)."""


@dataclass(frozen=True)
class Opened:
    file: BinaryIO
    size: int
    mtime: int  # whole seconds, as Last-Modified carries them


def open_verified(path: Path, root: Path, size: int) -> Opened:
    """Open ``path`` for reading if it is a regular file of ``size`` bytes below ``root``.

    Blocking (``realpath``, ``open``, ``fstat``): call it from a thread.
    """
    real = os.path.realpath(path)
    top = os.path.realpath(root)
    if os.path.commonpath([real, top]) != top:
        raise NotServable(f"{path} resolves outside the cache")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        raise NotServable(f"{path}: {e.strerror or e}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size != size:
            raise NotServable(f"{path} is not the file the index recorded")
        return Opened(os.fdopen(fd, "rb", buffering=0), size, int(st.st_mtime))
    except BaseException:
        os.close(fd)
        raise


def http_date(seconds: float) -> str:
    return email.utils.formatdate(seconds, usegmt=True)


def _etags(header: str | None) -> list[tuple[bool, str]] | None:
    """``(weak, value)`` of each entity tag of an If-Match / If-None-Match header (``*`` is
    ``(False, "*")``), or None without the header."""
    if header is None:
        return None
    if header.strip() == "*":
        return [(False, "*")]
    return [(bool(w), v) for w, v in re.findall(r'(W/)?"([^"]*)"', header)]


def _date(header: str | None) -> float | None:
    if not header:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed.timestamp() if parsed.tzinfo is not None else None


def _number(digits: str) -> int:
    return int(digits) if len(digits) <= _MAX_DIGITS else 10**_MAX_DIGITS


class Unsatisfiable(Exception):
    pass


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, stop)`` of one ``bytes=`` range, None to send the whole file, or raises
    :class:`Unsatisfiable` (416) for a range that starts past the end or an empty suffix."""
    if header is None:
        return None
    m = _RANGE.fullmatch(header.strip())
    if m is None:  # several ranges, other units, garbage: the whole file (RFC 9110 §14.2)
        return None
    first, last = m.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        n = _number(last)
        if n == 0 or size == 0:
            raise Unsatisfiable
        return max(size - n, 0), size
    start = _number(first)
    if last and _number(last) < start:
        return None  # invalid: ignored, like any Range that does not parse
    if start >= size:
        raise Unsatisfiable
    stop = min(_number(last) + 1, size) if last else size
    return start, stop


def _if_range_holds(value: str | None, etag: str, mtime: int) -> bool:
    """Does If-Range let the Range apply? Only a strong match of our ETag or our exact date."""
    if value is None:
        return True
    value = value.strip()
    if value.startswith(('"', "W/")):
        return value == f'"{etag}"'
    when = _date(value)
    return when is not None and int(when) == mtime


def preconditions(request: web.BaseRequest, etag: str, mtime: int) -> int | None:
    """304 or 412 if a precondition decides the answer, else None (RFC 9110 §13.2.2)."""
    h = request.headers
    match = _etags(h.get("If-Match"))
    if match is not None:
        if not any(v == "*" or (v == etag and not weak) for weak, v in match):  # strong
            return 412
    else:
        since = _date(h.get("If-Unmodified-Since"))
        if since is not None and mtime > since:
            return 412
    none_match = _etags(h.get("If-None-Match"))
    if none_match is not None:
        if any(v in ("*", etag) for _, v in none_match):  # weak comparison
            return 304 if request.method in ("GET", "HEAD") else 412
    elif request.method in ("GET", "HEAD"):
        since = _date(h.get("If-Modified-Since"))
        if since is not None and mtime <= since:
            return 304
    return None


async def file_response(request: web.BaseRequest, path: Path, root: Path, *, size: int,
                        etag: str, name: str, cache_control: str,
                        headers: dict[str, str] | None = None,
                        stall_timeout: float = STALL_TIMEOUT,
                        stopping: asyncio.Event | None = None) -> web.StreamResponse:
    """The answer to a GET/HEAD of a verified file (see the module doc). ``stopping``, once
    set, ends bodies still being sent (the server is shutting down).

    Raises :class:`NotServable` when the file is not what the index says.
    """
    opened = await asyncio.to_thread(open_verified, path, root, size)
    out = {
        "ETag": f'"{etag}"',
        "Last-Modified": http_date(opened.mtime),
        "Cache-Control": cache_control,
        "Accept-Ranges": "bytes",
        **(headers or {}),
    }
    try:
        status = preconditions(request, etag, opened.mtime)
        if status is not None:
            opened.file.close()
            return web.Response(status=status, headers=out)
        span = None
        if request.method == "GET" and _if_range_holds(request.headers.get("If-Range"), etag,
                                                       opened.mtime):
            span = parse_range(request.headers.get("Range"), size)
    except Unsatisfiable:
        opened.file.close()
        out["Content-Range"] = f"bytes */{size}"
        return json_error(416, f"the range starts past the end of the file ({size} bytes)",
                          out)
    except BaseException:
        opened.file.close()
        raise
    out["Content-Type"] = mimetypes.guess_type(name)[0] or "application/octet-stream"
    out["X-Content-Type-Options"] = "nosniff"
    if span is None:
        return SendfileResponse(opened.file, 0, size, 200, out, stall_timeout, stopping)
    start, stop = span
    out["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
    return SendfileResponse(opened.file, start, stop - start, 206, out, stall_timeout, stopping)


class SendfileResponse(web.StreamResponse):
    """A body sent from an open file with ``loop.sendfile``, in pieces that must not stall."""

    def __init__(self, file: BinaryIO, offset: int, count: int, status: int,
                 headers: dict[str, str], stall_timeout: float,
                 stopping: asyncio.Event | None = None) -> None:
        super().__init__(status=status, headers=headers)
        self.content_length = count
        self._file = file
        self._offset = offset
        self._count = count
        self._stall = stall_timeout
        self._stopping = stopping or asyncio.Event()
        #: Body bytes the kernel took so far, counted per whole piece (for the access log).
        self.sent_bytes = 0

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        try:
            writer = await super().prepare(request)
            if writer is None or request.method == "HEAD" or self._count == 0:
                return writer
            await self._send(request)
            await super().write_eof()
            return writer
        finally:
            self._file.close()

    async def _send(self, request: web.BaseRequest) -> None:
        loop = asyncio.get_running_loop()
        transport = request.transport
        if transport is None:
            raise ConnectionResetError("the client went away")
        pos, end = self._offset, self._offset + self._count
        piece = FIRST_PIECE
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            while pos < end:
                n = min(piece, end - pos)
                t0 = loop.time()
                sent = await self._piece(transport, pos, n, stop)
                pos += sent
                self.sent_bytes = pos - self._offset
                took = loop.time() - t0
                if took < 0.25 and piece < MAX_PIECE:
                    piece *= 2
                elif took > 5.0 and piece > FIRST_PIECE:
                    piece //= 2
        finally:
            stop.cancel()

    async def _piece(self, transport: asyncio.Transport, pos: int, n: int,
                     stop: asyncio.Future[Any]) -> int:
        """Send ``n`` bytes from ``pos``; a stall or the server stopping ends the connection,
        a client that left raises :class:`ConnectionResetError`.

        The sendfile is cancelled and awaited *before* the transport is aborted: closing a
        transport while asyncio's sendfile still holds it trips an InvalidStateError inside
        asyncio (its ``_call_connection_lost`` sets an exception on a finished waiter).
        """
        loop = asyncio.get_running_loop()
        if transport.is_closing():
            raise ConnectionResetError("the client went away")
        task = asyncio.ensure_future(loop.sendfile(transport, self._file, pos, n))
        done, _ = await asyncio.wait({task, stop}, timeout=self._stall,
                                     return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            try:
                sent = task.result()
            except RuntimeError:
                # asyncio's word for a transport closed under it ("Transport is closing"): the
                # client left between two pieces. A ConnectionError is what aiohttp expects of
                # a client that left (one access-log line, no traceback).
                if transport.is_closing():
                    raise ConnectionResetError("the client went away") from None
                raise
            if sent <= 0:
                transport.abort()
                raise ConnectionResetError("the file ended early")
            return sent
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, OSError):
            await task
        transport.abort()
        why = "the server is stopping" if stop in done else \
            f"the client took more than {self._stall:.0f} s to accept {n} bytes"
        raise ConnectionResetError(why)
