"""The faster-whisper adapter on real Whisper weights: loading through the registry, events,
streaming, options, bad input, threads and event loops."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import numpy as np
import pytest

from harness.nginx import Nginx
from runanywhere import ModelRegistry
from runanywhere.adapters import (
    AdapterError,
    ModelLoaded,
    ModelLoading,
    SegmentedSTTAdapter,
    STTAdapter,
    Transcript,
    Transcription,
    TranscriptSegment,
    available_adapters,
    get_adapter,
)
from runanywhere.errors import AudioError, TranscriptionError
from runanywhere_stt_whisper.faster_whisper_stt import FasterWhisperSTTAdapter
from support import ct2_models
from support.speech import SAMPLE_RATE, speak
from support.whisper_text import word_errors

HELLO = "Hello there. My name is Alice and I live in Paris."


@pytest.fixture(scope="module")
def hello() -> np.ndarray:
    return speak(HELLO)


def _close(text: str, reference: str = HELLO, most: int = 1) -> bool:
    errors, _ = word_errors(reference, text)
    return errors <= most


# -- finding and loading ---------------------------------------------------------------------------

def test_the_adapter_plugs_in_and_declares_what_it_runs() -> None:
    assert "faster-whisper" in available_adapters()
    cls = get_adapter("faster-whisper")
    assert cls is FasterWhisperSTTAdapter
    assert cls.model_types == ("stt",)
    assert cls.formats == ("ctranslate2",)


def test_pulled_through_the_builtin_entries_with_their_exact_hashes(
        origin: Nginx, catalog: Path, tmp_path: Path) -> None:
    """A fresh home pulls all four files of each model from nginx; the registry checks them
    against the sizes and sha256 the package's catalog ships; the adapter loads the result."""
    registry = ModelRegistry(home=tmp_path / "home", catalogs=[catalog], include_builtin=False)
    since = origin.log_size()
    stt = FasterWhisperSTTAdapter(registry)
    progress: list[float] = []
    stt.on(ModelLoading, lambda e: progress.append(e.progress))
    assert asyncio.run(stt.load_model("faster-whisper-tiny.en")).success
    served = {r.path for r in origin.records(since, status=200) + origin.records(since, status=206)}
    meta = registry.require_model("faster-whisper-tiny.en")
    assert served == {f"/faster-whisper-tiny.en/{f.path}" for f in meta.files}
    assert progress and progress[-1] == pytest.approx(100.0)
    entry = registry.cache.entry("faster-whisper-tiny.en")
    assert entry is not None
    for f in meta.files:
        assert (entry.path / f.path).stat().st_size == f.size


def test_load_model_emits_loading_then_loaded(registry: ModelRegistry) -> None:
    stt = FasterWhisperSTTAdapter(registry)
    seen: list[str] = []
    stt.on(ModelLoading, lambda e: seen.append("loading"))
    stt.on(ModelLoaded, lambda e: seen.append(f"loaded {e.model_id}"))
    assert asyncio.run(stt.load_model()).success  # the default: tiny.en
    assert seen[0] == "loading" and seen[-1] == "loaded faster-whisper-tiny.en"
    assert isinstance(stt, STTAdapter) and isinstance(stt, SegmentedSTTAdapter)


def test_an_unknown_model_is_an_error_result_and_event(registry: ModelRegistry) -> None:
    stt = FasterWhisperSTTAdapter(registry)
    errors: list[AdapterError] = []
    stt.on(AdapterError, errors.append)
    result = asyncio.run(stt.load_model("faster-whisper-huge"))
    assert not result.success and "faster-whisper-huge" in str(result.error)
    assert errors and errors[0].error is result.error


# -- transcribing ----------------------------------------------------------------------------------

