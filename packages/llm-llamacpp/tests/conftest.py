"""Fixtures of the llama package's tests: tiny GGUF models in a real cache, nginx for the real
SmolLM2 file, and the same environment isolation as the core's tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.nginx import Nginx, Route, nginx_binary
from tiny_gguf import write_chain


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's cache, catalogs or proxies."""
    for var in ("RUNANYWHERE_HOME", "RUNANYWHERE_CATALOG", "RUNANYWHERE_OFFLINE",
                "RUNANYWHERE_DISK_LIMIT", "RUNANYWHERE_SHARED_CACHE",
                "RUNANYWHERE_MAX_LOADED_MEMORY", "HF_TOKEN", "HF_ENDPOINT", "http_proxy",
                "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("RUNANYWHERE_HOME", str(tmp_path / "default-home"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gguf")


@pytest.fixture(scope="session")
def chain_gguf(models_dir: Path) -> Path:
    """The chain model: says "€ the caté." over and over, whatever the temperature."""
    return write_chain(models_dir / "chain.gguf")


@pytest.fixture(scope="session")
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    if nginx_binary() is None:
        pytest.fail("nginx is not installed: run .ci/run or apt-get install nginx")
    root = tmp_path_factory.mktemp("origin")
    server = Nginx(root, tmp_path_factory.mktemp("nginx"), routes=(Route("/"),))
    server.start()
    yield server
    server.stop()
