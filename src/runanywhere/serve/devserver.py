"""A tiny loopback HTTP origin with Range, ETag and If-Range (stdlib only).

Used by ``runanywhere demo`` so the demo runs with no internet and no system packages. It is not
a production server: one folder, GET/HEAD, 127.0.0.1 only.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


def _handler(root: Path) -> type[BaseHTTPRequestHandler]:
    etags: dict[Path, str] = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _file(self) -> Path | None:
            rel = self.path.split("?", 1)[0].lstrip("/")
            p = (root / rel).resolve()
            if root not in p.parents or not p.is_file():
                return None
            return p

        def do_HEAD(self) -> None:
            self.do_GET(body=False)

        def do_GET(self, body: bool = True) -> None:
            p = self._file()
            if p is None:
                self.send_error(404)
                return
            size = p.stat().st_size
            if p not in etags:
                stamp = f"{p}:{p.stat().st_mtime_ns}".encode()
                etags[p] = '"' + hashlib.sha1(stamp).hexdigest() + '"'
            etag = etags[p]
            start, end, status = 0, size - 1, 200
            m = _RANGE.match(self.headers.get("Range", ""))
            if_range = self.headers.get("If-Range")
            if m and (if_range is None or if_range == etag) and size:
                a, b = m.groups()
                if a:
                    start, end = int(a), min(int(b), size - 1) if b else size - 1
                else:
                    start, end = max(0, size - int(b)), size - 1
                if start > end or start >= size:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = 206
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(end - start + 1))
            self.send_header("ETag", etag)
            self.send_header("Accept-Ranges", "bytes")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.end_headers()
            if not body:
                return
            with open(p, "rb") as f:
                offset, left = start, end - start + 1
                while left > 0:
                    sent = os.sendfile(self.connection.fileno(), f.fileno(), offset, left)
                    if sent == 0:
                        break
                    offset += sent
                    left -= sent

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-body (a download cancelled by Ctrl-C) is no error to print.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class Origin:
    """``with Origin(folder) as o: o.url`` serves ``folder`` on a free 127.0.0.1 port."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self._server = _Server(("127.0.0.1", 0), _handler(self.root))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> Origin:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
