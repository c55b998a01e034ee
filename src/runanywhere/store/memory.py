"""The memory tier: a byte-bounded LRU of model buffers."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class MemoryEntry:
    key: str
    #: ``bytes``, ``mmap.mmap`` or any buffer; read-only by convention.
    buffer: Any
    size: int


class MemoryLRU:
    """Least-recently-used entries go first once the byte total passes ``max_bytes``.

    An entry bigger than the whole limit is never admitted (it is served from disk instead).
    ``get`` is a dict lookup plus a ``move_to_end``: well under 10 µs.
    """

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError("memory limit must be >= 0")
        self._max = max_bytes
        self._items: OrderedDict[str, MemoryEntry] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.evictions = 0

    @property
    def max_bytes(self) -> int:
        return self._max

    @property
    def bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def keys(self) -> list[str]:
        """Keys from least to most recently used."""
        with self._lock:
            return list(self._items)

    def get(self, key: str) -> MemoryEntry | None:
        with self._lock:
            entry = self._items.get(key)
            if entry is not None:
                self._items.move_to_end(key)
            return entry

    def put(self, key: str, buffer: Any, size: int) -> bool:
        """Insert or refresh ``key``; False if it is too big to ever fit."""
        if size > self._max:
            self.pop(key)
            return False
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old.size
            self._items[key] = MemoryEntry(key, buffer, size)
            self._bytes += size
            self._evict_locked()
        return True

    def pop(self, key: str) -> MemoryEntry | None:
        with self._lock:
            entry = self._items.pop(key, None)
            if entry is not None:
                self._bytes -= entry.size
            return entry

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    def set_max_bytes(self, max_bytes: int) -> None:
        """Change the limit; evicts at once if the tier is now over it."""
        if max_bytes < 0:
            raise ValueError("memory limit must be >= 0")
        with self._lock:
            self._max = max_bytes
            self._evict_locked()

    def _evict_locked(self) -> None:
        while self._bytes > self._max and self._items:
            _, entry = self._items.popitem(last=False)
            self._bytes -= entry.size
            self.evictions += 1
