"""Which failures are worth another try, and how long to wait before it."""

from __future__ import annotations

import email.utils
import random
import time

from ..errors import DownloadError

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524})


class TransientError(DownloadError):
    """A failure that another attempt may not meet (network error, 5xx, 408, 429, stall)."""

    def __init__(self, message: str, *, url: str | None = None, status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message, url=url, status=status)
        self.retry_after = retry_after


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Parse ``Retry-After`` (seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def backoff(attempt: int, base: float, cap: float, retry_after: float | None = None) -> float:
    """Exponential backoff with full jitter; ``Retry-After`` wins when the server gives one."""
    if retry_after is not None:
        return min(max(0.0, retry_after), max(cap, 1.0) * 4)
    high = min(cap, base * (2**attempt))
    return random.uniform(high / 2, high)
