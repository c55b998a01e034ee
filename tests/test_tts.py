"""Text-to-speech: sentence streaming, the TTS events, and the system voice (espeak-ng, for real).

The SpeechT5 adapter's decoding is checked against Transformers.js in test_reference_parity.py;
here it runs on the synthetic model for what is ours alone (events, streaming, the length cap,
the registry contract, bad folders).
"""

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
    TTSAdapter,
    get_adapter,
)
from runanywhere.adapters.audio import read_audio
from runanywhere.adapters.silero_vad import SileroVADAdapter
from runanywhere.adapters.system_tts import SystemTTSAdapter, find_engine
from runanywhere.adapters.tts import split_sentences
from runanywhere.errors import ModelError, RuntimeUnavailableError, SynthesisError
from support.folder_registry import FolderRegistry
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


# -- the system voice ------------------------------------------------------------------------------


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


# -- the registry contract (shared by the SpeechT5 tests) -----------------------------------------


def halfway_registry(folder: Path, fail: ModelError | None = None) -> FolderRegistry:
    """A FolderRegistry that reports half way, then done."""
    return FolderRegistry(folder, fail, steps=((50.0, "half"), (100.0, "cached")))


# -- SpeechT5 (synthetic model; decoding parity lives in test_reference_parity.py) ----------------


@pytest.fixture(scope="module")
def speecht5_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("onnx")
    pytest.importorskip("sentencepiece")
    from support.speecht5_synth import build_speecht5

    return build_speecht5(tmp_path_factory.mktemp("speecht5")).tts


def test_speecht5_streams_each_sentence_with_events(speecht5_dir: Path) -> None:
    from runanywhere.adapters.speecht5 import SpeechT5TTSAdapter

    assert get_adapter("speecht5") is SpeechT5TTSAdapter
    tts = SpeechT5TTSAdapter.from_dir(speecht5_dir)
    assert isinstance(tts, TTSAdapter) and tts.sample_rate == 16000
    seen = record(tts)
    text = "Hello world. The quick brown fox jumps over the lazy dog! A"
    chunks = list(tts.stream(text))
    assert [type(e) for e in seen] == [SynthesisStarted, AudioChunk, AudioChunk, AudioChunk,
                                       SynthesisDone]
    assert [c.text for c in chunks] == ["Hello world.",
                                        "The quick brown fox jumps over the lazy dog!", "A"]
    hop = tts.speecht5.hop_length * tts.speecht5.reduction_factor
    for c in chunks:  # one decoder step = reduction_factor frames = hop * r samples
        assert c.audio.size % hop == 0 and c.audio.size > 0 and c.sample_rate == 16000
        assert np.array_equal(c.audio, tts.speecht5.generate(c.text))  # same as one at a time
    # Longer text, more steps (the synthetic stop token fires after ~1.5 steps per token).
    assert chunks[1].audio.size > 2 * chunks[0].audio.size > 2 * chunks[2].audio.size
    audio, sr = tts.synthesize(text)
    assert sr == 16000 and np.array_equal(audio, np.concatenate([c.audio for c in chunks]))
    assert seen[-1].samples == sum(c.audio.size for c in chunks)


