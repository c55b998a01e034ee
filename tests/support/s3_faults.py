"""A reverse proxy on 127.0.0.1 in front of a real S3 store (SeaweedFS) that fails on cue.

Every request goes through to the store untouched (the ``Host`` header included, so SigV4
signatures and presigned URLs still verify), except that the next ``n`` requests a test chose
(by method and a piece of the path or query) are answered ``503 SlowDown``, S3's "reduce your
request rate". It records ``(method, path, status)`` for every request, so a test counts tries
instead of timing them.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

_SLOW_DOWN = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
              b"<Message>Please reduce your request rate.</Message></Error>")
_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
        "proxy-authorization", "proxy-authenticate"}


@dataclass
class _Fault:
    left: int
    method: str | None
    contains: str


class S3Front:
    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.seen: list[tuple[str, str, int]] = []
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _any(self) -> None:
                front._handle(self)

            do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _any

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True,
                                        name="s3-front")

    def fail(self, n: int, method: str | None = None, contains: str = "") -> None:
        """Answer the next ``n`` requests with this method (any: None) whose path and query
        contain ``contains`` with ``503 SlowDown``."""
        with self._lock:
            self._faults.append(_Fault(n, method, contains))

    def statuses(self, method: str | None = None, contains: str = "") -> list[int]:
        with self._lock:
            return [s for m, p, s in self.seen
                    if (method is None or m == method) and contains in p]

    def _take_fault(self, method: str, path: str) -> bool:
        with self._lock:
            for f in self._faults:
                if f.left > 0 and f.method in (None, method) and f.contains in path:
                    f.left -= 1
                    return True
        return False

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        if self._take_fault(h.command, h.path):
            self._record(h.command, h.path, 503)
            h.send_response(503)
            h.send_header("Content-Type", "application/xml")
            h.send_header("Content-Length", str(len(_SLOW_DOWN)))
            h.end_headers()
            if h.command != "HEAD":
                h.wfile.write(_SLOW_DOWN)
            return
        conn = http.client.HTTPConnection(*self.upstream, timeout=30)
        try:
            headers = {k: v for k, v in h.headers.items() if k.lower() not in _HOP}
            conn.request(h.command, h.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            self._record(h.command, h.path, resp.status)
            h.send_response(resp.status, resp.reason)
            for k, v in resp.getheaders():
                if k.lower() not in _HOP and k.lower() != "content-length":
                    h.send_header(k, v)
            if h.command == "HEAD":
                h.send_header("Content-Length", resp.getheader("Content-Length") or "0")
                h.end_headers()
                return
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
        finally:
            conn.close()

    def _record(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self.seen.append((method, path, status))

    def __enter__(self) -> S3Front:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@contextmanager
def s3_front(upstream: str) -> Iterator[S3Front]:
    with S3Front(upstream) as front:
        yield front
