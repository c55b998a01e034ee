"""Text-to-speech: sentence splitting (the core's TTS base), and the system voice heard by the VAD.

The adapters' own tests live with their packages (packages/tts-system, packages/tts-speecht5);
the one here needs two of them installed: what the system voice says, Silero VAD must hear.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from runanywhere.adapters import (
    AdapterError,
    AudioChunk,
    ModelLoaded,
    ModelLoading,
    SynthesisDone,
    SynthesisStarted,
    TTSAdapter,
    get_adapter,
)
from runanywhere.adapters.tts import split_sentences
from runanywhere_tts_system import SystemTTSAdapter
from runanywhere_vad_silero import SileroVADAdapter
from support.silero_wheel import silero_data_dir

TTS_EVENTS = (ModelLoading, ModelLoaded, AdapterError, SynthesisStarted, AudioChunk,
              SynthesisDone)


def record(adapter: Any) -> list[Any]:
    seen: list[Any] = []
    for ev in TTS_EVENTS:
        adapter.on(ev, seen.append)
    return seen


@pytest.fixture(scope="module")
def vad() -> SileroVADAdapter:
    return SileroVADAdapter.from_file(silero_data_dir() / "silero_vad.onnx")


@pytest.fixture(scope="module")
def espeak() -> str:
    found = shutil.which("espeak-ng")
    if found is None:
        pytest.fail("espeak-ng is not installed (Debian package espeak-ng; .ci/run installs it)")
    return found


# -- sentences -------------------------------------------------------------------------------------


def test_split_sentences() -> None:
    assert split_sentences("Hello there. How are you? Fine!  Bye") == [
        "Hello there.", "How are you?", "Fine!", "Bye"]
    assert split_sentences("He said \"stop.\" Then left.\n\nNew   paragraph\nsame one") == [
        "He said \"stop.\"", "Then left.", "New paragraph same one"]
    assert split_sentences("3.14 is pi; e is 2.72: both irrational") == [
        "3.14 is pi;", "e is 2.72:", "both irrational"]
    assert split_sentences("   \n\t ") == []
    long = "one, two, three four five six seven"
    assert split_sentences(long, max_chars=12) == ["one, two,", "three four", "five six", "seven"]
    assert split_sentences("abcdefghij", max_chars=4) == ["abcd", "efgh", "ij"]
    assert all(len(s) <= 40 for s in split_sentences("word " * 100, max_chars=40))
    with pytest.raises(ValueError):
        split_sentences("x", max_chars=0)


# -- the system voice, heard by the VAD ---------------------------------------------------------


def test_system_voice_speaks_each_sentence_and_the_vad_hears_it(espeak: str,
                                                                vad: SileroVADAdapter) -> None:
    tts = get_adapter("system-tts")()
    assert isinstance(tts, SystemTTSAdapter) and isinstance(tts, TTSAdapter)
    seen = record(tts)
    text = "Good morning. The system voice needs no download! Does it work?"
    chunks = list(tts.stream(text))
    assert [type(e) for e in seen] == [ModelLoading, ModelLoading, ModelLoaded, SynthesisStarted,
                                       AudioChunk, AudioChunk, AudioChunk, SynthesisDone]
    assert tts.engine is not None and tts.engine.path == Path(espeak)
    assert [c.text for c in chunks] == split_sentences(text)
    assert [c.index for c in chunks] == [0, 1, 2]
    assert all(c.sample_rate == 22050 and c.audio.dtype == np.float32 for c in chunks)
    starts = np.cumsum([0] + [c.audio.size for c in chunks[:-1]]) / 22050
    assert np.allclose([c.start_s for c in chunks], starts)
    done = seen[-1]
    assert done.chunks == 3 and done.samples == sum(c.audio.size for c in chunks)
    assert done.duration_s > 2 and done.elapsed_s > 0
    for chunk in chunks:  # each sentence is speech, not noise or silence
        assert chunk.duration_s > 0.5
        segments = vad.detect(chunk.audio, chunk.sample_rate)
        assert segments and sum(s.duration for s in segments) > 0.5 * chunk.duration_s
