"""A TCP port whose connects hang, and a way to see a client waiting on it.

The listener never accepts and its accept queue (one slot) is full, so the kernel drops every
further SYN: a client's ``connect()`` sits in ``SYN_SENT`` until its own timeout, as with a host
behind a firewall that drops packets. :func:`connecting` reads the kernel's socket table (Linux
``/proc/net/tcp``), so a test acts once a connect is really in progress, never after a sleep.
"""

from __future__ import annotations

import contextlib
import select
import socket
from collections.abc import Iterator
from pathlib import Path

_SYN_SENT = "02"


@contextlib.contextmanager
def blackhole() -> Iterator[int]:
    """A port on 127.0.0.1 whose connects hang while the block runs."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = int(listener.getsockname()[1])
    fillers: list[socket.socket] = []
    try:
        while True:
            if len(fillers) >= 64:
                raise RuntimeError("the accept queue never filled up")
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            fillers.append(s)
            # Connected at once: a slot was free. Not writable: this one hangs, the queue is full.
            _, writable, _ = select.select([], [s], [], 0.5)
            if not writable:
                break
        yield port
    finally:
        for s in fillers:
            s.close()
        listener.close()


def connecting(port: int) -> int:
    """How many sockets of this machine wait in ``SYN_SENT`` for 127.0.0.1:``port``."""
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                remote, state = fields[2], fields[3]
                if state == _SYN_SENT and int(remote.rsplit(":", 1)[1], 16) == port:
                    n += 1
    return n
