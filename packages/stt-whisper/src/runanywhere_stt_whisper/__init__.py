"""runanywhere-stt-whisper: Whisper speech-to-text (ONNX export) for runanywhere.

Registers the adapter ``whisper`` under the entry point group ``runanywhere.adapters``, so
``runanywhere.adapters.get_adapter("whisper")`` finds it once this package is installed.
"""

from __future__ import annotations

from .onnx_whisper import (
    WhisperConfig,
    WhisperModel,
    WhisperSTTAdapter,
    find_whisper_files,
    log_mel_spectrogram,
    whisper_features,
)

#: The package's version: its single source (pyproject.toml reads it).
__version__ = "0.2.0"

__all__ = [
    "WhisperConfig",
    "WhisperModel",
    "WhisperSTTAdapter",
    "__version__",
    "find_whisper_files",
    "log_mel_spectrogram",
    "whisper_features",
]
