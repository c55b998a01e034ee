"""runanywhere-tts-system: the machine's own speech engine (espeak-ng, espeak, say) as a
runanywhere TTS adapter.

Registers the adapter ``system-tts`` under the entry point group ``runanywhere.adapters``, so
``runanywhere.adapters.get_adapter("system-tts")`` finds it once this package is installed.
"""

from __future__ import annotations

from .system_tts import SpeechEngine, SystemTTSAdapter, Voice, find_engine

#: The package's version: its single source (pyproject.toml reads it).
__version__ = "0.2.0"

__all__ = [
    "SpeechEngine",
    "SystemTTSAdapter",
    "Voice",
    "__version__",
    "find_engine",
]
