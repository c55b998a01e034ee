"""A command in a real pseudo-terminal, as a user's shell runs it.

``pty.fork`` makes the terminal the child's controlling terminal with the child in its foreground
process group, so ``ctrl_c()`` (writing ``^C`` to the terminal) makes the kernel's line
discipline send SIGINT, exactly as a key press does. ``stdout_to`` redirects the child's stdout
to a file (``> out.txt``) while stderr stays on the terminal.
"""

from __future__ import annotations

import os
import pty
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path


class Terminal:
    def __init__(self, argv: Sequence[str], env: dict[str, str],
                 stdout_to: Path | None = None) -> None:
        pid, fd = pty.fork()
        if pid == 0:  # the child: exec at once (the parent has threads)
            try:
                if stdout_to is not None:
                    out = os.open(stdout_to, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                    os.dup2(out, 1)
                os.execvpe(argv[0], list(argv), env)
            finally:
                os._exit(127)
        self.pid = pid
        self.fd = fd
        self._buf = bytearray()
        self._cond = threading.Condition()
        self._closed = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.returncode: int | None = None

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.fd, 65536)
            except OSError:  # EIO: the child side closed
                data = b""
            with self._cond:
                if not data:
                    self._closed = True
                    self._cond.notify_all()
                    return
                self._buf += data
                self._cond.notify_all()

    @property
    def output(self) -> str:
        with self._cond:
            return self._buf.decode(errors="replace")

    def wait_for_output(self, predicate: Callable[[str], bool], timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self._buf.decode(errors="replace")):
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    raise AssertionError(f"terminal never showed what was awaited:\n{self.output}")
                self._cond.wait(left)
            return self._buf.decode(errors="replace")

    def ctrl_c(self) -> None:
        os.write(self.fd, b"\x03")

    def wait(self, timeout: float = 60.0) -> int:
        """The exit status (128 + n for a signal), after all output was read."""
        deadline = time.monotonic() + timeout
        while True:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
                raise AssertionError(f"the command did not end in {timeout}s:\n{self.output}")
            time.sleep(0.02)
        self._reader.join(10)
        os.close(self.fd)
        code = os.waitstatus_to_exitcode(status)
        self.returncode = 128 - code if code < 0 else code
        return self.returncode


def cli_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "runanywhere", *args]
