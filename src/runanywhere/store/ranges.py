"""Bookkeeping of which byte ranges of a file are on disk: sorted, disjoint, half-open intervals."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator


class RangeSet:
    """A set of byte offsets stored as sorted disjoint ``[start, end)`` intervals.

    Adjacent and overlapping intervals are merged on insert, so the list stays minimal and
    ``covered()`` is exact however the writers interleave.
    """

    __slots__ = ("_ends", "_starts")

    def __init__(self, intervals: Iterable[tuple[int, int]] = ()) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        for s, e in intervals:
            self.add(s, e)

    def add(self, start: int, end: int) -> None:
        if start < 0 or end < start:
            raise ValueError(f"bad interval [{start}, {end})")
        if start == end:
            return
        # First interval that could touch [start, end): its end >= start.
        i = bisect.bisect_left(self._ends, start)
        j = i
        while j < len(self._starts) and self._starts[j] <= end:
            start = min(start, self._starts[j])
            end = max(end, self._ends[j])
            j += 1
        self._starts[i:j] = [start]
        self._ends[i:j] = [end]

    def covered(self) -> int:
        return sum(e - s for s, e in zip(self._starts, self._ends, strict=True))

    def prefix_end(self) -> int:
        """End of the contiguous run that starts at 0 (0 if offset 0 is missing)."""
        return self._ends[0] if self._starts and self._starts[0] == 0 else 0

    def contains(self, start: int, end: int) -> bool:
        i = bisect.bisect_right(self._starts, start) - 1
        return i >= 0 and self._ends[i] >= end

    def missing(self, size: int) -> list[tuple[int, int]]:
        """The gaps in ``[0, size)``."""
        out: list[tuple[int, int]] = []
        pos = 0
        for s, e in zip(self._starts, self._ends, strict=True):
            if s >= size:
                break
            if s > pos:
                out.append((pos, s))
            pos = max(pos, e)
        if pos < size:
            out.append((pos, size))
        return out

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(zip(self._starts, self._ends, strict=True))

    def __len__(self) -> int:
        return len(self._starts)

    def __repr__(self) -> str:
        return f"RangeSet({list(self)})"


def split(gaps: list[tuple[int, int]], parts: int, min_part: int) -> list[tuple[int, int]]:
    """Split the gaps into about ``parts`` pieces, none smaller than ``min_part`` unless the gap
    itself is."""
    total = sum(e - s for s, e in gaps)
    if total == 0:
        return []
    out: list[tuple[int, int]] = []
    for s, e in gaps:
        # The gap's share of the pieces, but no more than keeps each >= min_part. Cutting evenly
        # (pieces differ by one byte at most) never leaves a short tail piece.
        n = max(1, min((e - s) * parts // total, (e - s) // max(1, min_part)))
        out.extend((s + (e - s) * i // n, s + (e - s) * (i + 1) // n) for i in range(n))
    return out
