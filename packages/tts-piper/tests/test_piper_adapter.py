"""The ``piper`` adapter on the real joe voice: pulled from nginx through the built-in catalog
entry's exact hashes, loaded through the registry, streaming sentence by sentence; options,
determinism, speakers (on a small graph of Piper's interface), bad input, threads and a running
event loop."""

from __future__ import annotations

import asyncio
import json
import threading
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest

# Fixtures (see piper_fixtures.py): imported, so pytest finds them in this module.
from piper_fixtures import (
    builtin_voice_entry,
    isolated_env,
    joe_dir,
    joe_onnx,
    registry,
    voice_catalog,
    voice_origin,
)
from piper_synth import HOP, write_voice

from harness.nginx import Nginx
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
from runanywhere.adapters.audio import resample
from runanywhere.errors import IntegrityError, ModelError, RuntimeUnavailableError
from runanywhere.registry import ModelRegistry
from runanywhere_tts_piper.adapter import PiperSentence, PiperTTSAdapter
from runanywhere_tts_piper.voice import UnknownSpeakerError
from runanywhere_vad_silero import SileroVADAdapter
from support.silero_wheel import silero_data_dir
from support.tamper import xor_range

VOICE_ID = PiperTTSAdapter.default_model_id

TTS_EVENTS = (ModelLoading, ModelLoaded, AdapterError, SynthesisStarted, AudioChunk,
              SynthesisDone)
TEXT = "Good morning, everyone. The weather is lovely today! Shall we go for a walk?"


def record(adapter: Any) -> list[Any]:
    seen: list[Any] = []
    for ev in TTS_EVENTS:
        adapter.on(ev, seen.append)
    return seen


@pytest.fixture(scope="module")
def joe(joe_onnx: Path) -> PiperTTSAdapter:
    return PiperTTSAdapter.from_files(joe_onnx, deterministic=True)


@pytest.fixture(scope="module")
def vad() -> SileroVADAdapter:
    return SileroVADAdapter.from_file(silero_data_dir() / "silero_vad.onnx")


# -- the catalog entry, the pull, the registry ------------------------------------------------


def test_builtin_entry_pulls_and_loads_through_the_registry(registry: ModelRegistry,
                                                            voice_origin: Nginx) -> None:
    meta = registry.require_model(VOICE_ID)
    assert (meta.type, meta.format, meta.adapter_name) == ("tts", "onnx", "piper")
    assert get_adapter(meta.adapter_name) is PiperTTSAdapter
    tts = PiperTTSAdapter(registry, deterministic=True)
    seen = record(tts)
    since = voice_origin.log_size()
    result = asyncio.run(tts.load_model(VOICE_ID))
    assert result.success, result.error
    assert isinstance(tts, TTSAdapter) and tts.sample_rate == 22050
    loading = [e for e in seen if isinstance(e, ModelLoading)]
    assert loading[0].progress == 0.0 and max(e.progress for e in loading) == 100.0
    assert isinstance(seen[-1], ModelLoaded) and seen[-1].model_id == VOICE_ID
    # the bytes came from the loopback origin, and the session counts against the budget
    wanted = {f"/voices/{f.path}" for f in meta.files}
    served = {r.path for r in voice_origin.records(since) if r.status in (200, 206)}
    if served != wanted:  # nginx logs a request just after its last byte left
        voice_origin.wait_records(len(wanted), prefix="/voices/")
        served = {r.path for r in voice_origin.records(since) if r.status in (200, 206)}
    assert served == wanted
    entry = registry.cache.entry(VOICE_ID)
    assert entry is not None and entry.size == meta.size
    loaded = {x.model_id: x for x in registry.loaded_models()}
    assert VOICE_ID in loaded and registry.loaded_budget[1] >= meta.requirements.memory  # type: ignore[union-attr]
    audio, sr = tts.synthesize("It works.")
    assert sr == 22050 and audio.size > sr // 4


def test_a_tampered_voice_is_refused_and_never_visible(registry: ModelRegistry,
                                                       voice_origin: Nginx) -> None:
    served = voice_origin.root / "voices" / "en_US-joe-medium.onnx.json"
    original = served.read_bytes()
    served.unlink()  # a private copy: the wheel's file stays as it is
    served.write_bytes(original)
    xor_range(served, 100, 1)
    try:
        result = asyncio.run(PiperTTSAdapter(registry).load_model(VOICE_ID))
        assert not result.success and isinstance(result.error, IntegrityError)
        assert registry.cache.entry(VOICE_ID) is None
    finally:
        served.unlink()
        served.write_bytes(original)


