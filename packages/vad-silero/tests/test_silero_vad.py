"""Silero VAD on real speech (espeak-ng), and the adapter base through it: events, loading
through a registry, handlers."""

from __future__ import annotations

import ast
import asyncio
import logging
import shutil
import subprocess
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import runanywhere_vad_silero
from runanywhere import adapters
from runanywhere.adapters import (
    AdapterError,
    BaseAdapter,
    ModelLoaded,
    ModelLoading,
    SpeechEnd,
    SpeechSegment,
    SpeechStart,
    STTAdapter,
    Transcript,
    VADAdapter,
    available_adapters,
    get_adapter,
)
from runanywhere.adapters.audio import read_wav, resample
from runanywhere.errors import ModelError, ModelNotFoundError, RuntimeUnavailableError
from runanywhere.result import Result
from runanywhere.runtimes import get_runtime
from runanywhere_vad_silero import SileroVADAdapter, speech_timestamps_from_probs
from support.isolation import _isolated_env
from support.silero_wheel import silero_data_dir, silero_wheel_dir

SENTENCE = "hello world, this is a test of voice activity detection"


# -- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def silero_onnx() -> Path:
    return silero_data_dir() / "silero_vad.onnx"


@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        pytest.fail("espeak-ng is not installed (Debian package espeak-ng)")
    out = tmp_path_factory.mktemp("speech") / "speech.wav"
    subprocess.run([espeak, "-w", str(out), SENTENCE], check=True, timeout=60)
    return out


@pytest.fixture(scope="session")
def padded_speech(speech_wav: Path) -> tuple[np.ndarray, float, float]:
    """(16 kHz audio with 1 s of silence either side, speech start s, speech end s)."""
    with wave.open(str(speech_wav)) as w:
        assert w.getframerate() == 22050  # espeak-ng's rate: read_wav has to resample
    audio, sr = read_wav(speech_wav)
    assert sr == 16000 and audio.dtype == np.float32
    loud = np.flatnonzero(np.abs(audio) > 0.02)
    start, end = 1.0 + loud[0] / sr, 1.0 + loud[-1] / sr
    pad = np.zeros(sr, np.float32)
    return np.concatenate([pad, audio, pad]), start, end


@pytest.fixture(scope="session")
def vad(silero_onnx: Path) -> SileroVADAdapter:
    return SileroVADAdapter.from_file(silero_onnx)


class StubRegistry:
    """A test double of ModelRegistry's async contract, loading the real ONNX file."""

    def __init__(self, path: Path, known: tuple[str, ...] = ("silero-vad",),
                 load_error: ModelError | None = None, raise_on_load: bool = False) -> None:
        self.path = path
        self.known = known
        self.load_error = load_error
        self.raise_on_load = raise_on_load
        self.calls: list[tuple[Any, ...]] = []

    async def download_model(self, model_id: str,
                             on_progress: Callable[[float, str], None] | None = None
                             ) -> Result[Path, ModelError]:
        self.calls.append(("download", model_id))
        if model_id not in self.known:
            return Result.err(ModelNotFoundError(model_id))
        for pct in (0.0, 40.0, 100.0):
            await asyncio.sleep(0)
            if on_progress is not None:
                on_progress(pct, f"downloading {model_id}: {pct:.0f}%")
        return Result.ok(self.path)

    async def load_model(self, model_id: str, runtime: str | None = None, **options: Any
                         ) -> Result[Any, ModelError]:
        self.calls.append(("load", model_id, runtime, options))
        if self.raise_on_load:
            raise RuntimeError("registry bug")
        if self.load_error is not None:
            return Result.err(self.load_error)
        try:
            return Result.ok(get_runtime(runtime or "onnx").load(self.path, None, **options))
        except ModelError as e:
            return Result.err(e)


def record(adapter: BaseAdapter[Any], *events: type[Any] | str) -> list[Any]:
    seen: list[Any] = []
    for ev in events:
        adapter.on(ev, seen.append)
    return seen


# -- Silero VAD on real audio ----------------------------------------------------------------------


