"""Failures at the edges of the transfer layer, each typed and each stoppable: what the HTTP client
raises (refused, not HTTP, a resolver that does not answer, a malformed URL), Hub references that
cannot be asked about, offline mode asking nothing, the CLI's JSON on a protocol error, and a
cancel that breaks a connect in progress (the size probe's as well).

Real parts: the fault server, a port whose connects hang (``support.blackhole``, watched in the
kernel's socket table), the CLI in a child process, and, where the machine allows user
namespaces, a child whose resolver never answers.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.net import free_port
from runanywhere import ModelRegistry
from runanywhere.errors import DownloadError, InvalidCatalogError, OfflineError
from runanywhere.progress import ProgressTracker
from runanywhere.retry import RetriesExhausted, RetryPolicy, TransientError
from runanywhere.store.partial import Partial, PartialMeta, new_owner
from runanywhere.transfer import FetchConfig
from runanywhere.transfer.filejob import FileJob
from runanywhere.transfer.http import Client, get_small
from runanywhere.transfer.roster import UrlRoster
from runanywhere.transfer.stream import Stream
from support import fault_server as fs
from support.blackhole import blackhole, connecting
from support.catalogs import model_entry
from support.fault_server import FaultServer
from support.invariants import check_cache
from support.pulls import make_registry
from support.terminal import cli_argv

pytestmark = pytest.mark.timeout(120, method="thread")
Catalog = Callable[[list[dict[str, Any]]], Path]


def estimated(model_id: str, url: str, data: bytes) -> dict[str, Any]:
    """A catalog entry with a sha256 and only a size estimate."""
    entry = model_entry(model_id, url, len(data), hashlib.sha256(data).hexdigest())
    entry["size_estimate"] = entry.pop("size")
    return entry


# -- the HTTP client raises DownloadError only -----------------------------------------------------
def test_a_refused_connection_is_worth_a_retry() -> None:
    url = f"http://127.0.0.1:{free_port()}/model.onnx"
    with Client(timeout=5.0) as client, pytest.raises(TransientError) as e:
        client.get(url)
    assert url in str(e.value) and "ConnectionRefusedError" in str(e.value)
    with pytest.raises(TransientError):
        get_small(url, retry=None)
    with pytest.raises(RetriesExhausted) as gave_up:  # a small document is retried, then typed
        get_small(url, retry=RetryPolicy(attempts=2, delay=0.0))
    assert isinstance(gave_up.value.last, TransientError)
    assert "gave up after 2 retries" in str(gave_up.value)


def test_an_early_connect_that_fails_is_left_to_the_request(fault_server: FaultServer) -> None:
    """``preconnect`` never raises for the network: a refused connect is False, and the
    request made afterwards meets the refusal itself (typed, worth a retry); a connection made
    early carries the next request there."""
    url = f"http://127.0.0.1:{free_port()}/model.onnx"
    with Client(timeout=5.0) as client:
        assert client.preconnect(url) is False
        with pytest.raises(TransientError, match="ConnectionRefusedError"):
            client.get(url)
    good = fault_server.add("early-connect", b"hello")
    base = fault_server.accepted
    with Client(timeout=5.0) as client:
        assert client.preconnect(good) is True
        assert fault_server.wait_for_connections(base + 1)
        resp = client.get(good)
        assert resp.status == 200 and resp.read_small() == b"hello"
        resp.close()
        assert client.connects == 1 and fault_server.accepted == base + 1


def test_an_answer_that_is_not_http_is_worth_a_retry(fault_server: FaultServer) -> None:
    url = fault_server.add("not-http", b"x", then=fs.garbage())
    with Client(timeout=5.0) as client, pytest.raises(TransientError) as e:
        client.get(url)
    assert "BadStatusLine" in str(e.value) and "\n" not in str(e.value)


def test_a_malformed_url_is_final() -> None:
    url = "http://127.0.0.1:99999/model.onnx"
    with Client() as client, pytest.raises(DownloadError) as e:
        client.get(url)
    assert not isinstance(e.value, TransientError) and "invalid URL" in str(e.value)


RESOLVER_DOWN = """
from runanywhere.errors import DownloadError
from runanywhere.transfer.http import Client
from runanywhere.retry import TransientError
try:
    Client(timeout=5.0).get("http://model-host.test/model.onnx")
except TransientError as e:
    print("transient:", e)
except DownloadError as e:
    print("final:", e)
