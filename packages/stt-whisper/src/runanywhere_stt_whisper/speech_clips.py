"""Decode only the speech: the stretches our VAD found, as faster-whisper's ``clip_timestamps``.

faster-whisper's own ``vad_filter`` runs a second copy of Silero, cuts the speech out, joins it
end to end and maps times back. We take the stretches from our Silero adapter and hand them to
``transcribe(..., clip_timestamps=[start, end, start, end, ...])`` instead: Whisper decodes each
stretch of the ORIGINAL audio on its own (30 s windows inside a long one), so segment times are
already times in the audio as given, and no segment straddles two stretches. Joining was tried
first and dropped: Whisper's timestamps near a seam of the joined audio are off by up to a
second, and a second there can land in the wrong stretch, seconds away in the original (Whisper
base put "Thank you, and goodbye." at 17.9 s when it was said at 22.5 s). The price: one encoder
pass per stretch instead of one per 30 s of speech, small next to decoding for sparse speech.

Whisper's end timestamp may overshoot the clip it decoded (it predicts one for audio padded to
30 s); :meth:`SpeechClips.clamp` keeps each segment inside the stretch it came from.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from runanywhere.adapters import SpeechSegment


@dataclass(frozen=True)
class SpeechClips:
    """Stretches ``(start, end)`` in seconds, sorted and disjoint."""

    spans: tuple[tuple[float, float], ...]

    @classmethod
    def from_segments(cls, segments: Sequence[SpeechSegment], duration: float) -> SpeechClips:
        """The VAD's segments clipped to ``[0, duration]``, overlaps merged, empty ones dropped."""
        spans: list[tuple[float, float]] = []
        for seg in sorted(segments, key=lambda s: s.start):
            start, end = max(0.0, seg.start), min(duration, seg.end)
            if end <= start:
                continue
            if spans and start <= spans[-1][1]:
                spans[-1] = (spans[-1][0], max(spans[-1][1], end))
            else:
                spans.append((start, end))
        return cls(tuple(spans))

    @property
    def clip_timestamps(self) -> list[float]:
        """``[start, end, start, end, ...]``: faster-whisper's ``clip_timestamps``."""
        return [t for span in self.spans for t in span]

    @property
    def seconds(self) -> float:
        return sum(end - start for start, end in self.spans)

    def clamp(self, start: float, end: float) -> tuple[float, float]:
        """``(start, end)`` inside the stretch that holds ``start`` (the clip the segment was
        decoded from; the nearest stretch for a start between two)."""
        if not self.spans:
            return start, end
        k = max(0, bisect.bisect_right([s for s, _ in self.spans], start) - 1)
        between = k + 1 < len(self.spans) and start >= self.spans[k][1]
        if between and self.spans[k + 1][0] - start < start - self.spans[k][1]:
            k += 1  # between stretches k and k+1, nearer to k+1
        lo, hi = self.spans[k]
        start = min(max(start, lo), hi)
        return start, min(max(end, start), hi)


__all__ = ["SpeechClips"]
