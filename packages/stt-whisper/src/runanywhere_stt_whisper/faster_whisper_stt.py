"""Whisper speech-to-text on CTranslate2 models, decoded by faster-whisper.

::

    stt = FasterWhisperSTTAdapter(language="en", beam_size=5, vad=True)
    await stt.load_model("faster-whisper-tiny.en")     # and silero-vad, through the registry
    stt.on(TranscriptSegment, lambda s: print(f"[{s.start:6.2f}] {s.text}"))
    result = stt.transcribe_full(audio, 16000)         # Transcription: text, language, segments

The model comes through the registry like every other (download with ``model_loading``
progress, then the ``ctranslate2`` runtime, which gives a ``faster_whisper.WhisperModel``).
faster-whisper does the decoding as its own ``transcribe`` does it (30 s windows, timestamps,
beam search, temperature fallback, language detection on the first window), so our text is its
text: the tests hold the two to the same words on the same audio and settings. What this adapter
adds:

- the ``STTAdapter`` interface and events of runanywhere: ``transcript_segment`` for each
  segment as soon as it is decoded (``stream()`` yields them too), ``transcript`` at the end,
  ``error`` on a failure; results as :class:`~runanywhere.adapters.Transcription`;
- any sample rate in (resampled to 16 kHz with soxr), checks of the language against the model;
- VAD through OUR Silero adapter (``vad=True``: the catalog's ``silero-vad``, loaded through the
  same registry; or any loaded ``VADAdapter``) instead of faster-whisper's bundled second copy:
  only the stretches of speech it finds are decoded, as faster-whisper's ``clip_timestamps``
  (see :mod:`.speech_clips`), so segment times are times in the audio as given. The VAD runs
  with faster-whisper's own defaults for this job (2 s of silence end a stretch, 0.4 s of
  padding each side), which ``vad_options`` can change.

Other faster-whisper ``transcribe`` options (``temperature``, ``initial_prompt``,
``condition_on_previous_text``, ``without_timestamps``, ...) pass through ``decode_options``;
a name it does not know is refused when the adapter is made.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from runanywhere import Result
from runanywhere.adapters import (
    AdapterError,
    BaseAdapter,
    ModelLoaded,
    ModelLoading,
    RegistryLike,
    Transcript,
    Transcription,
    TranscriptionStream,
    TranscriptSegment,
    VADAdapter,
    create_adapter,
)
from runanywhere.adapters.audio import as_mono_float32, read_audio, resample
from runanywhere.adapters.base import STTEvent
from runanywhere.errors import AudioError, ModelError, TranscriptionError

from .speech_clips import SpeechClips

SAMPLE_RATE = 16000

#: Silero settings faster-whisper uses for its ``vad_filter`` (its ``VadOptions`` defaults): long
#: pauses only split the speech, and each stretch keeps a margin, so no word is clipped.
VAD_DEFAULTS: dict[str, Any] = {"min_speech_duration_ms": 0, "min_silence_duration_ms": 2000,
                                "speech_pad_ms": 400}

#: faster-whisper ``transcribe`` parameters this adapter sets itself (or replaces: the VAD).
_OWN_OPTIONS = {"audio", "language", "task", "beam_size", "vad_filter", "vad_parameters",
                "clip_timestamps", "log_progress"}


def _decode_option_names() -> set[str]:
    from faster_whisper import WhisperModel

    return set(inspect.signature(WhisperModel.transcribe).parameters) - {"self"}


class FasterWhisperSTTAdapter(BaseAdapter[STTEvent]):
    """Speech-to-text with Whisper in CTranslate2 format (faster-whisper).

    ``language=None`` detects it (multilingual models; English-only ones are ``"en"``);
    ``task="translate"`` gives English text; ``beam_size`` as faster-whisper (5); ``vad``: False,
    True (load ``vad_model_id`` through the registry with ``vad_options``) or a loaded
    ``VADAdapter``.
    """

    model_types: ClassVar[tuple[str, ...]] = ("stt",)
    formats: ClassVar[tuple[str, ...]] = ("ctranslate2",)
    events = (ModelLoading, ModelLoaded, AdapterError, TranscriptSegment, Transcript)
    runtime = "ctranslate2"
    default_model_id = "faster-whisper-tiny.en"

    def __init__(self, registry: RegistryLike | None = None, *, language: str | None = None,
                 task: str = "transcribe", beam_size: int = 5, vad: bool | VADAdapter = False,
                 vad_model_id: str = "silero-vad", vad_options: dict[str, Any] | None = None,
                 **decode_options: Any) -> None:
        super().__init__(registry)
        if task not in ("transcribe", "translate"):
            raise ValueError(f"task must be 'transcribe' or 'translate', got {task!r}")
        if not isinstance(beam_size, int) or beam_size < 1:
            raise ValueError(f"beam_size must be a positive integer, got {beam_size!r}")
        own = sorted(set(decode_options) & _OWN_OPTIONS)
        if own:
            raise ValueError(f"set {', '.join(own)} through the adapter's own options "
                             "(language, task, beam_size, vad)")
        unknown = sorted(set(decode_options) - _decode_option_names())
        if unknown:
            raise ValueError(f"faster-whisper's transcribe has no option {', '.join(unknown)}")
        self.language = language
        self.task = task
        self.beam_size = beam_size
        self.decode_options = decode_options
        self.vad_model_id = vad_model_id
        self.vad_options = {**VAD_DEFAULTS, **(vad_options or {})}
        self.vad: VADAdapter | None = None if isinstance(vad, bool) else vad
        self._vad_wanted = vad is not False
        #: The language of the last transcription (given or detected).
        self.detected_language: str | None = None

    # -- loading -----------------------------------------------------------------------------------
    @classmethod
    def from_dir(cls, folder: str | Path, *, runtime_options: dict[str, Any] | None = None,
                 **kwargs: Any) -> FasterWhisperSTTAdapter:
        """An adapter on a local CTranslate2 Whisper folder (no registry; ``vad`` must then be a
        loaded ``VADAdapter`` or False)."""
        from .ct2_runtime import CTranslate2Runtime

        adapter = cls(**kwargs)
        if adapter._vad_wanted and adapter.vad is None:
            raise ValueError("from_dir: pass vad= a loaded VADAdapter (there is no registry to "
                             "load silero-vad from)")
        model = CTranslate2Runtime().load(Path(folder), None, **(runtime_options or {}))
        adapter._attach("faster-whisper", Path(folder), model)
        return adapter

    async def load_model(self, model_id: str | None = None, **options: Any
                         ) -> Result[None, ModelError]:
        """Load the VAD first when ``vad=True`` (its progress comes as ``model_loading`` with
        its own id), then the Whisper model; ``options`` go to the ``ctranslate2`` runtime."""
        if self._vad_wanted and self.vad is None:
            try:  # the VAD's adapter may live in a package that is not installed
                vad = create_adapter(self._vad_adapter_name(), self.registry,
                                     **self.vad_options)
            except ModelError as e:
                return self._fail(self.vad_model_id, e)
            vad.on(ModelLoading, self._dispatch)
            loaded = await vad.load_model(self.vad_model_id)
            if not loaded.success:
                return self._fail(self.vad_model_id, loaded.error)
            self.vad = vad
        return await super().load_model(model_id, **options)

    def _vad_adapter_name(self) -> str:
        """The adapter that runs ``vad_model_id``: what its catalog entry says, else Silero."""
        try:
            meta = getattr(self.registry, "get_model", lambda _id: None)(self.vad_model_id)
        except ModelError:  # not in the catalog: loading it will say so
            meta = None
        name = getattr(meta, "adapter_name", None)
        return name if isinstance(name, str) else "silero-vad"

    def _attach(self, model_id: str, path: Path, model: Any) -> None:
        if not callable(getattr(model, "transcribe", None)) or not hasattr(model, "model"):
            raise ModelError(f"expected a faster_whisper.WhisperModel from the ctranslate2 "
                             f"runtime, got {type(model).__name__}")
        self.model = model
        self._check_language()

    @property
    def is_multilingual(self) -> bool:
        return bool(self.require_model().model.is_multilingual)

    def _check_language(self) -> None:
        if self.language is None or self.model is None:
            return
        known = list(self.model.supported_languages)
        if self.language not in known:
            if known == ["en"]:
                raise TranscriptionError(f"this Whisper model is English-only; it cannot take "
                                         f"language {self.language!r}")
            raise TranscriptionError(f"unknown language {self.language!r} (this model knows: "
                                     f"{', '.join(known)})")

    # -- transcription -----------------------------------------------------------------------------
    def stream(self, audio: ArrayLike, sample_rate: int = SAMPLE_RATE) -> TranscriptionStream:
        """Segments as they are decoded; the language is known (detected) before the first.

        Each segment is also emitted as ``transcript_segment``; the ``transcript`` event comes
        when the stream is used up.
        """
        try:
            model = self.require_model()
            self._check_language()
            a = self._prepare(audio, sample_rate)
        except ModelError as e:
            self.emit(AdapterError(e, self.model_id))
            raise
        duration = a.size / SAMPLE_RATE
        options = dict(self.decode_options)
        clips: SpeechClips | None = None
        if self.vad is not None and a.size:
            clips = SpeechClips.from_segments(self.vad.detect(a, SAMPLE_RATE), duration)
            options["clip_timestamps"] = clips.clip_timestamps
        if a.size == 0 or (clips is not None and not clips.spans):  # no audio, or no speech
            language = self.language or (None if self.is_multilingual else "en")
            self.detected_language = language
            return TranscriptionStream(self._segments((), clips, duration), language=language,
                                       duration=duration)
        try:
            raw, info = model.transcribe(a, language=self.language, task=self.task,
                                         beam_size=self.beam_size, **options)
        except Exception as e:  # the encoder or language detection failed
            raise self._error(e) from e
        self.detected_language = info.language
        return TranscriptionStream(self._segments(raw, clips, duration), language=info.language,
                                   duration=duration)

    def transcribe_full(self, audio: ArrayLike, sample_rate: int = SAMPLE_RATE) -> Transcription:
        """Text, language, duration and timed segments of mono audio (any length)."""
        return self.stream(audio, sample_rate).result()

    def transcribe(self, audio: ArrayLike, sample_rate: int = SAMPLE_RATE) -> str:
        """The text spoken in mono audio (the ``STTAdapter`` protocol)."""
        return self.transcribe_full(audio, sample_rate).text

    def transcribe_file(self, path: str | Path) -> Transcription:
        """Any file soundfile reads (WAV, FLAC, OGG, MP3, ...), resampled to 16 kHz."""
        audio, sr = read_audio(path, target_sr=SAMPLE_RATE)
        return self.transcribe_full(audio, sr)

    def _prepare(self, audio: ArrayLike, sample_rate: int) -> NDArray[np.float32]:
        try:
            a = as_mono_float32(audio)
        except ValueError as e:
            raise AudioError(f"cannot transcribe this audio: {e}") from e
        if sample_rate <= 0:
            raise AudioError(f"sample rate must be positive, got {sample_rate}")
        if not np.all(np.isfinite(a)):
            raise AudioError("the audio holds NaN or infinite samples")
        return resample(a, sample_rate, SAMPLE_RATE) if sample_rate != SAMPLE_RATE else a

    def _segments(self, raw: Iterable[Any], clips: SpeechClips | None, duration: float
                  ) -> Iterator[TranscriptSegment]:
        texts: list[str] = []
        try:
            for index, seg in enumerate(raw):
                start, end = float(seg.start), float(seg.end)
                if clips is not None:
                    start, end = clips.clamp(start, end)
                end = min(max(end, 0.0), duration)
                out = TranscriptSegment(min(max(start, 0.0), end), end, seg.text, index)
                texts.append(seg.text)
                self.emit(out)
                yield out
        except GeneratorExit:
            raise
        except Exception as e:
            raise self._error(e) from e
        self.emit(Transcript("".join(texts).strip()))

    def _error(self, e: BaseException) -> ModelError:
        err = e if isinstance(e, ModelError) else TranscriptionError(
            f"{self.model_id or 'Whisper'}: decoding failed: {e}")
        self.emit(AdapterError(err, self.model_id))
        return err


__all__ = ["VAD_DEFAULTS", "FasterWhisperSTTAdapter"]
