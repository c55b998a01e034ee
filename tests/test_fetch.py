"""One-file fetch against a real nginx: parallel ranges, If-Range, resume, redirects, errors.

nginx logs every request (``harness.accesslog``: URI, status, body bytes, Range, If-Range...),
so each test reads what the server really sent. ``/slow/<file>`` is limited to 2 MiB/s per
connection, which gives a test time to interrupt a download; the resume then uses ``/<file>``,
logged under another URI.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.accesslog import Record
from harness.nginx import Nginx
from runanywhere import ModelRegistry
from runanywhere.errors import DownloadCancelledError, DownloadError, IntegrityError
from runanywhere.transfer import FetchConfig, Streams
from support import fault_server as fs
from support.catalogs import model_entry
from support.fault_server import FaultServer
from support.invariants import check_cache
from support.pulls import MiB, covered, fast_config, make_registry, partial_files, pull

# A hung download thread would also hang asyncio.run's executor shutdown: dump and exit.
pytestmark = pytest.mark.timeout(120, method="thread")

Payload = Callable[[str, int], tuple[str, str, int]]
Catalog = Callable[[list[dict[str, Any]]], Path]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _span(record: Record) -> tuple[int, ...]:
    """``Range: bytes=A-B`` as (A, B)."""
    return tuple(map(int, (record.range or "").removeprefix("bytes=").split("-")))


async def pull_and_cancel(reg: ModelRegistry, model_id: str, after_bytes: int) -> Any:
    """Start a download, cancel it once ``after_bytes`` arrived; returns the Result."""
    arrived = asyncio.Event()

    def on_detail(p: Any) -> None:
        if p.bytes_loaded >= after_bytes:
            arrived.set()

    task = asyncio.create_task(reg.download_model(model_id, on_detail=on_detail))
    await asyncio.wait_for(arrived.wait(), 30)
    assert reg.loader.cancel_download(model_id)
    return await asyncio.wait_for(task, 10)


def test_parallel_ranges_40_mib_verify_and_publish(nginx: Nginx, payload: Payload,
                                                   write_catalog: Catalog, home: Path) -> None:
    name, sha, size = payload("big-40.bin", 40 * MiB)
    cat = write_catalog([model_entry("big-40", f"{nginx.url}/{name}", size, sha)])
    # The library's own defaults for splitting (32 MiB threshold, 8 MiB parts, 8 connections).
    reg = make_registry(home, cat, fetch_config=FetchConfig())
    r = pull(reg, "big-40")
    assert r.success, r.error
    assert sha256(r.value) == sha
    assert check_cache(home, {"big-40": {name: sha}}) == ["big-40"]
    lines = nginx.records(uri=f"/{name}")
    assert len(lines) >= 4, f"not parallel: {lines}"  # 8 MiB parts: 5 ranges
    assert {ln.status for ln in lines} == {206}
    spans = [_span(ln) for ln in lines]
    union = sum(e - s + 1 for s, e in _merge(spans))
    asked = sum(e - s + 1 for s, e in spans)
    assert union == size, f"the ranges asked for do not cover the file: {sorted(spans)}"
    # Every byte once; a range stolen for the tail may waste what was in flight past its cut.
    assert size <= nginx.bytes_served(uri=f"/{name}") <= size + (asked - union)
    assert partial_files(home) == []


def test_ranges_go_out_as_ordered_pieces(nginx: Nginx, payload: Payload,
                                         write_catalog: Catalog, home: Path) -> None:
    """More pieces than connections, handed out in file order: the verified prefix grows while
    bytes arrive (the hash overlaps the download instead of running after it)."""
    name, sha, size = payload("pieces-72.bin", 72 * MiB)
    cat = write_catalog([model_entry("pieces", f"{nginx.url}/{name}", size, sha)])
    cfg = FetchConfig(streams=Streams(connections=3, piece_size=16 * MiB))
    r = pull(make_registry(home, cat, fetch_config=cfg), "pieces")
    assert r.success, r.error
    assert sha256(r.value) == sha
    spans = [_span(ln) for ln in nginx.records(uri=f"/{name}")]
    # 8 MiB first (it learns whether Range works), then 64 MiB as four 16 MiB pieces; a stolen
    # tail is a half of one. Never one big range per connection.
    assert len(spans) >= 5, spans
    assert max(e - s + 1 for s, e in spans) <= 16 * MiB, sorted(spans)
    assert sum(e - s + 1 for s, e in _merge(spans)) == size
    assert check_cache(home, {"pieces": {name: sha}}) == ["pieces"]


def _merge(spans: list[tuple[int, ...]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def test_redirect_is_followed(nginx: Nginx, payload: Payload, write_catalog: Catalog,
                              home: Path) -> None:
    name, sha, size = payload("redirected.bin", 3 * MiB)
    cat = write_catalog([model_entry("redirected", f"{nginx.url}/redirect/{name}", size, sha)])
    r = pull(make_registry(home, cat), "redirected")
    assert r.success, r.error
    assert sha256(r.value) == sha
    check_cache(home)


def test_not_found_is_a_download_error_after_one_request(nginx: Nginx, write_catalog: Catalog,
                                                         home: Path) -> None:
    cat = write_catalog([model_entry("missing", f"{nginx.url}/missing.bin", 1000, "ab" * 32)])
    r = pull(make_registry(home, cat), "missing")
    assert isinstance(r.error, DownloadError) and r.error.status == 404
    assert len(nginx.records(uri="/missing.bin")) == 1
    assert check_cache(home) == []


def test_html_page_with_status_200_is_refused(nginx: Nginx, origin_root: Path,
                                              write_catalog: Catalog, home: Path) -> None:
    page = b"<!DOCTYPE html><html><body>Please sign in</body></html>\n" * 100
    (origin_root / "portal.html").write_bytes(page)
    # No hash (trust on first use), the size right: only the content tells it is not a model.
    cat = write_catalog([model_entry("portal", f"{nginx.url}/portal.html", len(page), None)])
    reg = make_registry(home, cat)
    r = pull(reg, "portal")
    assert isinstance(r.error, IntegrityError), r
    assert check_cache(home) == [] and reg.cache.entries() == []
    assert partial_files(home) == []


def _slow_registry(home: Path, cat: Path) -> ModelRegistry:
    # One connection on /slow/ (nginx: a burst of about 2 MB, then 2 MB/s), 256 KiB chunks.
    return make_registry(home, cat, chunk_size=256 * 1024, timeout=10.0,
                         fetch_config=fast_config(split_threshold=2**40, stall_window=5.0))


def test_resume_after_cancel_fetches_only_the_missing_bytes(
        nginx: Nginx, payload: Payload, write_catalog: Catalog, home: Path) -> None:
    name, sha, size = payload("resume-12.bin", 12 * MiB)
    slow = write_catalog([model_entry("resume-12", f"{nginx.url}/slow/{name}", size, sha)])
    r = asyncio.run(pull_and_cancel(_slow_registry(home, slow), "resume-12", 3 * MiB))
    assert isinstance(r.error, DownloadCancelledError)
    assert check_cache(home) == []
    kept = covered(home, sha)
    assert 3 * MiB <= kept < size

    fast = write_catalog([model_entry("resume-12", f"{nginx.url}/{name}", size, sha)])
    seen: list[Any] = []
    reg = make_registry(home, fast, chunk_size=256 * 1024)
    r = asyncio.run(reg.download_model("resume-12", on_detail=seen.append))
    assert r.success, r.error
    assert sha256(r.value) == sha
    assert check_cache(home, {"resume-12": {name: sha}}) == ["resume-12"]
    # Only what was missing crossed the wire again (the bound allows one chunk per connection).
    refetched = nginx.bytes_served(uri=f"/{name}")
    assert refetched <= size - kept + 8 * 256 * 1024, (refetched, size - kept)
    assert len(nginx.records(uri=f"/{name}")) > 1, "the resume should be split again"
    assert any(p.resumed_bytes == kept for p in seen)
    for ln in nginx.records(uri=f"/{name}"):  # every resumed range is conditional on the ETag
        assert ln.status == 206 and ln.if_range is not None, ln
    assert partial_files(home) == []


def test_if_range_restarts_when_the_file_changed_between_runs(
        nginx: Nginx, payload: Payload, origin_root: Path, write_catalog: Catalog,
        home: Path) -> None:
    name, sha, size = payload("changes.bin", 8 * MiB)
    slow = write_catalog([model_entry("changes", f"{nginx.url}/slow/{name}", size, sha)])
    r = asyncio.run(pull_and_cancel(_slow_registry(home, slow), "changes", 2 * MiB))
    assert isinstance(r.error, DownloadCancelledError)
    assert covered(home, sha) >= 2 * MiB

    # The file is replaced on the origin (same size, new bytes, new mtime: nginx's ETag moves)
    # while the catalog still names the old hash. The partial (keyed by that hash) is adopted and
    # its saved ETag goes out as If-Range: nginx must answer 200, and the client must not mix.
    new = os.urandom(size)
    (origin_root / name).write_bytes(new)
    st = (origin_root / name).stat()
    os.utime(origin_root / name, (st.st_atime, st.st_mtime + 10))
    fast = write_catalog([model_entry("changes", f"{nginx.url}/{name}", size, sha)])
    r = pull(make_registry(home, fast), "changes")
    # The old bytes are gone from the origin, so the catalog's hash can no longer be met.
    assert isinstance(r.error, IntegrityError), r
    # nginx logs a request when it ends, and the aborted 200 may end after the restart's
    # requests: look for it anywhere in the log, not first.
    lines = nginx.records(uri=f"/{name}")
    assert any(ln.status == 200 and ln.range is not None for ln in lines), \
        f"a Range request with a stale If-Range must be answered 200 by nginx: {lines}"
    assert check_cache(home) == [] and partial_files(home, sha) == []


def test_if_range_change_with_trust_on_first_use_restarts_cleanly(
        nginx: Nginx, payload: Payload, origin_root: Path, write_catalog: Catalog,
        home: Path) -> None:
    name, _, size = payload("changes-tofu.bin", 8 * MiB)
    slow = write_catalog([model_entry("changes-tofu", f"{nginx.url}/slow/{name}", size, None)])
    r = asyncio.run(pull_and_cancel(_slow_registry(home, slow), "changes-tofu", 2 * MiB))
    assert isinstance(r.error, DownloadCancelledError)
    new = os.urandom(size)
    (origin_root / name).write_bytes(new)
    st = (origin_root / name).stat()
    os.utime(origin_root / name, (st.st_atime, st.st_mtime + 10))
    # Same URL as the cancelled run (the partial of a hash-less model is keyed by its URL).
    r = pull(make_registry(home, slow), "changes-tofu")
    assert r.success, r.error
    assert Path(r.value).read_bytes() == new, "old and new bytes were mixed"
    lines = nginx.records(uri=f"/slow/{name}")
    assert any(ln.status == 200 and ln.range is not None for ln in lines), lines
    check_cache(home)


@pytest.mark.parametrize("connections", [1, 8])
def test_split_and_single_connection_give_the_same_bytes(
        nginx: Nginx, payload: Payload, write_catalog: Catalog, tmp_path: Path,
        connections: int) -> None:
    name, sha, size = payload(f"same-{connections}.bin", 5 * MiB + 17)
    cat = write_catalog([model_entry(f"same-{connections}", f"{nginx.url}/{name}", size, sha)])
    reg = make_registry(tmp_path / "h", cat, fetch_config=fast_config(connections=connections))
    r = pull(reg, f"same-{connections}")
    assert r.success, r.error
    assert sha256(r.value) == sha
    assert len(nginx.records(uri=f"/{name}")) == (1 if connections == 1 else 8)
    check_cache(tmp_path / "h")


def test_short_pwrite_keeps_the_rest_of_the_chunk(
        nginx: Nginx, payload: Payload, write_catalog: Catalog, home: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``pwrite`` may write less than asked (a full or network file system, a signal): the rest
    of the chunk must still land at its own offset, not be dropped with the next chunk written in
    its place. Without a catalog hash (trust on first use) nothing else would catch it."""
    name, _, size = payload("short-write.bin", 3 * MiB + 5)
    cat = write_catalog([model_entry("short-write", f"{nginx.url}/{name}", size, None)])
    real = os.pwrite
    short = [3]

    def pwrite(fd: int, data: Any, offset: int) -> int:
        if len(data) > 4096 and short[0] > 0:
            short[0] -= 1
            return real(fd, memoryview(data)[: len(data) // 3], offset)
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", pwrite)
    r = pull(make_registry(home, cat, fetch_config=fast_config(connections=1)), "short-write")
    assert short[0] == 0
    assert r.success, r.error
    assert Path(r.value).read_bytes() == (nginx.root / name).read_bytes()
    check_cache(home)


def test_streams_connect_where_the_first_request_was_redirected_before_its_answer(
        fault_server: FaultServer, write_catalog: Callable[..., Path], home: Path) -> None:
    """A Hub's 302 to its CDN: while the first range's answer is on its way, the other streams
    connect to where it went (two round trips each saved on a far CDN), then ask for their
    pieces as soon as it comes. This CDN holds that answer until 3 more connections came: a
    fetch that connected only after the answer would wait out the hold (the header timeout is
    longer than the test's patience)."""
    data = os.urandom(24 * MiB)
    gate = threading.Event()
    cdn = fault_server.add("early/cdn.bin", data, fs.hold_head(gate))
    hub = fault_server.add("early/hub.bin", b"", then=fs.redirect(cdn))
    cat = write_catalog([model_entry("early", hub, len(data), hashlib.sha256(data).hexdigest())])
    base = fault_server.accepted
    done = threading.Event()
    reached: list[bool] = []

    def open_when_connected() -> None:
        # the hub's connection, the CDN's held one, then the 3 early streams
        reached.append(fault_server.wait_for_connections(base + 5, timeout=20.0))
        gate.set()
        done.set()

    waiter = threading.Thread(target=open_when_connected, daemon=True)
    waiter.start()
    registry = make_registry(home, cat, fetch_config=fast_config(connections=4),
                             timeout=60.0)
    r = pull(registry, "early")
    done.wait(30)
    assert reached == [True], "the other streams did not connect before the first answer"
    assert r.success, r.error
    assert r.unwrap().read_bytes() == data
    assert fault_server.requests("early/hub.bin") == 1, "only the first stream asks the Hub"
    first = fault_server.hits("early/cdn.bin")[0]
    assert (first.behaviour, first.status) == ("hold_head", 206)  # answered, not given up on
    assert check_cache(home) == ["early"]


def test_no_early_connections_for_a_file_one_stream_fetches(
        fault_server: FaultServer, write_catalog: Callable[..., Path], home: Path) -> None:
    """A file below the split threshold is one request: its redirect starts no other stream."""
    data = os.urandom(MiB // 2)
    cdn = fault_server.add("early/small.bin", data)
    hub = fault_server.add("early/small-hub.bin", b"", then=fs.redirect(cdn))
    cat = write_catalog([model_entry("small", hub, len(data), hashlib.sha256(data).hexdigest())])
    base = fault_server.accepted
    r = pull(make_registry(home, cat, fetch_config=fast_config(connections=4)), "small")
    assert r.success, r.error
    assert fault_server.accepted - base == 2  # the Hub's connection and the CDN's, no more