def test_vad_finds_real_speech_inside_the_speech_region(
        vad: SileroVADAdapter, padded_speech: tuple[np.ndarray, float, float]) -> None:
    audio, start, end = padded_speech
    seen = record(vad, SpeechStart, SpeechEnd)
    segments = vad.detect(audio, 16000)
    assert segments, "no speech found in espeak-ng speech"
    for seg in segments:
        assert isinstance(seg, SpeechSegment)
        # Slack: speech_pad_ms (30 ms) plus a window (32 ms) before; after, the model's own
        # hangover (its probability falls below neg_threshold ~100 ms after the last sound).
        assert start - 0.1 <= seg.start < seg.end <= end + 0.2, (seg, start, end)
        assert seg.duration >= 0.25
    covered = sum(s.duration for s in segments)
    assert covered >= 0.6 * (end - start), (segments, start, end)
    # detect() reports each segment as a start/end event pair, in order.
    assert seen == [e for s in segments
                    for e in (SpeechStart(s.start), SpeechEnd(s.end, s.duration))]
    for unsub in (SpeechStart, SpeechEnd):
        vad.off(unsub)


def test_vad_silence_and_low_noise_give_no_segments(vad: SileroVADAdapter) -> None:
    seen = record(vad, SpeechStart, SpeechEnd)
    assert vad.detect(np.zeros(3 * 16000, np.float32), 16000) == []
    rng = np.random.default_rng(1234)
    for level in (0.003, 0.01, 0.03):
        noise = (rng.standard_normal(3 * 16000) * level).astype(np.float32)
        assert vad.detect(noise, 16000) == [], level
        assert float(vad.speech_probabilities(noise).max()) < 0.5
    assert seen == []
    vad.off(SpeechStart)
    vad.off(SpeechEnd)


def test_vad_other_sample_rates(vad: SileroVADAdapter,
                                padded_speech: tuple[np.ndarray, float, float]) -> None:
    audio = padded_speech[0]
    ref = vad.detect(audio, 16000)
    for sr in (8000, 48000):  # 8 kHz runs natively, 48 kHz is resampled to 16 kHz
        segs = vad.detect(resample(audio, 16000, sr), sr)
        assert segs and abs(segs[0].start - ref[0].start) < 0.15, (sr, segs, ref)
        assert abs(segs[-1].end - ref[-1].end) < 0.15, (sr, segs, ref)


