"""runanywhere-tts-piper: Piper voices (VITS on ONNX Runtime, phonemes from espeak-ng) for
runanywhere, as the adapter ``piper``.

Installing this distribution registers the adapter through the entry point group
``runanywhere.adapters``; ``runanywhere.adapters.get_adapter("piper")`` then finds it. Importing
this package is cheap: the adapter (numpy, ctypes) loads on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

if TYPE_CHECKING:
    from .adapter import PiperTTSAdapter

__all__ = ["PiperTTSAdapter", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "PiperTTSAdapter":
        from .adapter import PiperTTSAdapter

        return PiperTTSAdapter
    raise AttributeError(f"module 'runanywhere_tts_piper' has no attribute {name!r}")