def test_speecht5_stop_options_and_the_length_cap(speecht5_dir: Path) -> None:
    from runanywhere.adapters.speecht5 import SpeechT5TTSAdapter

    text = "The quick brown fox jumps over the lazy dog."
    n_tokens = len(SpeechT5TTSAdapter.from_dir(speecht5_dir).speecht5.tokenizer.encode(text))
    default = SpeechT5TTSAdapter.from_dir(speecht5_dir).synthesize(text)[0]
    per_step = 32 * 2  # the synthetic vocoder's hop times the reduction factor
    # maxlenratio: never more than floor(n / 2 * ratio) steps when the stop token never fires
    capped = SpeechT5TTSAdapter.from_dir(speecht5_dir, threshold=2.0, maxlenratio=1.0)
    assert capped.synthesize(text)[0].size == (n_tokens // 2) * per_step
    # minlenratio: at least floor(n / 2 * ratio) steps even when the stop token fires earlier
    longer = SpeechT5TTSAdapter.from_dir(speecht5_dir, minlenratio=6.0)
    assert longer.synthesize(text)[0].size == (n_tokens * 3) * per_step > default.size
    # max_seconds: the cap wins over maxlenratio
    short = SpeechT5TTSAdapter.from_dir(speecht5_dir, threshold=2.0, max_seconds=0.05)
    assert short.stop_criteria.max_steps == 13  # ceil(0.05 s * 16000 / 64)
    assert short.synthesize(text)[0].size == 13 * per_step
    with pytest.raises(ValueError):
        SpeechT5TTSAdapter(threshold=0)
    with pytest.raises(ValueError):
        SpeechT5TTSAdapter(max_seconds=-1)


def test_speecht5_voices(speecht5_dir: Path, tmp_path: Path) -> None:
    from runanywhere.adapters.speecht5 import SpeechT5TTSAdapter

    base = SpeechT5TTSAdapter.from_dir(speecht5_dir).synthesize("Hello world.")[0]
    voice = np.random.default_rng(1).standard_normal(512).astype(np.float32)
    other = SpeechT5TTSAdapter.from_dir(speecht5_dir, speaker=voice).synthesize("Hello world.")[0]
    assert not np.array_equal(base, other)
    tts = SpeechT5TTSAdapter.from_dir(speecht5_dir)
    tts.set_speaker(voice)
    assert np.array_equal(tts.synthesize("Hello world.")[0], other)
    (tmp_path / "short.bin").write_bytes(b"\0" * 100)
    with pytest.raises(ModelError, match=r"short\.bin.*2048 bytes.*100 bytes"):
        tts.set_speaker(tmp_path / "short.bin")
    with pytest.raises(ModelError, match="512 values"):
        tts.set_speaker(np.zeros(10))


def test_speecht5_loads_through_the_registry_contract(speecht5_dir: Path, tmp_path: Path
                                                      ) -> None:
    from runanywhere.adapters.speecht5 import SpeechT5TTSAdapter

    registry = halfway_registry(speecht5_dir)
    tts = SpeechT5TTSAdapter(registry)
    seen = record(tts)
    assert asyncio.run(tts.load_model()).success  # default id: speecht5-tts
    assert [type(e) for e in seen] == [ModelLoading, ModelLoading, ModelLoading, ModelLoaded]
    assert tts.model_id == "speecht5-tts" and seen[-1].model_id == "speecht5-tts"
    assert [load["file"] for load in registry.loads] == [
        "onnx/encoder_model.onnx", "onnx/decoder_model_merged.onnx",
        "onnx/decoder_postnet_and_vocoder.onnx"]
    assert tts.synthesize("Hello world.")[0].size > 0

    # A folder without a speaker embedding: loads, but synthesis says what is missing.
    bare = tmp_path / "bare"
    shutil.copytree(speecht5_dir, bare)
    (bare / "speaker_embeddings.bin").unlink()
    tts = SpeechT5TTSAdapter(halfway_registry(bare))
    assert asyncio.run(tts.load_model()).success
    with pytest.raises(SynthesisError, match="speaker embedding"):
        tts.synthesize("Hello.")

    # A folder without the decoder, and a failed download: error events and error results.
    (bare / "onnx" / "decoder_model_merged.onnx").unlink()
    tts = SpeechT5TTSAdapter(halfway_registry(bare))
    seen = record(tts)
    result = asyncio.run(tts.load_model())
    assert not result.success and "no SpeechT5 merged decoder" in str(result.error)
    assert isinstance(seen[-1], AdapterError) and seen[-1].error is result.error
    boom = ModelError("offline and not cached")
    result = asyncio.run(SpeechT5TTSAdapter(halfway_registry(bare, fail=boom)).load_model())
    assert result.error is boom
    with pytest.raises(ModelError, match="no model loaded"):
        SpeechT5TTSAdapter().synthesize("Hello.")


def test_speecht5_rejects_graphs_of_another_model(speecht5_dir: Path, tmp_path: Path) -> None:
    from runanywhere.adapters.speecht5 import SpeechT5TTSAdapter

    wrong = tmp_path / "wrong"
    shutil.copytree(speecht5_dir, wrong)
    silero = silero_data_dir() / "silero_vad.onnx"
    shutil.copyfile(silero, wrong / "onnx" / "decoder_model_merged.onnx")
    with pytest.raises(ModelError, match="not a SpeechT5 ONNX export: decoder inputs"):
        SpeechT5TTSAdapter.from_dir(wrong)
    (wrong / "spm_char.model").write_bytes(b"not a sentencepiece model")
    shutil.copyfile(speecht5_dir / "onnx" / "decoder_model_merged.onnx",
                    wrong / "onnx" / "decoder_model_merged.onnx")
    with pytest.raises(ModelError, match="not a SentencePiece model"):
        SpeechT5TTSAdapter.from_dir(wrong)
    with pytest.raises(ModelError, match="is a folder"):
        SpeechT5TTSAdapter.from_dir(tmp_path / "nothing-here")


def test_speecht5_without_sentencepiece_names_the_extra(speecht5_dir: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from runanywhere.adapters.speecht5 import SpeechT5TTSAdapter

    monkeypatch.setitem(sys.modules, "sentencepiece", None)  # as if not installed
    with pytest.raises(RuntimeUnavailableError, match=r"runanywhere\[tts\]"):
        SpeechT5TTSAdapter.from_dir(speecht5_dir)


def test_synthesis_before_loading_emits_an_error_event() -> None:
    from runanywhere.adapters.speecht5 import SpeechT5TTSAdapter

    tts = SpeechT5TTSAdapter()
    seen = record(tts)
    with pytest.raises(ModelError, match="no model loaded"):
        tts.synthesize("Hello.")
    assert [type(e) for e in seen] == [AdapterError]
    assert "no model loaded" in str(seen[0].error)
