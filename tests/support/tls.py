"""A small HTTPS (or HTTP) server that records who sent which ``Authorization`` header.

``make_cert(folder)`` writes a throwaway self-signed certificate for ``127.0.0.1`` and
``localhost`` with the ``openssl`` command line (a client trusts it through ``SSL_CERT_FILE``).
``HeaderServer`` answers each path with a file (200, the whole body; ``Range`` is ignored, which
the client handles) or a redirect, and keeps one :class:`Seen` per request.
"""

from __future__ import annotations

import contextlib
import http.server
import socketserver
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


def make_cert(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                    "/CN=runanywhere-test", "-addext",
                    "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out",
                    str(cert)], check=True, capture_output=True, timeout=60)
    return cert, key


@dataclass(frozen=True)
class Seen:
    host: str
    path: str
    authorization: str | None


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class HeaderServer:
    def __init__(self, cert: tuple[Path, Path] | None = None) -> None:
        self.files: dict[str, bytes] = {}
        self.redirects: dict[str, str] = {}
        self.statuses: dict[str, int] = {}
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                with owner._lock:
                    owner.seen.append(Seen(self.headers.get("Host", ""), self.path,
                                           self.headers.get("Authorization")))
                if self.path in owner.redirects:
                    self.send_response(302)
                    self.send_header("Location", owner.redirects[self.path])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = owner.statuses.get(self.path, 200)
                body = owner.files.get(self.path) if status == 200 else b"denied"
                if body is None:
                    status, body = 404, b"not found"
                self.send_response(status)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.scheme = "http"
        if cert is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(cert[0]), str(cert[1]))
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
            self.scheme = "https"
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True,
                                        name=f"header-server-{self.port}")

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def tokens(self, path: str | None = None) -> list[str | None]:
        with self._lock:
            return [s.authorization for s in self.seen if path is None or s.path == path]

    def __enter__(self) -> HeaderServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@contextlib.contextmanager
def servers(folder: Path) -> Iterator[tuple[HeaderServer, HeaderServer]]:
    """An HTTPS and a plain HTTP header server."""
    with HeaderServer(make_cert(folder)) as tls, HeaderServer() as plain:
        yield tls, plain
