"""Adapters: task-level wrappers (VAD, STT, TTS, LLM) over models the registry downloads and loads.

``get_adapter(name)`` returns an adapter class (or factory) by name: the built-ins
(``silero-vad``, ``whisper``, ``speecht5``, ``system-tts``) first, then the entry points of
the group ``runanywhere.adapters``, so a third-party adapter package plugs in by being
installed::

    [project.entry-points."runanywhere.adapters"]
    piper-tts = "my_pkg.piper:PiperTTSAdapter"

    vad = get_adapter("silero-vad")()
    await vad.load_model()               # catalog id "silero-vad" by default
    segments = vad.detect(audio, 16000)

Importing this package is cheap: the base types come from ``.base`` (no numpy); the adapters
themselves load on first use and need their extra: ``onnx`` (VAD, Whisper), ``tts`` (SpeechT5:
onnxruntime + sentencepiece), ``audio`` (files and resampling; the system voice needs numpy).
The LLM task interface (``LLMAdapter``, ``GenerationStream``, ``GenerationResult``, its events)
lives in ``.llm`` and is re-exported here, loaded on first use; ``llm`` installs the llama.cpp
adapter package.

An adapter class may describe a cached model for ``runanywhere info`` with an optional
``describe(path, meta) -> dict[str, str]`` classmethod (``BaseAdapter.describe``): what its
files say about themselves (a GGUF's architecture, parameters, context length, ...), read
without loading the model; ``info`` calls it when the model is cached and the adapter
installed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import ModelError, RuntimeUnavailableError, UnknownAdapterError, install_hint
from ..plugins import PluginTable
from .base import (
    AdapterError,
    AudioChunk,
    BaseAdapter,
    Event,
    ModelLoaded,
    ModelLoading,
    RegistryLike,
    SpeechEnd,
    SpeechSegment,
    SpeechStart,
    STTAdapter,
    SynthesisDone,
    SynthesisStarted,
    Transcript,
    TTSAdapter,
    VADAdapter,
)

if TYPE_CHECKING:
    from .audio import read_audio, read_wav, save_wav
    from .llm import (
        ChatMessage,
        Completion,
        Emit,
        FairSlots,
        FirstToken,
        GenerationDone,
        GenerationOptions,
        GenerationResult,
        GenerationStream,
        LLMAdapter,
        LLMRequest,
        Timings,
        Usage,
    )
    from .silero_vad import SileroVADAdapter
    from .speecht5 import SpeechT5TTSAdapter
    from .system_tts import SystemTTSAdapter
    from .whisper import WhisperSTTAdapter

ENTRY_POINT_GROUP = "runanywhere.adapters"

#: Built-in adapters: name -> ("module:attribute", pip extra).
BUILTIN_ADAPTERS: dict[str, tuple[str, str]] = {
    "silero-vad": ("runanywhere.adapters.silero_vad:SileroVADAdapter", "onnx"),
    "whisper": ("runanywhere.adapters.whisper:WhisperSTTAdapter", "onnx"),
    "speecht5": ("runanywhere.adapters.speecht5:SpeechT5TTSAdapter", "tts"),
    "system-tts": ("runanywhere.adapters.system_tts:SystemTTSAdapter", "audio"),
}

#: Adapters that come in their own distribution: name -> the extra that installs it.
PACKAGED_ADAPTERS: dict[str, str] = {"llama": "llm"}

ADAPTERS = PluginTable(ENTRY_POINT_GROUP, "adapter", BUILTIN_ADAPTERS, UnknownAdapterError)

_LAZY = {
    "SileroVADAdapter": "runanywhere.adapters.silero_vad",
    "WhisperSTTAdapter": "runanywhere.adapters.whisper",
    "SpeechT5TTSAdapter": "runanywhere.adapters.speecht5",
    "SystemTTSAdapter": "runanywhere.adapters.system_tts",
    "read_wav": "runanywhere.adapters.audio",
    "read_audio": "runanywhere.adapters.audio",
    "save_wav": "runanywhere.adapters.audio",
    **{name: "runanywhere.adapters.llm" for name in (
        "ChatMessage", "Completion", "Emit", "FairSlots", "FirstToken", "GenerationDone",
        "GenerationOptions", "GenerationResult", "GenerationStream", "LLMAdapter", "LLMRequest",
        "Timings", "Usage")},
}

AdapterFactory = Callable[..., Any]


def available_adapters() -> list[str]:
    """Names of the built-in and installed adapters, sorted."""
    return ADAPTERS.names()


def get_adapter(name: str) -> AdapterFactory:
    """The adapter class (or factory) called ``name``.

    Raises :class:`~runanywhere.errors.UnknownAdapterError` (listing the known names) or
    :class:`~runanywhere.errors.RuntimeUnavailableError` when its dependencies are missing.
    """
    try:
        loaded = ADAPTERS.load(name)
    except UnknownAdapterError:
        extra = PACKAGED_ADAPTERS.get(ADAPTERS.canonical(name))
        if extra is None:
            raise
        raise RuntimeUnavailableError(f"adapter '{name}' is not installed: {install_hint(extra)}"
                                      ) from None
    if not callable(loaded):
        raise ModelError(f"adapter '{name}' is not an adapter class or factory")
    return loaded  # type: ignore[no-any-return]


def create_adapter(name: str, *args: Any, **kwargs: Any) -> Any:
    """``get_adapter(name)(*args, **kwargs)``."""
    return get_adapter(name)(*args, **kwargs)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'runanywhere.adapters' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "ADAPTERS",
    "BUILTIN_ADAPTERS",
    "ENTRY_POINT_GROUP",
    "PACKAGED_ADAPTERS",
    "AdapterError",
    "AudioChunk",
    "BaseAdapter",
    "ChatMessage",
    "Completion",
    "Emit",
    "Event",
    "FairSlots",
    "FirstToken",
    "GenerationDone",
    "GenerationOptions",
    "GenerationResult",
    "GenerationStream",
    "LLMAdapter",
    "LLMRequest",
    "ModelLoaded",
    "ModelLoading",
    "RegistryLike",
    "STTAdapter",
    "SileroVADAdapter",
    "SpeechEnd",
    "SpeechSegment",
    "SpeechStart",
    "SpeechT5TTSAdapter",
    "SynthesisDone",
    "SynthesisStarted",
    "SystemTTSAdapter",
    "TTSAdapter",
    "Timings",
    "Transcript",
    "UnknownAdapterError",
    "Usage",
    "VADAdapter",
    "WhisperSTTAdapter",
    "available_adapters",
    "create_adapter",
    "get_adapter",
    "read_audio",
    "read_wav",
    "save_wav",
]
