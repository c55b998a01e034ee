"""``kill -9`` at any moment leaves the cache consistent, and the next run resumes.

A child process pulls a model and is killed with SIGKILL: either once its journal shows some
bytes (a download in flight), or at a named crash point (``RUNANYWHERE_CRASH_AT``: the child
writes a marker there and waits for the signal). Then ``check_cache`` must pass, and a fresh
process must finish the job while the server counts what it sends again: no more than what was
missing plus one chunk per connection; nothing at all once every byte was on disk.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.nginx import Nginx
from support import fault_server as fs
from support.catalogs import model_entry
from support.fault_server import FaultServer
from support.invariants import check_cache
from support.pulls import (
    MiB,
    child_result,
    covered,
    journal,
    partial_files,
    spawn_pull,
    wait_until,
)
from support.tamper import zero_range

pytestmark = pytest.mark.timeout(180, method="thread")

Catalog = Callable[[list[dict[str, Any]]], Path]


def kill9(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the child ended before it was killed"


def child_cfg(home: Path, catalog: Path, model: str, **extra: Any) -> dict[str, Any]:
    return {"home": str(home), "catalog": str(catalog), "model": model, **extra}


def resume(home: Path, catalog: Path, model: str, sha: str, **extra: Any) -> Path:
    """Finish the pull in a fresh process; check the result and the cache."""
    out = child_result(spawn_pull(child_cfg(home, catalog, model, **extra)))
    assert out["ok"], out
    path = Path(out["path"])
    assert hashlib.sha256(path.read_bytes()).hexdigest() == sha
    assert check_cache(home, {model: {path.name: sha}}) == [model]
    return path


# -- killed while bytes flow ----------------------------------------------------------------------
def test_kill_9_mid_download_then_a_fresh_process_fetches_only_the_rest(
        nginx: Nginx, payload: Callable[[str, int], tuple[str, str, int]],
        write_catalog: Catalog, home: Path) -> None:
    name, sha, size = payload("kill9.bin", 12 * MiB)
    slow = write_catalog([model_entry("kill9", f"{nginx.url}/slow/{name}", size, sha)])
    chunk = 256 * 1024
    # Two 6 MiB ranges on the rate-limited route: about 2 s of download to interrupt.
    proc = spawn_pull(child_cfg(home, slow, "kill9", chunk_size=chunk, fetch={
        "split_threshold": 4 * MiB, "min_part": 6 * MiB, "stall_window": 10.0}))
    wait_until(lambda: covered(home, sha) >= 4 * MiB or proc.poll() is not None,
               what="4 MiB in the journal")
    kill9(proc)
    assert check_cache(home) == []
    kept = covered(home, sha)
    assert 4 * MiB <= kept < size

    fast = write_catalog([model_entry("kill9", f"{nginx.url}/{name}", size, sha)])
    resume(home, fast, "kill9", sha, chunk_size=chunk, fetch={"split_threshold": 4 * MiB,
                                                              "min_part": MiB})
    refetched = nginx.bytes_served(uri=f"/{name}")
    assert refetched <= size - kept + 8 * chunk, (refetched, size - kept)
    assert partial_files(home) == []


@pytest.mark.parametrize("fraction", [0.25, 0.5, 0.75])
def test_kill_9_at_a_fraction_of_the_bytes(fault_server: FaultServer, write_catalog: Catalog,
                                           home: Path, fraction: float) -> None:
    name = f"kill-at-{int(fraction * 100)}"
    data = os.urandom(4 * MiB)
    sha = hashlib.sha256(data).hexdigest()
    url = fault_server.add(name, data, then=fs.slow(1_000_000))  # 4 ranges of 1 MB/s each
    cat = write_catalog([model_entry(name, url, len(data), sha)])
    chunk = 128 * 1024
    fetch = {"split_threshold": MiB, "min_part": MiB, "connections": 4, "stall_window": 10.0}
    proc = spawn_pull(child_cfg(home, cat, name, chunk_size=chunk, fetch=fetch))
    wait_until(lambda: covered(home, sha) >= fraction * len(data) or proc.poll() is not None,
               what=f"{fraction:.0%} of the bytes")
    kill9(proc)
    assert check_cache(home) == []
    kept = covered(home, sha)
    assert fraction * len(data) <= kept < len(data)
    wait_until(lambda: all(h.ended for h in fault_server.hits(name)), what="the server to notice")
    before = fault_server.bytes_served(name)

    fault_server.script(name, then=fs.ok())
    resume(home, cat, name, sha, chunk_size=chunk, fetch=fetch)
    assert fault_server.bytes_served(name) - before <= len(data) - kept + 4 * chunk


def test_killed_twice_then_finished(fault_server: FaultServer, write_catalog: Catalog,
                                    home: Path) -> None:
    name = "killed-twice"
    data = os.urandom(4 * MiB)
    sha = hashlib.sha256(data).hexdigest()
    url = fault_server.add(name, data, then=fs.slow(1_000_000))
    cat = write_catalog([model_entry(name, url, len(data), sha)])
    fetch = {"split_threshold": MiB, "min_part": MiB, "connections": 4, "stall_window": 10.0}
    for goal in (0.3, 0.7):
        proc = spawn_pull(child_cfg(home, cat, name, chunk_size=128 * 1024, fetch=fetch))
        wait_until(lambda g=goal, p=proc: covered(home, sha) >= g * len(data)  # type: ignore[misc]
                   or p.poll() is not None, what=f"{goal:.0%}")
        kill9(proc)
        assert check_cache(home) == []
    # One partial only: the second run adopted the first's instead of starting another.
    assert len([p for p in partial_files(home, sha) if p.endswith(".part")]) == 1
    wait_until(lambda: all(h.ended for h in fault_server.hits(name)), what="the server to notice")
    fault_server.script(name, then=fs.ok())
    resume(home, cat, name, sha, fetch=fetch)
    assert fault_server.bytes_served(name) <= len(data) + 2 * 4 * 128 * 1024


def test_power_loss_bytes_that_the_journal_claims_are_re_checked(
        fault_server: FaultServer, write_catalog: Catalog, home: Path) -> None:
    """After a power loss the journal may claim bytes the disk lost: the hash catches it and the
    download starts over once, never publishing the damaged file."""
    name = "power-loss"
    data = os.urandom(4 * MiB)
    sha = hashlib.sha256(data).hexdigest()
    url = fault_server.add(name, data, then=fs.slow(1_000_000))
    cat = write_catalog([model_entry(name, url, len(data), sha)])
    fetch = {"split_threshold": MiB, "min_part": MiB, "connections": 4, "stall_window": 10.0}
    proc = spawn_pull(child_cfg(home, cat, name, chunk_size=128 * 1024, fetch=fetch))
    wait_until(lambda: covered(home, sha) >= 2 * MiB or proc.poll() is not None, what="2 MiB")
    kill9(proc)
    (part,) = (home / "partials").glob(f"{sha}.*.part")
    (log,) = (home / "partials").glob(f"{sha}.*.log")
    start, end = sorted(journal(log))[0]
    zero_range(part, start + (end - start) // 2, 4096)  # a lost page, where the journal has data
    fault_server.script(name, then=fs.ok())
    resume(home, cat, name, sha, fetch=fetch)


# -- killed around verification and publication ---------------------------------------------------
CRASH_POINTS = {
    # point: visible after the kill?
    "fetch:complete": False,       # every byte journaled, the final hash not computed
    "download:verified": False,    # verified and flushed, nothing published
    "publish:blobs": False,        # the blob renamed into blobs/
    "publish:tmp-folder": False,   # the model folder built beside its final name
    "publish:folder": False,       # the folder in place, no manifest
    "publish:manifest": False,     # the manifest written, no index row
    "index:put-uncommitted": False,  # inside the index transaction, before COMMIT
    "publish:committed": True,     # the index row committed
    "download:published": True,    # published, the partial's journal not yet dropped
}


@pytest.mark.parametrize("point", list(CRASH_POINTS))
def test_kill_9_at_a_crash_point(fault_server: FaultServer, write_catalog: Catalog, home: Path,
                                 tmp_path: Path, point: str) -> None:
    name = "crash-" + point.replace(":", "-")
    data = os.urandom(3 * MiB)
    sha = hashlib.sha256(data).hexdigest()
    cat = write_catalog([model_entry(name, fault_server.add(name, data), len(data), sha)])
    marker = tmp_path / "marker"
    fetch = {"split_threshold": MiB, "min_part": MiB}
    proc = spawn_pull(child_cfg(home, cat, name, fetch=fetch), crash_at=point, marker=marker)
    wait_until(lambda: marker.exists() or proc.poll() is not None, what=f"crash point {point}")
    assert marker.exists(), f"the child never reached {point}: {proc.communicate()}"
    kill9(proc)

    visible = check_cache(home, {name: {name: sha}})
    assert visible == ([name] if CRASH_POINTS[point] else [])
    served = fault_server.bytes_served(name)
    assert served == len(data)
    resume(home, cat, name, sha, fetch=fetch)
    assert fault_server.bytes_served(name) == served, "bytes already on disk were fetched again"
