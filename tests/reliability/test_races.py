"""Races between callers of one process and between processes on one cache (round two).

* blocking registries over one registry, on threads of their own: every call returns a
  ``Result`` (a queue slot held by another caller's loop, or a job created on another loop,
  must not strand or break anybody);
* a pull racing ``cache clear`` / ``cache prune`` in another process: every pull returns the
  right bytes or a typed error, never a bare ``OSError`` about a blob that vanished;
* a memory-tier hit is never served after another process removed the model;
* a progress callback that raises never turns a cache hit into an exception.

Every case ends with ``check_cache``. Nothing waits on a sleep: threads are joined with a
deadline, processes are driven through their pipes.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runanywhere import BlockingRegistry, ModelRegistry, Result
from runanywhere.errors import ModelError
from runanywhere.settings import Settings
from support import fault_server as fs
from support.catalogs import model_entry
from support.fault_server import FaultServer
from support.invariants import check_cache
from support.pulls import MiB, fast_config, make_registry, pull, wait_until
from support.silero import silero_onnx_bytes

pytestmark = pytest.mark.timeout(180, method="thread")

Catalog = Callable[[list[dict[str, Any]]], Path]


def _slow_models(server: FaultServer, prefix: str, n: int, size: int = MiB,
                 rate: int = 2_000_000) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
    entries, data = [], {}
    for i in range(n):
        mid = f"{prefix}-{i}"
        data[mid] = os.urandom(size)
        url = server.add(mid, data[mid], then=fs.slow(rate))
        entries.append(model_entry(mid, url, size, hashlib.sha256(data[mid]).hexdigest()))
    return entries, data


def _in_threads(calls: list[Callable[[], Any]], timeout: float = 60.0) -> list[Any]:
    """Run each call on a thread of its own; every one must return within ``timeout``."""
    results: list[Any] = [None] * len(calls)
    done = [threading.Event() for _ in calls]

    def run(i: int) -> None:
        try:
            results[i] = calls[i]()
        except BaseException as e:  # reported below: a raise is a failure of the promise
            results[i] = e
        finally:
            done[i].set()

    for i in range(len(calls)):
        threading.Thread(target=run, args=(i,), daemon=True, name=f"caller-{i}").start()
    deadline = time.monotonic() + timeout
    for i, ev in enumerate(done):
        assert ev.wait(max(0.0, deadline - time.monotonic())), (
            f"call {i} never returned (results so far: {results})")
    return results


# -- blocking registries on threads ---------------------------------------------------------------
def test_two_blocking_registries_one_slot_two_models(fault_server: FaultServer,
                                                     write_catalog: Catalog,
                                                     home: Path) -> None:
    """concurrency=1: the second model waits for the slot the first holds, on another loop."""
    entries, data = _slow_models(fault_server, "slot", 2, rate=500_000)
    reg = make_registry(home, write_catalog(entries), concurrency=1)
    a, b = BlockingRegistry(reg), BlockingRegistry(reg)

    def second() -> Any:  # queued behind the first, whose download is under way
        wait_until(lambda: fault_server.requests("/slot-0") > 0, what="the first download")
        return b.download_model("slot-1")

    try:
        # Before the fix the second call never returned, although all its bytes arrived.
        ra, rb = _in_threads([lambda: a.download_model("slot-0"), second], timeout=40)
    finally:
        a.close()
        b.close()
    for mid, r in (("slot-0", ra), ("slot-1", rb)):
        assert isinstance(r, Result) and r.success, r
        assert r.value.read_bytes() == data[mid]
    assert check_cache(home) == ["slot-0", "slot-1"]


def test_two_blocking_registries_same_model(fault_server: FaultServer, write_catalog: Catalog,
                                            home: Path) -> None:
    """The second caller joins a job created on the first caller's loop."""
    entries, data = _slow_models(fault_server, "join", 1)
    reg = make_registry(home, write_catalog(entries))
    a, b = BlockingRegistry(reg), BlockingRegistry(reg)
    started = threading.Event()

    def first() -> Any:
        return a.download_model("join-0", lambda pct, msg: started.set())

    def second() -> Any:
        assert started.wait(30)  # the first one's job exists (it reported progress)
        return b.download_model("join-0")

    try:
        ra, rb = _in_threads([first, second])
    finally:
        a.close()
        b.close()
    for r in (ra, rb):
        assert isinstance(r, Result) and r.success, r
    assert ra.value == rb.value and ra.value.read_bytes() == data["join-0"]
    assert fault_server.bytes_served("/join-0") <= 1.5 * MiB  # one download, joined
    assert check_cache(home) == ["join-0"]


# -- a pull racing clear / prune in another process -----------------------------------------------
RACER = textwrap.dedent("""
    import select, sys
    from pathlib import Path
    from runanywhere.store import ModelCache
    cache = ModelCache(directory=Path(sys.argv[1]), durable=False)
    print("ready", flush=True)
    rounds = 0
    while not select.select([sys.stdin], [], [], 0)[0]:
        if rounds % 2:
            cache.clear()                      # what `cache clear` runs
        else:
            cache.prune(0, orphan_age=0)       # what `cache prune --max-size 0 --orphan-age 0` runs
        rounds += 1
    cache.close()
    print(rounds, flush=True)
""")


