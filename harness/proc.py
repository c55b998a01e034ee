"""Child processes of the harness: they die with their parent and stop cleanly."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` (Linux): the child gets ``sig`` when the process that started it dies,
    even by ``kill -9``, so no server outlives its tests. libc is loaded here, in the parent, so
    the hook itself imports nothing between fork and exec. None where prctl is missing."""
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    number = int(sig)

    def hook() -> None:
        prctl(1, number)  # PR_SET_PDEATHSIG

    return hook


def stop_process(proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM,
         timeout: float = 10.0) -> None:
    """Send ``sig`` (nginx: SIGQUIT finishes open responses), wait, then SIGKILL."""
    if proc is None:
        return
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
