"""``ModelLoader``: a bounded FIFO of model downloads with single-flight, progress and cancel.

One model = one slot; at most ``concurrency`` models download at once, each in a worker thread of
the loader's own (``pipeline.pull_model``). A second request for a model already queued or
downloading joins it. The loader belongs to no event loop: its jobs are plain
``concurrent.futures`` futures, so coroutines on any loop (and the blocking registry's private
loops) may wait for the same download; each caller's progress callback runs on the loop it was
registered from (or in the worker thread, for callers without a loop).

Cancel: :meth:`ModelLoader.cancel_download` sets the job's cancel event, which every blocking step
of a pull polls within 0.25 s (connections are shut down, lock waits stop); the partial bytes stay
for a resume. A caller whose wait is cancelled (``task.cancel()``, ``asyncio.wait_for``) leaves
the job; the last one leaving cancels the download and waits (briefly) for it to wind down, so no
thread outlives the call.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..catalog import Catalog, ModelMetadata
from ..errors import DownloadCancelledError, ModelError
from ..logs import logger
from ..progress import (
    HEARTBEAT,
    DownloadProgress,
    ProgressCallback,
    ProgressTracker,
    Stage,
    cache_hit,
)
from ..settings import Settings
from ..store import ModelCache
from ..store.fsutil import disk_error
from .config import FetchConfig, loader_config
from .hub import hub_token, token_origins
from .watch import ticking

if TYPE_CHECKING:
    from ..shared import SharedTier

log = logger(__name__)
#: How long a cancelled caller waits for its download's threads to stop.
WIND_DOWN = 5.0


def _heartbeat(tracker: ProgressTracker) -> contextlib.AbstractContextManager[None]:
    """Report at least every ``HEARTBEAT`` s while a pull runs, whatever it waits for (a lock,
    another machine, a silent server): a caller's ETA and speed never go stale."""
    return ticking(HEARTBEAT, tracker.emit, f"ra-beat-{tracker.model_id}")


@dataclass
class _Listener:
    callback: ProgressCallback
    loop: asyncio.AbstractEventLoop | None


@dataclass
class _Job:
    meta: ModelMetadata
    future: concurrent.futures.Future[Path] = field(default_factory=concurrent.futures.Future)
    listeners: list[_Listener] = field(default_factory=list)
    cancel: threading.Event = field(default_factory=threading.Event)
    state: str = "queued"
    waiters: int = 0
    thread: threading.Thread | None = None
    last: DownloadProgress | None = None


def _joinable(job: _Job) -> bool:
    """A job a new request may wait on: not finished and not cancelled."""
    return not job.future.done() and not job.cancel.is_set()


def deliver(listener: _Listener, p: DownloadProgress) -> bool:
    """Call a progress callback on its own loop (or here); False once its loop is gone.

    A callback that raises is logged and otherwise ignored: it must not break a download, nor
    turn a cache hit into an error.
    """
    def call() -> None:
        try:
            listener.callback(p)
        except Exception:
            log.exception("progress callback failed")

    loop = listener.loop
    if loop is None:
        call()
        return True
    try:
        loop.call_soon_threadsafe(call)
    except RuntimeError:  # the caller's loop is closed: nobody is listening there any more
        return False
    return True


def typed(e: BaseException, model_id: str, home: Path) -> ModelError:
    """The error a caller of the loader sees: always a ``ModelError`` (the API promises a
    ``Result``); anything else that escaped the pull is wrapped, its cause kept."""
    if isinstance(e, ModelError):
        return e
    if isinstance(e, OSError):
        wrapped: ModelError = disk_error(e, f"pulling {model_id}", home)
    else:
        wrapped = ModelError(f"pulling {model_id} failed unexpectedly: {type(e).__name__}: {e}")
    wrapped.__cause__ = e
    return wrapped


