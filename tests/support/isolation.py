"""The environment every test runs in: no developer's cache, catalogs, tokens or proxies.

``tests/conftest.py`` imports the autouse fixture, and so does each test module of the adapter
packages (``packages/*/tests``: a second ``conftest.py`` would shadow this one's helpers, which
tests import as ``from conftest import ...``), so they are isolated alike, here or against an
installed wheel.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's cache, catalogs or proxies."""
    for var in ("RUNANYWHERE_HOME", "RUNANYWHERE_CATALOG", "RUNANYWHERE_OFFLINE",
                "RUNANYWHERE_DISK_LIMIT", "RUNANYWHERE_SHARED_CACHE", "HF_TOKEN",
                "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "HF_ENDPOINT", "HF_TOKEN_PATH",
                "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
                "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
                "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("RUNANYWHERE_HOME", str(tmp_path / "default-home"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # never the developer's token
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