def test_transcribe_gives_text_segments_language_and_duration(
        tiny: FasterWhisperSTTAdapter, hello: np.ndarray) -> None:
    result = tiny.transcribe_full(hello, SAMPLE_RATE)
    assert isinstance(result, Transcription)
    assert _close(result.text), result.text
    assert result.language == "en"
    assert result.duration == pytest.approx(hello.size / SAMPLE_RATE)
    assert result.segments and result.text == "".join(s.text for s in result.segments).strip()
    for a, b in zip(result.segments, result.segments[1:], strict=False):
        assert a.end <= b.start + 1e-6
    assert all(0.0 <= s.start <= s.end <= result.duration for s in result.segments)
    assert tiny.transcribe(hello, SAMPLE_RATE) == result.text
    doc = result.to_dict()
    assert set(doc) == {"text", "language", "duration", "segments"}
    assert set(doc["segments"][0]) == {"start", "end", "text"}


def test_each_segment_is_an_event_as_it_is_decoded_then_the_transcript(
        tiny_dir: Path) -> None:
    """Three sentences 40 s long (two 30 s windows): the stream hands out the first segment
    before the second window is decoded, and each event comes before its segment is yielded."""
    stt = FasterWhisperSTTAdapter.from_dir(tiny_dir, language="en")
    parts = [speak(s) for s in (HELLO, "The weather is cold and grey today.",
                                "We will meet again next week in Berlin.")]
    gap = np.zeros(14 * SAMPLE_RATE, dtype=np.float32)
    audio = np.concatenate([parts[0], gap, parts[1], gap, parts[2]])
    log: list[str] = []
    stt.on(TranscriptSegment, lambda s: log.append(f"event {s.index}"))
    stt.on(Transcript, lambda t: log.append("transcript"))
    stream = stt.stream(audio, SAMPLE_RATE)
    assert stream.language == "en" and stream.duration == pytest.approx(audio.size / SAMPLE_RATE)
    first = next(stream)
    assert first.index == 0 and log == ["event 0"]  # nothing after it decoded yet
    log.append("got 0")
    rest = list(stream)
    assert log[:2] == ["event 0", "got 0"] and log[-1] == "transcript"
    assert [s.index for s in [first, *rest]] == list(range(1 + len(rest)))
    result = stream.result()
    assert result.segments[0] is first and len(result.segments) >= 3
    assert result.segments[-1].start > 30.0  # from the second window, at its real time


def test_other_sample_rates_stereo_and_integers_are_taken(
        tiny: FasterWhisperSTTAdapter, hello: np.ndarray) -> None:
    import soxr

    at_8k = soxr.resample(hello, SAMPLE_RATE, 8000).astype(np.float32)
    assert _close(tiny.transcribe(at_8k, 8000), most=2)
    stereo = np.stack([hello, hello], axis=1)
    assert _close(tiny.transcribe(stereo, SAMPLE_RATE))
    pcm = (hello * 32767).astype(np.int16)
    assert _close(tiny.transcribe(pcm, SAMPLE_RATE))


def test_empty_and_silent_audio_give_an_empty_transcription(
        tiny: FasterWhisperSTTAdapter) -> None:
    seen: list[str] = []
    off = tiny.on(Transcript, lambda t: seen.append(t.text))
    try:
        empty = tiny.transcribe_full(np.zeros(0, dtype=np.float32), SAMPLE_RATE)
    finally:
        off()
    assert (empty.text, empty.segments, empty.duration, empty.language) == ("", (), 0.0, "en")
    assert seen == [""]


def test_bad_samples_are_a_clear_audio_error(tiny: FasterWhisperSTTAdapter) -> None:
    bad = np.ones(16000, dtype=np.float32)
    bad[100] = np.nan
    with pytest.raises(AudioError, match="NaN"):
        tiny.transcribe(bad, SAMPLE_RATE)
    with pytest.raises(AudioError, match="sample rate"):
        tiny.transcribe(np.zeros(100, dtype=np.float32), 0)
    with pytest.raises(AudioError, match="1-D"):
        tiny.transcribe(np.zeros((2, 2, 2), dtype=np.float32), SAMPLE_RATE)


