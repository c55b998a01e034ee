"""Shared fixtures: a real nginx on 127.0.0.1, the fault server, payloads, catalogs and a fresh
cache home. Helpers that tests import live in ``support/``, not here."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.nginx import Nginx, Route, nginx_binary
from support import fault_server as fs
from support.isolation import _isolated_env  # noqa: F401  (autouse: every test)

#: huggingface_hub's own tests of the Hub stand-in run in a process of their own (it reads
#: HF_ENDPOINT once, at import): test_sources.py starts them with RUNANYWHERE_HUB_FIDELITY=1.
collect_ignore = [] if os.environ.get("RUNANYWHERE_HUB_FIDELITY") else ["hub_fidelity"]

#: The session nginx's routes: the origin folder at "/", the same capped at 2 MiB/s per
#: connection under "/slow/", and "/redirect/x" answering 302 to "/x".
ORIGIN_ROUTES = (Route("/"), Route("/slow/", rate="2m"), Route("/redirect/", redirect="/"))


@pytest.fixture(scope="session")
def origin_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder nginx serves; tests drop payloads into it."""
    return tmp_path_factory.mktemp("origin")


@pytest.fixture(scope="session")
def nginx(origin_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    if nginx_binary() is None:
        pytest.fail("nginx is not installed: run .ci/run or apt-get install nginx")
    server = Nginx(origin_root, tmp_path_factory.mktemp("nginx"), routes=ORIGIN_ROUTES)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def fault_server() -> Iterator[fs.FaultServer]:
    """The tests' own misbehaving HTTP server on 127.0.0.1 (``support/fault_server.py``), one per
    test module: each module names its own paths, and its request log starts empty."""
    with fs.running() as server:
        yield server


@pytest.fixture
def payload(origin_root: Path) -> Callable[[str, int], tuple[str, str, int]]:
    """Write ``size`` random bytes as ``name`` in the origin; returns (name, sha256, size)."""

    def make(name: str, size: int) -> tuple[str, str, int]:
        data = os.urandom(size)
        (origin_root / name).write_bytes(data)
        return name, hashlib.sha256(data).hexdigest(), size

    return make


@pytest.fixture
def write_catalog(tmp_path: Path) -> Callable[[list[dict[str, Any]]], Path]:
    counter = iter(range(1000))

    def write(models: list[dict[str, Any]]) -> Path:
        p = tmp_path / f"catalog-{next(counter)}.json"
        p.write_text(json.dumps({"format_version": 1, "models": models}))
        return p

    return write


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"
