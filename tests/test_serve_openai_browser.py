"""A real browser streams a chat completion from ``runanywhere serve``: headless Chromium
(selenium) opens a page of another origin (tests/browser/chat.html) that POSTs to
``/v1/chat/completions`` with ``fetch``, through CORS (a preflight: the body is JSON), reads
the server-sent events from the response's ``ReadableStream`` and shows each delta as it
arrives; the page must show SmolLM2's answer, the same text a Python client gets.

Needs Debian's ``chromium`` and ``chromium-driver`` and selenium (``make setup-test``); skips
with the reason where one is missing. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import http.client
import json
import shutil
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from support.openai_world import CAPITAL, SMOL, fill_home
from support.serving import cli_server

PAGE = Path(__file__).parent / "browser" / "chat.html"
CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
CHROME_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-dev-shm-usage")


class Site:
    """The page's own origin (another port than the server's: a cross-origin fetch)."""

    def __init__(self) -> None:
        class Handler(SimpleHTTPRequestHandler):
            def translate_path(self, path: str) -> str:
                return str(PAGE) if path.split("?")[0] == "/chat.html" else "/nonexistent"

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> Site:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    binary = next((p for p in map(shutil.which, CHROMIUM) if p), None)
    driver_path = shutil.which("chromedriver")
    if binary is None or driver_path is None:
        pytest.skip("headless Chromium is not installed (Debian: apt-get install chromium"
                    " chromium-driver; make setup-test installs them)")
    pytest.importorskip("selenium", reason="selenium is not installed (the test extra has it)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # selenium-manager must not look online
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for flag in (*CHROME_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)
    driver.set_script_timeout(300)
    try:
        yield driver
    finally:
        driver.quit()


def _answer(url: str) -> str:
    conn = http.client.HTTPConnection(url.removeprefix("http://"), timeout=300)
    conn.request("POST", "/v1/chat/completions", json.dumps({
        "model": SMOL, "messages": CAPITAL, "temperature": 0, "max_tokens": 40}),
        {"Content-Type": "application/json"})
    doc = json.loads(conn.getresponse().read())
    conn.close()
    return str(doc["choices"][0]["message"]["content"])


def test_a_page_streams_a_chat_with_fetch_through_cors(browser: Any, tmp_path: Path) -> None:
    home = tmp_path / "home"
    fill_home(home, tmp_path / "scratch", (SMOL,))
    script = "const done = arguments[arguments.length - 1]; window.__finished.then(done);"
    with Site() as site:
        with cli_server(home) as (url, _):  # no --cors: the browser must refuse the answer
            browser.get(f"{site.origin}/chat.html?server={url}&model={SMOL}")
            refused = browser.execute_async_script(script)
        assert not refused["ok"] and "Failed to fetch" in refused["error"]
    with Site() as site, cli_server(home, "--cors", site.origin) as (url, _):
        browser.get(f"{site.origin}/chat.html?server={url}&model={SMOL}")
        result = browser.execute_async_script(script)
        shown = browser.find_element("id", "answer").text
        expected = _answer(url)
    assert result["ok"], result.get("error")
    assert result["done"] and result["contentType"].startswith("text/event-stream")
    assert result["text"] == expected and "Paris" in shown
    assert shown == expected.strip()
    assert result["chunks"] >= 5  # token by token, not one block
