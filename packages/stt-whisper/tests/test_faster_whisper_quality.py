"""What users get from real weights: word error rate on a fixed sentence set, segment times
where the speech really is (VAD then STT), and the same text as faster-whisper called directly.

The speech is espeak-ng's (``support.speech``: 130 words a minute, 40 ms between words; see
there how much the rate matters); word error rate is counted after OpenAI's own English text
normalization (``support.whisper_text``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from runanywhere import ModelRegistry
from runanywhere_stt_whisper.faster_whisper_stt import FasterWhisperSTTAdapter
from support import ct2_models
from support.speech import SAMPLE_RATE, SENTENCES, place, speak, wav_bytes
from support.whisper_text import word_error_rate, word_errors

#: The bar of issue 23 for espeak-ng speech into Whisper tiny.en and base.
MAX_WER = 0.05

#: How far a segment's start and end may be from where the speech was placed: the VAD pads each
#: stretch by 0.4 s (faster-whisper's default), plus 0.2 s for Silero's 32 ms windows and its
#: hangover, and Whisper's 20 ms timestamp steps.
TIME_TOLERANCE_S = 0.6


@pytest.fixture(scope="module")
def spoken() -> list[np.ndarray]:
    return [speak(s) for s in SENTENCES]


@pytest.mark.parametrize("model_id", [ct2_models.TINY_EN, ct2_models.BASE])
def test_word_error_rate_on_the_sentence_set(model_id: str, registry: ModelRegistry,
                                            spoken: list[np.ndarray]) -> None:
    """Numbers, names and a 20-word sentence; language given for tiny.en (English-only),
    detected for base."""
    assert any(len(s.rstrip(".").split()) == 20 for s in SENTENCES)
    stt = FasterWhisperSTTAdapter(registry)
    assert asyncio.run(stt.load_model(model_id)).success
    pairs = []
    for sentence, audio in zip(SENTENCES, spoken, strict=True):
        result = stt.transcribe_full(audio, SAMPLE_RATE)
        assert result.language == "en"
        pairs.append((sentence, result.text))
    wer = word_error_rate(pairs)
    report = "\n".join(f"{word_errors(r, h)[0]} errors: {h!r}" for r, h in pairs)
    assert wer <= MAX_WER, f"{model_id}: word error rate {wer:.1%}\n{report}"


@pytest.mark.parametrize("model_id", [ct2_models.TINY_EN, ct2_models.BASE])
def test_vad_then_stt_puts_segments_where_the_speech_was(model_id: str,
                                                        registry: ModelRegistry) -> None:
    """30 s: four sentences at known times, silence between. Every segment lies on one placed
    sentence, within TIME_TOLERANCE_S of its start and end, and says it."""
    audio, truth = place([(1.0, "Good morning, everyone."),
                          (7.5, "The train to Boston leaves at noon."),
                          (15.0, "Please close the door behind you."),
                          (22.5, "Thank you, and goodbye.")], 30.0)
    stt = FasterWhisperSTTAdapter(registry, language="en", vad=True)
    assert asyncio.run(stt.load_model(model_id)).success
    result = stt.transcribe_full(audio, SAMPLE_RATE)
    assert result.duration == pytest.approx(30.0)
    found: dict[int, list[tuple[float, float, str]]] = {}
    for seg in result.segments:
        overlapping = [i for i, (s, e, _) in enumerate(truth) if seg.start < e and s < seg.end]
        assert len(overlapping) == 1, f"{seg} lies on {len(overlapping)} sentences: {truth}"
        found.setdefault(overlapping[0], []).append((seg.start, seg.end, seg.text))
    assert sorted(found) == list(range(len(truth))), (result.segments, truth)
    for i, (start, end, text) in enumerate(truth):
        segs = found[i]
        assert abs(segs[0][0] - start) <= TIME_TOLERANCE_S, (segs, start)
        assert abs(segs[-1][1] - end) <= TIME_TOLERANCE_S, (segs, end)
        said = "".join(t for _, _, t in segs)
        assert word_errors(text, said)[0] <= 1, (text, said)


# -- parity with faster-whisper called directly ---------------------------------------------------

def _direct(folder: Path, audio: str | np.ndarray, **options: object
            ) -> list[tuple[float, float, str]]:
    from faster_whisper import WhisperModel

    segments, _ = WhisperModel(str(folder), device="cpu").transcribe(audio, **options)
    return [(s.start, s.end, s.text) for s in segments]


def test_parity_on_a_file_with_the_default_settings(tiny_dir: Path, tmp_path: Path) -> None:
    """The same WAV file: faster-whisper reads it with PyAV, we with soundfile; the samples and
    so the segments (times and text) are the same."""
    path = tmp_path / "three.wav"
    path.write_bytes(wav_bytes(np.concatenate([speak(s) for s in SENTENCES[:3]])))
    ours = FasterWhisperSTTAdapter.from_dir(tiny_dir).transcribe_file(path)
    theirs = _direct(tiny_dir, str(path))
    assert [(s.start, s.end, s.text) for s in ours.segments] == theirs
    assert ours.text == "".join(t for _, _, t in theirs).strip()


def test_parity_with_language_detection_beam_size_and_long_audio(base_dir: Path) -> None:
    """Base, language detected, greedy, no temperature fallback, 45 s (two windows, the first
    window's text as the second one's prompt)."""
    audio = np.concatenate([speak(s) for s in SENTENCES[:6]])
    assert audio.size > 30 * SAMPLE_RATE
    settings = {"beam_size": 1, "temperature": 0.0}
    ours = FasterWhisperSTTAdapter.from_dir(base_dir, **settings).transcribe_full(audio)
    theirs = _direct(base_dir, audio, **settings)
    assert ours.language == "en"
    assert [(s.start, s.end, s.text) for s in ours.segments] == theirs
