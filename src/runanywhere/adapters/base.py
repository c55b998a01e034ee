"""The adapter base: typed events, and model loading through the registry (the seed's pattern).

An adapter wraps one kind of model (VAD, STT, TTS) behind a small task interface and reports what
it does through events. Events are frozen dataclasses; subscribe by class (typed) or by the seed's
event name::

    vad = SileroVADAdapter()
    vad.on(ModelLoading, lambda e: print(f"{e.progress:5.1f}% {e.message}"))
    vad.on("speech_start", lambda e: print("speech at", e.time_s))
    result = await vad.load_model("silero-vad")   # Result[None]: never raises for model errors

``load_model`` follows the seed: ``registry.download_model`` (progress -> ``model_loading``
events), then ``registry.load_model(id, runtime)`` (-> ``model_loaded``); on failure it emits
``error`` and returns the error ``Result``. Handlers run synchronously in the thread that emits
(download progress may come from a worker thread); an exception in a handler is logged and does
not stop the others.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import (
    TYPE_CHECKING,
    Any,
    ClassVar,
    Generic,
    Protocol,
    TypeVar,
    overload,
    runtime_checkable,
)

from ..errors import ModelError
from ..result import Result

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

log = logging.getLogger("runanywhere.adapters")

# -- events ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Event:
    """Base of every adapter event; ``name`` is the seed's event name."""

    name: ClassVar[str] = "event"


@dataclass(frozen=True, slots=True)
class ModelLoading(Event):
    """Download/load progress: ``progress`` in percent (0-100)."""

    name: ClassVar[str] = "model_loading"
    model_id: str
    progress: float
    message: str


@dataclass(frozen=True, slots=True)
class ModelLoaded(Event):
    name: ClassVar[str] = "model_loaded"
    model_id: str
    load_time_s: float


@dataclass(frozen=True, slots=True)
class AdapterError(Event):
    name: ClassVar[str] = "error"
    error: BaseException
    model_id: str | None = None


@dataclass(frozen=True, slots=True)
class SpeechStart(Event):
    """Speech begins ``time_s`` seconds into the audio."""

    name: ClassVar[str] = "speech_start"
    time_s: float


@dataclass(frozen=True, slots=True)
class SpeechEnd(Event):
    name: ClassVar[str] = "speech_end"
    time_s: float
    duration_s: float


@dataclass(frozen=True, slots=True)
class Transcript(Event):
    """Speech-to-text finished: the whole text."""

    name: ClassVar[str] = "transcript"
    text: str


@dataclass(frozen=True, slots=True)
class TranscriptSegment(Event):
    """One stretch of recognized speech, emitted as soon as it is decoded.

    ``text`` is what was said from ``start`` to ``end`` (seconds into the audio the caller gave,
    also when a VAD cut silence out first), as the model wrote it: Whisper begins a word with
    its space (``" Hello there."``), so joining the segments' texts gives the whole text.
    ``index`` counts from 0.
    """

    name: ClassVar[str] = "transcript_segment"
    start: float
    end: float
    text: str
    index: int = 0

    @property
    def duration(self) -> float:
        return self.end - self.start

    def to_dict(self) -> dict[str, Any]:
        """``{"start", "end", "text"}``: the shape of ``runanywhere transcribe --json``."""
        return {"start": round(self.start, 3), "end": round(self.end, 3), "text": self.text}


@dataclass(frozen=True, slots=True)
class SynthesisStarted(Event):
    """Text-to-speech began on ``text``, which will come out in ``chunks`` pieces (sentences)."""

    name: ClassVar[str] = "synthesis_started"
    text: str
    chunks: int


@dataclass(frozen=True, slots=True, eq=False)
class AudioChunk(Event):
    """One piece of synthesized speech (a sentence), ready to play while the next is made.

    ``audio`` is mono float32 at ``sample_rate``; ``index`` counts from 0; ``text`` is what it
    says; ``start_s`` is where it starts in the whole utterance.
    """

    name: ClassVar[str] = "audio_chunk"
    audio: NDArray[np.float32]
    sample_rate: int
    index: int
    text: str
    start_s: float = 0.0

    @property
    def duration_s(self) -> float:
        return float(len(self.audio)) / self.sample_rate if self.sample_rate else 0.0


@dataclass(frozen=True, slots=True)
class SynthesisDone(Event):
    """Text-to-speech finished: ``samples`` at ``sample_rate`` in ``chunks`` pieces.

    ``elapsed_s`` is the wall time; ``real_time_factor`` is elapsed time over audio time.
    """

    name: ClassVar[str] = "synthesis_done"
    text: str
    chunks: int
    samples: int
    sample_rate: int
    elapsed_s: float

    @property
    def duration_s(self) -> float:
        return self.samples / self.sample_rate if self.sample_rate else 0.0

    @property
    def real_time_factor(self) -> float:
        return self.elapsed_s / self.duration_s if self.duration_s else float("inf")


