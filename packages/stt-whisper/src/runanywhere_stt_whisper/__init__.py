"""runanywhere-stt-whisper: Whisper speech-to-text for runanywhere.

Plugs into the core through entry points:

* the adapter ``whisper``: Whisper's ONNX export (encoder + decoder with caches), decoded here
  (the default for catalog type ``stt`` + format ``onnx``);
* the adapter ``faster-whisper``: Whisper models in CTranslate2 format, decoded by faster-whisper
  (the default for ``stt`` + ``ctranslate2``), and the runtime ``ctranslate2`` that loads such a
  model folder.

``runanywhere.adapters.get_adapter("whisper")`` finds them once this package is installed.
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
