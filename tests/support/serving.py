"""``runanywhere serve`` for tests: in this process (a loop in a thread) or as a CLI subprocess.

Both wait for readiness by polling ``/healthz``, never by sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from harness.net import free_port
from runanywhere.registry import ModelRegistry
from runanywhere.serve import ModelServer, ServeOptions


def wait_healthy(url: str, timeout: float = 20.0, proc: subprocess.Popen[Any] | None = None
                 ) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"runanywhere serve exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as r:
                if r.status == 200:
                    return
        except (OSError, urllib.error.URLError) as e:
            last = e
        time.sleep(0.02)
    raise RuntimeError(f"{url} did not become healthy: {last}")


class InProcessServer:
    """A ``ModelServer`` on its own event loop in a daemon thread (port 0: a free one)."""

    def __init__(self, registry: ModelRegistry, **options: Any) -> None:
        options.setdefault("port", 0)
        self.server = ModelServer(registry, ServeOptions(**options))
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True,
                                       name="serve-test")
        self.url = ""

    def __enter__(self) -> InProcessServer:
        self.thread.start()
        self.url = asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(30)
        wait_healthy(self.url)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@contextlib.contextmanager
def cli_server(home: Path, *args: str, env: dict[str, str] | None = None,
               catalogs: list[Path] | None = None) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``runanywhere --home HOME serve --port P ARGS`` as a subprocess; yields (url, process).
    Stopped with SIGINT at the end if still running."""
    port = free_port()
    cmd = [sys.executable, "-m", "runanywhere", "--home", str(home)]
    for c in catalogs or []:
        cmd += ["--catalog", str(c)]
    cmd += ["serve", "--port", str(port), *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc=proc)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout:
            proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()


class StderrLines:
    """A running server's stderr, read line by line on a thread so a test can wait for a line
    (an event: the line arrives) while the server keeps running."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True,
                                        name="serve-stderr")
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def wait_for(self, text: str, timeout: float = 20.0) -> str:
        """The first line containing ``text``, once it is there."""
        with self._cond:
            found = self._cond.wait_for(
                lambda: self._closed or any(text in line for line in self.lines), timeout)
            hit = next((line for line in self.lines if text in line), None)
        if not found or hit is None:
            raise AssertionError(f"no line with {text!r} on the server's stderr:\n"
                                 + "\n".join(self.lines[-20:]))
        return hit

    def wait_closed(self, timeout: float = 20.0) -> list[str]:
        """Every line, once the server has closed its stderr (it exited)."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._closed, timeout):
                raise AssertionError("the server's stderr did not close")
            return list(self.lines)

    def matching(self, text: str) -> list[str]:
        with self._cond:
            return [line for line in self.lines if text in line]
