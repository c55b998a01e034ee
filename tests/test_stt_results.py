"""The STT result shape every adapter shares: segments, the Transcription, the stream, and
``transcription_of`` for an adapter that only returns text (the ``STTAdapter`` protocol alone,
as a third-party plugin may be)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from runanywhere.adapters import (
    SegmentedSTTAdapter,
    STTAdapter,
    Transcription,
    TranscriptionStream,
    TranscriptSegment,
    transcription_of,
)


class EchoSTT:
    """The smallest STT adapter: text from the number of samples, a language it keeps."""

    detected_language = "nl"

    def transcribe(self, audio: np.ndarray, sample_rate: int = 16000) -> str:
        return f"  {audio.size} samples at {sample_rate} "


def test_a_segment_is_an_event_with_the_json_shape() -> None:
    seg = TranscriptSegment(1.23456, 2.5, " Hello.", 3)
    assert seg.name == "transcript_segment"
    assert seg.duration == pytest.approx(1.26544)
    assert seg.to_dict() == {"start": 1.235, "end": 2.5, "text": " Hello."}


def test_the_transcription_joins_segments_as_the_model_wrote_them() -> None:
    segs = [TranscriptSegment(0.0, 1.0, " Hello there.", 0),
            TranscriptSegment(1.0, 2.0, " 你好", 1), TranscriptSegment(2.0, 2.5, "世界", 2)]
    t = Transcription.from_segments(segs, language="en", duration=2.5)
    assert t.text == "Hello there. 你好世界"  # no space forced between CJK pieces
    doc = json.loads(json.dumps(t.to_dict()))
    assert list(doc) == ["text", "language", "duration", "segments"]
    assert doc["segments"][1] == {"start": 1.0, "end": 2.0, "text": " 你好"}


def test_the_stream_hands_out_segments_one_at_a_time_then_the_result() -> None:
    made: list[int] = []

    def decode() -> object:
        for i in range(3):
            made.append(i)
            yield TranscriptSegment(float(i), i + 1.0, f" w{i}", i)

    stream = TranscriptionStream(decode(), language="en", duration=3.0)  # type: ignore[arg-type]
    assert made == []  # nothing decoded before it is asked for
    assert next(stream).text == " w0" and made == [0]
    result = stream.result()
    assert made == [0, 1, 2] and result.text == "w0 w1 w2" and len(result.segments) == 3
    closed = TranscriptionStream(decode(), language=None, duration=3.0)  # type: ignore[arg-type]
    next(closed)
    closed.close()
    assert closed.result().text == "w0"  # closing stops the decoding


def test_an_adapter_that_only_returns_text_gets_one_segment() -> None:
    stt = EchoSTT()
    assert isinstance(stt, STTAdapter) and not isinstance(stt, SegmentedSTTAdapter)
    t = transcription_of(stt, np.zeros(8000, dtype=np.float32), 16000)
    assert t == Transcription("8000 samples at 16000", "nl", 0.5,
                              (TranscriptSegment(0.0, 0.5, "8000 samples at 16000"),))
    silent = transcription_of(type("Mute", (), {"transcribe": lambda s, a, r=16000: " "})(),
                              np.zeros(16000, dtype=np.float32))
    assert silent.text == "" and silent.segments == () and silent.language is None


def test_an_adapter_with_transcribe_full_must_return_a_transcription() -> None:
    class Liar(EchoSTT):
        def transcribe_full(self, audio: np.ndarray, sample_rate: int = 16000) -> str:
            return "not a transcription"

    with pytest.raises(TypeError, match="not a Transcription"):
        transcription_of(Liar(), np.zeros(10, dtype=np.float32))
