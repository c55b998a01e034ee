"""One retry policy for every network call: which failures heal, how often to try again, and how
long to wait before each try. A leaf below ``transfer`` and ``shared``, which both call through
it.

:class:`RetryPolicy` is a frozen value in the manner of urllib3's ``Retry``: ``attempts`` retries
after the first try, full-jitter exponential backoff from ``delay`` up to ``cap``, and a server's
``Retry-After`` (seconds or an HTTP date) in place of the backoff. :meth:`RetryPolicy.call` is the
one retry loop of the package: the byte ranges of a download, size probes, the Hub's API, remote
catalogs and the shared tier's S3 calls all go through it.

What heals is decided where the failure is seen, and raised as :class:`TransientError`:
refused, reset or timed-out connections, an answer that is not HTTP, a resolver that does not
answer (``EAI_AGAIN``) and the statuses in :data:`RETRY_STATUSES` (408, 429, 5xx). A host that
does not resolve, a certificate that does not verify, a proxy that refuses us (407) and any other
4xx are plain ``DownloadError`` s: another try would meet them again.

Progress resets the budget: a try that failed after at least ``progress`` bytes (64 KiB) arrived
does not count against ``attempts`` (a connection cut after every megabyte still finishes the
file), only a run of tries that brought (next to) nothing does. A try the watchdog ended for being
too slow (``TransientError.slow``) never counts as progress, whatever it brought: a link below the
minimum speed is given up on, not followed forever, and so is a server that resets after a byte.
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from .errors import DownloadCancelledError, DownloadError
from .logs import logger

log = logger(__name__)
T = TypeVar("T")

#: Statuses another try may not meet: timeouts, rate limits, server and CDN-origin errors.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524})


class TransientError(DownloadError):
    """A failure that another attempt may not meet (network error, 5xx, 408, 429, stall)."""

    def __init__(self, message: str, *, url: str | None = None, status: int | None = None,
                 retry_after: float | None = None, slow: bool = False) -> None:
        super().__init__(message, url=url, status=status)
        self.retry_after = retry_after
        #: Ended by the watchdog: too slow, or no answer in time (never counts as progress).
        self.slow = slow


class RetriesExhausted(DownloadError):
    """Every try of a call failed with a :class:`TransientError`; ``last`` is the final one.

    Not a ``TransientError`` itself: a caller that moves on (to a mirror, to the origin) does so,
    and nothing retries the call again."""

    def __init__(self, last: TransientError, retries: int) -> None:
        super().__init__(f"{last} (gave up after {retries} retries)", url=last.url,
                         status=last.status)
        self.last = last
        self.retries = retries


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Parse ``Retry-After`` (seconds or an HTTP date); None when absent or unreadable."""
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


@dataclass(frozen=True)
class RetryPolicy:
    """How a failed network call is tried again.

    ``attempts`` retries follow the first try (3: four tries in all). Retry ``n`` (0 for the
    first) waits a random time between half and all of ``min(cap, delay * 2**n)``; a server's
    ``Retry-After`` wins, up to four times ``cap`` (at least 4 s), so a server cannot park a
    download for an hour. A failed try that brought ``progress`` bytes or more (and was not
    ended for being too slow) resets the budget.
    """

    attempts: int = 3
    delay: float = 1.0
    cap: float = 30.0
    progress: int = 64 * 1024

    def __post_init__(self) -> None:
        if self.attempts < 0:
            raise ValueError(f"RetryPolicy(attempts={self.attempts}): must be >= 0")
        if self.delay < 0 or self.cap < 0:
            raise ValueError(f"RetryPolicy(delay={self.delay}, cap={self.cap}): must be >= 0")

    def backoff(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (0 for the first)."""
        if retry_after is not None:
            return min(max(0.0, retry_after), max(self.cap, 1.0) * 4)
        high = min(self.cap, self.delay * (2 ** min(retry, 62)))
        return random.uniform(high / 2, high)

    def budget(self) -> RetryBudget:
        """A fresh budget for one call under this policy."""
        return RetryBudget(self)

    def call(self, attempt: Callable[[], T], *, cancel: threading.Event | None = None,
             progress: Callable[[], int] | None = None) -> T:
        """``attempt()``, tried again on a :class:`TransientError` as this policy says.

        ``progress()`` (bytes done so far), when given, is read around each try: a try after
        which it grew by ``self.progress`` bytes made progress and resets the budget. The wait
        before a retry ends early on ``cancel`` (``DownloadCancelledError``). Raises
        :class:`RetriesExhausted` when the budget is spent, and anything else ``attempt`` raises
        as it is.
        """
        budget = self.budget()
        while True:
            before = progress() if progress is not None else 0
            try:
                return attempt()
            except TransientError as e:
                if progress is not None and not e.slow and progress() - before >= self.progress:
                    budget.progressed()
                wait = budget.spend(e)
                if wait is None:
                    raise RetriesExhausted(e, self.attempts) from e
                log.info("%s; retry %d of %d in %.1fs", e, budget.spent, self.attempts, wait)
                if cancel is not None:
                    if cancel.wait(wait):
                        raise DownloadCancelledError("download cancelled") from None
                elif wait > 0:
                    time.sleep(wait)


class RetryBudget:
    """The retries one call has left under its policy (not thread-safe: one per call)."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        #: Failed tries since the last one that made progress.
        self.spent = 0

    def progressed(self) -> None:
        """A try brought bytes: the failures before it no longer count."""
        self.spent = 0

    def spend(self, error: TransientError) -> float | None:
        """Count a failed try: the seconds to wait before the next one, or None when no retry
        is left."""
        self.spent += 1
        if self.spent > self.policy.attempts:
            return None
        return self.policy.backoff(self.spent - 1, error.retry_after)
