"""A small forward proxy for the tests: absolute-form GET for http, CONNECT tunnels for https,
``Proxy-Authorization: Basic`` required (407 otherwise). It records what it saw, so a test can
check that credentials arrived and that a request really went through it."""

from __future__ import annotations

import base64
import contextlib
import select
import socket
import socketserver
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit


@dataclass
class ProxyLog:
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)  # method, target,
    lock: threading.Lock = field(default_factory=threading.Lock)              # auth header


class _Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


class Proxy:
    def __init__(self, user: str, password: str) -> None:
        self.expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.log = ProxyLog()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _allowed(self) -> bool:
                auth = self.headers.get("Proxy-Authorization")
                with proxy.log.lock:
                    proxy.log.requests.append((self.command, self.path, auth))
                if auth == proxy.expected:
                    return True
                self.send_response(407)
                self.send_header("Proxy-Authenticate", 'Basic realm="tests"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return False

            def do_CONNECT(self) -> None:
                if not self._allowed():
                    return
                host, _, port = self.path.rpartition(":")
                upstream = socket.create_connection((host, int(port)), timeout=30)
                self.send_response(200, "Connection established")
                self.end_headers()
                self._pipe(self.connection, upstream)

            def do_GET(self) -> None:
                if not self._allowed():
                    return
                parts = urlsplit(self.path)
                upstream = socket.create_connection((parts.hostname or "", parts.port or 80),
                                                    timeout=30)
                target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
                lines = [f"GET {target} HTTP/1.1"]
                lines += [f"{k}: {v}" for k, v in self.headers.items()
                          if k.lower() not in ("proxy-authorization", "proxy-connection",
                                               "connection")]
                lines.append("Connection: close")
                upstream.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
                self.close_connection = True
                self._pipe(self.connection, upstream)

            def _pipe(self, a: socket.socket, b: socket.socket) -> None:
                with contextlib.closing(b):
                    while True:
                        ready, _, _ = select.select([a, b], [], [], 30)
                        if not ready:
                            return
                        for s in ready:
                            data = s.recv(65536)
                            if not data:
                                return
                            (b if s is a else a).sendall(data)

        self._server = _Server(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, user: str, password: str) -> str:
        return f"http://{user}:{password}@127.0.0.1:{self.port}"

    def __enter__(self) -> Proxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