class ModelLoader:
    def __init__(self, concurrency: int = 2, chunk_size: int | None = None,
                 retry_attempts: int | None = None, retry_delay: float | None = None,
                 timeout: float | None = None, *, cache: ModelCache | None = None,
                 settings: Settings | None = None,
                 resolve: Callable[[str], ModelMetadata] | None = None,
                 fetch_config: FetchConfig | None = None, files_in_parallel: int = 4) -> None:
        """``chunk_size`` (1 MiB), ``retry_attempts`` (3), ``retry_delay`` (1 s) and ``timeout``
        (60 s: the longest silence of a connection, not the whole download) are the seed's
        options; they and every other transfer setting live in :class:`FetchConfig`
        (``streams.chunk_size``, ``retry.attempts``, ``retry.delay``, ``stalls.timeout``), put
        together with the settings by ``config.loader_config``."""
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self.settings = settings or Settings.from_env()
        s = self.settings
        self.cache = cache or ModelCache(s.memory_limit, s.home, durable=s.durable,
                                         disk_limit=s.disk_limit,
                                         scratch_fallback=s.scratch_fallback)
        self.config = loader_config(fetch_config, s, token=hub_token(s),
                                    token_origins=token_origins(s), chunk_size=chunk_size,
                                    retry_attempts=retry_attempts, retry_delay=retry_delay,
                                    timeout=timeout)
        self.concurrency = concurrency
        self.shared: SharedTier | None = None
        if s.shared_cache:  # else the S3 client stays unimported (a cached pull's start)
            from ..shared import shared_tier_from_settings

            self.shared = shared_tier_from_settings(s)
        self.files_in_parallel = files_in_parallel
        self._resolve = resolve or Catalog.from_settings(s).require
        self._jobs: dict[str, _Job] = {}
        self._queue: deque[_Job] = deque()
        self._active = 0
        self._lock = threading.Lock()

    # -- public API --------------------------------------------------------------------------------
    async def load_model(self, model: str | ModelMetadata,
                         on_progress: ProgressCallback | None = None) -> Path:
        """Download (or find in the cache) and return the model's path."""
        meta = self._meta(model)
        loop = asyncio.get_running_loop()
        with self._lock:
            job = self._jobs.get(meta.id)
            running = job is not None and _joinable(job)
        if not running:
            # A cache hit needs no queue slot and no worker thread: one index read and a stat,
            # well under a millisecond. Only when the index is free, though: a thread holding it
            # may be waiting out another process's write, and this runs on the event loop.
            _, entry = self.cache.entry_matching_nowait(meta)
            if entry is not None:
                if on_progress is not None:
                    deliver(_Listener(on_progress, None), cache_hit(meta.id, meta.size))
                return entry.path
        job = self._submit(meta, on_progress, loop)
        return await self._wait(job, loop)

    def _submit(self, meta: ModelMetadata, on_progress: ProgressCallback | None = None,
               loop: asyncio.AbstractEventLoop | None = None) -> _Job:
        """Queue a download of ``meta`` (or join the one under way); the caller counts as one
        of its waiters from here (see ``_wait``)."""
        with self._lock:
            job = self._jobs.get(meta.id)
            fresh = job is None or not _joinable(job)
            if fresh:
                # A cancelled job still winding down is not joined: "cancel, then download
                # again" starts anew (the download lock queues it behind the old thread).
                job = _Job(meta)
                self._jobs[meta.id] = job
                self._queue.append(job)
            assert job is not None
            job.waiters += 1  # under the lock: a waiter leaving now cannot cancel it for us
            if on_progress is not None:
                job.listeners.append(_Listener(on_progress, loop))
        if fresh:
            self._emit(job, ProgressTracker(meta.id, meta.size, None).snapshot("queued"))
            self._pump()
        return job

    async def _wait(self, job: _Job, loop: asyncio.AbstractEventLoop) -> Path:
        waiter: asyncio.Future[Path] = loop.create_future()

        def settle(f: concurrent.futures.Future[Path]) -> None:
            def copy() -> None:
                if waiter.done():
                    return
                if f.cancelled():
                    waiter.set_exception(DownloadCancelledError(
                        f"download of {job.meta.id} cancelled"))
                elif f.exception() is not None:
                    waiter.set_exception(f.exception())  # type: ignore[arg-type]
                else:
                    waiter.set_result(f.result())

            with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits any more
                loop.call_soon_threadsafe(copy)

        job.future.add_done_callback(settle)
        try:
            return await waiter
        except asyncio.CancelledError:
            with self._lock:
                job.waiters -= 1
                last = job.waiters == 0
            if last and not job.future.done():
                # The last caller left: nobody wants these bytes now. Cancel, and let the
                # threads stop before this call ends (the partial stays for a resume).
                self.cancel_download(job.meta.id)
                await self._wind_down(job)
            raise
        else:
            with self._lock:
                job.waiters -= 1

    @staticmethod
    async def _wind_down(job: _Job) -> None:
        """Wait (at most ``WIND_DOWN`` s, without blocking the loop) until the job's worker
        thread has ended: a cancelled call leaves no thread of ours behind."""
        deadline = asyncio.get_running_loop().time() + WIND_DOWN
        while asyncio.get_running_loop().time() < deadline:
            thread = job.thread
            if job.future.done() and (thread is None or not thread.is_alive()):
                return
            await asyncio.sleep(0.01)

    async def preload_models(self, ids: Iterable[str | ModelMetadata],
                             on_progress: ProgressCallback | None = None
                             ) -> dict[str, Path | BaseException]:
        """Download several models; one result per model (an unknown id does not stop the
        others: its result is the error)."""
        out: dict[str, Path | BaseException] = {}
        metas: list[ModelMetadata] = []
        for i in ids:
            try:
                metas.append(self._meta(i))
            except ModelError as e:
                out[i if isinstance(i, str) else i.id] = e
        results = await asyncio.gather(*(self.load_model(m, on_progress) for m in metas),
                                       return_exceptions=True)
        out.update({m.id: r for m, r in zip(metas, results, strict=True)})
        return out

    def cancel_download(self, model_id: str) -> bool:
        """Stop a queued or active download; its awaiters get ``DownloadCancelledError``."""
        with self._lock:
            job = self._jobs.get(model_id)
            if job is None or job.future.done():
                return False
            job.cancel.set()
            queued = job.state == "queued"
            if queued:
                with contextlib.suppress(ValueError):
                    self._queue.remove(job)
        if queued:
            error = DownloadCancelledError(f"download of {model_id} cancelled")
            tracker = ProgressTracker(model_id, job.meta.size, None)
            tracker.stage = Stage.CANCELLED
            self._emit(job, tracker.snapshot("cancelled before it started", error))
            self._finish(job, error)
        return True

    def cancel_all_downloads(self) -> int:
        with self._lock:
            ids = list(self._jobs)
        return sum(self.cancel_download(i) for i in ids)

    def get_active_downloads(self) -> list[str]:
        with self._lock:
            return [i for i, j in self._jobs.items()
                    if j.state == "active" and not j.future.done()]

    def get_queued_downloads(self) -> list[str]:
        with self._lock:
            return [j.meta.id for j in self._queue]

    def get_progress(self, model_id: str) -> DownloadProgress | None:
        job = self._jobs.get(model_id)
        return job.last if job else None

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no download runs or waits (True), or ``timeout`` passes (False)."""
        with self._lock:
            futures = [j.future for j in self._jobs.values() if not j.future.done()]
        _, pending = concurrent.futures.wait(futures, timeout)
        return not pending

    # -- queue -----------------------------------------------------------------------------------
    def _meta(self, model: str | ModelMetadata) -> ModelMetadata:
        return model if isinstance(model, ModelMetadata) else self._resolve(model)

    def _pump(self) -> None:
        with self._lock:
            while self._active < self.concurrency and self._queue:
                job = self._queue.popleft()
                if job.future.done():
                    continue
                job.state = "active"
                self._active += 1
                job.thread = threading.Thread(target=self._run, args=(job,), daemon=True,
                                              name=f"ra-pull-{job.meta.id}")
                job.thread.start()

    def _run(self, job: _Job) -> None:
        tracker = ProgressTracker(job.meta.id, job.meta.size, lambda p: self._emit(job, p))
        from .pipeline import Pull, pull_model  # the fetch, HTTP, TLS: not for a cache hit

        pull = Pull(self.cache, self.config, self.shared, self.settings,
                    self.files_in_parallel)
        outcome: Path | BaseException
        with _heartbeat(tracker):
            try:
                outcome = pull_model(pull, job.meta, tracker, job.cancel)
            except BaseException as e:
                outcome = typed(e, job.meta.id, self.cache.directory)
                if isinstance(outcome, DownloadCancelledError):
                    tracker.set_stage(Stage.CANCELLED, f"cancelled: {outcome}", outcome)
                else:
                    tracker.set_stage(Stage.FAILED, f"failed: {outcome}", outcome)
                log.info("%s: %s", job.meta.id, tracker.stage.value, exc_info=outcome
                         if log.isEnabledFor(logging.DEBUG) else None)
        with self._lock:
            self._active -= 1
        self._pump()  # the next job is under way before anyone hears that this one ended
        self._finish(job, outcome)

    def _finish(self, job: _Job, outcome: Path | BaseException) -> None:
        with self._lock:
            job.state = "done"
            if job.future.done():
                return
        if isinstance(outcome, BaseException):
            job.future.set_exception(outcome)
        else:
            job.future.set_result(outcome)

    def _emit(self, job: _Job, p: DownloadProgress) -> None:
        job.last = p
        with self._lock:
            listeners = list(job.listeners)
        gone = [li for li in listeners if not deliver(li, p)]
        if gone:
            with self._lock:
                job.listeners = [li for li in job.listeners if li not in gone]