def test_transcribe_file_reads_any_soundfile_format(tiny: FasterWhisperSTTAdapter,
                                                   hello: np.ndarray, tmp_path: Path) -> None:
    import soundfile as sf

    flac = tmp_path / "hello.flac"
    sf.write(flac, hello, SAMPLE_RATE, format="FLAC")
    assert _close(tiny.transcribe_file(flac).text)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"this is not audio at all" * 10)
    with pytest.raises(AudioError, match=r"junk\.wav"):
        tiny.transcribe_file(junk)


# -- options ---------------------------------------------------------------------------------------

def test_an_english_only_model_refuses_another_language(tiny_dir: Path,
                                                        registry: ModelRegistry) -> None:
    with pytest.raises(TranscriptionError, match="English-only"):
        FasterWhisperSTTAdapter.from_dir(tiny_dir, language="fr")
    stt = FasterWhisperSTTAdapter(registry, language="de")
    result = asyncio.run(stt.load_model("faster-whisper-tiny.en"))
    assert not result.success and "English-only" in str(result.error)


def test_base_detects_the_language_and_refuses_an_unknown_code(base_dir: Path,
                                                             hello: np.ndarray) -> None:
    stt = FasterWhisperSTTAdapter.from_dir(base_dir)
    assert stt.is_multilingual
    result = stt.transcribe_full(hello, SAMPLE_RATE)
    assert result.language == "en" and stt.detected_language == "en"
    assert _close(result.text)
    with pytest.raises(TranscriptionError, match="unknown language 'xx'"):
        FasterWhisperSTTAdapter.from_dir(base_dir, language="xx")


def test_beam_size_and_decode_options_reach_faster_whisper(tiny_dir: Path,
                                                          hello: np.ndarray) -> None:
    greedy = FasterWhisperSTTAdapter.from_dir(tiny_dir, beam_size=1, without_timestamps=True)
    result = greedy.transcribe_full(hello, SAMPLE_RATE)
    assert _close(result.text)
    # without timestamps faster-whisper makes one segment per 30 s window
    assert len(result.segments) == 1
    with pytest.raises(ValueError, match="beam_size"):
        FasterWhisperSTTAdapter(beam_size=0)
    with pytest.raises(ValueError, match="no option bogus"):
        FasterWhisperSTTAdapter(bogus=1)
    with pytest.raises(ValueError, match="vad_filter"):
        FasterWhisperSTTAdapter(vad_filter=True)
    with pytest.raises(ValueError, match="task"):
        FasterWhisperSTTAdapter(task="summarize")


def test_transcribing_before_loading_is_an_error_event_and_exception() -> None:
    stt = FasterWhisperSTTAdapter()
    errors: list[AdapterError] = []
    stt.on(AdapterError, errors.append)
    with pytest.raises(Exception, match="no model loaded"):
        stt.transcribe(np.zeros(16000, dtype=np.float32))
    assert len(errors) == 1


# -- threads and event loops -----------------------------------------------------------------------

def test_threads_transcribing_at_once_get_what_one_thread_gets(
        tiny: FasterWhisperSTTAdapter, hello: np.ndarray) -> None:
    expected = tiny.transcribe(hello, SAMPLE_RATE)
    results: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def work() -> None:
        try:
            start.wait()
            results.append(tiny.transcribe(hello, SAMPLE_RATE))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors and results == [expected] * 3


def test_load_model_sync_works_inside_a_running_event_loop(registry: ModelRegistry,
                                                          hello: np.ndarray) -> None:
    """A notebook's case: a loop runs; the blocking form still loads, and the async one does
    from a task while the loop keeps serving other tasks."""

    async def main() -> str:
        stt = FasterWhisperSTTAdapter(registry)
        assert stt.load_model_sync("faster-whisper-tiny.en").success
        other = FasterWhisperSTTAdapter(registry)
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        ticker = asyncio.create_task(tick())
        assert (await other.load_model("faster-whisper-tiny.en")).success
        text = await asyncio.to_thread(other.transcribe, hello, SAMPLE_RATE)
        ticker.cancel()
        assert ticks > 0
        return text

    assert _close(asyncio.run(main()))


