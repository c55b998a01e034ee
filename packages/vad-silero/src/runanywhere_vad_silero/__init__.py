"""runanywhere-vad-silero: Silero VAD (ONNX) voice activity detection for runanywhere.

Registers the adapter ``silero-vad`` under the entry point group ``runanywhere.adapters``, so
``runanywhere.adapters.get_adapter("silero-vad")`` finds it once this package is installed.
"""

from __future__ import annotations

from .silero import SileroModel, SileroVADAdapter, SileroVADStream, speech_timestamps_from_probs

#: The package's version: its single source (pyproject.toml reads it).
__version__ = "0.2.0"

__all__ = [
    "SileroModel",
    "SileroVADAdapter",
    "SileroVADStream",
    "__version__",
    "speech_timestamps_from_probs",
]
