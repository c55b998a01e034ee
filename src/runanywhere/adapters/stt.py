"""What every speech-to-text adapter returns: a :class:`Transcription` made of segments.

Every STT adapter has ``transcribe(audio, sample_rate) -> str`` (the ``STTAdapter`` protocol).
Adapters that know more (Whisper knows when each stretch was said and which language it heard)
also offer the :class:`SegmentedSTTAdapter` methods:

- ``transcribe_full(audio, sample_rate) -> Transcription``: text, language, duration, segments;
- ``stream(audio, sample_rate) -> TranscriptionStream``: the segments one by one as they are
  decoded (each also emitted as the ``transcript_segment`` event), with the language and the
  duration known before the first one; ``stream.result()`` finishes and gives the Transcription.

:func:`transcription_of` gives the same shape for ANY STT adapter (one segment over the whole
audio when the adapter only returns text), so callers such as ``runanywhere transcribe`` need not
know which adapter runs the model. ``Transcription.to_dict()`` is the document
``runanywhere transcribe --json`` prints: ``{"text", "language", "duration", "segments": [{"start",
"end", "text"}]}``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .base import STTAdapter, TranscriptSegment

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray


@dataclass(frozen=True)
class Transcription:
    """A whole transcription: ``text`` (the segments' texts joined, stripped), ``language`` (the
    code the model used or detected; None when nothing was decoded and none was given),
    ``duration`` of the audio in seconds, and the ``segments`` in order."""

    text: str
    language: str | None
    duration: float
    segments: tuple[TranscriptSegment, ...] = ()

    @classmethod
    def from_segments(cls, segments: Iterable[TranscriptSegment], *, language: str | None,
                      duration: float) -> Transcription:
        segs = tuple(segments)
        return cls("".join(s.text for s in segs).strip(), language, duration, segs)

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "language": self.language,
                "duration": round(self.duration, 3),
                "segments": [s.to_dict() for s in self.segments]}


class TranscriptionStream(Iterator[TranscriptSegment]):
    """The segments of one transcription, one per ``next()``, decoded on demand.

    ``language`` and ``duration`` are known from the start; ``segments`` holds those seen so far;
    ``result()`` decodes the rest and returns the :class:`Transcription`. ``close()`` stops early
    (what was not decoded yet is never decoded).
    """

    def __init__(self, segments: Iterable[TranscriptSegment], *, language: str | None,
                 duration: float) -> None:
        self._source = iter(segments)
        self.language = language
        self.duration = duration
        self.segments: list[TranscriptSegment] = []

    def __iter__(self) -> TranscriptionStream:
        return self

    def __next__(self) -> TranscriptSegment:
        segment = next(self._source)
        self.segments.append(segment)
        return segment

    def result(self) -> Transcription:
        for _ in self:
            pass
        return Transcription.from_segments(self.segments, language=self.language,
                                           duration=self.duration)

    def close(self) -> None:
        close = getattr(self._source, "close", None)
        if close is not None:
            close()


@runtime_checkable
class SegmentedSTTAdapter(STTAdapter, Protocol):
    """An STT adapter that reports segments with times and the language."""

    def transcribe_full(self, audio: NDArray[np.float32], sample_rate: int = 16000
                        ) -> Transcription:
        """Text, language, duration and timed segments of a mono float32 signal."""
        ...

    def stream(self, audio: NDArray[np.float32], sample_rate: int = 16000
               ) -> TranscriptionStream:
        """The same, segment by segment as they are decoded."""
        ...


def transcription_of(adapter: STTAdapter, audio: NDArray[np.float32], sample_rate: int = 16000
                     ) -> Transcription:
    """The :class:`Transcription` of ``audio`` by any STT adapter.

    An adapter with ``transcribe_full`` gives its own; one that only returns text gets a single
    segment over the whole audio, and the language it reports as ``detected_language`` (the ONNX
    Whisper adapter keeps one) or was given as ``language``, else None.
    """
    full = getattr(adapter, "transcribe_full", None)
    if callable(full):
        result = full(audio, sample_rate)
        if not isinstance(result, Transcription):
            raise TypeError(f"{type(adapter).__name__}.transcribe_full returned "
                            f"{type(result).__name__}, not a Transcription")
        return result
    duration = len(audio) / sample_rate if sample_rate else 0.0
    text = adapter.transcribe(audio, sample_rate).strip()
    language = getattr(adapter, "detected_language", None) or getattr(adapter, "language", None)
    segments = (TranscriptSegment(0.0, duration, text),) if text else ()
    return Transcription(text, language if isinstance(language, str) else None, duration,
                         segments)


__all__ = ["SegmentedSTTAdapter", "Transcription", "TranscriptionStream", "transcription_of"]
