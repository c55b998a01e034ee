"""A small HTTP server of the tests' own that misbehaves on cue.

Each path serves one file (``add``) and follows a *script*: a list of behaviours used one per
request, in order, then a default for every later request (``script``). The server honours
``Range`` and ``If-Range`` like nginx when the behaviour is ``ok``; the others break one thing:

=====================  ============================================================================
``ok()``               a correct 200/206 answer (ETag, Last-Modified, Content-Range)
``hold(gate)``         headers, then no body until ``gate`` (a threading.Event) is set, then ``ok``
``hold_reset(gate)``   headers, then no body until ``gate`` is set, then a TCP reset
``hold_head(gate)``    nothing until ``gate`` is set (at most 60 s), then ``ok``
``reset(n)``           headers, ``n`` body bytes, then a TCP reset (SO_LINGER 0)
``stall(n)``           headers, ``n`` body bytes, then silence until the client hangs up
``trickle(every)``     one body byte every ``every`` seconds
``trickle_head()``     the status line and headers one byte every 200 ms
``silent()``           accept the request and never answer
``hangup()``           close the connection without answering
``slow(rate)``         the correct body at ``rate`` bytes/s (for kill -9 and cancel tests)
``short(n)``           Content-Length as for the whole answer, ``n`` bytes fewer, then close
``extra(n)``           the correct answer followed by ``n`` bytes of garbage
``no_length(extra)``   no Content-Length (close-delimited), ``extra`` bytes of garbage appended
``lie_length(d)``      Content-Length off by ``d``, body as for the honest length
``ignore_range()``     always 200 with the whole file (``whole=True`` does this for others too)
``partial_range(n)``   206 covering only the first ``n`` bytes asked for (legal, RFC 9110 14.1)
``wrong_range()``      206 whose Content-Range starts elsewhere than asked
``wrong_total()``      206 whose Content-Range names another total size
``status(code, ra)``   that status with a small body, ``Retry-After: ra`` if given
``redirect(loc)``      302 to ``loc`` (relative or absolute, any scheme)
``gzip()``             the whole file gzip-compressed with ``Content-Encoding: gzip``, unasked
``html(pad_to)``       200 ``text/html`` error page (padded with spaces to ``pad_to`` bytes)
``empty(length)``      200 with an empty body (``Content-Length: 0`` unless ``length`` False)
``chunked()``          the correct answer in chunked transfer encoding
``garbage()``          a malformed status line
``swap(data)``         replace the file's bytes and ETag, then answer ``ok``
``no_if_range()``      ``ok`` but ignoring If-Range: a 206 of whatever version is there now
=====================  ============================================================================

Connections are counted as they are accepted (``accepted``, ``wait_for_connections``): a
client's connects show even before it sends a request.

Every request is logged as a :class:`Hit` (time it arrived and ended, Host, Range, If-Range,
Authorization, status, body bytes sent), so tests assert on what the server saw instead of on
wall-clock time.
"""

from __future__ import annotations

