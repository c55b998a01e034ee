"""Adapters: task-level wrappers (VAD, STT, TTS, LLM) over models the registry downloads and loads.

The core holds no adapter: each comes from a package of its own that registers it under the
entry point group ``runanywhere.adapters``, so any package plugs in by being installed::

    [project.entry-points."runanywhere.adapters"]
    piper-tts = "my_pkg.piper:PiperTTSAdapter"

``get_adapter(name)`` returns the adapter class (or factory) by name::

    vad = get_adapter("silero-vad")()    # pip install runanywhere-vad-silero (or runanywhere[vad])
    await vad.load_model()               # catalog id "silero-vad" by default
    segments = vad.detect(audio, 16000)

The project's own adapters are known by name even when their package is missing
(``KNOWN_ADAPTERS``): asking for one raises
:class:`~runanywhere.errors.PluginNotInstalledError` naming the package to install. Their
classes keep their old import path (``from runanywhere.adapters import SileroVADAdapter``),
resolved through the same table.

Importing this package is cheap: the base types come from ``.base`` (no numpy); the TTS base
and audio helpers (numpy) and the adapters themselves load on first use.

The LLM task interface (``LLMAdapter``, ``GenerationStream``, ``GenerationResult``, its events)
lives in ``.llm`` and is re-exported here, loaded on first use.

An adapter class may describe a cached model for ``runanywhere info`` with an optional
``describe(path, meta) -> dict[str, str]`` classmethod (``BaseAdapter.describe``): what its
files say about themselves (a GGUF's architecture, parameters, context length, ...), read
without loading the model; ``info`` calls it when the model is cached and the adapter
installed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import ModelError, PluginNotInstalledError, UnknownAdapterError
from ..plugins import PluginTable
from .base import (
    AdapterError,
    AudioChunk,
    BaseAdapter,
    CommonEvent,
    Event,
    ModelLoaded,
    ModelLoading,
    RegistryLike,
    SpeechEnd,
    SpeechSegment,
    SpeechStart,
    STTAdapter,
    STTEvent,
    SynthesisDone,
    SynthesisStarted,
    Transcript,
    TranscriptSegment,
    TTSAdapter,
    TTSEvent,
    VADAdapter,
    VADEvent,
)
from .languages import language_code, language_name
from .stt import SegmentedSTTAdapter, Transcription, TranscriptionStream, transcription_of

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
    from .tts import TTSBase, split_sentences

ENTRY_POINT_GROUP = "runanywhere.adapters"

#: Built-in adapters: name -> ("module:attribute", pip extra). None: every adapter is a package.
BUILTIN_ADAPTERS: dict[str, tuple[str, str]] = {}

#: The project's adapters, each in a package of its own: name -> (distribution, core extra).
#: Asking for one that is not installed names the package (``pip install runanywhere-vad-silero``).
KNOWN_ADAPTERS: dict[str, tuple[str, str]] = {
    "silero-vad": ("runanywhere-vad-silero", "vad"),
    "whisper": ("runanywhere-stt-whisper", "stt"),
    "faster-whisper": ("runanywhere-stt-whisper", "stt"),
    "speecht5": ("runanywhere-tts-speecht5", "tts"),
    "system-tts": ("runanywhere-tts-system", "tts"),
    "piper": ("runanywhere-tts-piper", "tts"),
    "llama": ("runanywhere-llm-llamacpp", "llm"),
    "openai": ("runanywhere-llm-openai", "llm"),
    "openai-stt": ("runanywhere-llm-openai", "llm"),
    "openai-tts": ("runanywhere-llm-openai", "llm"),
}

ADAPTERS = PluginTable(ENTRY_POINT_GROUP, "adapter", BUILTIN_ADAPTERS, UnknownAdapterError,
                       not_installed=KNOWN_ADAPTERS)

#: Helpers of this package that need numpy: name -> module.
_LAZY = {
    "TTSBase": "runanywhere.adapters.tts",
    "split_sentences": "runanywhere.adapters.tts",
    "read_wav": "runanywhere.adapters.audio",
    "read_audio": "runanywhere.adapters.audio",
    "save_wav": "runanywhere.adapters.audio",
    **{name: "runanywhere.adapters.llm" for name in (
        "ChatMessage", "Completion", "Emit", "FairSlots", "FirstToken", "GenerationDone",
        "GenerationOptions", "GenerationResult", "GenerationStream", "LLMAdapter", "LLMRequest",
        "Timings", "Usage")},
}

#: The adapter classes that lived here before they became packages: class name -> adapter name.
_MOVED = {
    "SileroVADAdapter": "silero-vad",
    "WhisperSTTAdapter": "whisper",
    "SpeechT5TTSAdapter": "speecht5",
    "SystemTTSAdapter": "system-tts",
}

AdapterFactory = Callable[..., Any]


def available_adapters() -> list[str]:
    """Names of the installed adapters, sorted."""
    return ADAPTERS.names()


def get_adapter(name: str) -> AdapterFactory:
    """The adapter class (or factory) called ``name``.

    Raises :class:`~runanywhere.errors.PluginNotInstalledError` (naming the package to install)
    for one of the project's adapters whose package is missing,
    :class:`~runanywhere.errors.UnknownAdapterError` (listing the installed names) for a name
    nobody provides, or :class:`~runanywhere.errors.RuntimeUnavailableError` when its
    dependencies are missing.
    """
    loaded = ADAPTERS.load(name)
    if not callable(loaded):
        raise ModelError(f"adapter '{name}' is not an adapter class or factory")
    return loaded  # type: ignore[no-any-return]


def create_adapter(name: str, *args: Any, **kwargs: Any) -> Any:
    """``get_adapter(name)(*args, **kwargs)``."""
    return get_adapter(name)(*args, **kwargs)


def __getattr__(name: str) -> Any:
    moved = _MOVED.get(name)
    if moved is not None:  # raises PluginNotInstalledError (an ImportError) naming the package
        value = get_adapter(moved)
    elif name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
    else:
        raise AttributeError(f"module 'runanywhere.adapters' has no attribute {name!r}")
    globals()[name] = value
    return value


__all__ = [
    "ADAPTERS",
    "BUILTIN_ADAPTERS",
    "ENTRY_POINT_GROUP",
    "KNOWN_ADAPTERS",
    "AdapterError",
    "AudioChunk",
    "BaseAdapter",
    "ChatMessage",
    "CommonEvent",
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
    "PluginNotInstalledError",
    "RegistryLike",
    "STTAdapter",
    "STTEvent",
    "SegmentedSTTAdapter",
    "SpeechEnd",
    "SpeechSegment",
    "SpeechStart",
    "SynthesisDone",
    "SynthesisStarted",
    "TTSAdapter",
    "TTSBase",
    "TTSEvent",
    "Timings",
    "Transcript",
    "TranscriptSegment",
    "Transcription",
    "TranscriptionStream",
    "UnknownAdapterError",
    "Usage",
    "VADAdapter",
    "VADEvent",
    "available_adapters",
    "create_adapter",
    "get_adapter",
    "language_code",
    "language_name",
    "read_audio",
    "read_wav",
    "save_wav",
    "split_sentences",
    "transcription_of",
]
