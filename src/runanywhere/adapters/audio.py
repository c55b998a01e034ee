"""Small audio helpers for the adapters (numpy only): read a WAV, make it mono float32, resample.

``read_wav`` reads PCM WAV files (8-bit unsigned, 16/24/32-bit signed) with the stdlib ``wave``
module. Resampling is plain linear interpolation: good enough for VAD and speech recognition
front ends (both look at < 8 kHz), not for music.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import ModelError

Audio = NDArray[np.float32]


def as_mono_float32(audio: ArrayLike) -> Audio:
    """A 1-D float32 array; 2-D input (samples x channels, or 1 x samples) is averaged."""
    a = np.asarray(audio)
    if a.ndim == 2:
        # (samples, channels) is the usual layout; a short first axis means (channels, samples).
        channel_axis = 1 if a.shape[0] > a.shape[1] else 0
        a = a.reshape(-1) if 1 in a.shape else a.mean(axis=channel_axis)
    if a.ndim != 1:
        raise ValueError(f"audio must be 1-D (mono) or 2-D (multi-channel), got shape {a.shape}")
    if np.issubdtype(a.dtype, np.integer):
        info = np.iinfo(a.dtype)
        scale = float(max(abs(info.min), info.max))
        a = a.astype(np.float64) / scale
    return np.ascontiguousarray(a, dtype=np.float32)


def resample(audio: ArrayLike, orig_sr: int, target_sr: int) -> Audio:
    """Resample by linear interpolation (``orig_sr`` -> ``target_sr``)."""
    a = as_mono_float32(audio)
    if orig_sr == target_sr or a.size == 0:
        return a
    if orig_sr <= 0 or target_sr <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_sr} -> {target_sr}")
    n_out = max(1, round(a.size * target_sr / orig_sr))
    t_out = np.arange(n_out, dtype=np.float64) * (orig_sr / target_sr)
    t_in = np.arange(a.size, dtype=np.float64)
    return np.interp(t_out, t_in, a.astype(np.float64)).astype(np.float32)


def read_wav(path: str | Path, target_sr: int | None = 16000) -> tuple[Audio, int]:
    """Read a PCM WAV as mono float32 in [-1, 1]; resampled to ``target_sr`` unless it is None.

    Returns ``(samples, sample_rate)``.
    """
    try:
        with wave.open(str(path), "rb") as w:
            n_channels = w.getnchannels()
            width = w.getsampwidth()
            sr = w.getframerate()
            raw = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as e:
        raise ModelError(f"{path}: not a PCM WAV file ({e})") from e
    if width == 1:
        data = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        data = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    elif width == 3:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        ints = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        ints = np.where(ints >= 1 << 23, ints - (1 << 24), ints)
        data = ints.astype(np.float32) / float(1 << 23)
    elif width == 4:
        data = (np.frombuffer(raw, dtype="<i4").astype(np.float64) / float(1 << 31)).astype(
            np.float32)
    else:  # pragma: no cover - wave only yields 1..4
        raise ModelError(f"{path}: unsupported sample width {width} bytes")
    if n_channels > 1:
        data = data.reshape(-1, n_channels).mean(axis=1).astype(np.float32)
    if target_sr is not None and sr != target_sr:
        return resample(data, sr, target_sr), target_sr
    return np.ascontiguousarray(data, dtype=np.float32), sr


def write_wav(path: str | Path, audio: ArrayLike, sample_rate: int) -> None:
    """Write mono float audio in [-1, 1] as 16-bit PCM (for tests and demos)."""
    a = np.clip(as_mono_float32(audio), -1.0, 1.0)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes((a * 32767.0).astype("<i2").tobytes())
