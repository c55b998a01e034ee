"""Helpers and fixtures of the llama package's tests: catalog entries for GGUF files, a registry
on a fresh cache holding some, tiny GGUF models, nginx for the real SmolLM2 file, and the same
environment isolation as the core's tests.

There is no ``conftest.py`` here on purpose: the core's tests ``from conftest import ...``, and
with two conftest modules in one pytest run that name would reach whichever was imported last.
Each test module takes the fixtures with ``from llm_support import *`` (``__all__`` is the
fixtures; ``isolated_env`` is autouse) and imports the helpers it uses by name."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from tiny_gguf import write_chain

from harness.nginx import Nginx, Route, nginx_binary
from runanywhere import ModelRegistry, Settings


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def llm_entry(model_id: str, path: Path, url: str | None = None, **extra: Any
              ) -> dict[str, Any]:
    """A catalog entry for the GGUF at ``path`` with its exact size and sha256."""
    return {"id": model_id, "name": model_id, "type": "llm", "format": "gguf",
            "provider": "tests", "version": "1", "size": path.stat().st_size,
            "url": url or f"http://127.0.0.1:9/{path.name}",
            "hash": f"sha256:{sha256_of(path)}", **extra}


def write_catalog(path: Path, entries: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"format_version": 1, "models": entries}))
    return path


def foreground(argv: list[str]) -> list[str]:
    """``argv`` run with SIGINT at its default, as a shell runs a foreground command: a test
    started from a background job inherits SIGINT ignored (so Ctrl-C would do nothing), and a
    disposition set before ``exec`` survives it."""
    reset = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL);"
             " os.execvp(sys.argv[1], sys.argv[1:])")
    return [sys.executable, "-c", reset, *argv]


def registry_with(home: Path, models: dict[str, Path], **settings: Any) -> ModelRegistry:
    """A registry on a fresh cache holding ``models`` (id -> GGUF file), imported (verified
    against their entries) as a user sideloads them."""
    base = replace(Settings.from_env(), home=home, **settings)
    reg = ModelRegistry(settings=base, include_builtin=False)
    for model_id, path in models.items():
        reg.register_model(llm_entry(model_id, path))
        reg.import_model(model_id, path)
    return reg


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
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


#: The fixtures (``from llm_support import *`` puts them where pytest finds them).
__all__ = ["chain_gguf", "isolated_env", "models_dir", "nginx"]