# -- VAD through our Silero adapter ----------------------------------------------------------------

def test_vad_true_loads_silero_through_the_same_registry(registry: ModelRegistry,
                                                        hello: np.ndarray) -> None:
    stt = FasterWhisperSTTAdapter(registry, language="en", vad=True)
    loading: set[str] = set()
    stt.on(ModelLoading, lambda e: loading.add(e.model_id))
    assert asyncio.run(stt.load_model("faster-whisper-tiny.en")).success
    assert loading == {"silero-vad", "faster-whisper-tiny.en"}
    assert type(stt.vad).__name__ == "SileroVADAdapter"
    silence = np.zeros(5 * SAMPLE_RATE, dtype=np.float32)
    result = stt.transcribe_full(np.concatenate([silence, hello, silence]), SAMPLE_RATE)
    assert _close(result.text)
    assert result.segments[0].start >= 5.0 - 0.5  # not at 0: the silence was cut, times kept
    nothing = stt.transcribe_full(np.zeros(10 * SAMPLE_RATE, dtype=np.float32), SAMPLE_RATE)
    assert nothing.text == "" and nothing.segments == () and nothing.duration == 10.0


def test_a_vad_that_cannot_load_fails_the_load(catalog: Path, tmp_path: Path) -> None:
    registry = ModelRegistry(home=tmp_path / "home", catalogs=[catalog], include_builtin=False)
    stt = FasterWhisperSTTAdapter(registry, vad=True, vad_model_id="no-such-vad")
    result = asyncio.run(stt.load_model("faster-whisper-tiny.en"))
    assert not result.success and "no-such-vad" in str(result.error)
    assert stt.model is None


def test_a_vad_adapter_that_is_not_installed_is_an_error_result(
        catalog: Path, tmp_path: Path) -> None:
    """The catalog names an adapter for the VAD model that no package provides: load_model
    says so in its Result (and an error event), it does not raise."""
    import json

    doc = json.loads(catalog.read_text())
    for model in doc["models"]:
        if model["id"] == "silero-vad":
            model["adapter"] = "webrtc-vad"
    other = tmp_path / "catalog.json"
    other.write_text(json.dumps(doc))
    registry = ModelRegistry(home=tmp_path / "home", catalogs=[other], include_builtin=False)
    stt = FasterWhisperSTTAdapter(registry, vad=True)
    errors: list[AdapterError] = []
    stt.on(AdapterError, errors.append)
    result = asyncio.run(stt.load_model("faster-whisper-tiny.en"))
    assert not result.success and "webrtc-vad" in str(result.error)
    assert errors and errors[0].model_id == "silero-vad"


def test_from_dir_takes_a_loaded_vad_adapter(tiny_dir: Path, scratch: Path,
                                            hello: np.ndarray) -> None:
    from runanywhere.adapters import SileroVADAdapter

    onnx = ct2_models.model_dir(ct2_models.VAD, scratch) / "silero_vad.onnx"
    vad = SileroVADAdapter.from_file(onnx, min_silence_duration_ms=2000, speech_pad_ms=400)
    stt = FasterWhisperSTTAdapter.from_dir(tiny_dir, language="en", vad=vad)
    audio = np.concatenate([np.zeros(3 * SAMPLE_RATE, dtype=np.float32), hello])
    result = stt.transcribe_full(audio, SAMPLE_RATE)
    assert _close(result.text) and result.segments[0].start >= 2.5
    with pytest.raises(ValueError, match="loaded VADAdapter"):
        FasterWhisperSTTAdapter.from_dir(tiny_dir, vad=True)
