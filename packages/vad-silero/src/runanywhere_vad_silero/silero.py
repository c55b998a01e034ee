"""Silero VAD (v5/v6 ONNX) as a ``VADAdapter``.

The model (``silero_vad.onnx``, catalog id ``silero-vad``) is stateful and sees the audio in
windows of 512 samples at 16 kHz (256 at 8 kHz), each preceded by the last 64 (32) samples of the
previous window as context:

    inputs   input [1, 64 + 512] float32, state [2, 1, 128] float32, sr int64 scalar
    outputs  output [1, 1] speech probability, stateN [2, 1, 128] (fed back as ``state``)

``detect`` turns the per-window probabilities into segments with the algorithm of the silero-vad
package's ``get_speech_timestamps`` (v6.2.3, ported line for line, checked against it by the
tests): speech starts at prob >= ``threshold`` (0.5), ends after ``min_silence_duration_ms`` (100)
below ``neg_threshold`` (threshold - 0.15), segments shorter than ``min_speech_duration_ms`` (250)
are dropped, and each is padded by ``speech_pad_ms`` (30). Audio at other rates than 8/16 kHz is
resampled to 16 kHz with soxr (extra ``audio``).

``stream()`` gives the real-time form (the package's ``VADIterator``): feed chunks of any length,
get ``SpeechStart`` / ``SpeechEnd`` events as they happen.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from runanywhere.adapters.audio import as_mono_float32, read_wav, resample
from runanywhere.adapters.base import (
    AdapterError,
    BaseAdapter,
    Event,
    ModelLoaded,
    ModelLoading,
    RegistryLike,
    SpeechEnd,
    SpeechSegment,
    SpeechStart,
    VADEvent,
)
from runanywhere.errors import ModelError
from runanywhere.result import Result

_INPUTS = ("input", "state", "sr")
_OUTPUTS = ("output", "stateN")
_FAST_SESSION = {"intra_op_num_threads": 1, "inter_op_num_threads": 1}


def window_size(sample_rate: int) -> int:
    return 512 if sample_rate == 16000 else 256


def context_size(sample_rate: int) -> int:
    return 64 if sample_rate == 16000 else 32


class SileroModel:
    """The stateful model: one window in, one speech probability out."""

    def __init__(self, session: Any) -> None:
        names_in = {i.name for i in session.get_inputs()}
        names_out = {o.name for o in session.get_outputs()}
        if not {"input", "state"} <= names_in or not set(_OUTPUTS) <= names_out:
            raise ModelError(
                f"not a Silero VAD v5/v6 model: inputs {sorted(names_in)}, outputs "
                f"{sorted(names_out)} (expected inputs {list(_INPUTS)}, outputs {list(_OUTPUTS)})"
            )
        self.session = session
        # Some 16 kHz-only exports (silero_vad_half.onnx) have no ``sr`` input.
        self.has_sr = "sr" in names_in
        self.sample_rates: tuple[int, ...] = (8000, 16000) if self.has_sr else (16000,)
        self.reset(16000)

    def reset(self, sample_rate: int) -> None:
        if sample_rate not in self.sample_rates:
            raise ValueError(f"this Silero model takes {self.sample_rates} Hz audio, "
                             f"not {sample_rate}")
        self.sample_rate = sample_rate
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._context = np.zeros((1, context_size(sample_rate)), dtype=np.float32)
        self._sr = np.array(sample_rate, dtype=np.int64)

    def __call__(self, window: NDArray[np.float32]) -> float:
        """Speech probability of one window (``window_size(sample_rate)`` samples)."""
        x = np.concatenate([self._context, window.reshape(1, -1)], axis=1)
        feeds = {"input": x, "state": self._state}
        if self.has_sr:
            feeds["sr"] = self._sr
        out, state = self.session.run(list(_OUTPUTS), feeds)
        self._state = state
        self._context = x[:, -self._context.shape[1]:]
        return float(out.reshape(-1)[0])

    def probabilities(self, audio: NDArray[np.float32], sample_rate: int) -> NDArray[np.float32]:
        """Probabilities of every window of ``audio`` (the last one zero-padded), from a reset."""
        self.reset(sample_rate)
        win = window_size(sample_rate)
        n = math.ceil(audio.size / win)
        padded = np.zeros(n * win, dtype=np.float32)
        padded[:audio.size] = audio
        probs = np.empty(n, dtype=np.float32)
        for i in range(n):
            probs[i] = self(padded[i * win:(i + 1) * win])
        return probs


def speech_timestamps_from_probs(
    speech_probs: ArrayLike,
    sampling_rate: int = 16000,
    threshold: float = 0.5,
    min_speech_duration_ms: int = 250,
    max_speech_duration_s: float = float("inf"),
    min_silence_duration_ms: int = 100,
    speech_pad_ms: int = 30,
    neg_threshold: float | None = None,
    min_silence_at_max_speech: int = 98,
    use_max_poss_sil_at_max_speech: bool = True,
    audio_length_samples: int | None = None,
) -> list[tuple[int, int]]:
    """Speech segments ``(start, end)`` in samples from per-window probabilities.

    A port of ``silero_vad.utils_vad.get_speech_timestamps_from_probs`` (6.2.3), same defaults.
    """
    probs = [float(p) for p in np.asarray(speech_probs, dtype=np.float64).reshape(-1)]
    window_size_samples = window_size(sampling_rate)
    if audio_length_samples is None:
        audio_length_samples = len(probs) * window_size_samples

    min_speech_samples = sampling_rate * min_speech_duration_ms / 1000
    speech_pad_samples = sampling_rate * speech_pad_ms / 1000
    max_speech_samples = (sampling_rate * max_speech_duration_s - window_size_samples
                          - 2 * speech_pad_samples)
    min_silence_samples = sampling_rate * min_silence_duration_ms / 1000
    min_silence_samples_at_max_speech = sampling_rate * min_silence_at_max_speech / 1000

    triggered = False
    speeches: list[dict[str, float]] = []
    current: dict[str, float] = {}
    if neg_threshold is None:
        neg_threshold = max(threshold - 0.15, 0.01)
    temp_end = 0
    prev_end = next_start = 0
    possible_ends: list[tuple[int, int]] = []

    for i, prob in enumerate(probs):
        cur_sample = window_size_samples * i

        # Speech returns after a temp_end: remember the silence if long enough.
        if prob >= threshold and temp_end:
            sil_dur = cur_sample - temp_end
            if sil_dur > min_silence_samples_at_max_speech:
                possible_ends.append((temp_end, sil_dur))
            temp_end = 0
            if next_start < prev_end:
                next_start = cur_sample

        if prob >= threshold and not triggered:
            triggered = True
            current["start"] = cur_sample
            continue

        # Maximum speech length reached: decide where to cut.
        if triggered and cur_sample - current["start"] > max_speech_samples:
            if use_max_poss_sil_at_max_speech and possible_ends:
                prev_end, dur = max(possible_ends, key=lambda x: x[1])
                current["end"] = prev_end
                speeches.append(current)
                current = {}
                next_start = prev_end + dur
                if next_start < prev_end + cur_sample:
                    current["start"] = next_start
                else:
                    triggered = False
                prev_end = next_start = temp_end = 0
                possible_ends = []
            elif prev_end:
                current["end"] = prev_end
                speeches.append(current)
                current = {}
                if next_start < prev_end:
                    triggered = False
                else:
                    current["start"] = next_start
                prev_end = next_start = temp_end = 0
                possible_ends = []
            else:
                current["end"] = cur_sample
                speeches.append(current)
                current = {}
                prev_end = next_start = temp_end = 0
                triggered = False
                possible_ends = []
                continue

        # Silence while in speech.
        if prob < neg_threshold and triggered:
            if not temp_end:
                temp_end = cur_sample
            sil_dur_now = cur_sample - temp_end
            if (not use_max_poss_sil_at_max_speech
                    and sil_dur_now > min_silence_samples_at_max_speech):
                prev_end = temp_end
            if sil_dur_now < min_silence_samples:
                continue
            current["end"] = temp_end
            if current["end"] - current["start"] > min_speech_samples:
                speeches.append(current)
            current = {}
            prev_end = next_start = temp_end = 0
            triggered = False
            possible_ends = []
            continue

    if current and audio_length_samples - current["start"] > min_speech_samples:
        current["end"] = audio_length_samples
        speeches.append(current)

    for i, speech in enumerate(speeches):
        if i == 0:
            speech["start"] = int(max(0, speech["start"] - speech_pad_samples))
        if i != len(speeches) - 1:
            silence = speeches[i + 1]["start"] - speech["end"]
            if silence < 2 * speech_pad_samples:
                speech["end"] += int(silence // 2)
                speeches[i + 1]["start"] = int(max(0, speeches[i + 1]["start"] - silence // 2))
            else:
                speech["end"] = int(min(audio_length_samples, speech["end"] + speech_pad_samples))
                speeches[i + 1]["start"] = int(
                    max(0, speeches[i + 1]["start"] - speech_pad_samples))
        else:
            speech["end"] = int(min(audio_length_samples, speech["end"] + speech_pad_samples))

    return [(int(s["start"]), int(s["end"])) for s in speeches]


class SileroVADAdapter(BaseAdapter[VADEvent]):
    """Voice activity detection with Silero VAD (ONNX through onnxruntime)."""

    events = (ModelLoading, ModelLoaded, AdapterError, SpeechStart, SpeechEnd)
    runtime = "onnx"
    model_types = ("vad",)
    formats = ("onnx",)
    default_model_id = "silero-vad"

    def __init__(self, registry: RegistryLike | None = None, *, threshold: float = 0.5,
                 neg_threshold: float | None = None, min_speech_duration_ms: int = 250,
                 max_speech_duration_s: float = float("inf"),
                 min_silence_duration_ms: int = 100, speech_pad_ms: int = 30) -> None:
        super().__init__(registry)
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}")
        self.threshold = threshold
        self.neg_threshold = neg_threshold
        self.min_speech_duration_ms = min_speech_duration_ms
        self.max_speech_duration_s = max_speech_duration_s
        self.min_silence_duration_ms = min_silence_duration_ms
        self.speech_pad_ms = speech_pad_ms
        self._silero: SileroModel | None = None
        self._run_lock = threading.Lock()  # the model is stateful: one detection at a time

    # -- loading -----------------------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> SileroVADAdapter:
        """An adapter on a local ``silero_vad.onnx`` (no registry involved)."""
        from runanywhere.runtimes import get_runtime

        adapter = cls(**kwargs)
        session = get_runtime("onnx").load(Path(path), None, session_options=dict(_FAST_SESSION))
        adapter._attach("silero-vad", Path(path), session)
        return adapter

    async def _load_runtime(self, model_id: str, path: Path, **options: Any
                            ) -> Result[Any, ModelError]:
        # A tiny model: one thread each is faster than the default thread pool.
        options.setdefault("session_options", dict(_FAST_SESSION))
        return await self.registry.load_model(model_id, runtime=self.runtime, **options)

    def _attach(self, model_id: str, path: Path, model: Any) -> None:
        self._silero = SileroModel(model)
        self.model = model

    @property
    def silero(self) -> SileroModel:
        if self._silero is None:
            raise ModelError("SileroVADAdapter: no model loaded (call load_model first)")
        return self._silero

    # -- detection ---------------------------------------------------------------------------------
    def _prepare(self, audio: ArrayLike, sample_rate: int) -> tuple[NDArray[np.float32], int]:
        a = as_mono_float32(audio)
        if sample_rate in self.silero.sample_rates:
            return a, sample_rate
        return resample(a, sample_rate, 16000), 16000

    def speech_probabilities(self, audio: ArrayLike, sample_rate: int = 16000
                             ) -> NDArray[np.float32]:
        """Per-window speech probabilities (windows of 32 ms)."""
        a, sr = self._prepare(audio, sample_rate)
        with self._run_lock:
            return self.silero.probabilities(a, sr)

    def detect(self, audio: ArrayLike, sample_rate: int = 16000) -> list[SpeechSegment]:
        """Speech segments (in seconds); emits ``speech_start`` / ``speech_end`` for each."""
        a, sr = self._prepare(audio, sample_rate)
        with self._run_lock:
            probs = self.silero.probabilities(a, sr)
        spans = speech_timestamps_from_probs(
            probs, sr, threshold=self.threshold, neg_threshold=self.neg_threshold,
            min_speech_duration_ms=self.min_speech_duration_ms,
            max_speech_duration_s=self.max_speech_duration_s,
            min_silence_duration_ms=self.min_silence_duration_ms,
            speech_pad_ms=self.speech_pad_ms, audio_length_samples=int(a.size))
        segments = [SpeechSegment(s / sr, e / sr) for s, e in spans]
        for seg in segments:
            self.emit(SpeechStart(seg.start))
            self.emit(SpeechEnd(seg.end, seg.duration))
        return segments

    def detect_file(self, path: str | Path) -> list[SpeechSegment]:
        audio, sr = read_wav(path, target_sr=16000)
        return self.detect(audio, sr)

    def stream(self, sample_rate: int = 16000) -> SileroVADStream:
        """A real-time detector that emits events on this adapter as chunks are fed."""
        return SileroVADStream(self, sample_rate)


class SileroVADStream:
    """The silero-vad package's ``VADIterator``, for chunks of any length.

    ``feed(chunk)`` returns the events it found (and emits them on the adapter). Times are seconds
    since the stream began. ``flush()`` closes a segment still open at the end.
    """

    def __init__(self, adapter: SileroVADAdapter, sample_rate: int = 16000) -> None:
        if sample_rate not in adapter.silero.sample_rates:
            raise ValueError(f"streaming takes {adapter.silero.sample_rates} Hz audio "
                             "(resample first)")
        self.adapter = adapter
        self.sample_rate = sample_rate
        # A private model state: streaming does not disturb detect() on the same adapter.
        self._model = SileroModel(adapter.silero.session)
        self._model.reset(sample_rate)
        self._window = window_size(sample_rate)
        self._buffer = np.zeros(0, dtype=np.float32)
        self.min_silence_samples = sample_rate * adapter.min_silence_duration_ms / 1000
        self.speech_pad_samples = sample_rate * adapter.speech_pad_ms / 1000
        self.triggered = False
        self.temp_end = 0
        self.current_sample = 0
        self._start_s = 0.0

    def feed(self, chunk: ArrayLike) -> list[Event]:
        self._buffer = np.concatenate([self._buffer, as_mono_float32(chunk)])
        found: list[Event] = []
        while self._buffer.size >= self._window:
            window, self._buffer = self._buffer[:self._window], self._buffer[self._window:]
            event = self._step(window)
            if event is not None:
                found.append(event)
                self.adapter.emit(event)
        return found

    def _step(self, window: NDArray[np.float32]) -> SpeechStart | SpeechEnd | None:
        threshold = self.adapter.threshold
        win = self._window
        self.current_sample += win
        prob = self._model(window)
        if prob >= threshold and self.temp_end:
            self.temp_end = 0
        if prob >= threshold and not self.triggered:
            self.triggered = True
            start = max(0.0, self.current_sample - self.speech_pad_samples - win)
            self._start_s = start / self.sample_rate
            return SpeechStart(self._start_s)
        if prob < threshold - 0.15 and self.triggered:
            if not self.temp_end:
                self.temp_end = self.current_sample
            if self.current_sample - self.temp_end < self.min_silence_samples:
                return None
            end_s = (self.temp_end + self.speech_pad_samples - win) / self.sample_rate
            self.temp_end = 0
            self.triggered = False
            return SpeechEnd(end_s, end_s - self._start_s)
        return None

    def flush(self) -> list[Event]:
        """End an open segment at the current position (call when the input ends)."""
        if not self.triggered:
            return []
        end_s = self.current_sample / self.sample_rate
        self.triggered = False
        event = SpeechEnd(end_s, end_s - self._start_s)
        self.adapter.emit(event)
        return [event]


__all__ = [
    "SileroModel",
    "SileroVADAdapter",
    "SileroVADStream",
    "read_wav",
    "speech_timestamps_from_probs",
]
