"""The memory state each download starts from, made the same for every peer.

Why: on a virtual machine with *free page reporting* (virtio-balloon; this benchmark's reference
machine has it, ``/sys/module/page_reporting``), memory the guest frees is handed back to the host
a few seconds later, in batches, until about 1 GiB of free memory is left unreported. The next
write into such a page makes the host fault it back in, which the writing process pays as system
time. Measured here: writing 2 GiB into the page cache takes ~0.4 s right after another 2 GiB
file was deleted, and ~2-3 s once the host took the freed memory back (the first ~1 GiB is
always quick, the rest costs ~1.5-2 s per GiB).

A 2 GiB download writes 2 GiB of fresh page cache. Under the old protocol (delete the previous
output, start the next peer at once) a peer that ran right after a 2 GiB download and finished
within ~2 s got warm memory for everything; a peer after a 512 MiB run, or a slower one, paid
for cold pages: whole seconds, decided by the order of the runs, not by the peer. That is the
"requests at 1.8 GiB/s" anomaly (see ``bench/anomaly.py``).

The fix: before every timed run, :func:`settle` waits until the host has stopped taking memory
back (the reported-pages counter is unchanged for ``quiet`` seconds). Every peer then starts from
the same state: ~1 GiB of warm free memory, the rest cold, whatever ran before.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

REPORTED = Path("/sys/module/page_reporting/parameters/reported_kib")
MiB = 2**20


def available() -> bool:
    """Does this machine report free pages to a host (so the state must be settled)?"""
    try:
        int(REPORTED.read_text())
        return True
    except (OSError, ValueError):
        return False


def reported_kib() -> int | None:
    try:
        return int(REPORTED.read_text())
    except (OSError, ValueError):
        return None


def settle(quiet: float = 3.0, limit: float = 30.0) -> tuple[float, int]:
    """Wait until no free memory was reported to the host for ``quiet`` seconds (at most
    ``limit`` seconds in all): ``(seconds waited, MiB reported meanwhile)``; (0, 0) without
    page reporting. The host takes memory back in batches every 2 s, starting 2 s after a free,
    so 3 quiet seconds mean it is done."""
    first = last = reported_kib()
    if last is None or first is None:
        return 0.0, 0
    start = still = time.monotonic()
    while time.monotonic() - start < limit:
        time.sleep(0.1)
        now = reported_kib()
        if now != last:
            last, still = now, time.monotonic()
        elif time.monotonic() - still >= quiet:
            break
    return time.monotonic() - start, ((last or 0) - first) // 1024


def fill_cost(folder: Path, mib: int = 2048, step: int = 256) -> dict[str, object]:
    """After settling, write ``mib`` MiB into the page cache (1 MiB writes, no fsync) and time
    each ``step`` MiB: how the cost of fresh page cache changes past the warm part."""
    settle()
    target = folder / "page-cache-probe.bin"
    block = b"\xa5" * MiB
    times = []
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for _ in range(mib // step):
            t = time.perf_counter()
            for _ in range(step):
                os.write(fd, block)
            times.append(time.perf_counter() - t)
    finally:
        os.close(fd)
        target.unlink(missing_ok=True)
    settle()
    per_gib = [t * 1024 / step for t in times]
    first = per_gib[: max(1, 1024 // step)]
    rest = per_gib[max(1, 1024 // step):]
    text = (f"first GiB {sum(first) / len(first):.2f} s/GiB"
            + (f", after it {sum(rest) / len(rest):.2f} s/GiB" if rest else ""))
    return {"name": f"writing {mib} MiB of fresh page cache after the memory settled "
                    f"(s per GiB, by {step} MiB step)",
            "value": [round(x, 3) for x in per_gib], "unit": "s/GiB", "text": text}
