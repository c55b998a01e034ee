"""The real Silero VAD model bytes for tests, from the silero-vad wheel."""

from __future__ import annotations

import functools

from .silero_wheel import silero_data_dir


@functools.lru_cache(maxsize=1)
def silero_onnx_bytes() -> bytes:
    return (silero_data_dir() / "silero_vad.onnx").read_bytes()