#: The events each kind of adapter emits (type arguments of ``BaseAdapter``).
CommonEvent = ModelLoading | ModelLoaded | AdapterError
VADEvent = ModelLoading | ModelLoaded | AdapterError | SpeechStart | SpeechEnd
STTEvent = ModelLoading | ModelLoaded | AdapterError | TranscriptSegment | Transcript
TTSEvent = (ModelLoading | ModelLoaded | AdapterError | SynthesisStarted | AudioChunk
            | SynthesisDone)

EventsT = TypeVar("EventsT", bound=Event)
E = TypeVar("E", bound=Event)
Handler = Callable[[Any], object]

# -- task interfaces -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SpeechSegment:
    """A stretch of speech, in seconds from the start of the audio."""

    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


@runtime_checkable
class VADAdapter(Protocol):
    def detect(self, audio: NDArray[np.float32], sample_rate: int = 16000
               ) -> list[SpeechSegment]:
        """The speech segments of a mono float32 signal (samples in [-1, 1])."""
        ...


@runtime_checkable
class STTAdapter(Protocol):
    def transcribe(self, audio: NDArray[np.float32], sample_rate: int = 16000) -> str:
        """The text spoken in a mono float32 signal."""
        ...


@runtime_checkable
class TTSAdapter(Protocol):
    def synthesize(self, text: str) -> tuple[NDArray[np.float32], int]:
        """Mono float32 audio for ``text`` and its sample rate."""
        ...


class RegistryLike(Protocol):
    """What an adapter needs from ``runanywhere.registry.ModelRegistry``."""

    def download_model(self, model_id: str, on_progress: Callable[[float, str], None] | None = ...
                       ) -> Awaitable[Result[Path, ModelError]]: ...

    def load_model(self, model_id: str, runtime: str | None = ..., **options: Any
                   ) -> Awaitable[Result[Any, ModelError]]: ...


# -- the base --------------------------------------------------------------------------------------


