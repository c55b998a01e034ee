"""The real Silero VAD model files for tests, from the silero-vad 6.2.3 wheel.

``silero_wheel_dir()`` returns a folder holding the extracted wheel (``silero_vad/data/...``).
The wheel is taken from ``/tmp/wheels`` (``$RUNANYWHERE_TEST_WHEELS``; a local copy) or from
``~/.cache/runanywhere-test/`` (``$RUNANYWHERE_TEST_CACHE``); when neither has it,
``pip download --no-deps`` fetches it into the latter, so a fresh CI machine gets it on the first
run. Extraction is atomic (temporary folder, then rename) and the ONNX file is checked against
the sha256 in DESIGN.md.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

VERSION = "6.2.3"
WHEEL = f"silero_vad-{VERSION}-py3-none-any.whl"
ONNX_SHA256 = "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3"
ONNX_SIZE = 2_327_524


def cache_dir() -> Path:
    root = os.environ.get("RUNANYWHERE_TEST_CACHE") or "~/.cache/runanywhere-test"
    return Path(root).expanduser()


def _find_wheel() -> Path:
    local = Path(os.environ.get("RUNANYWHERE_TEST_WHEELS") or "/tmp/wheels")
    for candidate in (local / WHEEL, cache_dir() / WHEEL):
        if candidate.is_file():
            return candidate
    dest = cache_dir()
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
         "-q", f"silero-vad=={VERSION}", "-d", str(dest)],
        check=True, timeout=300)
    wheel = dest / WHEEL
    if not wheel.is_file():
        raise FileNotFoundError(f"pip download did not produce {wheel}")
    return wheel


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def silero_wheel_dir() -> Path:
    """The extracted silero-vad wheel (downloaded and extracted on first use)."""
    target = cache_dir() / f"silero_vad-{VERSION}"
    onnx = target / "silero_vad" / "data" / "silero_vad.onnx"
    if onnx.is_file() and onnx.stat().st_size == ONNX_SIZE:
        return target
    wheel = _find_wheel()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".silero-", dir=target.parent))
    try:
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(tmp)
        got = _sha256(tmp / "silero_vad" / "data" / "silero_vad.onnx")
        if got != ONNX_SHA256:
            raise RuntimeError(f"{wheel}: silero_vad.onnx has sha256 {got}, want {ONNX_SHA256}")
        try:
            tmp.rename(target)
        except OSError:  # another process won the race, or a stale partial folder is there
            if not (onnx.is_file() and onnx.stat().st_size == ONNX_SIZE):
                shutil.rmtree(target, ignore_errors=True)
                tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def silero_data_dir() -> Path:
    """``silero_vad/data`` inside the extracted wheel (the ONNX, JIT and safetensors files)."""
    return silero_wheel_dir() / "silero_vad" / "data"
