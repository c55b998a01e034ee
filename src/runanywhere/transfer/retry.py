"""Which failures are worth another try, and how long to wait before it."""

from __future__ import annotations

import errno
import random

from ..errors import CacheError, DownloadError, InsufficientStorageError, ModelError

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524})


class TransientError(DownloadError):
    """A failure that another attempt may not meet (network error, 5xx, 408, 429, stall)."""

    def __init__(self, message: str, *, url: str | None = None, status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message, url=url, status=status)
        self.retry_after = retry_after


def disk_error(e: OSError, doing: str) -> ModelError:
    """A local disk failure, typed: never retried as if the network had failed."""
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return InsufficientStorageError(f"disk full while {doing}: {e.strerror or e}")
    return CacheError(f"disk error while {doing}: {e.strerror or e}")


def backoff(attempt: int, base: float, cap: float, retry_after: float | None = None) -> float:
    """Exponential backoff with full jitter; ``Retry-After`` wins when the server gives one."""
    if retry_after is not None:
        return min(max(0.0, retry_after), max(cap, 1.0) * 4)
    high = min(cap, base * (2**attempt))
    return random.uniform(high / 2, high)