class BaseAdapter(Generic[EventsT]):
    """Typed events plus ``load_model`` through the registry. Subclasses set the class fields."""

    #: Event classes this adapter emits; ``on`` rejects any other (catches typos).
    events: ClassVar[tuple[type[Event], ...]] = (ModelLoading, ModelLoaded, AdapterError)
    #: Runtime passed to ``registry.load_model``.
    runtime: ClassVar[str] = "onnx"
    #: Catalog id used when ``load_model()`` is called without one.
    default_model_id: ClassVar[str | None] = None
    #: The catalog model types this adapter runs (``("vad",)``); ``runanywhere adapters``
    #: lists them.
    model_types: ClassVar[tuple[str, ...]] = ()
    #: The catalog formats it reads (``("onnx",)``).
    formats: ClassVar[tuple[str, ...]] = ()

    def __init__(self, registry: RegistryLike | None = None) -> None:
        self._registry = registry
        self._handlers: dict[type[Event], list[Handler]] = {}
        self._lock = threading.Lock()
        self.model: Any = None
        self.model_id: str | None = None

    # -- registry ----------------------------------------------------------------------------------
    @property
    def registry(self) -> RegistryLike:
        """The registry given to the constructor, else the process-wide one (made on first use)."""
        if self._registry is None:
            from ..registry import ModelRegistry

            self._registry = ModelRegistry.get_instance()
        return self._registry

    # -- events ------------------------------------------------------------------------------------
    def _event_class(self, event: type[Event] | str) -> type[Event]:
        for cls in self.events:
            if (event == cls.name) if isinstance(event, str) else (event is cls):
                return cls
        known = ", ".join(f"{c.__name__} ('{c.name}')" for c in self.events)
        label = event if isinstance(event, str) else event.__name__
        raise ValueError(f"{type(self).__name__} emits no event {label!r} (it emits: {known})")

    @overload
    def on(self, event: type[E], handler: Callable[[E], object]) -> Callable[[], None]: ...

    @overload
    def on(self, event: str, handler: Handler) -> Callable[[], None]: ...

    def on(self, event: type[Event] | str, handler: Handler) -> Callable[[], None]:
        """Call ``handler(payload)`` on each ``event``; returns a function that unsubscribes."""
        cls = self._event_class(event)
        with self._lock:
            self._handlers.setdefault(cls, []).append(handler)
        return lambda: self.off(cls, handler)

    def off(self, event: type[Event] | str, handler: Handler | None = None) -> None:
        """Remove one handler of ``event`` (or all of them when ``handler`` is None)."""
        cls = self._event_class(event)
        with self._lock:
            handlers = self._handlers.get(cls, [])
            if handler is None:
                handlers.clear()
            elif handler in handlers:
                handlers.remove(handler)

    def emit(self, event: EventsT) -> None:
        """Deliver ``event`` to its handlers, in subscription order."""
        self._dispatch(event)

    def _dispatch(self, event: Event) -> None:
        with self._lock:
            handlers = list(self._handlers.get(type(event), ()))
        for handler in handlers:
            try:
                handler(event)
            except Exception:
                log.exception("handler %r of %s raised", handler, type(event).__name__)

    # -- loading -----------------------------------------------------------------------------------
    async def load_model(self, model_id: str | None = None, **options: Any
                         ) -> Result[None, ModelError]:
        """Download (with ``model_loading`` progress) and load into the runtime.

        Returns ``Result.ok(None)`` after emitting ``model_loaded``, or the error ``Result`` after
        emitting ``error``. ``options`` go to the runtime (e.g. ``providers=[...]``).
        """
        mid = model_id or self.default_model_id
        if not mid:
            return self._fail("", ModelError(f"{type(self).__name__}.load_model needs a model id"))
        start = time.perf_counter()

        def progress(percent: float, message: str) -> None:
            self._dispatch(ModelLoading(mid, float(percent), message or f"Loading {mid}..."))

        progress(0.0, f"Loading {mid}...")
        try:
            downloaded = await self.registry.download_model(mid, on_progress=progress)
            if not downloaded.success:
                return self._fail(mid, downloaded.error)
            path = Path(downloaded.unwrap())
            loaded = await self._load_runtime(mid, path, **options)
            if not loaded.success:
                return self._fail(mid, loaded.error)
            self._attach(mid, path, loaded.value)
            hold = getattr(self.registry, "hold_loaded", None)
            if hold is not None:  # this adapter runs on the model: not unloaded for room
                hold(mid, self)
        except ModelError as e:
            return self._fail(mid, e)
        except Exception as e:  # a bug or a runtime's own exception: still an error Result
            err = ModelError(f"loading {mid} into {type(self).__name__} failed: {e}")
            err.__cause__ = e
            return self._fail(mid, err)
        self.model_id = mid
        self._dispatch(ModelLoaded(mid, time.perf_counter() - start))
        return Result.ok(None)

    def load_model_sync(self, model_id: str | None = None, **options: Any
                        ) -> Result[None, ModelError]:
        """``load_model`` for scripts and notebooks (through the registry's blocking bridge)."""
        from ..bridge import run_blocking

        return run_blocking(self.load_model(model_id, **options))

    async def _load_runtime(self, model_id: str, path: Path, **options: Any
                            ) -> Result[Any, ModelError]:
        """Load the downloaded model; the default asks the registry for ``self.runtime``."""
        return await self.registry.load_model(model_id, runtime=self.runtime, **options)

    def _attach(self, model_id: str, path: Path, model: Any) -> None:
        """Keep the loaded model (subclasses build their state from it)."""
        self.model = model

    def _fail(self, model_id: str, error: ModelError | None) -> Result[None, ModelError]:
        err = error if error is not None else ModelError(f"loading {model_id} failed")
        self._dispatch(AdapterError(err, model_id or None))
        return Result.err(err)

    @classmethod
    def describe(cls, path: Path, meta: Any) -> dict[str, str]:
        """What a cached model's files say about themselves, for ``runanywhere info`` (label ->
        value, read without loading the model; ``meta`` is its ``ModelMetadata``). Nothing by
        default; an adapter overrides it (the llama adapter: a GGUF's architecture, parameters,
        context length, quantization, chat template). Raises a ``ModelError`` for a file that
        is not what its format says."""
        return {}

    @property
    def is_loaded(self) -> bool:
        return self.model is not None

    def require_model(self) -> Any:
        if self.model is None:
            raise ModelError(f"{type(self).__name__}: no model loaded (call load_model first)")
        return self.model


__all__ = [
    "AdapterError",
    "AudioChunk",
    "BaseAdapter",
    "CommonEvent",
    "Event",
    "ModelLoaded",
    "ModelLoading",
    "RegistryLike",
    "STTAdapter",
    "STTEvent",
    "SpeechEnd",
    "SpeechSegment",
    "SpeechStart",
    "SynthesisDone",
    "SynthesisStarted",
    "TTSAdapter",
    "TTSEvent",
    "Transcript",
    "TranscriptSegment",
    "VADAdapter",
    "VADEvent",
]
