"""WAV in and out, for the audio that crosses the wire (numpy and the standard library only).

``decode_wav`` reads what speech servers send: PCM 8/16/24/32-bit or 32-bit float, any number
of channels (mixed down), and the streamed kind whose RIFF and data sizes are 0 or 0xFFFFFFFF
(unknown when the header left): the samples then run to the end of the body.
"""

from __future__ import annotations

import io
import wave

import numpy as np
from numpy.typing import NDArray

from .errors import RemoteAPIError

_PCM, _FLOAT, _EXTENSIBLE = 1, 3, 0xFFFE


def encode_wav(audio: NDArray[np.float32], sample_rate: int) -> bytes:
    """Mono 16-bit PCM WAV of float samples in [-1, 1] (clipped)."""
    pcm = (np.clip(np.asarray(audio, dtype=np.float32).reshape(-1), -1.0, 1.0) * 32767.0)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.round().astype("<i2").tobytes())
    return buf.getvalue()


def decode_wav(data: bytes, where: str = "the server") -> tuple[NDArray[np.float32], int]:
    """(mono float32 samples, sample rate) of a WAV body."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise RemoteAPIError(f"{where} sent audio that is not WAV ({data[:12]!r})")
    pos, fmt = 12, None
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "little")
        start = pos + 8
        if cid == b"fmt ":
            fmt = _format(data[start:start + size], where)
        elif cid == b"data":
            if fmt is None:
                raise RemoteAPIError(f"{where} sent a WAV whose data comes before its format")
            end = len(data) if size in (0, 0xFFFFFFFF) else min(len(data), start + size)
            return _samples(data[start:end], *fmt), fmt[1]
        pos = start + size + (size & 1)
    raise RemoteAPIError(f"{where} sent a WAV without data")


def _format(chunk: bytes, where: str) -> tuple[int, int, int, int]:
    """(format tag, sample rate, channels, bits) of a ``fmt `` chunk."""
    if len(chunk) < 16:
        raise RemoteAPIError(f"{where} sent a WAV with a short format chunk")
    tag = int.from_bytes(chunk[0:2], "little")
    channels = int.from_bytes(chunk[2:4], "little")
    rate = int.from_bytes(chunk[4:8], "little")
    bits = int.from_bytes(chunk[14:16], "little")
    if tag == _EXTENSIBLE and len(chunk) >= 26:
        tag = int.from_bytes(chunk[24:26], "little")  # the sub-format GUID's first two bytes
    if (tag, bits) not in ((_PCM, 8), (_PCM, 16), (_PCM, 24), (_PCM, 32), (_FLOAT, 32)) or \
            channels < 1 or rate < 1:
        raise RemoteAPIError(f"{where} sent WAV audio this adapter cannot read (format {tag},"
                             f" {bits}-bit, {channels} channel(s), {rate} Hz)")
    return tag, rate, channels, bits


def _samples(raw: bytes, tag: int, rate: int, channels: int, bits: int) -> NDArray[np.float32]:
    width = bits // 8
    raw = raw[:len(raw) - len(raw) % (width * channels)]
    if tag == _FLOAT:
        a = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    elif bits == 8:
        a = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif bits == 16:
        a = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    elif bits == 24:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        a = (np.where(v >= 1 << 23, v - (1 << 24), v)).astype(np.float32) / float(1 << 23)
    else:
        a = np.frombuffer(raw, dtype="<i4").astype(np.float32) / float(1 << 31)
    if channels > 1:
        a = a.reshape(-1, channels).mean(axis=1, dtype=np.float32)
    return np.ascontiguousarray(a, dtype=np.float32)


def multipart(fields: list[tuple[str, str]], file_field: str, filename: str, data: bytes,
              content_type: str) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body (fields, then one file) and its Content-Type."""
    import secrets

    boundary = "runanywhere-" + secrets.token_hex(16)
    out = io.BytesIO()
    for name, value in fields:
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                  .encode())
        out.write(value.encode() + b"\r\n")
    out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}";'
              f' filename="{filename}"\r\nContent-Type: {content_type}\r\n\r\n'.encode())
    out.write(data + f"\r\n--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"