def test_pulls_racing_clear_and_prune_never_fail_untyped(
        fault_server: FaultServer, write_catalog: Catalog, home: Path) -> None:
    """Before the fix, about one real download in 30 died with ``FileNotFoundError`` on
    ``blobs/sha256/<hex>`` (a blob hashed while the other process unlinked it)."""
    data = os.urandom(8192)
    sha = hashlib.sha256(data).hexdigest()
    cat = write_catalog([model_entry("raced", fault_server.add("raced", data), len(data), sha)])
    reg = ModelRegistry(home=home, catalogs=[cat], include_builtin=False,
                        settings=Settings(durable=False), fetch_config=fast_config())
    assert pull(reg, "raced").success
    racer = subprocess.Popen([sys.executable, "-c", RACER, str(home)], text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    assert racer.stdout is not None and racer.stdout.readline().strip() == "ready"
    failures: list[str] = []
    downloads = 0

    async def pulls() -> None:
        nonlocal downloads
        deadline = time.monotonic() + 25
        while downloads < 150 and time.monotonic() < deadline:
            # Pull right after the racer removed the model: the moment its blob goes too.
            while reg.cache.entry("raced") is not None and time.monotonic() < deadline:
                await asyncio.sleep(0)
            downloads += 1
            try:
                r = await reg.download_model("raced")
            except Exception as e:  # the promise is a Result, always
                failures.append(f"raised {e!r}")
                continue
            if not r.success:
                failures.append(repr(r.error))
                continue
            try:
                if r.value.read_bytes() != data:
                    failures.append("wrong bytes served")
            except FileNotFoundError:
                pass  # the racer removed it right after: allowed, it was right when returned

    try:
        asyncio.run(pulls())
    finally:
        out, err = racer.communicate("stop\n", timeout=60)
    assert racer.returncode == 0, err
    assert downloads >= 30, f"only {downloads} pulls raced the other process"
    assert not failures, f"{len(failures)} of {downloads} pulls failed: {failures[:3]}"
    assert int(out.split()[-1]) > 0
    check_cache(home, {"raced": {"raced": sha}})
    assert pull(reg, "raced").success
    assert check_cache(home, {"raced": {"raced": sha}}) == ["raced"]


# -- the memory tier after another process removed the model --------------------------------------
def test_memory_hit_is_not_served_after_another_process_removed_the_model(
        fault_server: FaultServer, write_catalog: Catalog, home: Path) -> None:
    data = os.urandom(50_000)
    sha = hashlib.sha256(data).hexdigest()
    cat = write_catalog([model_entry("gone", fault_server.add("gone", data), len(data), sha)])
    reg = make_registry(home, cat)
    assert pull(reg, "gone").success
    cache = reg.cache
    first = cache.get("gone")
    assert first is not None and bytes(first.buffer) == data
    again = cache.get("gone")
    assert again is not None and again.tier == "memory"

    rm = subprocess.run([sys.executable, "-m", "runanywhere", "--home", str(home),
                         "--catalog", str(cat), "cache", "rm", "gone"],
                        capture_output=True, text=True, timeout=60)
    assert rm.returncode == 0, rm.stderr
    assert not again.path.exists()

    hit = cache.get("gone")
    assert hit is None, f"served {hit.tier} hit at {hit.path}, which no longer exists"
    assert not cache.has("gone") and "gone" not in cache
    assert check_cache(home) == []
    # Pulled again, the memory tier serves the new copy.
    assert pull(reg, "gone").success
    hit = cache.get("gone")
    assert hit is not None and hit.path.exists() and bytes(hit.buffer) == data
    assert check_cache(home, {"gone": {"gone": sha}}) == ["gone"]


# -- progress callbacks that raise ----------------------------------------------------------------
def _boom(*_: Any) -> None:
    raise RuntimeError("callback bug")


def test_raising_progress_callback_on_a_cache_hit(nginx: Any, origin_root: Path,
                                                  write_catalog: Catalog, home: Path) -> None:
    onnx = silero_onnx_bytes()
    name = f"vad-{os.urandom(3).hex()}.onnx"
    (origin_root / name).write_bytes(onnx)
    sha = hashlib.sha256(onnx).hexdigest()
    entry = model_entry("vad", f"{nginx.url}/{name}", len(onnx), sha)
    entry.update(type="vad", format="onnx")
    reg = ModelRegistry(home=home, catalogs=[write_catalog([entry])], include_builtin=False)

    async def scenario() -> list[Any]:
        miss = await reg.download_model("vad", _boom)  # during a download: ignored
        hit = await reg.download_model("vad", _boom)  # on the cache-hit path: ignored too
        loaded = await reg.load_model("vad", "onnx", _boom)
        reg.unload("vad")
        again = await reg.load_model("vad", "onnx", _boom)
        return [miss, hit, loaded, again]

    results = asyncio.run(scenario())
    for r in results:
        assert isinstance(r, Result) and r.success, r
    blocking = BlockingRegistry(reg)
    try:
        r = blocking.download_model("vad", _boom)
        assert isinstance(r, Result) and r.success, r
    finally:
        blocking.close()
    assert check_cache(home, {"vad": {name: sha}}) == ["vad"]


def test_every_pull_error_is_typed(fault_server: FaultServer, write_catalog: Catalog, home: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever goes wrong below the loader, ``download_model`` answers a ``Result`` holding a
    ``ModelError`` (the cause kept), never a bare exception."""
    data = os.urandom(20_000)
    cat = write_catalog([model_entry("odd", fault_server.add("odd", data), len(data),
                                     hashlib.sha256(data).hexdigest())])
    reg = make_registry(home, cat)

    def broken(*_: Any, **__: Any) -> None:
        raise FileNotFoundError(2, "No such file or directory", str(home / "blobs" / "x"))

    monkeypatch.setattr(reg.cache, "check_space", broken)
    r = pull(reg, "odd")
    assert not r.success and isinstance(r.error, ModelError), r
    assert isinstance(r.error.__cause__, FileNotFoundError)
    assert check_cache(home) == []
