"""The memory tier: a byte-bounded LRU, checked against a plain list model with hypothesis."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runanywhere.store import MemoryLRU


class ModelLRU:
    """The obvious implementation: a list, least recently used first."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.items: list[tuple[str, int]] = []

    def _drop(self, key: str) -> None:
        self.items = [(k, s) for k, s in self.items if k != key]

    def _evict(self) -> None:
        while sum(s for _, s in self.items) > self.limit and self.items:
            self.items.pop(0)

    def put(self, key: str, size: int) -> bool:
        self._drop(key)
        if size > self.limit:
            return False
        self.items.append((key, size))
        self._evict()
        return True

    def get(self, key: str) -> bool:
        for k, s in self.items:
            if k == key:
                self._drop(key)
                self.items.append((k, s))
                return True
        return False

    def pop(self, key: str) -> None:
        self._drop(key)

    def set_limit(self, limit: int) -> None:
        self.limit = limit
        self._evict()


keys = st.sampled_from([f"m{i}" for i in range(8)])
ops = st.lists(st.one_of(
    st.tuples(st.just("put"), keys, st.integers(0, 120)),
    st.tuples(st.just("get"), keys, st.just(0)),
    st.tuples(st.just("pop"), keys, st.just(0)),
    st.tuples(st.just("limit"), st.just(""), st.integers(0, 300)),
), max_size=60)


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 300), ops)
def test_lru_matches_the_model(limit: int, operations: list[tuple[str, str, int]]) -> None:
    lru, model = MemoryLRU(limit), ModelLRU(limit)
    for op, key, n in operations:
        if op == "put":
            assert lru.put(key, f"buf-{key}", n) == model.put(key, n)
        elif op == "get":
            got = lru.get(key)
            assert (got is not None) == model.get(key)
            if got is not None:
                assert got.buffer == f"buf-{key}"
        elif op == "pop":
            lru.pop(key)
            model.pop(key)
        else:
            lru.set_max_bytes(n)
            model.set_limit(n)
        assert lru.keys() == [k for k, _ in model.items]  # same contents, same recency order
        assert lru.bytes == sum(s for _, s in model.items) <= lru.max_bytes
        assert len(lru) == len(model.items)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(keys, st.integers(1, 50)), min_size=1, max_size=40))
def test_bytes_never_exceed_the_limit(puts: list[tuple[str, int]]) -> None:
    lru = MemoryLRU(100)
    for key, size in puts:
        lru.put(key, b"", size)
        assert lru.bytes <= 100
    # The most recent put always survives (it fits on its own).
    assert puts[-1][0] in lru


def test_hit_refreshes_recency() -> None:
    lru = MemoryLRU(30)
    for k in ("a", "b", "c"):
        lru.put(k, k, 10)
    assert lru.get("a") is not None  # a is now the most recent
    lru.put("d", "d", 10)
    assert lru.keys() == ["c", "a", "d"]  # b, the least recently used, went


def test_too_big_is_never_held_and_drops_an_older_copy() -> None:
    lru = MemoryLRU(100)
    lru.put("x", "small", 10)
    assert lru.put("x", "huge", 101) is False
    assert "x" not in lru and lru.bytes == 0


def test_set_max_bytes_evicts_at_once() -> None:
    lru = MemoryLRU(100)
    for i in range(10):
        lru.put(f"k{i}", i, 10)
    lru.set_max_bytes(25)
    assert lru.keys() == ["k8", "k9"] and lru.bytes == 20
    assert lru.evictions == 8
    with pytest.raises(ValueError):
        lru.set_max_bytes(-1)


def test_threads_keep_the_byte_count_exact() -> None:
    lru = MemoryLRU(1000)
    start = threading.Barrier(4)

    def worker(n: int) -> None:
        start.wait()
        for i in range(2000):
            key = f"k{(i * 7 + n) % 40}"
            if i % 3:
                lru.put(key, i, (i % 50) + 1)
            else:
                lru.get(key)
            if i % 11 == 0:
                lru.pop(key)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    held = [lru.get(k) for k in list(lru.keys())]
    assert lru.bytes == sum(e.size for e in held if e is not None)
    assert lru.bytes <= 1000