import contextlib
import gzip as gzip_mod
import hashlib
import re
import select
import socket
import socketserver
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")
_REASONS = {200: "OK", 206: "Partial Content", 302: "Found", 400: "Bad Request",
            403: "Forbidden", 404: "Not Found", 410: "Gone", 416: "Range Not Satisfiable",
            429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Unavailable"}
LAST_MODIFIED = "Mon, 01 Jan 2024 00:00:00 GMT"


@dataclass(frozen=True)
class Behaviour:
    kind: str = "ok"
    n: int = 0
    every: float = 0.2
    code: int = 200
    retry_after: str | None = None
    location: str = ""
    data: bytes = b""
    flag: bool = True
    #: Ignore Range: answer 200 with the whole file.
    whole: bool = False
    #: Honour If-Range (a mismatch turns a range request into a 200 with the whole file).
    if_range: bool = True
    gate: threading.Event | None = None


def ok() -> Behaviour:
    return Behaviour("ok")


def hold(gate: threading.Event) -> Behaviour:
    return Behaviour("hold", gate=gate)


def hold_reset(gate: threading.Event) -> Behaviour:
    return Behaviour("hold_reset", gate=gate)


def hold_head(gate: threading.Event) -> Behaviour:
    return Behaviour("hold_head", gate=gate)


def trickle_head(every: float = 0.2) -> Behaviour:
    return Behaviour("trickle_head", every=every)


def silent() -> Behaviour:
    return Behaviour("silent")


def hangup() -> Behaviour:
    return Behaviour("hangup")


def reset(n: int = 0) -> Behaviour:
    return Behaviour("reset", n=n)


def stall(n: int = 0) -> Behaviour:
    return Behaviour("stall", n=n)


def trickle(every: float = 0.2) -> Behaviour:
    return Behaviour("trickle", every=every)


def slow(rate: int) -> Behaviour:
    return Behaviour("slow", n=rate)


def short(n: int) -> Behaviour:
    return Behaviour("short", n=n)


def extra(n: int) -> Behaviour:
    return Behaviour("extra", n=n)


def no_length(extra_bytes: int = 0, *, whole: bool = False) -> Behaviour:
    return Behaviour("no_length", n=extra_bytes, whole=whole)


def lie_length(delta: int, *, whole: bool = False) -> Behaviour:
    return Behaviour("lie_length", n=delta, whole=whole)


def ignore_range() -> Behaviour:
    return Behaviour("ok", whole=True)


def partial_range(n: int) -> Behaviour:
    return Behaviour("partial_range", n=n)


def wrong_range() -> Behaviour:
    return Behaviour("wrong_range")


def wrong_total() -> Behaviour:
    return Behaviour("wrong_total")


def status(code: int, retry_after: str | None = None) -> Behaviour:
    return Behaviour("status", code=code, retry_after=retry_after)


def redirect(location: str) -> Behaviour:
    return Behaviour("redirect", location=location)


def gzip() -> Behaviour:
    return Behaviour("gzip")


def html(pad_to: int = 0, length: bool = True) -> Behaviour:
    return Behaviour("html", n=pad_to, flag=length)


def empty(length: bool = True) -> Behaviour:
    return Behaviour("empty", flag=length)


def chunked() -> Behaviour:
    return Behaviour("chunked")


def garbage() -> Behaviour:
    return Behaviour("garbage")


def swap(data: bytes, *, if_range: bool = True) -> Behaviour:
    return Behaviour("swap", data=data, if_range=if_range)


def no_if_range() -> Behaviour:
    return Behaviour("ok", if_range=False)


@dataclass
class Hit:
    path: str
    behaviour: str
    range: str | None
    if_range: str | None
    arrived: float
    status: int = 0
    sent: int = 0  # body bytes handed to the kernel
    ended: float = 0.0
    host: str | None = None
    authorization: str | None = None


@dataclass
class _File:
    data: bytes
    etag: str
    script: list[Behaviour] = field(default_factory=list)
    then: Behaviour = field(default_factory=ok)


def etag_of(data: bytes) -> str:
    return '"' + hashlib.sha256(data).hexdigest()[:16] + '"'


class _Abort(Exception):
    """The client went away (or we reset the connection on purpose)."""


class FaultServer:
    def __init__(self) -> None:
        self._files: dict[str, _File] = {}
        self._lock = threading.Lock()
        self._hits: list[Hit] = []
        #: TCP connections accepted so far (notified on ``_accepts``).
        self.accepted = 0
        self._accepts = threading.Condition(self._lock)
        self.stopping = threading.Event()
        self._server = _TCPServer(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="fault-server")

    # -- control ------------------------------------------------------------------------------
    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base + "/" + path.lstrip("/")

    def add(self, path: str, data: bytes, *script: Behaviour, then: Behaviour | None = None
            ) -> str:
        """Serve ``data`` at ``path`` following ``script``; returns the URL."""
        path = "/" + path.lstrip("/")
        with self._lock:
            self._files[path] = _File(data, etag_of(data), list(script), then or ok())
        return self.url(path)

    def script(self, path: str, *script: Behaviour, then: Behaviour | None = None) -> None:
        path = "/" + path.lstrip("/")
        with self._lock:
            f = self._files[path]
            f.script = list(script)
            if then is not None:
                f.then = then

    def set_data(self, path: str, data: bytes) -> None:
        with self._lock:
            f = self._files["/" + path.lstrip("/")]
            f.data, f.etag = data, etag_of(data)

    def hits(self, path: str | None = None) -> list[Hit]:
        with self._lock:
            return [h for h in self._hits
                    if path is None or h.path == "/" + path.lstrip("/")]

    def bytes_served(self, path: str | None = None) -> int:
        return sum(h.sent for h in self.hits(path))

    def requests(self, path: str | None = None) -> int:
        return len(self.hits(path))

    def wait_for_hits(self, path: str, n: int, timeout: float = 10.0) -> list[Hit]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hits = self.hits(path)
            if len(hits) >= n:
                return hits
            time.sleep(0.01)
        raise AssertionError(f"server saw {len(self.hits(path))} requests for {path}, not {n}")

    def wait_for_connections(self, n: int, timeout: float = 10.0) -> bool:
        """Block until ``n`` connections were accepted in all; False if ``timeout`` passed."""
        with self._accepts:
            return self._accepts.wait_for(lambda: self.accepted >= n, timeout)

    def _accepted(self) -> None:
        with self._accepts:
            self.accepted += 1
            self._accepts.notify_all()

    def start(self) -> FaultServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    # -- serving ------------------------------------------------------------------------------
    def _next(self, path: str) -> tuple[_File | None, Behaviour]:
        with self._lock:
            f = self._files.get(path)
            if f is None:
                return None, status(404)
            b = f.script.pop(0) if f.script else f.then
            if b.kind == "swap":
                f.data, f.etag = b.data, etag_of(b.data)
            return f, b

    def _log(self, hit: Hit) -> None:
        with self._lock:
            self._hits.append(hit)

    def serve(self, h: _Handler) -> None:
        path = h.path.split("?", 1)[0]
        f, b = self._next(path)
        hit = Hit(path, b.kind, h.headers.get("Range"), h.headers.get("If-Range"),
                  time.monotonic(), host=h.headers.get("Host"),
                  authorization=h.headers.get("Authorization"))
        self._log(hit)
        try:
            _Reply(self, h, hit, f, b).send()
        except (_Abort, OSError):
            pass
        finally:
            hit.ended = time.monotonic()


class _TCPServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64
    owner: FaultServer

    def verify_request(self, request: object, client_address: object) -> bool:
        self.owner._accepted()  # every accepted connection, before any request on it
        return True


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _TCPServer

    def do_GET(self) -> None:
        self.close_connection = True
        self.server.owner.serve(self)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Reply:
    """One answer: decide status, headers and body span, then transmit as the behaviour says."""

    def __init__(self, server: FaultServer, h: _Handler, hit: Hit, f: _File | None,
                 b: Behaviour) -> None:
        self.server = server
        self.h = h
        self.sock: socket.socket = h.connection
        self.hit = hit
        self.f = f
        self.b = b

    # -- low level ----------------------------------------------------------------------------
    def _head(self, code: int, headers: dict[str, str]) -> None:
        self.hit.status = code
        lines = [f"HTTP/1.1 {code} {_REASONS.get(code, 'Whatever')}"]
        lines += [f"{k}: {v}" for k, v in {**headers, "Connection": "close"}.items()]
        raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if self.b.kind != "trickle_head":
            self.sock.sendall(raw)
            return
        for i in range(len(raw)):
            if self.server.stopping.wait(self.b.every):
                raise _Abort
            self.sock.sendall(raw[i : i + 1])

    def _body(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        for i in range(0, len(view), 1 << 16):
            part = view[i : i + (1 << 16)]
            self.sock.sendall(part)
            self.hit.sent += len(part)

    def _wait_for_hangup(self, limit: float = 60.0) -> None:
        """Stay silent until the client closes the connection (or the server stops)."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline and not self.server.stopping.is_set():
            readable, _, _ = select.select([self.sock], [], [], 0.05)
            if readable:
                try:
                    if not self.sock.recv(4096):
                        return
                except OSError:
                    return

    def _reset(self) -> None:
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()
        raise _Abort

    def _span(self, size: int) -> tuple[int, int, bool] | None:
        """(first, end, partial) asked for by Range/If-Range; None if unsatisfiable."""
        assert self.f is not None
        rng = self.h.headers.get("Range")
        if_range = self.h.headers.get("If-Range")
        m = _RANGE.match(rng.strip()) if rng else None
        stale = if_range is not None and if_range not in (self.f.etag, LAST_MODIFIED)
        if not m or (stale and self.b.if_range):
            return 0, size, False
        first = int(m[1])
        last = int(m[2]) if m[2] else size - 1
        if first >= size:
            return None
        return first, min(last, size - 1) + 1, True

    # -- behaviours ---------------------------------------------------------------------------
    def send(self) -> None:
        b = self.b
        if b.kind == "status":
            body = f"error {b.code}\n".encode()
            hdrs = {"Content-Type": "text/plain", "Content-Length": str(len(body))}
            if b.retry_after is not None:
                hdrs["Retry-After"] = b.retry_after
            self._head(b.code, hdrs)
            self._body(body)
            return
        if b.kind == "redirect":
            self._head(302, {"Location": b.location, "Content-Length": "0"})
            return
        if b.kind == "hold_head":
            assert b.gate is not None
            deadline = time.monotonic() + 60
            while not b.gate.wait(0.05):
                if self.server.stopping.is_set() or time.monotonic() > deadline:
                    return
            self.b = ok()
            self._file(self.f.data if self.f is not None else b"")
            return
        if b.kind == "garbage":
            self.sock.sendall(b"HTTX/9 what\r\n\r\n")
            return
        if b.kind == "silent":
            self._wait_for_hangup()
            return
        if b.kind == "hangup":
            return  # the handler closes the connection
        if b.kind == "html":
            page = b"<!DOCTYPE html><html><head><title>Login</title></head><body>Sign in</body>"
            page = page + b" " * max(0, b.n - len(page))
            hdrs = {"Content-Type": "text/html; charset=utf-8"}
            if b.flag:
                hdrs["Content-Length"] = str(len(page))
            self._head(200, hdrs)
            self._body(page)
            return
        if b.kind == "empty":
            self._head(200, {"Content-Length": "0"} if b.flag else {})
            return
        assert self.f is not None
        data = self.f.data
        if b.kind == "gzip":
            packed = gzip_mod.compress(data, 1)
            self._head(200, {"Content-Encoding": "gzip", "Content-Length": str(len(packed)),
                             "ETag": self.f.etag})
            self._body(packed)
            return
        self._file(data)

    def _file(self, data: bytes) -> None:
        assert self.f is not None
        b, size = self.b, len(data)
        span = (0, size, False) if b.whole else self._span(size)
        if span is None:
            self._head(416, {"Content-Range": f"bytes */{size}", "Content-Length": "0"})
            return
        first, end, partial = span
        if b.kind == "partial_range" and partial:
            end = min(end, first + b.n)
        hdrs = {"Content-Type": "application/octet-stream", "ETag": self.f.etag,
                "Last-Modified": LAST_MODIFIED, "Accept-Ranges": "bytes"}
        total = size + 1 if b.kind == "wrong_total" else size
        shown_first = first + 1 if b.kind == "wrong_range" else first
        if partial:
            hdrs["Content-Range"] = f"bytes {shown_first}-{end - 1}/{total}"
        length = end - first
        if b.kind == "lie_length":
            hdrs["Content-Length"] = str(length + b.n)
        elif b.kind == "chunked":
            hdrs["Transfer-Encoding"] = "chunked"
        elif b.kind != "no_length":
            hdrs["Content-Length"] = str(length)
        self._head(206 if partial else 200, hdrs)
        body = memoryview(data)[first:end]
        self._transmit(body)

    def _transmit(self, body: memoryview) -> None:
        b = self.b
        if b.kind == "reset":
            self._body(body[: b.n])
            self._reset()
        elif b.kind in ("hold", "hold_reset"):
            assert b.gate is not None
            deadline = time.monotonic() + 60
            while not b.gate.wait(0.05):
                if self.server.stopping.is_set() or time.monotonic() > deadline:
                    return
            if b.kind == "hold_reset":
                self._reset()
            self._body(body)
        elif b.kind == "stall":
            self._body(body[: b.n])
            self._wait_for_hangup()
        elif b.kind == "trickle":
            for i in range(len(body)):
                if self.server.stopping.wait(b.every):
                    return
                self._body(body[i : i + 1])
        elif b.kind == "slow":
            step = max(1, b.n // 20)
            for i in range(0, len(body), step):
                if self.server.stopping.wait(0.05):
                    return
                self._body(body[i : i + step])
        elif b.kind == "short":
            self._body(body[: max(0, len(body) - b.n)])
        elif b.kind in ("extra", "no_length"):
            self._body(body)
            self._body(b"\xee" * b.n)
        elif b.kind == "lie_length":
            self._body(body)
        elif b.kind == "chunked":
            for i in range(0, len(body), 100_000):
                part = body[i : i + 100_000]
                self.sock.sendall(f"{len(part):x}\r\n".encode())
                self._body(part)
                self.sock.sendall(b"\r\n")
            self.sock.sendall(b"0\r\n\r\n")
        else:
            self._body(body)


@contextlib.contextmanager
def running() -> Iterator[FaultServer]:
    server = FaultServer().start()
    try:
        yield server
    finally:
        server.stop()
