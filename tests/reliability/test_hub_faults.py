"""The Hub's API misbehaving, through ``hf://`` pulls against the Hub stand-in
(``support/hub_server.py``) on 127.0.0.1: answers 503 for a while, answers 503 for good, pages a
listing in a loop, pages a listing that never ends; and a repository holding an empty file.

A Hub that heals is pulled from (its API is retried as a download is); one that does not ends in
a typed error after a bounded number of requests, with nothing in the cache.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from runanywhere import FetchConfig, ModelRegistry
from runanywhere.errors import DownloadError
from runanywhere.retry import RetryPolicy
from runanywhere.transfer.hub import MAX_ENTRIES
from support.hub_server import HubServer
from support.invariants import check_cache
from support.terminal import cli_argv

pytestmark = pytest.mark.timeout(120, method="thread")
WEIGHTS = os.urandom(3000)  # above the stand-in's LFS threshold below: a sha256 from the API
#: Retries without waiting: the tests count requests, not seconds.
QUICK = FetchConfig(retry=RetryPolicy(attempts=3, delay=0.0))


@pytest.fixture(scope="module")
def hub() -> Iterator[HubServer]:
    with HubServer(lfs_threshold=1024) as server:
        server.add_repo("acme/tiny", {"model.onnx": WEIGHTS, "tokens.txt": b"a\nb\n"})
        server.add_repo("acme/holes", {"empty.txt": b"", "sub/also-empty.bin": b"",
                                       "w.bin": WEIGHTS})
        yield server


@pytest.fixture
def hf(hub: HubServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubServer]:
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    hub.clear_requests()
    yield hub
    hub.fail_api(0)
    hub.listing = None


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli_argv("--home", str(home), *args), capture_output=True, text=True,
                          timeout=90, env=dict(os.environ))


def api_requests(hub: HubServer) -> list[int]:
    return [q.status for q in hub.requests if q.server == "hub" and q.path.startswith("/api/")]


def registry(home: Path) -> ModelRegistry:
    return ModelRegistry(home=home, include_builtin=False, fetch_config=QUICK)


# -- 503s ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("retry_after", [None, "0"])
def test_an_api_answering_503_twice_is_pulled_from(hf: HubServer, home: Path,
                                                   retry_after: str | None) -> None:
    """The command line with its default retry policy (backoff, or the server's Retry-After):
    two 503s from the API, then its answers; the file arrives."""
    hf.fail_api(2, 503, retry_after)
    r = cli(home, "pull", "hf://acme/tiny/model.onnx", "-q")
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()).read_bytes() == WEIGHTS
    statuses = api_requests(hf)
    assert statuses[:3] == [503, 503, 200], statuses
    assert check_cache(home) == ["acme--tiny-model.onnx"]


def test_an_api_that_keeps_answering_503_ends_in_a_typed_error(hf: HubServer,
                                                               home: Path) -> None:
    hf.fail_api(100, 503)
    r = asyncio.run(registry(home).fetch("hf://acme/tiny/model.onnx"))
    assert isinstance(r.error, DownloadError), r.error
    assert "503" in str(r.error) and "gave up after 3 retries" in str(r.error)
    assert api_requests(hf) == [503] * 4, "the first try and three retries, no more"
    assert check_cache(home) == []


def test_a_client_error_of_the_api_is_not_retried(hf: HubServer, home: Path) -> None:
    hf.fail_api(5, 400)
    r = asyncio.run(registry(home).fetch("hf://acme/tiny/model.onnx"))
    assert isinstance(r.error, DownloadError) and "400" in str(r.error)
    assert api_requests(hf) == [400]


# -- listings that never end --------------------------------------------------------------------
def test_a_pagination_link_that_loops_ends_in_a_typed_error(hf: HubServer, home: Path) -> None:
    hf.listing = "loop"
    r = asyncio.run(registry(home).fetch("hf://acme/tiny"))
    assert isinstance(r.error, DownloadError), r.error
    assert "loops" in str(r.error) and "hf://acme/tiny" in str(r.error)
    trees = [q.path for q in hf.requests if "/tree/" in q.path]
    assert len(trees) <= 3 and len(set(trees)) == len(trees), "no page is asked twice"
    assert check_cache(home) == []


def test_a_listing_that_grows_without_end_ends_in_a_typed_error(hf: HubServer,
                                                                home: Path) -> None:
    """Every page names files never seen before and links to one more: the listing stops past
    MAX_ENTRIES entries (the stand-in pages 1000 at a time), not when memory runs out."""
    hf.listing = "endless"
    r = cli(home, "pull", "hf://acme/tiny", "--json")
    assert r.returncode == 1
    (model,) = json.loads(r.stdout)["models"]
    error = model["error"]
    assert error["type"] == "DownloadError" and f"more than {MAX_ENTRIES}" in error["message"]
    trees = [q for q in hf.requests if "/tree/" in q.path]
    assert len(trees) == MAX_ENTRIES // 1000 + 1
    assert check_cache(home) == []


# -- an empty file is a file ----------------------------------------------------------------------
def test_an_empty_file_in_a_repository_is_pulled(hf: HubServer, home: Path) -> None:
    """Size 0 is a size: the files arrive empty (checked against the git blob id of nothing),
    beside the others, and the model says 0 bytes for them. An empty file alone is no model:
    refused, with what to do instead."""
    r = cli(home, "pull", "hf://acme/holes", "-q")
    assert r.returncode == 0, r.stderr
    folder = Path(r.stdout.strip())
    assert (folder / "empty.txt").read_bytes() == b""
    assert (folder / "sub" / "also-empty.bin").read_bytes() == b""
    assert (folder / "w.bin").read_bytes() == WEIGHTS
    info = json.loads(cli(home, "info", "acme--holes", "--json").stdout)
    sizes = {f["path"]: f["size"] for f in info["files"]}
    assert sizes == {"empty.txt": 0, "sub/also-empty.bin": 0, "w.bin": len(WEIGHTS)}
    alone = cli(home, "pull", "hf://acme/holes/empty.txt")
    assert alone.returncode != 0 and "empty file" in alone.stderr, "a model has bytes"
    assert check_cache(home) == ["acme--holes"]