"""


def test_a_resolver_that_does_not_answer_is_worth_a_retry(tmp_path: Path) -> None:
    """EAI_AGAIN ("temporary failure in name resolution") may heal; a name that does not exist
    (tests/test_sources.py) may not. The child gets a resolv.conf naming a server that is not
    there, in a mount namespace of its own."""
    if shutil.which("unshare") is None or subprocess.run(
            ["unshare", "-rm", "true"], capture_output=True).returncode != 0:
        pytest.skip("needs unshare and user namespaces to give a child its own resolv.conf")
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    script = f'mount --bind {conf} /etc/resolv.conf && exec {sys.executable} -c "$0"'
    r = subprocess.run(["unshare", "-rm", "sh", "-c", script, RESOLVER_DOWN],
                       capture_output=True, text=True, timeout=60)
    assert r.stdout.startswith("transient:"), r.stdout + r.stderr
    assert "cannot resolve host model-host.test for now" in r.stdout


# -- references and offline mode -------------------------------------------------------------------
def test_the_hub_unreachable_is_a_download_error(home: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    reg = ModelRegistry(home=home, include_builtin=False)
    r = asyncio.run(reg.fetch("hf://owner/repo/model.onnx"))
    assert isinstance(r.error, DownloadError) and "Connection refused" in str(r.error)


def test_the_hub_unreachable_in_json_names_a_public_error_type(home: Path) -> None:
    """Scripts match on ``error.type``: an internal subclass (the retryable kind) is reported
    as the public class it derives from."""
    env = {**os.environ, "HF_ENDPOINT": f"http://127.0.0.1:{free_port()}",
           "RUNANYWHERE_HOME": str(home)}
    r = subprocess.run(cli_argv("pull", "hf://owner/repo/model.onnx", "--json"),
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    doc = json.loads(r.stdout)
    errors = [m["error"] for m in doc.get("models", [])] or [doc["error"]]
    assert [e["type"] for e in errors] == ["DownloadError"], errors


def test_a_malformed_hub_reference_is_an_invalid_catalog_error(home: Path) -> None:
    reg = ModelRegistry(home=home, include_builtin=False)
    r = asyncio.run(reg.fetch("hf://owner"))
    assert isinstance(r.error, InvalidCatalogError) and "'hf://owner'" in str(r.error)


def test_offline_a_url_without_a_hash_asks_nothing(fault_server: FaultServer, home: Path) -> None:
    url = fault_server.add("offline.onnx", os.urandom(1000))
    reg = ModelRegistry(home=home, include_builtin=False, offline=True)
    r = asyncio.run(reg.fetch(url, trust_first_use=True))
    assert isinstance(r.error, OfflineError) and "offline" in str(r.error)
    assert fault_server.requests("/offline.onnx") == 0
    assert not (home / "sources.json").exists() and check_cache(home) == []


def test_pull_json_reports_a_protocol_error_as_a_download_error(
        fault_server: FaultServer, write_catalog: Catalog, home: Path) -> None:
    data = os.urandom(1000)
    url = fault_server.add("cli-not-http", data, fs.garbage(), then=fs.status(404))
    cat = write_catalog([estimated("cli-not-http", url, data)])
    r = subprocess.run(cli_argv("--home", str(home), "--catalog", str(cat), "pull",
                                "cli-not-http", "--json"),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    (model,) = json.loads(r.stdout)["models"]
    assert model["error"]["type"] == "DownloadError"
    assert "404" in model["error"]["message"]


# -- cancel breaks a connect in progress -----------------------------------------------------------
@pytest.mark.parametrize("size", ["exact", "estimate"])
def test_cancel_breaks_a_connect_that_hangs(write_catalog: Catalog, home: Path,
                                            size: str) -> None:
    """A host that drops SYNs: the download (or, for an estimate, the size probe) waits in
    connect() with a 60 s timeout. A cancel stops it, and no thread of ours stays behind."""
    data = os.urandom(1000)
    with blackhole() as port:
        url = f"http://127.0.0.1:{port}/model.onnx"
        entry = (estimated("hangs", url, data) if size == "estimate"
                 else model_entry("hangs", url, len(data), hashlib.sha256(data).hexdigest()))
        reg = make_registry(home, write_catalog([entry]), timeout=60.0)
        waiting = connecting(port)  # the queue's own filler
        before = set(threading.enumerate())

        async def scenario() -> None:
            task = asyncio.ensure_future(reg.download_model("hangs"))
            while connecting(port) <= waiting:  # our connect is in SYN_SENT now
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(scenario())
        ours = [t for t in threading.enumerate()
                if t not in before and t.name.startswith(("ra-", "runanywhere-"))]
        for t in ours:
            t.join(timeout=5.0)
        assert [t.name for t in ours if t.is_alive()] == [], "a thread outlived the cancel"
    assert check_cache(home) == []


def test_a_range_whose_tail_was_taken_while_a_try_failed_is_not_asked_again(
        fault_server: FaultServer, tmp_path: Path) -> None:
    """A stream's request fails after another stream took the rest of its range: the retry
    has nothing left to ask for (an inverted ``Range`` would be answered with the whole file,
    or a 416 that fails the download)."""
    data = os.urandom(4096)
    gate = threading.Event()
    url = fault_server.add("tail-taken", data, fs.hold_reset(gate))
    partial = Partial(tmp_path, "tail-taken", new_owner())
    partial.open(PartialMeta(url=url, size=len(data), sha256=None))
    config = FetchConfig(retry=RetryPolicy(attempts=3, delay=0.0))
    job = FileJob(config=config, size=len(data), roster=UrlRoster([url]), partial=partial,
                  tracker=ProgressTracker("t", len(data), None), cancel=threading.Event())
    job.plan.begin([(0, len(data))])
    worker = threading.Thread(target=Stream(0, job).run, daemon=True)
    worker.start()
    fault_server.wait_for_hits("tail-taken", 1)
    with job.cond:
        (seg,) = job.plan.segments
        seg.end = seg.pos  # another stream took all of it
    gate.set()  # now the held request is reset
    worker.join(30)
    assert not worker.is_alive() and job.error is None
    assert fault_server.requests("tail-taken") == 1
    partial.close()
