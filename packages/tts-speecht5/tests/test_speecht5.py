"""SpeechT5 on the synthetic model (tests/support/speecht5_synth.py): what is ours alone (events,
streaming, the length cap, voices, the registry contract, bad folders). Its decoding is checked
against Transformers.js in the repository's tests/test_reference_parity.py.
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
from runanywhere.errors import ModelError, RuntimeUnavailableError, SynthesisError
from runanywhere_tts_speecht5 import SpeechT5TTSAdapter
from support.folder_registry import FolderRegistry
from support.isolation import _isolated_env
from support.silero_wheel import silero_data_dir

TTS_EVENTS = (ModelLoading, ModelLoaded, AdapterError, SynthesisStarted, AudioChunk,
              SynthesisDone)


def record(adapter: Any) -> list[Any]:
    seen: list[Any] = []
    for ev in TTS_EVENTS:
        adapter.on(ev, seen.append)
    return seen


def halfway_registry(folder: Path, fail: ModelError | None = None) -> FolderRegistry:
    """A FolderRegistry that reports half way, then done."""
    return FolderRegistry(folder, fail, steps=((50.0, "half"), (100.0, "cached")))


@pytest.fixture(scope="module")
def speecht5_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("onnx")
    pytest.importorskip("sentencepiece")
    from support.speecht5_synth import build_speecht5

    return build_speecht5(tmp_path_factory.mktemp("speecht5")).tts


def test_speecht5_streams_each_sentence_with_events(speecht5_dir: Path) -> None:
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


def test_speecht5_without_sentencepiece_names_the_package(speecht5_dir: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "sentencepiece", None)  # as if not installed
    with pytest.raises(RuntimeUnavailableError, match="pip install runanywhere-tts-speecht5"):
        SpeechT5TTSAdapter.from_dir(speecht5_dir)


def test_synthesis_before_loading_emits_an_error_event() -> None:
    tts = SpeechT5TTSAdapter()
    seen = record(tts)
    with pytest.raises(ModelError, match="no model loaded"):
        tts.synthesize("Hello.")
    assert [type(e) for e in seen] == [AdapterError]
    assert "no model loaded" in str(seen[0].error)
