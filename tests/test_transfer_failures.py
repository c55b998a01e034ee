"""Failures at the edges of the transfer layer, each typed and each stoppable: what the HTTP client
raises (refused, not HTTP, a resolver that does not answer, a malformed URL), and a cancel that
breaks a connect in progress.

Real parts: the fault server, a port whose connects hang (``support.blackhole``, watched in the
kernel's socket table), the CLI in a child process, and, where the machine allows user
namespaces, a child whose resolver never answers.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import model_entry
from harness.net import free_port
from runanywhere.errors import DownloadError
from runanywhere.transfer.http import Client, get_small
from runanywhere.transfer.retry import TransientError
from support import fault_server as fs
from support.blackhole import blackhole, connecting
from support.fault_server import FaultServer
from support.invariants import check_cache
from support.pulls import make_registry

pytestmark = pytest.mark.timeout(120, method="thread")
Catalog = Callable[[list[dict[str, Any]]], Path]


@pytest.fixture(scope="module")
def server() -> Iterator[FaultServer]:
    with fs.running() as srv:
        yield srv


# -- the HTTP client raises DownloadError only -----------------------------------------------------
def test_a_refused_connection_is_worth_a_retry() -> None:
    url = f"http://127.0.0.1:{free_port()}/model.onnx"
    with Client(timeout=5.0) as client, pytest.raises(TransientError) as e:
        client.get(url)
    assert url in str(e.value) and "ConnectionRefusedError" in str(e.value)
    with pytest.raises(TransientError):
        get_small(url)


def test_an_answer_that_is_not_http_is_worth_a_retry(server: FaultServer) -> None:
    url = server.add("not-http", b"x", then=fs.garbage())
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
from runanywhere.transfer.retry import TransientError
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


# -- cancel breaks a connect in progress -----------------------------------------------------------
def test_cancel_breaks_a_connect_that_hangs(write_catalog: Catalog, home: Path) -> None:
    """A host that drops SYNs: the download waits in connect() with a 60 s timeout. A cancel
    stops it, and no thread of ours stays behind."""
    data = os.urandom(1000)
    with blackhole() as port:
        url = f"http://127.0.0.1:{port}/model.onnx"
        entry = model_entry("hangs", url, len(data), hashlib.sha256(data).hexdigest())
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
