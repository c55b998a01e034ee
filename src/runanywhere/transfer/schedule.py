"""Which byte ranges of a file each connection fetches.

The first request asks for one range: its answer tells whether the server honours ``Range``. A
``206`` plans the rest as pieces handed out in file order (so the verified prefix grows while
bytes arrive); a ``200`` turns the fetch into one stream. A worker with nothing left steals the
far half of the range with the most bytes still to come (if that half is worth a connection), so
the last percent does not crawl on one slow connection. The victim's answer still carries the
stolen bytes, so it stops early and its connection closes; it does not steal in turn (that would
open a new connection, with a new TLS handshake): a download never uses more connections than
workers (plus one per redirect hop). Every method is called with the fetch's lock held.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..store.ranges import split

MiB = 2**20


@dataclass
class Segment:
    start: int
    end: int
    pos: int
    owner: int | None = None  # worker index

    @property
    def remaining(self) -> int:
        return self.end - self.pos


class Schedule:
    def __init__(self, size: int, *, connections: int, split_threshold: int, min_part: int,
                 chunk_size: int, piece_size: int | None) -> None:
        self.size = size
        self.connections = connections
        self.split_threshold = split_threshold
        self.min_part = min_part
        self.chunk_size = chunk_size
        self.piece_size = piece_size
        self.segments: list[Segment] = []
        #: Gaps not planned yet (the rest of the file until the first answer; then, in
        #: single-stream mode, the gaps a later pass fetches).
        self.pending: list[tuple[int, int]] = []
        #: Whether the server honours Range: unknown (None) until the first answer.
        self.ranges_ok: bool | None = None

    @property
    def parallel(self) -> bool:
        return bool(self.ranges_ok) and self.size >= self.split_threshold

    def begin(self, gaps: list[tuple[int, int]]) -> None:
        """Plan one range first (all of the first gap when the file is not worth splitting)."""
        start, end = gaps[0]
        first_end = min(end, start + max(self.min_part, self.chunk_size))
        if self.size < self.split_threshold or self.connections <= 1:
            first_end = end
        self.segments = [Segment(start, first_end, start)]
        self.pending = [(first_end, end), *gaps[1:]] if first_end < end else gaps[1:]
        self.ranges_ok = None

    def plan(self) -> int:
        """After a ``206``: cut the pending gaps into pieces; returns how many wait for a
        connection (one connection each: more would start by stealing halves of ranges already
        requested, wasting what the server sent for them meanwhile)."""
        if self.parallel and self.pending:
            self.segments += [Segment(s, e, s) for s, e in self._pieces()]
            self.pending = []
        return sum(1 for s in self.segments if s.owner is None)

    def pieces_if_parallel(self) -> int:
        """How many pieces :meth:`plan` will make if the first answer is a ``206`` (before it
        comes: how many streams may connect early)."""
        if self.size < self.split_threshold or self.connections <= 1 or not self.pending:
            return 0
        return len(self._pieces())

    def _pieces(self) -> list[tuple[int, int]]:
        n = max(1, self.connections - 1)
        left = sum(e - s for s, e in self.pending)
        return split(self.pending, max(n, -(-left // self._piece())), self.min_part)

    def _piece(self) -> int:
        if self.piece_size:
            return max(self.piece_size, self.min_part)
        conns = max(1, self.connections)
        auto = max(16 * MiB, min(128 * MiB, self.size // (4 * conns)))
        # ... but never so large that a stream of the start finds no piece to take
        return max(self.min_part, min(auto, self.size // conns))

    def unclaimed(self) -> int:
        """Pieces planned that no worker has started: what a new worker could take without
        cutting into another's range."""
        return sum(1 for s in self.segments if s.owner is None and s.remaining > 0)

    def claim(self, idx: int, steal: bool = True) -> Segment | None:
        """The next range for worker ``idx``, or None when it should stop. ``steal``: the
        worker may take half of another's range (it has a kept-alive connection for it)."""
        for seg in self.segments:
            if seg.owner is None and seg.remaining > 0:
                seg.owner = idx
                return seg
        if not self.ranges_ok and self.pending:
            s, e = self.pending.pop(0)
            seg = Segment(s, e, s, idx)
            self.segments.append(seg)
            return seg
        if not self.ranges_ok or not steal:
            return None
        # Steal the far half of the range with the most left to fetch, if that half is worth a
        # connection (>= min_part): the victim's bytes in flight past the cut are wasted.
        victim = max((s for s in self.segments if s.owner is not None),
                     key=lambda s: s.remaining, default=None)
        worth = max(self.min_part, self.chunk_size, 4 * MiB)
        if victim is None or victim.remaining < 2 * worth:
            return None
        mid = victim.pos + victim.remaining // 2
        mid -= mid % self.chunk_size or 0
        if mid <= victim.pos:
            return None
        seg = Segment(mid, victim.end, mid, idx)
        victim.end = mid
        self.segments.append(seg)
        return seg

    def single_stream(self, seg: Segment, held_prefix: int) -> None:
        """The server ignores Range (now or from the start): ``seg``'s worker takes every byte
        still missing, reading from 0 and skipping what is held; the others stop at their next
        chunk (bytes they write meanwhile are the same)."""
        seg.pos = min(seg.pos, held_prefix)
        seg.end = self.size
        for other in self.segments:
            if other is not seg:
                other.end = other.pos
        self.pending = []