# -- synthesis -----------------------------------------------------------------------------------


def test_streams_each_sentence_with_events_and_speech(joe: PiperTTSAdapter,
                                                      vad: SileroVADAdapter) -> None:
    seen = record(joe)
    try:
        chunks = list(joe.stream(TEXT))
    finally:
        for ev in TTS_EVENTS:
            joe.off(ev)
    assert [type(e) for e in seen] == [SynthesisStarted, AudioChunk, AudioChunk, AudioChunk,
                                       SynthesisDone]
    assert [c.text for c in chunks] == ["Good morning, everyone.", "The weather is lovely today!",
                                        "Shall we go for a walk?"]
    assert all(isinstance(c.text, PiperSentence) for c in chunks)
    starts = np.cumsum([0] + [c.audio.size for c in chunks[:-1]]) / 22050
    assert np.allclose([c.start_s for c in chunks], starts)
    done = seen[-1]
    assert done.chunks == 3 and done.samples == sum(c.audio.size for c in chunks)
    assert done.real_time_factor > 0
    for chunk in chunks:
        assert chunk.audio.dtype == np.float32 and np.max(np.abs(chunk.audio)) == 1.0
        speech = vad.detect(resample(chunk.audio, 22050, 16000), 16000)
        assert speech and sum(s.duration for s in speech) > 0.5 * chunk.duration_s


def test_deterministic_mode_repeats_the_samples_and_default_noise_does_not(
        joe: PiperTTSAdapter, joe_onnx: Path) -> None:
    a, _ = joe.synthesize("Repeat after me.")
    b, _ = joe.synthesize("Repeat after me.")
    assert np.array_equal(a, b)
    noisy = PiperTTSAdapter.from_files(joe_onnx)  # the voice's noise_scale 0.667, noise_w 0.8
    c, _ = noisy.synthesize("Repeat after me.")
    d, _ = noisy.synthesize("Repeat after me.")
    assert not np.array_equal(c, d)
    assert not np.array_equal(a, c)


def test_length_scale_and_noise_options(joe: PiperTTSAdapter, joe_onnx: Path) -> None:
    base, _ = joe.synthesize("A sentence of moderate length for timing.")
    slow, _ = PiperTTSAdapter.from_files(joe_onnx, deterministic=True,
                                         length_scale=1.5).synthesize(
        "A sentence of moderate length for timing.")
    fast, _ = PiperTTSAdapter.from_files(joe_onnx, deterministic=True,
                                         length_scale=0.7).synthesize(
        "A sentence of moderate length for timing.")
    assert 1.3 < slow.size / base.size < 1.7
    assert 0.6 < fast.size / base.size < 0.8
    assert joe.config.noise_scale == pytest.approx(0.667)  # the voice's defaults are read
    assert joe.scales.resolve(joe.config).tolist() == pytest.approx([0.0, 1.0, 0.0])
    louder = PiperTTSAdapter.from_files(joe_onnx, deterministic=True, volume=0.5)
    half, _ = louder.synthesize("A sentence of moderate length for timing.")
    assert np.allclose(half, base * 0.5, atol=1e-6)
    for bad in ({"length_scale": 0}, {"noise_scale": -1}, {"noise_w": 9},
                {"deterministic": True, "noise_scale": 0.5}, {"volume": -1},
                {"max_phonemes": 0}):
        with pytest.raises(ValueError):
            PiperTTSAdapter(**bad)  # type: ignore[arg-type]


def test_whole_text_in_one_call_matches_the_stream(joe: PiperTTSAdapter) -> None:
    audio, _ = joe.synthesize(TEXT)
    streamed = np.concatenate([c.audio for c in joe.stream(TEXT)])
    assert np.array_equal(audio, streamed)
    # _speak on a caller's own piece of text (no PiperSentence) speaks all of it in one run
    assert joe._speak("Hello. World.").size > 0


# -- speakers ------------------------------------------------------------------------------------


