"""Decode only the speech: join the stretches a VAD found, then map times back to the original.

faster-whisper's own ``vad_filter`` does the same with a second copy of Silero; we take the
stretches from our Silero adapter instead. The stretches are cut out of the audio and joined
end to end (one 30 s Whisper window then covers several utterances, instead of one window per
utterance), the joined audio is decoded, and every time Whisper gives in the joined audio is
moved back to where that instant lies in the original:

    original  |--silence--|==A==|----silence----|===B===|--|
    joined                |==A==|===B===|

A segment that runs across the seam of A and B starts in A and ends in B; an end that falls
exactly on a seam belongs to the stretch it ends (A), not to the one after it.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from runanywhere.adapters import SpeechSegment


@dataclass(frozen=True)
class SpeechMap:
    """Kept stretches ``(start, end)`` in samples of the original audio (sorted, disjoint)."""

    spans: tuple[tuple[int, int], ...]
    sample_rate: int

    @classmethod
    def from_segments(cls, segments: Sequence[SpeechSegment], sample_rate: int, length: int
                      ) -> SpeechMap:
        """Stretches in seconds -> samples, clipped to ``length``, overlaps merged, empty
        ones dropped."""
        spans: list[tuple[int, int]] = []
        for seg in sorted(segments, key=lambda s: s.start):
            start = max(0, min(length, round(seg.start * sample_rate)))
            end = max(0, min(length, round(seg.end * sample_rate)))
            if end <= start:
                continue
            if spans and start <= spans[-1][1]:
                spans[-1] = (spans[-1][0], max(spans[-1][1], end))
            else:
                spans.append((start, end))
        return cls(tuple(spans), sample_rate)

    @property
    def _joined_ends(self) -> list[int]:
        ends, total = [], 0
        for start, end in self.spans:
            total += end - start
            ends.append(total)
        return ends

    @property
    def joined_samples(self) -> int:
        return sum(end - start for start, end in self.spans)

    def join(self, audio: NDArray[np.float32]) -> NDArray[np.float32]:
        """The kept stretches of ``audio``, end to end."""
        if not self.spans:
            return np.zeros(0, dtype=np.float32)
        return np.ascontiguousarray(np.concatenate([audio[s:e] for s, e in self.spans]),
                                    dtype=np.float32)

    def to_original(self, seconds: float, *, is_end: bool = False) -> float:
        """The instant ``seconds`` into the joined audio, in seconds of the original audio.

        Times past the joined audio map to the end of the last stretch. ``is_end``: a time on a
        seam is the end of the stretch before it rather than the start of the next.
        """
        if not self.spans:
            return 0.0
        sample = max(0, round(seconds * self.sample_rate))
        ends = self._joined_ends
        sample = min(sample, ends[-1])
        k = (bisect.bisect_left(ends, sample) if is_end else bisect.bisect_right(ends, sample))
        k = min(k, len(ends) - 1)
        joined_start = ends[k - 1] if k else 0
        return (self.spans[k][0] + sample - joined_start) / self.sample_rate


__all__ = ["SpeechMap"]
