"""Audio in and out for the adapters: read, mix down to mono float32, resample, write.

Reading and writing go through ``soundfile`` (libsndfile: WAV in PCM 8/16/24/32-bit and float,
FLAC, OGG/Vorbis, MP3, AIFF, ...); resampling through ``soxr`` (the SoX resampler, "HQ": a
linear-phase low-pass before decimation, so content above the new Nyquist frequency is removed
instead of folding back as aliases). Both come with the extra ``audio``::

    pip install 'runanywhere[audio]'

and are imported on first use, so importing this module needs numpy only. A file that cannot be
read or written raises :class:`~runanywhere.errors.AudioError` naming it; a missing library raises
:class:`~runanywhere.errors.RuntimeUnavailableError` naming the extra.

Arrays are mono float32 in [-1, 1]. Multi-channel input is averaged (a plain mixdown: no
phase-aware downmix); integer input is scaled by its type's full range.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import AudioError, RuntimeUnavailableError

Audio = NDArray[np.float32]

#: soxr quality used by :func:`resample` ("HQ": 20-bit, passband to 91% of the new Nyquist).
RESAMPLE_QUALITY = "HQ"

#: File suffix -> soundfile format, for :func:`write_audio`.
FORMATS = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".oga": "OGG", ".aiff": "AIFF",
           ".aif": "AIFF"}
#: Default subtype per format (WAV and AIFF: 16-bit PCM; FLAC: 16-bit; OGG: Vorbis).
DEFAULT_SUBTYPES = {"WAV": "PCM_16", "FLAC": "PCM_16", "OGG": "VORBIS", "AIFF": "PCM_16"}


def _require(module: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as e:  # pragma: no cover - exercised by hiding the module in a test
        raise RuntimeUnavailableError(
            f"audio files and resampling need {module}, which is not installed ({e}): "
            "pip install 'runanywhere[audio]'") from e


def as_mono_float32(audio: ArrayLike) -> Audio:
    """A 1-D float32 array; 2-D input (samples x channels, or channels x samples) is averaged."""
    a = np.asarray(audio)
    if a.ndim == 2:
        # (samples, channels) is the usual layout; a short first axis means (channels, samples).
        channel_axis = 1 if a.shape[0] > a.shape[1] else 0
        a = a.reshape(-1) if 1 in a.shape else a.mean(axis=channel_axis)
    if a.ndim != 1:
        raise ValueError(f"audio must be 1-D (mono) or 2-D (multi-channel), got shape {a.shape}")
    if np.issubdtype(a.dtype, np.integer):
        info = np.iinfo(a.dtype)
        if info.min == 0:  # unsigned (8-bit WAV convention): centre on the midpoint
            a = (a.astype(np.float64) - (info.max + 1) / 2) / ((info.max + 1) / 2)
        else:
            a = a.astype(np.float64) / float(max(abs(info.min), info.max))
    return np.ascontiguousarray(a, dtype=np.float32)


def resample(audio: ArrayLike, orig_sr: int, target_sr: int) -> Audio:
    """Band-limited resampling with soxr (``orig_sr`` -> ``target_sr``), mono float32 out."""
    a = as_mono_float32(audio)
    if orig_sr <= 0 or target_sr <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_sr} -> {target_sr}")
    if orig_sr == target_sr or a.size == 0:
        return a
    soxr = _require("soxr")
    out = soxr.resample(a, orig_sr, target_sr, quality=RESAMPLE_QUALITY)
    return np.ascontiguousarray(out, dtype=np.float32)


def read_audio(path: str | Path, target_sr: int | None = 16000) -> tuple[Audio, int]:
    """Read any file libsndfile knows as mono float32; resampled to ``target_sr`` unless None.

    Returns ``(samples, sample_rate)``. Raises :class:`AudioError` naming the file when it is
    missing, empty or not audio.
    """
    sf = _require("soundfile")
    p = Path(path)
    if not p.is_file():
        raise AudioError(f"{p}: no such audio file", path=p)
    try:
        data, sr = sf.read(str(p), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        raise AudioError(f"{p}: not a readable audio file ({e})", path=p) from e
    mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    mono = np.ascontiguousarray(mono, dtype=np.float32)
    if target_sr is not None and sr != target_sr:
        return resample(mono, int(sr), target_sr), target_sr
    return mono, int(sr)


#: The VAD and the demo read WAV files by this name; it reads every format ``read_audio`` does.
read_wav = read_audio


def write_audio(path: str | Path, audio: ArrayLike, sample_rate: int, *,
                subtype: str | None = None) -> Path:
    """Write mono audio; the format comes from the suffix (.wav, .flac, .ogg, .aiff).

    ``subtype`` is soundfile's (``PCM_16`` by default, ``FLOAT`` for 32-bit float WAV,
    ``VORBIS`` for OGG). Samples are clipped to [-1, 1] for integer subtypes.
    """
    sf = _require("soundfile")
    p = Path(path)
    fmt = FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise AudioError(f"{p}: unknown audio format (use one of {', '.join(FORMATS)})", path=p)
    sub = subtype or DEFAULT_SUBTYPES[fmt]
    a = as_mono_float32(audio)
    if sample_rate <= 0:
        raise ValueError(f"sample rate must be positive, got {sample_rate}")
    if sub.upper() not in ("FLOAT", "DOUBLE"):
        a = np.clip(a, -1.0, 1.0)
    try:
        sf.write(str(p), a, sample_rate, format=fmt, subtype=sub)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError) as e:
        raise AudioError(f"{p}: cannot write {fmt}/{sub} audio ({e})", path=p) from e
    return p


def save_wav(path: str | Path, audio: ArrayLike, sample_rate: int, *,
             subtype: str = "PCM_16") -> Path:
    """Write synthesized (or any mono) audio as a WAV file; ``subtype="FLOAT"`` keeps float32."""
    p = Path(path)
    if p.suffix.lower() != ".wav":
        raise AudioError(f"{p}: save_wav writes .wav files (use write_audio for others)", path=p)
    return write_audio(p, audio, sample_rate, subtype=subtype)


#: Older name of :func:`save_wav`.
write_wav = save_wav


def audio_info(path: str | Path) -> dict[str, Any]:
    """Sample rate, channels, frames, format and subtype of an audio file (no samples read)."""
    sf = _require("soundfile")
    p = Path(path)
    try:
        i = sf.info(str(p))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        raise AudioError(f"{p}: not a readable audio file ({e})", path=p) from e
    return {"sample_rate": int(i.samplerate), "channels": int(i.channels),
            "frames": int(i.frames), "format": str(i.format), "subtype": str(i.subtype)}


__all__ = [
    "FORMATS",
    "RESAMPLE_QUALITY",
    "Audio",
    "as_mono_float32",
    "audio_info",
    "read_audio",
    "read_wav",
    "resample",
    "save_wav",
    "write_audio",
    "write_wav",
]