def test_speakers_by_name_or_id_and_the_default(tmp_path: Path) -> None:
    onnx = write_voice(tmp_path, speakers={"alice": 0, "bob": 1, "carol": 2},
                       default_speaker_id=2)
    n_ids = len(PiperTTSAdapter.from_files(onnx).phoneme_ids("Hi.")[0])

    def samples(**kw: Any) -> int:
        return PiperTTSAdapter.from_files(onnx, **kw).synthesize("Hi.")[0].size

    assert samples(speaker="alice") == n_ids * HOP * 1
    assert samples(speaker="bob") == n_ids * HOP * 2
    assert samples(speaker=1) == samples(speaker="1") == n_ids * HOP * 2
    assert samples() == n_ids * HOP * 3  # the config's default_speaker_id
    tts = PiperTTSAdapter.from_files(onnx, speaker="alice")
    assert tts.speakers == {"alice": 0, "bob": 1, "carol": 2}
    tts.set_speaker("carol")
    assert tts.synthesize("Hi.")[0].size == n_ids * HOP * 3
    with pytest.raises(UnknownSpeakerError, match="alice, bob, carol"):
        PiperTTSAdapter.from_files(onnx, speaker="dave")
    with pytest.raises(UnknownSpeakerError, match="0-2"):
        PiperTTSAdapter.from_files(onnx, speaker=7)


def test_one_speaker_voice_refuses_another_speaker(joe_onnx: Path, registry: ModelRegistry
                                                   ) -> None:
    assert PiperTTSAdapter.from_files(joe_onnx, speaker=0).speakers == {}
    err = asyncio.run(PiperTTSAdapter(registry, speaker="bob").load_model(VOICE_ID)).error
    assert isinstance(err, UnknownSpeakerError) and err.exit_code == 2
    assert "one speaker" in str(err)


def test_text_phoneme_voices_feed_code_points(tmp_path: Path) -> None:
    id_map = {"_": [0], "^": [1], "$": [2], "h": [5], "i": [6], "\u0301": [7]}
    onnx = write_voice(tmp_path, phoneme_type="text", id_map=id_map)
    tts = PiperTTSAdapter.from_files(onnx)
    assert tts.phoneme_ids("hí") == [[1, 0, 5, 0, 6, 0, 7, 0, 2]]
    assert tts.synthesize("hí")[0].size == 9 * HOP


# -- bad input -----------------------------------------------------------------------------------


def test_empty_text_gives_no_chunks(joe: PiperTTSAdapter) -> None:
    seen = record(joe)
    try:
        for text in ("", "   \n\t ", "...", "\x00\x01"):
            audio, sr = joe.synthesize(text)
            assert audio.size == 0 and sr == 22050
    finally:
        for ev in TTS_EVENTS:
            joe.off(ev)
    assert not any(isinstance(e, AdapterError) for e in seen)
    assert all(e.chunks == 0 for e in seen if isinstance(e, SynthesisDone))


def test_emoji_and_control_characters_are_spoken_around(joe: PiperTTSAdapter) -> None:
    plain, _ = joe.synthesize("Hello there.")
    # control characters are spaces to espeak-ng (U+0001 would start an embedded command)
    dirty, _ = joe.synthesize("Hello\x01 there.\x00\x07")
    assert np.array_equal(plain, dirty)
    for text in ("I love it 😀👍🏽!", "Ünïcödé façade, naïve café.", "中文测试。",
                 "\u202eright to left\u202c", "\ufeff\ufffd" * 10):
        audio, _ = joe.synthesize(text)
        assert np.all(np.isfinite(audio))


TEN_THOUSAND = ("The committee reviewed forty two proposals before lunch, then voted on nine. "
                * 200)[:10_000]


def test_ten_thousand_characters_stream_sentence_by_sentence(joe: PiperTTSAdapter) -> None:
    runs = 0
    real = joe.piper.audio

    def counted(*args: Any) -> Any:
        nonlocal runs
        runs += 1
        return real(*args)

    joe.piper.audio = counted  # type: ignore[method-assign]
    try:
        stream = joe.stream(TEN_THOUSAND)
        first = next(stream)
        assert runs == 1  # the first sentence is out before the second is made
        second = next(stream)
        assert runs == 2 and second.start_s == pytest.approx(first.duration_s)
        stream.close()
    finally:
        del joe.piper.audio
    assert len(joe.split(TEN_THOUSAND)) >= 120


def test_ten_thousand_characters_in_bounded_memory(tmp_path: Path) -> None:
    # A graph of Piper's interface that makes 4,096 samples per id costs no time to run: the
    # whole text makes ~300 MiB of audio, never all held at once.
    tts = PiperTTSAdapter.from_files(write_voice(tmp_path, hop=4096))
    tracemalloc.start()
    try:
        chunks = total = 0
        for chunk in tts.stream(TEN_THOUSAND):
            chunks += 1
            total += chunk.audio.nbytes
            del chunk
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert chunks >= 120
    assert total > 100 * 2**20 and peak < total / 20


