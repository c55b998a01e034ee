"""A spoken round trip: a voice says a sentence, the VAD finds it, a recognizer writes it down.

::

    report = await spoken_round_trip(registry, Path("/tmp/rt"))
    for line in report.lines():
        print(line)

Each adapter is found by name through the adapter table (``get_adapter``), so each step needs
its package; a step whose package is missing says which to install. Nothing is downloaded for
the voice or the recognizer: they are used when the cache holds them already.

1. **speak**: a real voice when one is cached (a catalog ``tts`` model run by the ``piper``
   adapter, ``piper-en-us-joe-medium`` first), in its deterministic mode (the same text gives
   the same samples); otherwise the system voice (``system-tts``: espeak-ng here). The speech,
   resampled to 16 kHz and framed by ``pad_s`` of silence, is saved as ``round-trip.wav`` in
   ``folder``;
2. **detect**: the ``silero-vad`` adapter loads ``vad_model`` through the registry (a download
   if it is not cached and the registry is online) and finds the speech; the report says
   whether it lies where the voice spoke;
3. **transcribe**: when a recognizer is cached (a catalog ``stt`` model run by the
   ``faster-whisper`` or ``whisper`` adapter: ``faster-whisper-tiny.en`` first, then
   faster-whisper's, then the smallest), it transcribes the detected speech and the report gives
   the word error rate (after the small English normalization of :mod:`.wer`).

A step that cannot run is recorded with one line saying why (no voice, VAD not loadable, no
recognizer cached, ...); later steps that need its output are skipped with that reason.
``run_spoken_round_trip`` is the blocking form.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ModelError
from .base import SpeechSegment
from .wer import word_error_rate, word_errors, words

SENTENCE = "Hello! This sentence went from text to speech and back to text."
SAMPLE_RATE = 16000

#: Real voices: cached models run by these adapters; the ids named first are preferred.
VOICE_ADAPTERS = ("piper",)
PREFERRED_VOICES = ("piper-en-us-joe-medium",)
#: Recognizers, likewise (the adapters in order of preference; then the smallest model).
RECOGNIZER_ADAPTERS = ("faster-whisper", "whisper")
PREFERRED_RECOGNIZERS = ("faster-whisper-tiny.en",)


@dataclass(frozen=True)
class Step:
    """One stage of the round trip: ``ok``, or why not, in one line."""

    name: str
    ok: bool
    detail: str
    seconds: float = 0.0

    def line(self) -> str:
        mark = "ok  " if self.ok else "skip" if self.detail.startswith("skipped") else "FAIL"
        return f"{self.name:<10} {mark} {self.detail}"


@dataclass
class RoundTripReport:
    sentence: str
    steps: list[Step] = field(default_factory=list)
    audio_path: Path | None = None
    audio_seconds: float = 0.0
    spoken: tuple[float, float] | None = None  # where the voice spoke, in seconds
    #: What spoke: the adapter of a real voice (``piper``) or the system's engine (espeak-ng).
    engine: str | None = None
    #: The cached voice model that spoke; None for the system voice.
    voice_model: str | None = None
    segments: list[SpeechSegment] = field(default_factory=list)
    whisper_model: str | None = None
    transcript: str | None = None
    word_error_rate: float | None = None
    #: (word edits, words of the sentence) behind ``word_error_rate``.
    word_errors: tuple[int, int] | None = None

    @property
    def ok(self) -> bool:
        """Speech was made and found (the transcription is optional: it needs a cached model)."""
        return bool(self.segments) and all(s.ok for s in self.steps[:2])

    def step(self, name: str) -> Step | None:
        return next((s for s in self.steps if s.name == name), None)

    def lines(self) -> list[str]:
        return [s.line() for s in self.steps]


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


async def cached_model(registry: Any, model_type: str, adapters: tuple[str, ...],
                       preferred: tuple[str, ...] = ()) -> str | None:
    """The id of a cached ``model_type`` model that one of ``adapters`` runs: an id of
    ``preferred`` first (in its order), then by adapter (in ``adapters``' order), smallest
    first; None when the cache holds none."""
    try:
        cached = {getattr(e, "model_id", None) for e in await registry.get_cached_models()}
        candidates = registry.list_models(type=model_type)
    except (ModelError, AttributeError, OSError):
        return None
    found = [m for m in candidates if m.id in cached and m.adapter_name in adapters]
    rank = {mid: i for i, mid in enumerate(preferred)}
    found.sort(key=lambda m: (rank.get(m.id, len(rank)), adapters.index(m.adapter_name),
                              m.size or 0))
    return found[0].id if found else None


async def _real_voice(registry: Any, model_id: str, sentence: str) -> tuple[Any, int, str]:
    """``sentence`` said by a cached voice model: (16 kHz samples, 16000, its adapter's name)."""
    from . import get_adapter
    from .audio import resample

    name = registry.get_model(model_id).adapter_name
    tts = get_adapter(name)(registry, deterministic=True)
    (await tts.load_model(model_id)).unwrap()
    speech, sr = await asyncio.to_thread(tts.synthesize, sentence)
    return resample(speech, sr, SAMPLE_RATE), SAMPLE_RATE, name


async def _system_voice(sentence: str, voice: str | None) -> tuple[Any, int, str]:
    from . import get_adapter

    tts = get_adapter("system-tts")(voice=voice, sample_rate=SAMPLE_RATE)
    speech, sr = await asyncio.to_thread(tts.synthesize, sentence)
    return speech, sr, tts.engine.name if tts.engine else "system-tts"


async def _speak(report: RoundTripReport, registry: Any, folder: Path, voice_model: str | None,
                 voice: str | None, pad_s: float) -> Any:
    """Step 1; the padded 16 kHz audio, or None when no voice could speak."""
    import numpy as np

    t0 = time.perf_counter()
    sentence = report.sentence
    speech = None
    note = ""
    mid = voice_model or await cached_model(registry, "tts", VOICE_ADAPTERS, PREFERRED_VOICES)
    if mid is not None:
        try:
            speech, sr, report.engine = await _real_voice(registry, mid, sentence)
            report.voice_model = mid
        except Exception as e:  # a broken or unloadable voice: the system voice stands in
            note = f" ({mid}: {_one_line(e)})"
    if speech is None:
        try:
            speech, sr, report.engine = await _system_voice(sentence, voice)
        except Exception as e:
            report.steps.append(Step("speak", False, f"no system voice: {_one_line(e)}{note}",
                                     time.perf_counter() - t0))
            return None
    if speech.size == 0:
        report.steps.append(Step("speak", False, f"{report.engine} made no audio{note}",
                                 time.perf_counter() - t0))
        return None
    pad = np.zeros(int(pad_s * sr), dtype=np.float32)
    audio = np.concatenate([pad, speech, pad])
    report.audio_seconds = audio.size / sr
    report.spoken = (pad_s, pad_s + speech.size / sr)
    who = report.voice_model or report.engine
    detail = f"{who} said {len(words(sentence))} words in {speech.size / sr:.2f}s"
    try:
        from .audio import save_wav

        folder.mkdir(parents=True, exist_ok=True)
        report.audio_path = save_wav(folder / "round-trip.wav", audio, sr)
        detail += f" -> {report.audio_path}"
    except ModelError as e:  # no soundfile, unwritable folder: the trip goes on
        detail += f" (not saved: {_one_line(e)})"
    report.steps.append(Step("speak", True, detail + note, time.perf_counter() - t0))
    return audio


async def _detect(report: RoundTripReport, registry: Any, audio: Any, vad_model: str) -> None:
    """Step 2: the VAD's segments into the report."""
    from . import get_adapter

    t0 = time.perf_counter()
    if audio is None:
        report.steps.append(Step("detect", False, "skipped: there is no speech to look at"))
        return
    try:
        vad = get_adapter("silero-vad")(registry)
        (await vad.load_model(vad_model)).unwrap()
        report.segments = await asyncio.to_thread(vad.detect, audio, SAMPLE_RATE)
        if not report.segments:
            raise ModelError("the VAD found no speech in the spoken sentence")
        start, end = report.segments[0].start, report.segments[-1].end
        said = report.spoken or (0.0, report.audio_seconds)
        hit = start < said[1] and end > said[0]
        detail = (f"{vad_model} found {len(report.segments)} segment(s), "
                  f"{start:.2f}s-{end:.2f}s (spoken {said[0]:.2f}s-{said[1]:.2f}s)")
        report.steps.append(Step("detect", hit, detail if hit else
                                 f"{detail}: not where the voice spoke",
                                 time.perf_counter() - t0))
    except Exception as e:
        report.segments = []
        report.steps.append(Step("detect", False, f"{vad_model}: {_one_line(e)}",
                                 time.perf_counter() - t0))


async def _transcribe(report: RoundTripReport, registry: Any, audio: Any,
                      whisper_model: str | None) -> None:
    """Step 3: the recognizer's transcript of the detected speech and its word error rate."""
    from . import get_adapter

    t0 = time.perf_counter()
    mid = whisper_model or await cached_model(registry, "stt", RECOGNIZER_ADAPTERS,
                                              PREFERRED_RECOGNIZERS)
    if audio is None:
        report.steps.append(Step("transcribe", False, "skipped: there is no speech"))
        return
    if mid is None:
        report.steps.append(Step("transcribe", False,
                                 "skipped: no Whisper model in the cache (runanywhere pull "
                                 f"{PREFERRED_RECOGNIZERS[0]} adds one)"))
        return
    try:
        stt = get_adapter(registry.get_model(mid).adapter_name)(registry, language="en")
        (await stt.load_model(mid)).unwrap()
        clip = audio
        if report.segments:  # the detected speech, with a margin for clipped word edges
            lo = max(0, int((report.segments[0].start - 0.2) * SAMPLE_RATE))
            clip = audio[lo:int((report.segments[-1].end + 0.2) * SAMPLE_RATE)]
        report.whisper_model = mid
        report.transcript = str(await asyncio.to_thread(stt.transcribe, clip, SAMPLE_RATE))
        report.word_errors = word_errors(report.sentence, report.transcript)
        report.word_error_rate = word_error_rate(report.sentence, report.transcript)
        errors, n = report.word_errors
        report.steps.append(Step(
            "transcribe", True, f"{mid}: {report.transcript!r} (word error rate "
            f"{report.word_error_rate:.0%}: {errors} of {n} words)", time.perf_counter() - t0))
    except Exception as e:
        report.steps.append(Step("transcribe", False, f"{mid}: {_one_line(e)}",
                                 time.perf_counter() - t0))


async def spoken_round_trip(registry: Any, folder: str | Path, *, sentence: str = SENTENCE,
                            vad_model: str = "silero-vad", whisper_model: str | None = None,
                            voice_model: str | None = None, pad_s: float = 0.75,
                            voice: str | None = None) -> RoundTripReport:
    """Speak ``sentence``, find it with the VAD, transcribe it where a recognizer is cached.

    ``registry`` is a :class:`~runanywhere.registry.ModelRegistry` (async); ``folder`` receives
    ``round-trip.wav``. ``voice_model`` and ``whisper_model`` name the voice and the recognizer
    (they must be cached); by default the ones the module's docstring says. ``voice`` is the
    system voice's name, for when it speaks.
    """
    report = RoundTripReport(sentence)
    audio = await _speak(report, registry, Path(folder), voice_model, voice, pad_s)
    await _detect(report, registry, audio, vad_model)
    await _transcribe(report, registry, audio, whisper_model)
    return report


def run_spoken_round_trip(registry: Any, folder: str | Path, **options: Any) -> RoundTripReport:
    """The blocking form (works where an event loop already runs, e.g. in Jupyter)."""
    from ..bridge import run_blocking

    return run_blocking(spoken_round_trip(registry, folder, **options))


__all__ = ["SENTENCE", "RoundTripReport", "Step", "cached_model", "run_spoken_round_trip",
           "spoken_round_trip", "word_error_rate", "words"]
