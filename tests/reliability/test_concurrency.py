"""Processes pulling one model at once end with one correct copy and no error.

The download lock (``flock``) only saves bandwidth: with it, about one model's worth crosses the
wire however many processes ask; without it (``fcntl.flock`` made a no-op in the children, as on
filesystems where it silently grants everyone), every process downloads into its own partial and
publishing stays idempotent, so the result is still one correct copy.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runanywhere.errors import DownloadCancelledError
from support import fault_server as fs
from support.catalogs import model_entry
from support.fault_server import FaultServer
from support.invariants import check_cache
from support.pulls import MiB, child_result, fast_config, make_registry, partial_files, spawn_pull

pytestmark = pytest.mark.timeout(180, method="thread")

Catalog = Callable[[list[dict[str, Any]]], Path]
FETCH = {"split_threshold": MiB, "min_part": MiB, "connections": 4, "stall_window": 10.0}


def slow_model(server: FaultServer, write_catalog: Catalog, name: str, size: int,
               rate: int = 1_000_000) -> tuple[bytes, str, Path]:
    data = os.urandom(size)
    sha = hashlib.sha256(data).hexdigest()
    url = server.add(name, data, then=fs.slow(rate))
    return data, sha, write_catalog([model_entry(name, url, size, sha)])


def pull_in(n: int, home: Path, catalog: Path, model: str, **extra: Any) -> list[dict[str, Any]]:
    procs = [spawn_pull({"home": str(home), "catalog": str(catalog), "model": model,
                         "fetch": FETCH, "chunk_size": 256 * 1024, **extra})
             for _ in range(n)]
    return [child_result(p, timeout=120) for p in procs]


def assert_one_correct_copy(home: Path, model: str, data: bytes, sha: str,
                            results: list[dict[str, Any]]) -> None:
    assert all(r["ok"] for r in results), results
    assert {r["path"] for r in results} == {results[0]["path"]}
    for r in results:
        assert Path(r["path"]).read_bytes() == data
    assert check_cache(home, {model: {Path(results[0]["path"]).name: sha}}) == [model]
    assert [p.name for p in (home / "blobs" / "sha256").iterdir()] == [sha]
    assert not [p for p in partial_files(home) if p.endswith(".part")]


def test_two_processes_pull_one_model(fault_server: FaultServer, write_catalog: Catalog,
                                      home: Path) -> None:
    data, sha, cat = slow_model(fault_server, write_catalog, "two-procs", 4 * MiB)
    results = pull_in(2, home, cat, "two-procs")
    assert_one_correct_copy(home, "two-procs", data, sha, results)
    assert fault_server.bytes_served("two-procs") <= 1.5 * len(data)


def test_eight_processes_pull_one_model_about_once(fault_server: FaultServer,
                                                   write_catalog: Catalog,
                                                   home: Path) -> None:
    # About 2 s of download at 4 x 1 MB/s: the children start while it is in flight.
    data, sha, cat = slow_model(fault_server, write_catalog, "eight-procs", 8 * MiB)
    results = pull_in(8, home, cat, "eight-procs")
    assert_one_correct_copy(home, "eight-procs", data, sha, results)
    served = fault_server.bytes_served("eight-procs")
    assert len(data) <= served <= 1.5 * len(data), f"{served / len(data):.2f} copies served"


def test_correct_without_flock(fault_server: FaultServer, write_catalog: Catalog,
                               home: Path) -> None:
    data, sha, cat = slow_model(fault_server, write_catalog, "no-flock", 4 * MiB)
    results = pull_in(2, home, cat, "no-flock", no_flock=True)
    assert_one_correct_copy(home, "no-flock", data, sha, results)
    # Both really downloaded (the lock was out of play), each into its own partial.
    assert fault_server.bytes_served("no-flock") >= 1.9 * len(data)


def test_two_registries_in_one_process_share_the_download(fault_server: FaultServer,
                                                          write_catalog: Catalog,
                                                          home: Path) -> None:
    data, _sha, cat = slow_model(fault_server, write_catalog, "two-registries", 3 * MiB)
    regs = [make_registry(home, cat, fetch_config=fast_config(**FETCH)) for _ in range(2)]

    async def both() -> list[Any]:
        return list(await asyncio.gather(*(r.download_model("two-registries") for r in regs)))

    a, b = asyncio.run(both())
    assert a.success and b.success, (a.error, b.error)
    assert a.value == b.value and a.value.read_bytes() == data
    assert check_cache(home) == ["two-registries"]
    assert fault_server.bytes_served("two-registries") <= 1.5 * len(data)


def test_cancel_while_waiting_for_another_downloader(fault_server: FaultServer,
                                                     write_catalog: Catalog,
                                                     home: Path) -> None:
    """The second registry waits on the download lock; cancelling it must not wait for the
    first, and must not disturb it."""
    data, sha, cat = slow_model(fault_server, write_catalog, "lock-wait", 3 * MiB, rate=500_000)
    first, second = (make_registry(home, cat, fetch_config=fast_config(**FETCH))
                     for _ in range(2))

    async def scenario() -> tuple[Any, Any]:
        a = asyncio.create_task(first.download_model("lock-wait"))
        while fault_server.requests("lock-wait") == 0:  # the first holds the lock and downloads
            await asyncio.sleep(0.01)
        b = asyncio.create_task(second.download_model("lock-wait"))
        while second.loader.get_active_downloads() != ["lock-wait"]:  # b: polling the lock
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        assert not b.done()
        second.loader.cancel_download("lock-wait")
        rb = await asyncio.wait_for(b, 5)
        assert not a.done(), "the first download should still be running"
        return await asyncio.wait_for(a, 60), rb

    ra, rb = asyncio.run(scenario())
    assert isinstance(rb.error, DownloadCancelledError), rb
    assert ra.success, ra.error
    assert ra.value.read_bytes() == data
    assert check_cache(home, {"lock-wait": {ra.value.name: sha}}) == ["lock-wait"]