def test_a_long_text_without_punctuation_is_cut(joe: PiperTTSAdapter) -> None:
    words = " ".join(["alpha", "bravo", "charlie", "delta"] * 400)
    pieces = joe.split(words)
    assert len(pieces) > 4
    assert all(len(p.phonemes) < 1500 for p in pieces if isinstance(p, PiperSentence))


def test_missing_espeak_is_a_clear_error(joe_onnx: Path, registry: ModelRegistry) -> None:
    with pytest.raises(RuntimeUnavailableError, match="espeak-ng"):
        PiperTTSAdapter.from_files(joe_onnx, espeak_library="/nonexistent/libespeak-ng.so.1")
    tts = PiperTTSAdapter(registry, espeak_library="/nonexistent/libespeak-ng.so.1")
    seen = record(tts)
    result = asyncio.run(tts.load_model(VOICE_ID))
    assert isinstance(result.error, RuntimeUnavailableError)
    assert isinstance(seen[-1], AdapterError)


def test_bad_voice_folders_and_configs(tmp_path: Path, joe_onnx: Path) -> None:
    with pytest.raises(ModelError, match="no Piper voice"):
        PiperTTSAdapter.from_files(tmp_path / "nothing")
    two = tmp_path / "two"
    write_voice(two, "a")
    write_voice(two, "b")
    with pytest.raises(ModelError, match=r"one \.onnx"):
        PiperTTSAdapter.from_files(two)
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "v.onnx").write_bytes(joe_onnx.read_bytes()[:1000])
    with pytest.raises(ModelError, match="no config"):
        PiperTTSAdapter.from_files(lone)
    for broken, match in (("{", "cannot read"), ("[]", "JSON object"),
                          (json.dumps({"audio": {}}), "not a Piper voice config"),
                          (json.dumps({"audio": {"sample_rate": 1}, "phoneme_id_map": {},
                                       "phoneme_type": "pinyin"}), "lacks"),
                          (json.dumps({"audio": {"sample_rate": 1},
                                       "phoneme_id_map": {"_": [0], "^": [1], "$": [2]},
                                       "phoneme_type": "pinyin"}), "not supported")):
        (lone / "v.onnx.json").write_text(broken)
        with pytest.raises(ModelError, match=match):
            PiperTTSAdapter.from_files(lone)


def test_synthesis_before_loading_is_an_error_event() -> None:
    tts = PiperTTSAdapter()
    seen = record(tts)
    with pytest.raises(ModelError, match="no voice loaded"):
        tts.synthesize("Hello.")
    assert isinstance(seen[-1], AdapterError)


# -- threads and event loops ---------------------------------------------------------------------


def test_threads_synthesize_at_once(joe: PiperTTSAdapter) -> None:
    texts = [f"Thread number {i} is speaking now." for i in range(4)]
    expected = [joe.synthesize(t)[0] for t in texts]
    got: dict[int, np.ndarray[Any, Any]] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(len(texts))

    def run(i: int) -> None:
        try:
            start.wait()
            got[i] = joe.synthesize(texts[i])[0]
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert all(np.array_equal(got[i], expected[i]) for i in range(len(texts)))


def test_from_a_running_event_loop(registry: ModelRegistry) -> None:
    async def main() -> tuple[np.ndarray[Any, Any], list[float]]:
        tts = PiperTTSAdapter(registry, deterministic=True)
        (await tts.load_model(VOICE_ID)).unwrap()
        ticks: list[float] = []

        async def heartbeat() -> None:  # the loop stays free while a thread synthesizes
            while True:
                ticks.append(asyncio.get_running_loop().time())
                await asyncio.sleep(0.01)

        beat = asyncio.create_task(heartbeat())
        audio, _ = await asyncio.to_thread(tts.synthesize, TEXT)
        beat.cancel()
        return audio, ticks

    audio, ticks = asyncio.run(main())
    assert audio.size > 22050 and len(ticks) > 3
    # and the blocking form works where a loop already runs (a notebook)
    async def notebook() -> bool:
        tts = PiperTTSAdapter(registry)
        return tts.load_model_sync(VOICE_ID).success

    assert asyncio.run(notebook())
