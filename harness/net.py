"""Ports on 127.0.0.1: the one place that picks free ports and waits for a listener."""

from __future__ import annotations

import socket
import subprocess
import time


def free_ports(n: int) -> list[int]:
    """``n`` distinct free TCP ports on 127.0.0.1 (held open together, so they differ).

    A port is free when asked, not when used: another process may take it before our server
    binds it, so every launcher retries its start with fresh ports."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port() -> int:
    """One free TCP port on 127.0.0.1 (see :func:`free_ports`)."""
    return free_ports(1)[0]


def wait_port(port: int, host: str = "127.0.0.1", timeout: float = 10.0,
              proc: subprocess.Popen[bytes] | None = None) -> bool:
    """True once something accepts TCP connections on ``host:port``; False after ``timeout``
    seconds, or as soon as ``proc`` (the server that should listen there) has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.02)
    return False
