"""runanywhere-tts-speecht5: SpeechT5 text-to-speech (Transformers.js ONNX export) for runanywhere.

Registers the adapter ``speecht5`` under the entry point group ``runanywhere.adapters``, so
``runanywhere.adapters.get_adapter("speecht5")`` finds it once this package is installed.
"""

from __future__ import annotations

from .speecht5 import (
    CharTokenizer,
    SpeechT5Model,
    SpeechT5TTSAdapter,
    StopCriteria,
    find_speecht5_files,
    load_speaker,
)

#: The package's version: its single source (pyproject.toml reads it).
__version__ = "0.2.0"

__all__ = [
    "CharTokenizer",
    "SpeechT5Model",
    "SpeechT5TTSAdapter",
    "StopCriteria",
    "__version__",
    "find_speecht5_files",
    "load_speaker",
]
