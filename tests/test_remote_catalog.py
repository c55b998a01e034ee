"""Catalogs given as http(s) URLs: fetched, kept under the home, used when the server is away."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from runanywhere import ModelRegistry
from runanywhere.errors import InvalidCatalogError, OfflineError
from runanywhere.settings import Settings, split_catalogs
from runanywhere.transfer.remote_catalog import CATALOG_RETRY, catalog_copy_path, fetch_catalog
from support import fault_server as fs
from support.catalogs import model_entry
from support.fault_server import FaultServer


class CatalogServer:
    """A stdlib server on 127.0.0.1 answering one body (and status) at ``/catalog.json``."""

    def __init__(self) -> None:
        self.body = b""
        self.status = 200
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits += 1
                self.send_response(outer.status)
                self.send_header("Content-Length", str(len(outer.body)))
                self.end_headers()
                self.wfile.write(outer.body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/catalog.json"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[CatalogServer]:
    s = CatalogServer()
    yield s
    s.stop()


def _catalog(*ids: str) -> bytes:
    models = [model_entry(i, f"http://127.0.0.1:9/{i}.bin", 10, "ab" * 32) for i in ids]
    return json.dumps({"format_version": 1, "models": models}).encode()


def test_url_catalog_is_fetched_kept_and_used_when_the_server_is_away(
        server: CatalogServer, home: Path, caplog: pytest.LogCaptureFixture) -> None:
    server.body = _catalog("remote-a", "remote-b")
    reg = ModelRegistry(home=home, catalogs=[server.url], include_builtin=False)
    assert [m.id for m in reg.list_models()] == ["remote-a", "remote-b"]
    assert reg.get_model("remote-a").source == server.url  # type: ignore[union-attr]
    copy = catalog_copy_path(reg.settings, server.url)
    assert json.loads(copy.read_bytes()) == json.loads(server.body)

    server.stop()
    caplog.clear()
    again = ModelRegistry(home=home, catalogs=[server.url], include_builtin=False)
    assert [m.id for m in again.list_models()] == ["remote-a", "remote-b"]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and server.url in warnings[0] and "copy" in warnings[0]


def test_a_bad_answer_keeps_the_good_copy(server: CatalogServer, home: Path) -> None:
    settings = Settings(home=home)
    server.body = _catalog("good")
    good = fetch_catalog(server.url, settings).read_bytes()
    for status, body in ((200, b"<html>captive portal</html>"), (500, b"oops"),
                         (200, b'{"format_version": 1, "models": [{"id": "../x"}]}')):
        server.status, server.body = status, body
        assert fetch_catalog(server.url, settings).read_bytes() == good


def test_a_server_busy_for_a_moment_is_asked_again(fault_server: FaultServer,
                                                   home: Path) -> None:
    """Two 503s (the second with Retry-After: 0), then the catalog: fetched under the catalog
    retry policy, with no copy to fall back on."""
    url = fault_server.add("busy/catalog.json", _catalog("patient"), fs.status(503),
                           fs.status(503, retry_after="0"))
    assert json.loads(fetch_catalog(url, Settings(home=home)).read_bytes()) == json.loads(
        _catalog("patient"))
    assert [h.status for h in fault_server.hits("busy/catalog.json")] == [503, 503, 200]
    fault_server.script("busy/catalog.json", then=fs.status(503))
    assert json.loads(fetch_catalog(url, Settings(home=home)).read_bytes())["models"], \
        "busy for good: the copy"
    assert len(fault_server.hits("busy/catalog.json")) == 3 + 1 + CATALOG_RETRY.attempts


def test_no_copy_and_no_server_is_one_clear_error(home: Path) -> None:
    url = "http://127.0.0.1:9/catalog.json"
    with pytest.raises(InvalidCatalogError, match=r"127\.0\.0\.1:9"):
        fetch_catalog(url, Settings(home=home))
    with pytest.raises(OfflineError, match="never fetched"):
        fetch_catalog(url, Settings(home=home, offline=True))


def test_offline_uses_the_copy_without_asking(server: CatalogServer, home: Path) -> None:
    server.body = _catalog("x")
    fetch_catalog(server.url, Settings(home=home))
    hits = server.hits
    fetch_catalog(server.url, Settings(home=home, offline=True))
    assert server.hits == hits


def test_cli_takes_a_catalog_url(server: CatalogServer, home: Path) -> None:
    server.body = _catalog("from-url")
    env = {**os.environ, "RUNANYWHERE_CATALOG": f"{server.url}"}
    r = subprocess.run([sys.executable, "-m", "runanywhere", "--home", str(home), "list",
                        "--json"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "from-url" in {m["id"] for m in json.loads(r.stdout)["models"]}


def test_catalog_variable_keeps_urls_whole() -> None:
    text = os.pathsep.join(["a.json", "http://h:8765/catalog.json", "/x/b.json",
                            "https://h/c.json", "http://h:99"])
    assert split_catalogs(text) == ("a.json", "http://h:8765/catalog.json", "/x/b.json",
                                    "https://h/c.json", "http://h:99")
