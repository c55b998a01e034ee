"""``RangeSet`` and ``split`` against a naive model: a Python set of byte offsets."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runanywhere.store.ranges import RangeSet, split

# A hung download thread would also hang asyncio.run's executor shutdown: dump and exit.
pytestmark = pytest.mark.timeout(120, method="thread")

SIZE = 64
interval = st.tuples(st.integers(0, SIZE), st.integers(0, SIZE)).map(lambda t: (min(t), max(t)))


def offsets(intervals: list[tuple[int, int]] | RangeSet) -> set[int]:
    return {i for s, e in intervals for i in range(s, e)}


def runs(model: set[int], size: int) -> list[tuple[int, int]]:
    """Maximal runs of ``range(size)`` *not* in ``model``."""
    out: list[tuple[int, int]] = []
    for i in range(size):
        if i in model:
            continue
        if out and out[-1][1] == i:
            out[-1] = (out[-1][0], i + 1)
        else:
            out.append((i, i + 1))
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(interval, max_size=25), st.integers(0, SIZE + 8))
def test_rangeset_matches_a_set_of_offsets(adds: list[tuple[int, int]], size: int) -> None:
    rs = RangeSet()
    model: set[int] = set()
    for s, e in adds:
        rs.add(s, e)
        model |= set(range(s, e))
        # Invariant after every insert: sorted, disjoint, non-adjacent, non-empty intervals.
        spans = list(rs)
        assert all(s0 < e0 for s0, e0 in spans)
        assert all(e0 < s1 for (_, e0), (s1, _) in itertools.pairwise(spans))
        assert len(rs) == len(spans)
    assert offsets(rs) == model
    assert rs.covered() == len(model)
    prefix = 0
    while prefix in model:
        prefix += 1
    assert rs.prefix_end() == prefix
    assert rs.missing(size) == runs(model, size)


@settings(max_examples=300, deadline=None)
@given(st.lists(interval, max_size=12), interval)
def test_contains_matches_the_model(adds: list[tuple[int, int]], probe: tuple[int, int]) -> None:
    rs = RangeSet(adds)
    model = offsets(adds)
    s, e = probe
    if s < e:
        assert rs.contains(s, e) == set(range(s, e)).issubset(model)


@given(st.integers(-5, 5), st.integers(-5, 5))
def test_bad_intervals_are_refused(s: int, e: int) -> None:
    rs = RangeSet()
    if s < 0 or e < s:
        try:
            rs.add(s, e)
        except ValueError:
            return
        raise AssertionError(f"[{s}, {e}) was accepted")
    rs.add(s, e)
    assert rs.covered() == e - s


gaps_strategy = st.lists(st.integers(1, 40), min_size=0, max_size=6).flatmap(
    lambda lens: st.lists(st.integers(0, 5), min_size=len(lens), max_size=len(lens)).map(
        lambda holes: _gaps(lens, holes)))


def _gaps(lens: list[int], holes: list[int]) -> list[tuple[int, int]]:
    out, pos = [], 0
    for n, hole in zip(lens, holes, strict=True):
        pos += hole
        out.append((pos, pos + n))
        pos += n + 1  # gaps never touch, as RangeSet.missing returns them
    return out


@settings(max_examples=400, deadline=None)
@given(gaps_strategy, st.integers(1, 10), st.integers(1, 16))
def test_split_covers_exactly_the_gaps(gaps: list[tuple[int, int]], parts: int,
                                       min_part: int) -> None:
    pieces = split(gaps, parts, min_part)
    # Exactly the gap bytes, each once, in order, every piece inside one gap.
    assert offsets(pieces) == offsets(gaps)
    assert sum(e - s for s, e in pieces) == sum(e - s for s, e in gaps)
    assert all(s < e for s, e in pieces)
    assert all(e0 <= s1 for (_, e0), (s1, _) in itertools.pairwise(pieces))
    assert all(any(gs <= s and e <= ge for gs, ge in gaps) for s, e in pieces)
    # No piece smaller than min_part, unless its whole gap is.
    for s, e in pieces:
        gs, ge = next(g for g in gaps if g[0] <= s and e <= g[1])
        assert e - s >= min(min_part, ge - gs), (gaps, parts, min_part, pieces)
    # About ``parts`` pieces: never more than asked plus one per gap (rounding), unless the gaps
    # are more numerous than that.
    assert len(pieces) <= max(parts, len(gaps)) + len(gaps)
