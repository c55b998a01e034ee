"""ModelLoader: the queue (bound, FIFO, single-flight), cancel, progress, space, offline, TOFU.

Timing is controlled, not measured: the fault server holds a response until the test opens its
gate, so "which downloads are active" is a fact of the test, not a race. Where a duration is
asserted it is a generous upper bound on something that should take milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.nginx import Nginx
from runanywhere import ModelRegistry, Result
from runanywhere.errors import (
    CacheError,
    DownloadCancelledError,
    InsufficientStorageError,
    IntegrityError,
    ModelError,
    OfflineError,
)
from runanywhere.progress import ProgressTracker, Stage
from support import fault_server as fs
from support.catalogs import model_entry
from support.fault_server import FaultServer
from support.invariants import check_cache
from support.pulls import MiB, covered, fast_config, make_registry, partial_files, pull

pytestmark = pytest.mark.timeout(120, method="thread")

Catalog = Callable[[list[dict[str, Any]]], Path]
SMALL = 200_000


def models(server: FaultServer, prefix: str, n: int, *script: fs.Behaviour
           ) -> tuple[list[str], list[dict[str, Any]]]:
    ids, entries = [], []
    for i in range(n):
        mid = f"{prefix}-{i}"
        data = os.urandom(SMALL)
        url = server.add(mid, data, *script)
        ids.append(mid)
        entries.append(model_entry(mid, url, SMALL, hashlib.sha256(data).hexdigest()))
    return ids, entries


def gated(server: FaultServer, prefix: str, n: int, write_catalog: Catalog, home: Path,
          **loader: Any) -> tuple[list[str], dict[str, threading.Event], ModelRegistry]:
    """``n`` models whose first response waits for its gate; a registry with a long watchdog."""
    gates: dict[str, threading.Event] = {}
    ids, entries = [], []
    for i in range(n):
        mid = f"{prefix}-{i}"
        data = os.urandom(SMALL)
        gates[mid] = threading.Event()
        url = server.add(mid, data, fs.hold(gates[mid]))
        ids.append(mid)
        entries.append(model_entry(mid, url, SMALL, hashlib.sha256(data).hexdigest()))
    opts: dict[str, Any] = {"timeout": 30.0, "fetch_config": fast_config(stall_window=30.0)}
    opts.update(loader)
    return ids, gates, make_registry(home, write_catalog(entries), **opts)


async def until(predicate: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def in_flight_max(server: FaultServer, paths: list[str]) -> int:
    """Most requests the server was answering at once, among ``paths``."""
    events = []
    for p in paths:
        for h in server.hits(p):
            events += [(h.arrived, 1), (h.ended, -1)]
    now = cur = 0
    for _, d in sorted(events):
        cur += d
        now = max(now, cur)
    return now


# -- the queue ------------------------------------------------------------------------------------
def test_concurrency_bound_and_fifo_order(fault_server: FaultServer, write_catalog: Catalog,
                                          home: Path) -> None:
    ids, gates, reg = gated(fault_server, "queue", 5, write_catalog, home, concurrency=2)
    loader = reg.loader

    async def scenario() -> list[Path]:
        tasks = [asyncio.create_task(loader.load_model(i)) for i in ids]
        await until(lambda: (fault_server.requests(f"/{ids[0]}")
                             + fault_server.requests(f"/{ids[1]}")) == 2,
                    "the first two downloads to reach the server")
        assert loader.get_active_downloads() == ids[:2]
        assert loader.get_queued_downloads() == ids[2:]
        started = []
        # Finish them in the order they became active; each time the next queued one starts.
        for i, mid in enumerate(ids):
            await until(lambda mid=mid: fault_server.requests(f"/{mid}") == 1, f"{mid} to start")
            started.append(mid)
            assert len(loader.get_active_downloads()) <= 2
            assert loader.get_queued_downloads() == ids[i + 2:]
            gates[mid].set()
            await tasks[i]
        assert started == ids
        return [await t for t in tasks]

    paths = asyncio.run(scenario())
    assert [p.name for p in paths] == ids
    assert in_flight_max(fault_server, [f"/{i}" for i in ids]) <= 2
    assert check_cache(home) == sorted(ids)
    assert loader.get_active_downloads() == [] and loader.get_queued_downloads() == []


def test_fifo_with_concurrency_one(fault_server: FaultServer, write_catalog: Catalog,
                                   home: Path) -> None:
    ids, gates, reg = gated(fault_server, "fifo", 4, write_catalog, home, concurrency=1)
    for g in gates.values():
        g.set()  # no holding: only the order matters here
    async def scenario() -> None:
        await asyncio.gather(*(reg.loader.load_model(i) for i in ids))

    asyncio.run(scenario())
    first_hits = sorted((fault_server.hits(f"/{i}")[0].arrived, i) for i in ids)
    assert [i for _, i in first_hits] == ids
    assert in_flight_max(fault_server, [f"/{i}" for i in ids]) == 1


def test_single_flight_join(fault_server: FaultServer, write_catalog: Catalog, home: Path) -> None:
    ids, gates, reg = gated(fault_server, "join", 1, write_catalog, home)
    mid = ids[0]
    seen: list[list[Any]] = [[], []]

    async def scenario() -> tuple[Path, Path]:
        a = asyncio.create_task(reg.loader.load_model(mid, seen[0].append))
        await until(lambda: fault_server.requests(f"/{mid}") == 1, "the download to start")
        b = asyncio.create_task(reg.loader.load_model(mid, seen[1].append))
        await asyncio.sleep(0)
        assert reg.loader.get_active_downloads() == [mid]
        assert reg.loader.get_queued_downloads() == []
        gates[mid].set()
        return await a, await b

    pa, pb = asyncio.run(scenario())
    assert pa == pb
    assert fault_server.requests(f"/{mid}") == 1  # one download served both
    assert seen[0][-1].stage is Stage.DONE and seen[1][-1].stage is Stage.DONE
    # A later call is a cache hit: no request, no queue, one final DONE report at 100 %.
    hit: list[Any] = []
    assert asyncio.run(reg.loader.load_model(mid, hit.append)) == pa
    assert fault_server.requests(f"/{mid}") == 1
    assert [(p.stage, p.progress, p.resumed_bytes) for p in hit] == [
        (Stage.DONE, 100.0, hit[0].total_bytes)]
    assert reg.loader.get_active_downloads() == [] == reg.loader.get_queued_downloads()
    check_cache(home)


def test_a_cache_hit_never_blocks_the_event_loop_on_a_busy_index(
        nginx: Nginx, payload: Callable[[str, int], tuple[str, str, int]],
        write_catalog: Catalog, home: Path) -> None:
    """Another thread holds the index (as one waiting out another process's write would): the
    fast path steps aside to a worker thread instead of blocking the loop."""
    name, sha, size = payload("busy-index.bin", 100_000)
    cat = write_catalog([model_entry("busy", f"{nginx.url}/{name}", size, sha)])
    reg = make_registry(home, cat)
    first = asyncio.run(reg.loader.load_model("busy"))
    index = reg.cache.disk.index
    held, release = threading.Event(), threading.Event()

    def hog() -> None:
        with index._lock:
            held.set()
            release.wait(10)

    t = threading.Thread(target=hog)
    t.start()
    assert held.wait(5)

    async def scenario() -> Path:
        task = asyncio.create_task(reg.loader.load_model("busy"))
        await asyncio.sleep(0)  # the task ran up to its first await: it did not block here
        assert not task.done()
        release.set()
        return await task

    try:
        assert asyncio.run(scenario()) == first
    finally:
        release.set()
        t.join()


# -- cancel ---------------------------------------------------------------------------------------
def test_cancel_active_download_keeps_the_partial_and_a_later_load_resumes(
        nginx: Nginx, payload: Callable[[str, int], tuple[str, str, int]],
        write_catalog: Catalog, home: Path) -> None:
    name, sha, size = payload("cancel-me.bin", 12 * MiB)
    slow = write_catalog([model_entry("cancel-me", f"{nginx.url}/slow/{name}", size, sha)])
    reg = make_registry(home, slow, timeout=30.0, chunk_size=256 * 1024,
                        fetch_config=fast_config(split_threshold=2**40, stall_window=30.0))

    async def scenario() -> tuple[BaseException | None, float]:
        moving = asyncio.Event()
        task = asyncio.create_task(reg.loader.load_model(
            "cancel-me", lambda p: p.bytes_loaded >= MiB and moving.set()))
        await asyncio.wait_for(moving.wait(), 30)
        t0 = time.monotonic()
        assert reg.loader.cancel_download("cancel-me")
        try:
            await asyncio.wait_for(task, 5)
        except DownloadCancelledError as e:
            return e, time.monotonic() - t0
        return None, time.monotonic() - t0

    err, took = asyncio.run(scenario())
    assert isinstance(err, DownloadCancelledError)
    assert took < 5
    assert check_cache(home) == [] and reg.cache.entries() == []
    kept = covered(home, sha)
    assert MiB <= kept < size, "the partial should be kept for a resume"

    fast = write_catalog([model_entry("cancel-me", f"{nginx.url}/{name}", size, sha)])
    reg2 = make_registry(home, fast)
    seen: list[Any] = []
    path = asyncio.run(reg2.loader.load_model("cancel-me", seen.append))
    assert hashlib.sha256(path.read_bytes()).hexdigest() == sha
    assert seen[-1].resumed_bytes == kept
    assert nginx.bytes_served(uri=f"/{name}") <= size - kept + 8 * MiB // 4
    check_cache(home)


def test_download_again_right_after_cancel_starts_anew(
        nginx: Nginx, payload: Callable[[str, int], tuple[str, str, int]],
        write_catalog: Catalog, home: Path) -> None:
    """An app's "cancel" then "download" buttons: the second request must not join the
    cancelled job that is still winding down, and it resumes from the kept partial."""
    name, sha, size = payload("cancel-again.bin", 8 * MiB)
    slow = write_catalog([model_entry("cancel-again", f"{nginx.url}/slow/{name}", size, sha)])
    reg = make_registry(home, slow, timeout=30.0, chunk_size=256 * 1024,
                        fetch_config=fast_config(split_threshold=2**40, stall_window=30.0))

    async def scenario() -> tuple[Result[Path, ModelError], Result[Path, ModelError]]:
        moving = asyncio.Event()
        first = asyncio.create_task(reg.download_model(
            "cancel-again", on_detail=lambda p: p.bytes_loaded >= MiB and moving.set()))
        await asyncio.wait_for(moving.wait(), 30)
        assert reg.loader.cancel_download("cancel-again")
        second = await reg.download_model("cancel-again")
        return await first, second

    first, second = asyncio.run(scenario())
    assert isinstance(first.error, DownloadCancelledError)
    assert second.success, second.error
    assert hashlib.sha256(second.unwrap().read_bytes()).hexdigest() == sha
    assert check_cache(home, {"cancel-again": {"cancel-again.bin": sha}}) == ["cancel-again"]


def test_cancel_breaks_a_request_waiting_for_headers(fault_server: FaultServer,
                                                     write_catalog: Catalog,
                                                     home: Path) -> None:
    """A server dribbling its headers: only cancel (timeout 30 s) can end this promptly."""
    ids, entries = models(fault_server, "cancel-head", 1, fs.trickle_head(0.2))
    reg = make_registry(home, write_catalog(entries), timeout=30.0)
    mid = ids[0]

    async def scenario() -> float:
        task = asyncio.create_task(reg.loader.load_model(mid))
        await until(lambda: fault_server.requests(f"/{mid}") == 1, "the request to arrive")
        t0 = time.monotonic()
        reg.loader.cancel_download(mid)
        with pytest.raises(DownloadCancelledError):
            await asyncio.wait_for(task, 5)
        return time.monotonic() - t0

    assert asyncio.run(scenario()) < 5
    assert check_cache(home) == []


def test_cancel_during_a_retry_after_wait(fault_server: FaultServer, write_catalog: Catalog,
                                          home: Path) -> None:
    ids, entries = models(fault_server, "cancel-wait", 1, fs.status(503, retry_after="60"))
    reg = make_registry(home, write_catalog(entries))
    mid = ids[0]

    async def scenario() -> None:
        task = asyncio.create_task(reg.loader.load_model(mid))
        await until(lambda: bool(fault_server.hits(f"/{mid}"))
                    and fault_server.hits(f"/{mid}")[0].ended > 0, "the 503 to be answered")
        reg.loader.cancel_download(mid)
        with pytest.raises(DownloadCancelledError):
            await asyncio.wait_for(task, 5)

    asyncio.run(scenario())
    assert fault_server.requests(f"/{mid}") == 1


def test_cancel_queued_download(fault_server: FaultServer, write_catalog: Catalog,
                                home: Path) -> None:
    ids, gates, reg = gated(fault_server, "cancel-queued", 2, write_catalog, home, concurrency=1)
    active, queued = ids
    loader = reg.loader

    async def scenario() -> None:
        ta = asyncio.create_task(loader.load_model(active))
        tb = asyncio.create_task(loader.load_model(queued))
        await until(lambda: fault_server.requests(f"/{active}") == 1, "the first download")
        assert loader.get_queued_downloads() == [queued]
        assert loader.cancel_download(queued)
        with pytest.raises(DownloadCancelledError):
            await asyncio.wait_for(tb, 5)
        assert loader.get_queued_downloads() == []
        assert loader.get_active_downloads() == [active]
        gates[active].set()
        await ta

    asyncio.run(scenario())
    assert fault_server.requests(f"/{queued}") == 0
    assert check_cache(home) == [active]
    assert loader.cancel_download(queued) is False  # nothing left to cancel
    assert loader.cancel_download("never-heard-of") is False


def test_cancel_all_downloads(fault_server: FaultServer, write_catalog: Catalog,
                              home: Path) -> None:
    ids, _, reg = gated(fault_server, "cancel-all", 3, write_catalog, home, concurrency=2)

    async def scenario() -> list[Any]:
        tasks = [asyncio.create_task(reg.loader.load_model(i)) for i in ids]
        await until(lambda: sum(fault_server.requests(f"/{i}") for i in ids) == 2, "two active")
        assert reg.loader.cancel_all_downloads() == 3
        return await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 5)

    results = asyncio.run(scenario())
    assert all(isinstance(r, DownloadCancelledError) for r in results)
    assert check_cache(home) == []


# -- progress -------------------------------------------------------------------------------------
def test_progress_is_throttled_and_ends_done_at_100(
        nginx: Nginx, payload: Callable[[str, int], tuple[str, str, int]],
        write_catalog: Catalog, home: Path) -> None:
    name, sha, size = payload("progress.bin", 6 * MiB)
    cat = write_catalog([model_entry("progress", f"{nginx.url}/slow/{name}", size, sha)])
    reg = make_registry(home, cat, timeout=30.0, chunk_size=64 * 1024,
                        fetch_config=fast_config(split_threshold=2**40, stall_window=30.0))
    seen: list[tuple[float, Any]] = []
    t0 = time.monotonic()
    asyncio.run(reg.loader.load_model("progress", lambda p: seen.append((time.monotonic(), p))))
    elapsed = time.monotonic() - t0
    assert elapsed > 1  # a burst, then 2 MB/s: the throttle had something to throttle
    stages = [p.stage for _, p in seen]
    assert stages[0] is Stage.QUEUED and stages[-1] is Stage.DONE
    last = seen[-1][1]
    assert last.progress == 100 and last.bytes_loaded == size == last.total_bytes
    assert last.estimated_time_remaining == 0
    downloading = [p for _, p in seen if p.stage is Stage.DOWNLOADING]
    assert len(downloading) >= 3
    # At most one report per 100 ms (plus the stage changes, which are always reported).
    assert len(seen) <= elapsed / 0.1 + 6, f"{len(seen)} reports in {elapsed:.1f}s"
    loaded = [p.bytes_loaded for _, p in seen]
    assert loaded == sorted(loaded)
    assert all(0 <= p.progress <= 100 for _, p in seen)
    assert max(p.speed for p in downloading) > 0


def test_speed_excludes_resumed_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr("runanywhere.progress.time.monotonic", lambda: clock[0])
    reports: list[Any] = []
    t = ProgressTracker("m", 100 * MiB, reports.append, interval=0.1, window=3.0)
    t.add_resumed(90 * MiB)  # already on disk when the run starts
    t.speed()
    for _ in range(20):  # 1 MiB/s arriving from the network
        clock[0] += 0.25
        t.add(256 * 1024)
    snap = t.snapshot()
    assert snap.resumed_bytes == 90 * MiB and snap.bytes_loaded == 95 * MiB
    assert 0.9 * MiB <= snap.speed <= 1.1 * MiB, snap.speed  # not (90 + 5) MiB over 5 s
    assert snap.estimated_time_remaining is not None
    assert 4 <= snap.estimated_time_remaining <= 6  # 5 MiB left at 1 MiB/s
    # Throttled: 20 adds 250 ms apart may all report, never two within 100 ms.
    clock[0] += 0.01
    before = len(reports)
    t.add(1)
    assert len(reports) == before
    # Verifying took 10 s with no bytes: the final report gives the link's average over the
    # transfer (first to last byte), not 0 and not diluted by the time spent verifying.
    clock[0] += 10.0
    t.set_stage(Stage.DONE)
    done = reports[-1]
    assert done.stage is Stage.DONE and done.estimated_time_remaining == 0
    arrived = 20 * 256 * 1024 + 1
    assert done.speed == pytest.approx(arrived / (0.01 + 19 * 0.25), rel=1e-6)


def test_resumed_download_reports_resumed_bytes(
        nginx: Nginx, payload: Callable[[str, int], tuple[str, str, int]],
        write_catalog: Catalog, home: Path) -> None:
    name, sha, size = payload("resume-speed.bin", 8 * MiB)
    slow = write_catalog([model_entry("resume-speed", f"{nginx.url}/slow/{name}", size, sha)])
    reg = make_registry(home, slow, timeout=30.0, chunk_size=256 * 1024,
                        fetch_config=fast_config(split_threshold=2**40, stall_window=30.0))

    async def cancel_after(n: int) -> None:
        got = asyncio.Event()
        task = asyncio.create_task(reg.loader.load_model(
            "resume-speed", lambda p: p.bytes_loaded >= n and got.set()))
        await asyncio.wait_for(got.wait(), 30)
        assert reg.loader.cancel_download("resume-speed")
        with pytest.raises(DownloadCancelledError):
            await task

    asyncio.run(cancel_after(MiB))
    kept = covered(home, sha)
    assert MiB <= kept < size - 2 * MiB  # nginx's bursts: leave at least one more to measure
    reg2 = make_registry(home, slow, timeout=30.0,
                         fetch_config=fast_config(split_threshold=2**40, stall_window=30.0))
    seen: list[Any] = []
    asyncio.run(reg2.loader.load_model("resume-speed", seen.append))
    downloading = [p for p in seen if p.stage is Stage.DOWNLOADING]
    assert downloading and downloading[-1].resumed_bytes == kept
    # The resumed bytes are reported before any new byte arrives, as already here: counted in
    # bytes_loaded, never as network bytes (the speed's arithmetic is checked with a fake clock
    # in test_speed_excludes_resumed_bytes).
    first_with_resume = next(p for p in downloading if p.resumed_bytes)
    assert first_with_resume.bytes_loaded == kept and first_with_resume.speed == 0
    moving = [p for p in downloading if p.speed > 0]
    assert moving, [(p.stage.value, p.bytes_loaded, round(p.speed)) for p in seen]
    assert all(p.bytes_loaded >= kept for p in moving)


# -- space ----------------------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root): {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_insufficient_storage_before_the_first_byte(fault_server: FaultServer, small_disk: Path,
                                                    write_catalog: Catalog) -> None:
    data = os.urandom(16 * MiB)
    url = fault_server.add("too-big", data)
    cat = write_catalog([model_entry("too-big", url, len(data),
                                     hashlib.sha256(data).hexdigest())])
    home = small_disk / "home"
    reg = make_registry(home, cat)
    r = pull(reg, "too-big")
    assert isinstance(r.error, InsufficientStorageError), r
    assert fault_server.requests("/too-big") == 0, "bytes were asked for although they cannot fit"
    assert check_cache(home) == []


def test_disk_filling_up_mid_download_is_insufficient_storage(
        fault_server: FaultServer, tmp_path: Path, write_catalog: Catalog) -> None:
    mnt = tmp_path / "tmpfs100"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=100m", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root): {r.stderr.strip()}")
    try:
        data = os.urandom(24 * MiB)
        gate = threading.Event()
        url = fault_server.add("fills-disk", data, fs.ok(), fs.hold(gate))
        cat = write_catalog([model_entry("fills-disk", url, len(data),
                                         hashlib.sha256(data).hexdigest())])
        home = mnt / "home"
        # Two 12 MiB ranges: too small to steal from, so exactly two requests when all is well.
        reg = make_registry(home, cat, timeout=30.0, fetch_config=fast_config(
            stall_window=30.0, split_threshold=4 * MiB, min_part=12 * MiB, connections=2))

        async def scenario() -> Any:
            task = asyncio.create_task(reg.download_model("fills-disk"))
            await until(lambda: fault_server.requests("/fills-disk") == 2, "the held range")
            # Someone else fills the disk while our second range waits for its bytes.
            with open(mnt / "hog", "wb") as f, contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * MiB)
            gate.set()
            return await asyncio.wait_for(task, 30)

        res = asyncio.run(scenario())
        assert isinstance(res.error, InsufficientStorageError), res
        assert "disk full" in str(res.error)
        assert fault_server.requests("/fills-disk") == 2, ("a full disk is not a network error"
                                                           " to retry")
        assert check_cache(home) == []
        (mnt / "hog").unlink()
        assert partial_files(home), "the bytes written so far are kept for later"
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


# -- offline --------------------------------------------------------------------------------------
def test_offline_mode_makes_no_request(fault_server: FaultServer, write_catalog: Catalog,
                                       home: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    ids, entries = models(fault_server, "offline", 2)
    cat = write_catalog(entries)
    cached, uncached = ids
    assert pull(make_registry(home, cat), cached).success
    before = fault_server.requests()

    monkeypatch.setenv("RUNANYWHERE_OFFLINE", "1")
    reg = make_registry(home, cat)
    r = pull(reg, uncached)
    assert isinstance(r.error, OfflineError)
    hit = pull(reg, cached)
    assert hit.success and hit.value.name == cached
    monkeypatch.delenv("RUNANYWHERE_OFFLINE")
    reg = ModelRegistry(home=home, catalogs=[cat], include_builtin=False, offline=True)
    assert isinstance(pull(reg, uncached).error, OfflineError)
    assert fault_server.requests() == before, "offline mode reached the server"
    assert check_cache(home) == [cached]


# -- trust on first use ---------------------------------------------------------------------------
def test_trust_on_first_use(fault_server: FaultServer, write_catalog: Catalog, home: Path) -> None:
    data = os.urandom(SMALL)
    url = fault_server.add("tofu", data)
    cat = write_catalog([model_entry("tofu", url, SMALL, None)])
    reg = make_registry(home, cat)
    r = pull(reg, "tofu")
    assert r.success, r.error
    sha = hashlib.sha256(data).hexdigest()
    assert reg.cache.disk.index.trusted("tofu", r.value.name)[0] == sha
    assert check_cache(home, {"tofu": {r.value.name: sha}}) == ["tofu"]

    # Same bytes again after a clear: fine. Other bytes of the same size: refused.
    asyncio.run(reg.clear_cache("tofu"))
    assert pull(reg, "tofu").success
    asyncio.run(reg.clear_cache("tofu"))
    fault_server.set_data("tofu", os.urandom(SMALL))
    r = pull(reg, "tofu")
    assert isinstance(r.error, IntegrityError), r
    assert check_cache(home) == [] and reg.cache.entries() == []
    assert partial_files(home) == []


# -- publishing -----------------------------------------------------------------------------------
def test_models_with_identical_bytes_share_one_download(fault_server: FaultServer,
                                                       write_catalog: Catalog,
                                                       home: Path) -> None:
    data = os.urandom(SMALL)
    sha = hashlib.sha256(data).hexdigest()
    cat = write_catalog([model_entry("twin-a", fault_server.add("twin-a", data), SMALL, sha),
                         model_entry("twin-b", fault_server.add("twin-b", data), SMALL, sha)])
    reg = make_registry(home, cat)
    a = pull(reg, "twin-a")
    b = pull(reg, "twin-b")
    assert a.success and b.success, (a.error, b.error)
    assert a.value.read_bytes() == b.value.read_bytes() == data
    assert fault_server.requests("/twin-b") == 0  # the stored blob was reused
    assert check_cache(home) == ["twin-a", "twin-b"]
    assert list((home / "blobs" / "sha256").iterdir()) == [home / "blobs" / "sha256" / sha]
    assert partial_files(home) == []


def test_a_failed_publish_keeps_the_verified_download(fault_server: FaultServer,
                                                      write_catalog: Catalog, home: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    ids, entries = models(fault_server, "publish-fails", 1)
    mid = ids[0]
    reg = make_registry(home, write_catalog(entries))

    def broken(*a: Any, **k: Any) -> Any:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(reg.cache, "publish", broken)
    r = pull(reg, mid)
    assert isinstance(r.error, CacheError), r  # typed, not a bare OSError
    assert check_cache(home) == []
    monkeypatch.undo()
    served = fault_server.bytes_served(f"/{mid}")
    assert pull(reg, mid).success
    assert fault_server.bytes_served(f"/{mid}") == served, "the verified bytes were fetched again"
    assert check_cache(home) == [mid]
    assert partial_files(home) == []


def test_one_failing_file_of_many_stops_the_others(fault_server: FaultServer,
                                                   write_catalog: Catalog,
                                                   home: Path) -> None:
    good, bad = os.urandom(SMALL), os.urandom(SMALL)
    entry = {"id": "multi", "name": "multi", "type": "custom", "format": "custom",
             "provider": "t", "version": "1", "size": 2 * SMALL,
             "files": [{"path": "a.bin", "url": fault_server.add("multi-a", good), "size": SMALL,
                        "hash": "sha256:" + hashlib.sha256(good).hexdigest()},
                       {"path": "sub/b.bin", "url": fault_server.add("multi-b", bad,
                                                                then=fs.status(404)),
                        "size": SMALL, "hash": "sha256:" + hashlib.sha256(bad).hexdigest()}]}
    reg = make_registry(home, write_catalog([entry]))
    r = pull(reg, "multi")
    assert not r.success and r.error is not None and getattr(r.error, "status", None) == 404
    assert check_cache(home) == []
    fault_server.script("multi-b", then=fs.ok())
    r = pull(reg, "multi")
    assert r.success, r.error
    assert (r.value / "a.bin").read_bytes() == good and (r.value / "sub/b.bin").read_bytes() == bad
    assert check_cache(home) == ["multi"]


def test_home_folder_is_reusable_after_clear(fault_server: FaultServer, write_catalog: Catalog,
                                             home: Path) -> None:
    ids, entries = models(fault_server, "reuse", 1)
    reg = make_registry(home, write_catalog(entries))
    assert pull(reg, ids[0]).success
    asyncio.run(reg.clear_cache())
    shutil.rmtree(home / "partials", ignore_errors=True)
    assert pull(reg, ids[0]).success
    assert check_cache(home) == ids
