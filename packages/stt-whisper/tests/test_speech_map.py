"""SpeechMap: the stretches a VAD kept, joined, and times moved back to the original audio."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from runanywhere.adapters import SpeechSegment
from runanywhere_stt_whisper.speech_map import SpeechMap

SR = 100  # samples per second: small numbers, easy to check by hand


def test_join_keeps_only_the_stretches_in_order() -> None:
    audio = np.arange(1000, dtype=np.float32)
    m = SpeechMap.from_segments([SpeechSegment(5.0, 6.0), SpeechSegment(1.0, 2.5)], SR, 1000)
    assert m.spans == ((100, 250), (500, 600))
    joined = m.join(audio)
    assert joined.tolist() == [*range(100, 250), *range(500, 600)]
    assert m.joined_samples == 250


def test_times_map_back_across_the_seam() -> None:
    m = SpeechMap.from_segments([SpeechSegment(1.0, 2.0), SpeechSegment(5.0, 6.0)], SR, 1000)
    assert m.to_original(0.0) == 1.0
    assert m.to_original(0.5) == 1.5
    assert m.to_original(1.0) == 5.0  # the seam: a start belongs to the stretch after it
    assert m.to_original(1.0, is_end=True) == 2.0  # an end to the stretch it closes
    assert m.to_original(1.25) == 5.25
    assert m.to_original(2.0, is_end=True) == 6.0
    assert m.to_original(30.0, is_end=True) == 6.0  # Whisper's window end: clipped to speech


def test_overlapping_and_out_of_range_stretches_are_merged_and_clipped() -> None:
    m = SpeechMap.from_segments([SpeechSegment(-1.0, 2.0), SpeechSegment(1.5, 3.0),
                                 SpeechSegment(9.5, 12.0), SpeechSegment(4.0, 4.0)], SR, 1000)
    assert m.spans == ((0, 300), (950, 1000))


def test_no_stretch_means_no_audio() -> None:
    m = SpeechMap.from_segments([], SR, 1000)
    assert m.join(np.ones(1000, dtype=np.float32)).size == 0
    assert m.to_original(3.0) == 0.0


@given(st.lists(st.tuples(st.integers(0, 5000), st.integers(1, 400)), min_size=1, max_size=12),
       st.floats(0.0, 1.0))
def test_every_joined_instant_lands_on_the_same_sample_of_the_original(
        raw: list[tuple[int, int]], where: float) -> None:
    segs = [SpeechSegment(s / SR, (s + n) / SR) for s, n in raw]
    m = SpeechMap.from_segments(segs, SR, 6000)
    audio = np.arange(6000, dtype=np.float32)
    joined = m.join(audio)
    i = min(int(where * joined.size), joined.size - 1)
    # sample i of the joined audio is sample audio[...] of the original, and the map says where
    assert m.to_original(i / SR) * SR == pytest.approx(float(joined[i]))
    assert any(s <= joined[i] < e for s, e in m.spans)
