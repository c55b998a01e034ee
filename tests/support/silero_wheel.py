"""The real Silero VAD model files for tests, from the silero-vad 6.2.3 wheel (see ``wheels``).

``silero_wheel_dir()`` returns a folder holding the extracted wheel (``silero_vad/data/...``),
with ``silero_vad.onnx`` checked against the sha256 in DESIGN.md.
"""

from __future__ import annotations

from pathlib import Path

from .wheels import SILERO, wheel_dir

VERSION = SILERO.version
ONNX_SHA256 = SILERO.files[0].sha256
ONNX_SIZE = SILERO.files[0].size


def silero_wheel_dir() -> Path:
    """The extracted silero-vad wheel (downloaded and extracted on first use)."""
    return wheel_dir(SILERO)


def silero_data_dir() -> Path:
    """``silero_vad/data`` inside the extracted wheel (the ONNX, JIT and safetensors files)."""
    return silero_wheel_dir() / "silero_vad" / "data"
