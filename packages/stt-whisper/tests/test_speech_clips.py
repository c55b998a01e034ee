"""SpeechClips: the VAD's stretches as faster-whisper's clip_timestamps, segments kept inside."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runanywhere.adapters import SpeechSegment
from runanywhere_stt_whisper.speech_clips import SpeechClips


def test_stretches_become_clip_timestamps_in_order() -> None:
    clips = SpeechClips.from_segments([SpeechSegment(5.0, 6.0), SpeechSegment(1.0, 2.5)], 10.0)
    assert clips.spans == ((1.0, 2.5), (5.0, 6.0))
    assert clips.clip_timestamps == [1.0, 2.5, 5.0, 6.0]
    assert clips.seconds == pytest.approx(2.5)


def test_overlapping_and_out_of_range_stretches_are_merged_and_clipped() -> None:
    clips = SpeechClips.from_segments([SpeechSegment(-1.0, 2.0), SpeechSegment(1.5, 3.0),
                                       SpeechSegment(9.5, 12.0), SpeechSegment(4.0, 4.0)], 10.0)
    assert clips.spans == ((0.0, 3.0), (9.5, 10.0))
    assert SpeechClips.from_segments([], 10.0).clip_timestamps == []


def test_a_segment_stays_inside_the_stretch_it_was_decoded_from() -> None:
    clips = SpeechClips(((1.0, 2.0), (5.0, 6.0)))
    assert clips.clamp(1.2, 1.8) == (1.2, 1.8)
    assert clips.clamp(1.0, 4.0) == (1.0, 2.0)  # Whisper's end ran past the clip
    assert clips.clamp(5.0, 30.0) == (5.0, 6.0)
    assert clips.clamp(0.5, 1.5) == (1.0, 1.5)  # before the first stretch
    assert clips.clamp(2.2, 2.9) == (2.0, 2.0)  # between: the nearer stretch (the first)
    assert clips.clamp(4.5, 5.5) == (5.0, 5.5)  # between: the nearer stretch (the second)
    assert clips.clamp(1.5, 1.2) == (1.5, 1.5)  # never ends before it starts
    assert SpeechClips(()).clamp(3.0, 4.0) == (3.0, 4.0)


@given(st.lists(st.tuples(st.floats(0, 100), st.floats(0.01, 5)), min_size=1, max_size=10),
       st.floats(-5, 110), st.floats(0, 40))
def test_clamped_times_always_lie_in_one_stretch(raw: list[tuple[float, float]], start: float,
                                                length: float) -> None:
    clips = SpeechClips.from_segments([SpeechSegment(s, s + n) for s, n in raw], 100.0)
    if not clips.spans:
        return
    lo, hi = clips.clamp(start, start + length)
    assert lo <= hi
    assert any(s <= lo and hi <= e for s, e in clips.spans)