def test_vad_stream_matches_offline_detection(vad: SileroVADAdapter,
                                              padded_speech: tuple[np.ndarray, float, float]
                                              ) -> None:
    audio, start, end = padded_speech
    offline = vad.detect(audio, 16000)
    stream = vad.stream(16000)
    events: list[Any] = []
    for i in range(0, audio.size, 1600):  # 100 ms chunks
        events += stream.feed(audio[i:i + 1600])
    events += stream.flush()
    assert events, "streaming found no speech"
    assert isinstance(events[0], SpeechStart) and isinstance(events[-1], SpeechEnd)
    kinds = [type(e) for e in events]
    assert kinds == [SpeechStart, SpeechEnd] * (len(events) // 2)
    assert abs(events[0].time_s - offline[0].start) < 0.1
    assert start - 0.1 <= events[0].time_s and events[-1].time_s <= end + 0.2


def _reference_from_probs() -> Callable[..., list[dict[str, float]]]:
    """``get_speech_timestamps_from_probs`` from the wheel's utils_vad.py (pure Python)."""
    source = (silero_wheel_dir() / "silero_vad" / "utils_vad.py").read_text()
    fn = next(n for n in ast.parse(source).body
              if isinstance(n, ast.FunctionDef) and n.name == "get_speech_timestamps_from_probs")
    ns: dict[str, Any] = {"List": list, "Callable": Callable, "make_visualization": None}
    exec(compile(ast.Module(body=[fn], type_ignores=[]), "utils_vad.py", "exec"), ns)
    return ns["get_speech_timestamps_from_probs"]  # type: ignore[no-any-return]


def test_segmentation_matches_the_silero_package(vad: SileroVADAdapter,
                                                 padded_speech: tuple[np.ndarray, float, float]
                                                 ) -> None:
    reference = _reference_from_probs()
    rng = np.random.default_rng(7)
    # Real probabilities of real speech, then random bursty sequences with random settings.
    audio = padded_speech[0]
    cases: list[tuple[list[float], dict[str, Any]]] = [
        (vad.speech_probabilities(audio).tolist(), {"audio_length_samples": audio.size})]
    for _ in range(400):
        probs: list[float] = []
        while len(probs) < rng.integers(20, 200):
            hi = rng.random() < 0.5
            lo_, hi_ = (0.4, 1.0) if hi else (0.0, 0.6)
            probs += list(rng.uniform(lo_, hi_, rng.integers(1, 25)))
        sr = int(rng.choice([8000, 16000]))
        win = 512 if sr == 16000 else 256
        kwargs: dict[str, Any] = {
            "sampling_rate": sr,
            "threshold": float(rng.uniform(0.3, 0.7)),
            "min_speech_duration_ms": int(rng.integers(0, 400)),
            "min_silence_duration_ms": int(rng.integers(0, 300)),
            "speech_pad_ms": int(rng.integers(0, 100)),
            "max_speech_duration_s": float(rng.choice([np.inf, 0.3, 0.8, 2.0])),
            "use_max_poss_sil_at_max_speech": bool(rng.random() < 0.5),
            "min_silence_at_max_speech": int(rng.integers(0, 150)),
            "audio_length_samples": len(probs) * win - int(rng.integers(0, win)),
        }
        if rng.random() < 0.3:
            kwargs["neg_threshold"] = float(rng.uniform(0.05, 0.3))
        cases.append((probs, kwargs))
    nonempty = 0
    for probs, kwargs in cases:
        want = [(d["start"], d["end"]) for d in reference(list(probs), **kwargs)]
        got = speech_timestamps_from_probs(probs, **kwargs)
        assert got == want, kwargs
        nonempty += bool(want)
    assert nonempty > 300  # the cases exercise real segmentation, not empty outputs


def test_vad_rejects_a_model_that_is_not_silero_v5(silero_onnx: Path) -> None:
    with pytest.raises(ModelError, match="not a Silero VAD v5/v6 model"):
        SileroVADAdapter.from_file(silero_onnx.parent / "silero_vad_16k_sequence.onnx")
    # A 16 kHz-only variant without the ``sr`` input still works (8 kHz gets resampled).
    half = SileroVADAdapter.from_file(silero_onnx.parent / "silero_vad_half.onnx")
    assert half.silero.sample_rates == (16000,)
    assert half.detect(np.zeros(8000, np.float32), 8000) == []


def test_detect_before_load_is_a_clear_error() -> None:
    with pytest.raises(ModelError, match="no model loaded"):
        SileroVADAdapter(registry=StubRegistry(Path("/nonexistent"))).detect(np.zeros(512))


# -- loading through the registry contract ---------------------------------------------------------


def test_load_model_emits_progress_then_loaded(silero_onnx: Path,
                                               padded_speech: tuple[np.ndarray, float, float]
                                               ) -> None:
    registry = StubRegistry(silero_onnx)
    adapter = SileroVADAdapter(registry)
    seen = record(adapter, ModelLoading, ModelLoaded, AdapterError)
    result = asyncio.run(adapter.load_model())  # default id: silero-vad
    assert result.success and result.value is None, result.error
    assert [type(e) for e in seen] == [ModelLoading] * 4 + [ModelLoaded]
    assert [e.progress for e in seen[:4]] == [0.0, 0.0, 40.0, 100.0]
    assert all(e.model_id == "silero-vad" for e in seen)
    assert seen[1].message == "downloading silero-vad: 0%"
    assert seen[-1].load_time_s >= 0
    assert registry.calls[0] == ("download", "silero-vad")
    assert registry.calls[1][:3] == ("load", "silero-vad", "onnx")
    assert adapter.is_loaded and adapter.model_id == "silero-vad"
    assert adapter.detect(padded_speech[0], 16000)


def test_load_model_failures_emit_error_and_return_it(silero_onnx: Path) -> None:
    adapter = SileroVADAdapter(StubRegistry(silero_onnx))
    seen = record(adapter, "model_loading", "model_loaded", "error")
    result = asyncio.run(adapter.load_model("no-such-model"))
    assert not result.success and isinstance(result.error, ModelNotFoundError)
    assert [type(e) for e in seen] == [ModelLoading, AdapterError]
    assert seen[-1].error is result.error and seen[-1].model_id == "no-such-model"
    with pytest.raises(ModelNotFoundError):
        result.unwrap()
    assert not adapter.is_loaded

    boom = RuntimeUnavailableError("runtime 'onnx' needs onnxruntime")
    adapter = SileroVADAdapter(StubRegistry(silero_onnx, load_error=boom))
    seen = record(adapter, AdapterError, ModelLoaded)
    assert asyncio.run(adapter.load_model("silero-vad")).error is boom
    assert [type(e) for e in seen] == [AdapterError]

    adapter = SileroVADAdapter(StubRegistry(silero_onnx, raise_on_load=True))
    seen = record(adapter, AdapterError)
    result = asyncio.run(adapter.load_model("silero-vad"))
    assert isinstance(result.error, ModelError) and "registry bug" in str(result.error)
    assert isinstance(result.error.__cause__, RuntimeError)
    assert [type(e) for e in seen] == [AdapterError]

    # The registry hands over a model that is not a Silero VAD: an error, not a crash later.
    adapter = SileroVADAdapter(StubRegistry(silero_onnx.parent))
    result = asyncio.run(adapter.load_model("silero-vad", file="silero_vad_16k_sequence.onnx"))
    assert result.error is not None and "not a Silero VAD" in str(result.error)


def test_load_model_sync_inside_and_outside_an_event_loop(silero_onnx: Path) -> None:
    adapter = SileroVADAdapter(StubRegistry(silero_onnx))
    assert adapter.load_model_sync().success

    async def in_loop() -> Result[None, ModelError]:
        return SileroVADAdapter(StubRegistry(silero_onnx)).load_model_sync("silero-vad")

    assert asyncio.run(in_loop()).success


def test_default_registry_is_the_process_wide_one() -> None:
    from runanywhere.registry import ModelRegistry

    try:
        adapter = SileroVADAdapter()
        assert adapter.registry is ModelRegistry.get_instance()
    finally:
        ModelRegistry.reset_instance()


# -- events API ------------------------------------------------------------------------------------


def test_on_off_by_class_and_name(silero_onnx: Path, caplog: pytest.LogCaptureFixture) -> None:
    adapter = SileroVADAdapter(StubRegistry(silero_onnx))
    got: list[str] = []
    unsubscribe = adapter.on(SpeechStart, lambda e: got.append(f"a{e.time_s}"))
    adapter.on("speech_start", lambda e: got.append(f"b{e.time_s}"))

    def bad(e: SpeechStart) -> None:
        raise RuntimeError("handler bug")

    adapter.on(SpeechStart, bad)
    adapter.on(SpeechStart, lambda e: got.append("after-bad"))
    with caplog.at_level(logging.ERROR, logger="runanywhere.adapters"):
        adapter.emit(SpeechStart(1.5))
    assert got == ["a1.5", "b1.5", "after-bad"]
    assert "handler bug" in caplog.text
    unsubscribe()
    adapter.off("speech_start", bad)
    got.clear()
    adapter.emit(SpeechStart(2.0))
    assert got == ["b2.0", "after-bad"]
    adapter.off(SpeechStart)
    adapter.emit(SpeechStart(3.0))
    assert got == ["b2.0", "after-bad"]
    with pytest.raises(ValueError, match="emits no event 'transcript'"):
        adapter.on("transcript", print)
    with pytest.raises(ValueError, match="speech_start"):
        adapter.on("speech-start", print)
    with pytest.raises(ValueError):
        adapter.on(Transcript, print)


def test_the_adapter_satisfies_its_task_interface(vad: SileroVADAdapter) -> None:
    assert isinstance(vad, VADAdapter)
    assert not isinstance(vad, STTAdapter)


def test_registered_under_its_name_with_what_it_handles() -> None:
    assert "silero-vad" in available_adapters()
    assert get_adapter("silero-vad") is SileroVADAdapter
    assert adapters.SileroVADAdapter is SileroVADAdapter  # the old import path, through the table
    assert SileroVADAdapter.model_types == ("vad",) and SileroVADAdapter.formats == ("onnx",)
    assert runanywhere_vad_silero.__file__ is not None
