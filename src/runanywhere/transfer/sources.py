"""Where a file's bytes come from: the shared tier first, then the origin and its mirrors.

The shared tier only says where a blob can be read (a presigned URL); the bytes come through the
same :class:`~.fetch.FileFetch` as an origin download (parallel ranges, resume, verified as they
land), into a partial of their own (``s3-<sha256>``) so a failed shared read never mixes with the
origin's bytes. Only files with a known sha256 use the tier; for one the catalog gives only a
size estimate, the object's own size is taken (the sha256 decides), so a hit costs the origin
nothing, not even a size probe. On a miss this process may take the fleet lease for the blob;
it is kept until the upload after publishing (or ``PUBLISH_GRACE`` seconds), and dropped at once
if the origin download fails.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import DownloadCancelledError, IntegrityError
from ..logs import logger
from ..progress import ProgressTracker, Stage
from .config import Auth, FetchConfig
from .fetch import FetchedFile, FileFetch
from .response import one_line

if TYPE_CHECKING:  # the tier's package loads only when a tier is configured
    from ..shared import SharedTier

log = logger(__name__)


class SubTracker(ProgressTracker):
    """Counts what one shared-tier fetch added, so a failed fetch can take it back."""

    def __init__(self, parent: ProgressTracker) -> None:
        super().__init__(parent.model_id, parent.total, None)
        self.parent = parent
        self.counted = 0
        self.grown = 0
        self._count_lock = threading.Lock()

    def grow(self, n: int) -> None:
        with self._count_lock:
            self.grown += n
        self.parent.grow(n)

    def add(self, n: int) -> None:
        with self._count_lock:
            self.counted += n
        self.parent.add(n)

    def add_resumed(self, n: int) -> None:
        with self._count_lock:
            self.counted += n
        self.parent.add_resumed(n)

    def rewind(self, n: int) -> None:
        with self._count_lock:
            self.counted -= n
        self.parent.rewind(n)

    def set_stage(self, stage: Stage, message: str = "",
                  error: BaseException | None = None) -> None:
        self.parent.set_stage(stage, message, error)

    def emit(self, message: str = "", *, force: bool = False,
             error: BaseException | None = None) -> None:
        self.parent.emit(message, force=force, error=error)

    def take_back(self) -> None:
        """Undo every byte this fetch reported (it failed; the origin will report them again)."""
        with self._count_lock:
            n, self.counted = self.counted, 0
            grown, self.grown = self.grown, 0
        if n > 0:
            self.parent.rewind(n)
        if grown:
            self.parent.grow(-grown)


def fetch_from_shared(tier: SharedTier, sha256: str, size: int | None, partial_dir: Path,
                      tracker: ProgressTracker, cancel: threading.Event, config: FetchConfig, *,
                      lead: bool = False, estimate: int = 0) -> FetchedFile | None:
    """The verified blob from the shared tier, in ``partial_dir``; None on a miss or a failure
    (the tier then steps aside or marks the object corrupt). ``lead``: see ``SharedTier.locate``.
    ``size`` None: the object's size is taken, in place of the ``estimate`` the progress counted
    so far. Raises only ``DownloadCancelledError``."""
    source = tier.locate(sha256, size, cancel=cancel, lead=lead,
                         on_wait=lambda message: tracker.set_stage(tracker.stage, message))
    if source is None:
        log.debug("%s: not in the shared tier", sha256[:12])
        return None
    log.info("%s: reading from the shared tier %s", sha256[:12], source.label)
    # The origin is usually better than a struggling tier: one retry, and a slow link fails.
    cfg = replace(config, auth=Auth(),
                  retry=replace(config.retry, attempts=min(config.retry.attempts, 1),
                                delay=min(config.retry.delay, 0.5)),
                  stalls=replace(config.stalls,
                                 min_speed=max(config.stalls.min_speed, source.min_speed),
                                 window=min(config.stalls.window, source.stall_window)))
    sub = SubTracker(tracker)
    if size is None:
        sub.grow(source.size - estimate)  # taken back if the read fails
    fetch = FileFetch([source.url], source.size, source.sha256, partial_dir=partial_dir,
                      key=f"s3-{source.sha256}", config=cfg, tracker=sub, cancel=cancel)
    try:
        got = fetch.run()
    except DownloadCancelledError:
        raise  # the partial stays for a resume from the shared tier
    except Exception as e:
        sub.take_back()
        fetch.discard()  # the origin brings these bytes now
        # Presigned URLs are short-lived credentials: keep them out of logs.
        message = one_line(str(e) or type(e).__name__).replace(source.url, source.label)
        tier.note_failed(source, message[:300], corrupt=isinstance(e, IntegrityError))
        log.info("%s: the shared tier failed (%s); using the origin", sha256[:12], message)
        return None
    tier.note_served(source)
    return got


def fetch_file(tier: SharedTier | None, fetch: FileFetch) -> FetchedFile:
    """Run ``fetch`` (an origin download), trying the shared tier first when there is one."""
    sha = fetch.expected
    if tier is None or not sha:
        return fetch.run()
    got = fetch_from_shared(tier, sha, fetch.size if fetch.size_known else None,
                            fetch.partial_dir, fetch.tracker, fetch.cancel, fetch.cfg, lead=True,
                            estimate=fetch.size_estimate or 0)
    if got is not None:
        return got
    try:
        result = fetch.run()
    except BaseException:
        tier.release(sha)
        raise
    from ..shared import PUBLISH_GRACE

    tier.hold(sha, PUBLISH_GRACE)
    return result
