"""Synthesized speech in the formats of OpenAI's ``/v1/audio/speech``.

``pcm`` is OpenAI's: raw 16-bit signed little-endian mono at 24 kHz, no header (the voice's own
rate is resampled, band-limited); it is the one streamed sentence by sentence. ``wav`` is 16-bit
PCM at the voice's own rate; ``flac``, ``mp3`` and ``opus`` (Ogg) are written by libsndfile
(``soundfile``), when the installed libsndfile can write them; ``aac`` it cannot.
"""

from __future__ import annotations

import io
import wave
from typing import TYPE_CHECKING

from .errors import APIError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

PCM_RATE = 24000
#: Opus codes at these rates only.
OPUS_RATE = 48000
CONTENT_TYPES = {"mp3": "audio/mpeg", "opus": "audio/ogg", "aac": "audio/aac",
                 "flac": "audio/flac", "wav": "audio/wav", "pcm": "audio/pcm"}
#: response_format -> (libsndfile format, subtype).
_SOUNDFILE = {"flac": ("FLAC", "PCM_16"), "mp3": ("MP3", "MPEG_LAYER_III"),
              "opus": ("OGG", "OPUS")}


def pcm16(audio: NDArray[np.float32]) -> bytes:
    """16-bit signed little-endian samples of float audio in [-1, 1] (clipped)."""
    import numpy as np

    samples: bytes = (np.clip(audio, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()
    return samples


def pcm24k(audio: NDArray[np.float32], sample_rate: int) -> bytes:
    """OpenAI's ``pcm``: the audio at 24 kHz, 16-bit."""
    from ...adapters.audio import resample

    return pcm16(resample(audio, sample_rate, PCM_RATE) if sample_rate != PCM_RATE else audio)


def wav_bytes(audio: NDArray[np.float32], sample_rate: int) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm16(audio))
    return buf.getvalue()


def encode(audio: NDArray[np.float32], sample_rate: int, response_format: str) -> bytes:
    """The whole utterance in ``response_format`` (400 for a format this machine cannot
    write)."""
    if response_format == "wav":
        return wav_bytes(audio, sample_rate)
    if response_format == "pcm":
        return pcm24k(audio, sample_rate)
    if response_format not in _SOUNDFILE:
        raise APIError(400, f"response_format {response_format!r} cannot be written here: use"
                       " mp3, opus, flac, wav or pcm", param="response_format",
                       code="unsupported_value")
    import soundfile as sf

    fmt, subtype = _SOUNDFILE[response_format]
    if not sf.check_format(fmt, subtype):
        raise APIError(400, f"this machine's libsndfile {sf.__libsndfile_version__} cannot write"
                       f" {response_format}: use wav, pcm or flac", param="response_format",
                       code="unsupported_value")
    if response_format == "opus" and sample_rate != OPUS_RATE:
        from ...adapters.audio import resample

        audio, sample_rate = resample(audio, sample_rate, OPUS_RATE), OPUS_RATE
    import numpy as np

    buf = io.BytesIO()
    sf.write(buf, np.clip(audio, -1.0, 1.0), sample_rate, format=fmt, subtype=subtype)
    return buf.getvalue()
