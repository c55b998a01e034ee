"""The system voice (espeak-ng, for real): sentence streaming, options, events, typed errors."""

from __future__ import annotations

import asyncio
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
)
from runanywhere.adapters.audio import read_audio
from runanywhere.errors import RuntimeUnavailableError, SynthesisError
from runanywhere_tts_system import SystemTTSAdapter, find_engine
from support.isolation import _isolated_env

TTS_EVENTS = (ModelLoading, ModelLoaded, AdapterError, SynthesisStarted, AudioChunk,
              SynthesisDone)


def record(adapter: Any) -> list[Any]:
    seen: list[Any] = []
    for ev in TTS_EVENTS:
        adapter.on(ev, seen.append)
    return seen


@pytest.fixture(scope="module")
def espeak() -> str:
    found = shutil.which("espeak-ng")
    if found is None:
        pytest.fail("espeak-ng is not installed (Debian package espeak-ng; .ci/run installs it)")
    return found


def test_system_voice_options_change_the_audio(espeak: str, tmp_path: Path) -> None:
    base, sr = SystemTTSAdapter().synthesize("Testing one two three.")
    fast, _ = SystemTTSAdapter(rate_wpm=350).synthesize("Testing one two three.")
    assert fast.size < 0.75 * base.size
    high, _ = SystemTTSAdapter(pitch=99).synthesize("Testing one two three.")
    assert high.size != base.size or not np.array_equal(high, base)
    at16k, sr16 = SystemTTSAdapter(sample_rate=16000).synthesize("Testing one two three.")
    assert sr == 22050 and sr16 == 16000 and abs(at16k.size - base.size * 16000 / 22050) < 2
    voices = SystemTTSAdapter().voices("en")
    assert any(v.name == "en-us" for v in voices)
    other, _ = SystemTTSAdapter(voice="de").synthesize("Testing one two three.")
    assert other.size != base.size
    path = SystemTTSAdapter().synthesize_to_file("Saved to a file.", tmp_path / "out.flac")
    audio, rate = read_audio(path, target_sr=None)
    assert rate == 22050 and audio.size > 10000


def test_text_is_spoken_never_parsed_as_options(espeak: str, tmp_path: Path) -> None:
    target = tmp_path / "injected.wav"
    audio, _ = SystemTTSAdapter().synthesize(f"-w {target} --version")
    assert not target.exists() and audio.size > 10000
    unicode, _ = SystemTTSAdapter().synthesize("Café, naïve, 東京.")
    assert unicode.size > 10000


def test_empty_text_gives_no_chunks(espeak: str) -> None:
    tts = SystemTTSAdapter()
    seen = record(tts)
    audio, sr = tts.synthesize("  \n ")
    assert audio.size == 0 and audio.dtype == np.float32 and sr == 22050
    assert [type(e) for e in seen][-2:] == [SynthesisStarted, SynthesisDone]
    assert seen[-1].samples == 0 and seen[-2].chunks == 0


def test_load_model_finds_the_engine_without_a_registry(espeak: str) -> None:
    tts = SystemTTSAdapter()
    seen = record(tts)
    assert asyncio.run(tts.load_model()).success
    assert [type(e) for e in seen] == [ModelLoading, ModelLoading, ModelLoaded]
    assert seen[-1].model_id == "system-tts" and tts.is_loaded
    list(tts.stream("Once."))  # found already: no second loading
    assert sum(isinstance(e, ModelLoaded) for e in seen) == 1
    assert not asyncio.run(SystemTTSAdapter().load_model(voice="x")).success


def test_a_missing_or_failing_engine_is_a_typed_error(tmp_path: Path) -> None:
    tts = SystemTTSAdapter(engine="no-such-speech-engine")
    seen = record(tts)
    result = asyncio.run(tts.load_model())
    assert not result.success and isinstance(result.error, RuntimeUnavailableError)
    assert "no-such-speech-engine" in str(result.error) and "espeak-ng" in str(result.error)
    assert isinstance(seen[-1], AdapterError) and seen[-1].error is result.error
    with pytest.raises(RuntimeUnavailableError):
        tts.synthesize("hello")
    with pytest.raises(RuntimeUnavailableError, match="apt-get install espeak-ng"):
        find_engine("no-such-speech-engine")

    false = shutil.which("false")
    assert false is not None
    broken = SystemTTSAdapter(engine=false)  # a real program that exits 1
    seen = record(broken)
    with pytest.raises(SynthesisError, match=r"false failed \(exit 1\)"):
        broken.synthesize("First sentence. Second sentence.")
    errors = [e for e in seen if isinstance(e, AdapterError)]
    assert len(errors) == 1 and isinstance(errors[0].error, SynthesisError)
    assert not any(isinstance(e, (AudioChunk, SynthesisDone)) for e in seen)
    with pytest.raises(ValueError):
        SystemTTSAdapter(pitch=120)
    with pytest.raises(ValueError):
        SystemTTSAdapter(rate_wpm=5)
