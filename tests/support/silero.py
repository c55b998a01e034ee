"""The real Silero VAD model, from the silero-vad wheel on PyPI (DESIGN §3)."""

from __future__ import annotations

import functools
import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

WHEEL = "silero-vad==6.2.3"
ONNX_SHA256 = "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3"


@functools.lru_cache(maxsize=1)
def silero_onnx_bytes() -> bytes:
    """silero_vad.onnx: from the installed package, else from the wheel (downloaded once)."""
    from importlib import metadata

    try:
        p = Path(str(metadata.distribution("silero-vad").locate_file(
            "silero_vad/data/silero_vad.onnx")))
        data = p.read_bytes()
    except (metadata.PackageNotFoundError, OSError):
        cache = Path.home() / ".cache" / "runanywhere-test"
        wheels = sorted(cache.glob("silero_vad-*.whl"))
        if not wheels:
            cache.mkdir(parents=True, exist_ok=True)
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", WHEEL,
                            "-d", str(cache)], check=True)
            wheels = sorted(cache.glob("silero_vad-*.whl"))
        with zipfile.ZipFile(wheels[-1]) as z:
            data = z.read("silero_vad/data/silero_vad.onnx")
    assert hashlib.sha256(data).hexdigest() == ONNX_SHA256
    return data
