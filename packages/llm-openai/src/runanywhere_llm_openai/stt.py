"""``openai-stt``: speech to text through ``POST /audio/transcriptions`` of any
OpenAI-compatible server (``runanywhere serve``, faster-whisper-server, LocalAI, OpenAI)::

    stt = OpenAISTTAdapter(base_url="http://127.0.0.1:8765/v1")
    await stt.load_model("faster-whisper-tiny.en")
    print(stt.transcribe(audio, 16000))           # or transcribe_full: language, segments

The audio goes up as 16-bit WAV at its own rate (``transcribe_file`` sends the file as it is);
``verbose_json`` is asked for, so the segments keep their times (a server that refuses it is
asked again for plain ``json``: one segment over the whole audio). The same
:class:`~runanywhere.adapters.Transcription` as the local adapters, and the same events
(``transcript_segment`` per segment, ``transcript`` at the end).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike

from runanywhere import Result
from runanywhere.adapters import (
    AdapterError,
    BaseAdapter,
    ModelLoaded,
    ModelLoading,
    RegistryLike,
    STTEvent,
    Transcript,
    Transcription,
    TranscriptionStream,
    TranscriptSegment,
    language_code,
)
from runanywhere.errors import AudioError, ModelError

from .errors import RemoteAPIError, RemoteBadRequestError
from .remote import load_remote, require_remote
from .wav import encode_wav, multipart


class OpenAISTTAdapter(BaseAdapter[STTEvent]):
    """Speech to text behind an OpenAI-compatible API."""

    model_types: ClassVar[tuple[str, ...]] = ("stt",)
    formats: ClassVar[tuple[str, ...]] = ("custom",)
    events = (ModelLoading, ModelLoaded, AdapterError, TranscriptSegment, Transcript)

    def __init__(self, registry: RegistryLike | None = None, *, base_url: str | None = None,
                 api_key: str | None = None, model: str | None = None,
                 timeout: float | None = None, connect_timeout: float | None = None,
                 max_retries: int | None = None, headers: Mapping[str, str] | None = None,
                 language: str | None = None, prompt: str | None = None,
                 temperature: float | None = None) -> None:
        super().__init__(registry)
        self.endpoint_options: dict[str, Any] = {
            "base_url": base_url, "api_key": api_key, "model": model, "timeout": timeout,
            "connect_timeout": connect_timeout, "max_retries": max_retries,
            "headers": headers}
        #: The language spoken (a code such as ``"en"``; None: the server detects it).
        self.language = language
        self.prompt = prompt
        self.temperature = temperature
        #: The language of the last transcription (given or detected).
        self.detected_language: str | None = None

    async def load_model(self, model_id: str | None = None, **options: Any
                         ) -> Result[None, ModelError]:
        return await load_remote(self, model_id, {**self.endpoint_options, **options})

    # -- transcription -----------------------------------------------------------------------------
    def transcribe_full(self, audio: ArrayLike, sample_rate: int = 16000) -> Transcription:
        """Text, language, duration and timed segments (as far as the server reports them)."""
        return self.stream(audio, sample_rate).result()

    def transcribe(self, audio: ArrayLike, sample_rate: int = 16000) -> str:
        return self.transcribe_full(audio, sample_rate).text

    def transcribe_file(self, path: str | Path) -> Transcription:
        """A file the server reads as it is (WAV, FLAC, MP3, OGG, ...): no decoding here."""
        p = Path(path)
        try:
            data = p.read_bytes()
        except OSError as e:
            raise AudioError(f"{p}: {e.strerror or e}", path=p) from None
        return self._stream_upload(data, p.name, "application/octet-stream", None).result()

    def stream(self, audio: ArrayLike, sample_rate: int = 16000) -> TranscriptionStream:
        """The segments one by one (the server answers whole: they are all known at once)."""
        a = np.asarray(audio, dtype=np.float32)
        if a.ndim != 1:
            a = a.reshape(len(a), -1).mean(axis=1, dtype=np.float32) if a.ndim == 2 else a
        if a.ndim != 1 or sample_rate <= 0:
            err = AudioError(f"cannot transcribe audio of shape {a.shape} at {sample_rate} Hz")
            self.emit(AdapterError(err, self.model_id))
            raise err
        return self._stream_upload(encode_wav(a, sample_rate), "audio.wav", "audio/wav",
                                   a.size / sample_rate)

    def _stream_upload(self, data: bytes, filename: str, ctype: str, duration: float | None
                       ) -> TranscriptionStream:
        try:
            doc = self._post(data, filename, ctype, "verbose_json")
        except RemoteBadRequestError:  # a server without verbose_json (some take json only)
            try:
                doc = self._post(data, filename, ctype, "json")
            except ModelError as e:
                self.emit(AdapterError(e, self.model_id))
                raise
        except ModelError as e:
            self.emit(AdapterError(e, self.model_id))
            raise
        text = str(doc.get("text") or "")
        seconds = doc.get("duration")
        total = float(seconds) if isinstance(seconds, (int, float)) else (duration or 0.0)
        language = language_code(doc.get("language")) if doc.get("language") else self.language
        self.detected_language = language
        segments = _segments(doc, text, total)
        return TranscriptionStream(self._emitting(segments, language, total),
                                   language=language, duration=total)

    def _emitting(self, segments: list[TranscriptSegment], language: str | None,
                  duration: float) -> Iterator[TranscriptSegment]:
        for s in segments:
            self.emit(s)
            yield s
        self.emit(Transcript(Transcription.from_segments(segments, language=language,
                                                         duration=duration).text))

    def _post(self, data: bytes, filename: str, ctype: str, response_format: str
              ) -> dict[str, Any]:
        remote = require_remote(self)
        fields = [("model", remote.config.model), ("response_format", response_format)]
        for name, value in (("language", self.language), ("prompt", self.prompt),
                            ("temperature", self.temperature)):
            if value is not None:
                fields.append((name, str(value)))
        body, content_type = multipart(fields, "file", filename, data, ctype)
        with remote.client.request("POST", "/audio/transcriptions", body=body,
                                   content_type=content_type) as r:
            raw = r.read()
        try:
            doc = json.loads(raw)
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            raise RemoteAPIError(f"{remote.client.url('/audio/transcriptions')} answered"
                                 f" {raw[:200]!r}, not a transcription")
        return doc


def _segments(doc: Mapping[str, Any], text: str, duration: float) -> list[TranscriptSegment]:
    raw = doc.get("segments")
    out: list[TranscriptSegment] = []
    if isinstance(raw, list):
        for i, s in enumerate(raw):
            if isinstance(s, Mapping) and isinstance(s.get("text"), str):
                out.append(TranscriptSegment(float(s.get("start") or 0.0),
                                             float(s.get("end") or 0.0), s["text"], i))
    if not out and text.strip():
        out.append(TranscriptSegment(0.0, duration, text, 0))
    return out
