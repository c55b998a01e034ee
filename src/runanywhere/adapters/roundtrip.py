"""A spoken round trip: the system voice says a sentence, the VAD finds it, Whisper writes it down.

::

    report = await spoken_round_trip(registry, Path("/tmp/rt"))
    for line in report.lines():
        print(line)

Each adapter is found by name through the adapter table (``get_adapter``), so each step needs
its package: ``system-tts`` (runanywhere-tts-system), ``silero-vad`` (runanywhere-vad-silero),
``whisper`` (runanywhere-stt-whisper); a step whose package is missing says which to install.

1. **speak**: the ``system-tts`` adapter (espeak-ng here) says
   ``sentence``, framed by ``pad_s`` of silence; the audio is saved as ``round-trip.wav`` in
   ``folder`` (resampled to 16 kHz);
2. **detect**: the ``silero-vad`` adapter loads ``vad_model``
   through the registry (a download if it is not cached and the registry is online) and finds
   the speech; the report says whether it lies where the voice spoke;
3. **transcribe**: only when a Whisper model (catalog type ``stt``, id ``whisper-*``) is already in
   the cache (nothing is downloaded for this step), the ``whisper`` adapter transcribes the
   detected speech and the report gives the word error rate.

A step that cannot run is recorded with one line saying why (no engine, VAD not loadable, no
Whisper cached, ...); later steps that need its output are skipped with that reason.
``run_spoken_round_trip`` is the blocking form.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ModelError
from .base import SpeechSegment

SENTENCE = "Hello! This sentence went from text to speech and back to text."
SAMPLE_RATE = 16000


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
    engine: str | None = None
    segments: list[SpeechSegment] = field(default_factory=list)
    whisper_model: str | None = None
    transcript: str | None = None
    word_error_rate: float | None = None

    @property
    def ok(self) -> bool:
        """Speech was made and found (the transcription is optional: it needs a cached model)."""
        return bool(self.segments) and all(s.ok for s in self.steps[:2])

    def step(self, name: str) -> Step | None:
        return next((s for s in self.steps if s.name == name), None)

    def lines(self) -> list[str]:
        return [s.line() for s in self.steps]


def words(text: str) -> list[str]:
    """Lower-case words without punctuation (for the word error rate)."""
    return re.findall(r"[a-z0-9']+", text.lower())


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word-level edit distance over the reference's length (0 is a perfect transcript)."""
    ref, hyp = words(reference), words(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1] / len(ref)


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


async def _cached_whisper(registry: Any) -> str | None:
    """The id of a Whisper model already in the cache (smallest first), else None."""
    try:
        cached = {getattr(e, "model_id", None) for e in await registry.get_cached_models()}
        candidates = registry.list_models(type="stt")
    except (ModelError, AttributeError, OSError):
        return None
    found = [m for m in candidates if m.id.startswith("whisper") and m.id in cached]
    found.sort(key=lambda m: m.size or 0)
    return found[0].id if found else None


async def spoken_round_trip(registry: Any, folder: str | Path, *, sentence: str = SENTENCE,
                            vad_model: str = "silero-vad", whisper_model: str | None = None,
                            pad_s: float = 0.75, voice: str | None = None) -> RoundTripReport:
    """Speak ``sentence``, find it with the VAD, transcribe it where Whisper is cached.

    ``registry`` is a :class:`~runanywhere.registry.ModelRegistry` (async); ``folder`` receives
    ``round-trip.wav``. ``whisper_model`` names the Whisper id to use (it must be cached);
    by default the smallest cached ``whisper-*`` model is used.
    """
    import numpy as np

    from . import get_adapter

    folder = Path(folder)
    report = RoundTripReport(sentence)

    # 1. speak
    t0 = time.perf_counter()
    audio = None
    try:
        tts = get_adapter("system-tts")(voice=voice, sample_rate=SAMPLE_RATE)
        speech, sr = await asyncio.to_thread(tts.synthesize, sentence)
        if speech.size == 0:
            raise ModelError("the speech engine made no audio")
        pad = np.zeros(int(pad_s * sr), dtype=np.float32)
        audio = np.concatenate([pad, speech, pad])
        report.engine = tts.engine.name if tts.engine else None
        report.audio_seconds = audio.size / sr
        report.spoken = (pad_s, pad_s + speech.size / sr)
        detail = (f"{report.engine} said {len(words(sentence))} words in "
                  f"{speech.size / sr:.2f}s")
        try:
            from .audio import save_wav

            folder.mkdir(parents=True, exist_ok=True)
            report.audio_path = save_wav(folder / "round-trip.wav", audio, sr)
            detail += f" -> {report.audio_path}"
        except ModelError as e:  # no soundfile, unwritable folder: the trip goes on
            detail += f" (not saved: {_one_line(e)})"
        report.steps.append(Step("speak", True, detail, time.perf_counter() - t0))
    except Exception as e:
        report.steps.append(Step("speak", False, f"no system voice: {_one_line(e)}",
                                 time.perf_counter() - t0))

    # 2. detect
    t0 = time.perf_counter()
    if audio is None:
        report.steps.append(Step("detect", False, "skipped: there is no speech to look at"))
    else:
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

    # 3. transcribe (only a Whisper model that is cached already)
    t0 = time.perf_counter()
    mid = whisper_model or await _cached_whisper(registry)
    if audio is None:
        report.steps.append(Step("transcribe", False, "skipped: there is no speech"))
    elif mid is None:
        report.steps.append(Step("transcribe", False,
                                 "skipped: no Whisper model in the cache "
                                 "(runanywhere pull whisper-tiny adds one)"))
    else:
        try:
            stt = get_adapter("whisper")(registry, language="en")
            (await stt.load_model(mid)).unwrap()
            if report.segments:
                lo = max(0, int((report.segments[0].start - 0.2) * SAMPLE_RATE))
                hi = int((report.segments[-1].end + 0.2) * SAMPLE_RATE)
                clip = audio[lo:hi]
            else:
                clip = audio
            report.whisper_model = mid
            transcript = str(await asyncio.to_thread(stt.transcribe, clip, SAMPLE_RATE))
            report.transcript = transcript
            report.word_error_rate = word_error_rate(sentence, transcript)
            report.steps.append(Step(
                "transcribe", True, f"{mid}: {report.transcript!r} "
                f"(word error rate {report.word_error_rate:.0%})", time.perf_counter() - t0))
        except Exception as e:
            report.steps.append(Step("transcribe", False, f"{mid}: {_one_line(e)}",
                                     time.perf_counter() - t0))
    return report


def run_spoken_round_trip(registry: Any, folder: str | Path, **options: Any) -> RoundTripReport:
    """The blocking form (works where an event loop already runs, e.g. in Jupyter)."""
    from ..registry import run_blocking

    return run_blocking(spoken_round_trip(registry, folder, **options))


__all__ = ["SENTENCE", "RoundTripReport", "Step", "run_spoken_round_trip", "spoken_round_trip",
           "word_error_rate", "words"]
