"""A real browser against ``runanywhere serve``: headless Chromium (driven by selenium) opens a
page from another origin that fetches the Silero VAD model from the server with ``fetch`` (whole,
and as a download resumed with ``Range`` + ``If-Range``), checks its sha256 with WebCrypto, runs
it with onnxruntime-web (from npm, ``tests/browser/``) on a WAV, and must find the same speech
segments as the Python adapter on the same audio.

Needs Debian's ``chromium`` and ``chromium-driver``, selenium, and ``npm ci`` in tests/browser
(``make setup-test`` does all three); skips with the reason where one is missing. Nothing is
fetched from outside 127.0.0.1: the page, onnxruntime-web and its WASM come from a static server
of the test's own, the model from ``serve``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import unquote

import numpy as np
import pytest

from runanywhere import ModelRegistry
from runanywhere.adapters.audio import read_wav, write_wav
from runanywhere_vad_silero import SileroVADAdapter, speech_timestamps_from_probs
from support.serving import cli_server
from support.silero_wheel import ONNX_SHA256, ONNX_SIZE, silero_data_dir

HERE = Path(__file__).parent / "browser"
ORT_DIST = HERE / "node_modules" / "onnxruntime-web" / "dist"
CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
SENTENCES = ("hello world, this is a test of voice activity detection",
             "and here is a second sentence after a pause")
#: What the issue asks for, plus --disable-dev-shm-usage for containers with a small /dev/shm.
CHROME_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-dev-shm-usage")


def _requirements() -> tuple[str, str]:
    browser = next((p for p in map(shutil.which, CHROMIUM) if p), None)
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        pytest.skip("headless Chromium is not installed (Debian: apt-get install chromium"
                    " chromium-driver; make setup-test installs them)")
    if shutil.which("node") is None:
        pytest.skip("node is not installed (Debian: apt-get install nodejs npm)")
    if not (ORT_DIST / "ort.wasm.min.mjs").is_file():
        pytest.skip("onnxruntime-web is not installed: run 'npm ci' in tests/browser"
                    " (make setup-test does)")
    pytest.importorskip("selenium", reason="selenium is not installed (the test extra has it)")
    return browser, driver


class StaticSite:
    """The page's own origin: tests/browser at /, onnxruntime-web's dist at /ort/, the WAV."""

    def __init__(self, wav: Path) -> None:
        routes = {"/ort/": ORT_DIST, "/": HERE}
        files = {"/speech.wav": wav}

        class Handler(SimpleHTTPRequestHandler):
            extensions_map: ClassVar[dict[str, str]] = {
                **SimpleHTTPRequestHandler.extensions_map,
                ".mjs": "text/javascript", ".js": "text/javascript",
                ".wasm": "application/wasm", ".wav": "audio/wav"}

            def translate_path(self, path: str) -> str:
                clean = unquote(path.split("?", 1)[0].split("#", 1)[0])
                if clean in files:
                    return str(files[clean])
                for prefix, folder in routes.items():
                    if clean.startswith(prefix):
                        target = (folder / clean[len(prefix):]).resolve()
                        if target.is_relative_to(folder.resolve()):
                            return str(target)
                return "/nonexistent"

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> StaticSite:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def speech_16k(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two espeak-ng sentences with silence around and between, as 16 kHz 16-bit PCM."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        pytest.fail("espeak-ng is not installed (Debian package espeak-ng)")
    folder = tmp_path_factory.mktemp("browser-speech")
    parts = [np.zeros(16000, np.float32)]
    for i, sentence in enumerate(SENTENCES):
        raw = folder / f"s{i}.wav"
        subprocess.run([espeak, "-w", str(raw), sentence], check=True, timeout=60)
        audio, _ = read_wav(raw, target_sr=16000)
        parts += [audio, np.zeros(16000, np.float32)]
    out = folder / "speech-16k.wav"
    write_wav(out, np.concatenate(parts), 16000)
    return out


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    binary, driver_path = _requirements()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # selenium-manager must not look online
    profile = tmp_path / "chromium-profile"  # a fresh profile for every run
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for flag in (*CHROME_FLAGS, f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)
    driver.set_script_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_browser_fetches_verifies_and_runs_silero_from_serve(
        browser: Any, home: Path, speech_16k: Path) -> None:
    onnx = silero_data_dir() / "silero_vad.onnx"
    ModelRegistry(home=home).import_model("silero-vad", onnx)

    # What the Python adapter finds in the same 16 kHz audio.
    adapter = SileroVADAdapter.from_file(onnx)
    audio, sr = read_wav(speech_16k, target_sr=None)
    assert sr == 16000
    py_probs = adapter.speech_probabilities(audio, sr)
    py_spans = speech_timestamps_from_probs(py_probs, sr, audio_length_samples=int(audio.size))
    assert [(round(s.start * sr), round(s.end * sr)) for s in adapter.detect(audio, sr)] \
        == py_spans
    assert len(py_spans) >= 2, py_spans

    with StaticSite(speech_16k) as site, cli_server(home, "--cors", site.origin) as (url, _):
        browser.get(f"{site.origin}/vad.html?server={url}&model=silero-vad"
                    f"&wav={site.origin}/speech.wav")
        deadline = time.monotonic() + 120
        result = None
        while result is None and time.monotonic() < deadline:
            result = browser.execute_script("return window.__result || null")
            if result is None:
                time.sleep(0.1)
        text = browser.execute_script("return document.getElementById('log').textContent")
    assert result is not None, f"the page did not finish: {text}"
    assert result["ok"], result.get("error")
    model = result["model"]
    assert model["sha256"] == model["resumedSha256"] == ONNX_SHA256
    assert model["size"] == model["resumedSize"] == ONNX_SIZE
    cut = ONNX_SIZE // 3
    assert model["contentRanges"] == [f"bytes 0-{cut - 1}/{ONNX_SIZE}",
                                      f"bytes {cut}-{ONNX_SIZE - 1}/{ONNX_SIZE}"]
    assert model["etag"] == f'"{ONNX_SHA256}"'
    assert model["cacheControl"] == "public, max-age=31536000, immutable"
    assert result["inputs"] == ["input", "state", "sr"]
    assert result["samples"] == audio.size
    js_probs = np.asarray(result["probs"], dtype=np.float64)
    assert js_probs.shape == py_probs.shape
    drift = float(np.max(np.abs(js_probs - py_probs)))
    assert drift < 1e-3, drift
    assert [tuple(s) for s in result["segments"]] == py_spans
    print(json.dumps({"segments": py_spans, "max_prob_difference": drift,
                      "browser_ms": round(result["ms"])}))
