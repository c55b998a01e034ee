"""A real nginx on 127.0.0.1 serving a folder, started and stopped by the tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

NGINX_CANDIDATES = ("/usr/sbin/nginx", "/usr/bin/nginx")


def nginx_binary() -> str | None:
    for c in NGINX_CANDIDATES:
        if os.access(c, os.X_OK):
            return c
    return shutil.which("nginx")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


CONF = """
user root;
worker_processes 2;
daemon off;
master_process on;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 256; }}
http {{
    log_format bytes '$request_uri $status $body_bytes_sent $http_range';
    access_log {tmp}/access.log bytes;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    types {{ application/octet-stream onnx bin; text/html html; }}
    default_type application/octet-stream;
    sendfile on;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location /slow/ {{ alias {root}/; limit_rate {slow_rate}; }}
        location /redirect/ {{ rewrite ^/redirect/(.*)$ /$1 redirect; }}
    }}
}}
"""


class Nginx:
    def __init__(self, root: Path, tmp: Path, slow_rate: str = "2m") -> None:
        self.root = root
        self.tmp = tmp
        self.port = free_port()
        self.slow_rate = slow_rate
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = nginx_binary()
        if binary is None:
            raise RuntimeError("nginx is not installed (apt-get install nginx)")
        self.tmp.mkdir(parents=True, exist_ok=True)
        conf = self.tmp / "nginx.conf"
        conf.write_text(CONF.format(tmp=self.tmp, port=self.port, root=self.root,
                                    slow_rate=self.slow_rate))
        self.proc = subprocess.Popen([binary, "-c", str(conf), "-p", str(self.tmp)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port),
                                                                       0.2):
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {self.proc.stderr.read().decode()}")  # type: ignore[union-attr]
            time.sleep(0.02)
        raise RuntimeError("nginx did not start listening")

    def bytes_served(self, path_part: str = "") -> int:
        """Body bytes nginx logged for requests whose URI contains ``path_part``."""
        log = self.tmp / "access.log"
        if not log.exists():
            return 0
        total = 0
        for line in log.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and path_part in parts[0]:
                total += int(parts[2])
        return total

    def requests(self) -> list[str]:
        log = self.tmp / "access.log"
        return log.read_text().splitlines() if log.exists() else []

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextlib.contextmanager
def running_nginx(root: Path, tmp: Path, **kw: str) -> Iterator[Nginx]:
    n = Nginx(root, tmp, **kw)
    n.start()
    try:
        yield n
    finally:
        n.stop()
