"""``ModelLoader``: a bounded FIFO of model downloads with single-flight, progress and cancel.

One model = one slot; at most ``concurrency`` models download at once. Inside its slot a model's
files download concurrently, each through :class:`~.fetch.FileFetch`. A second request for a
model already queued or downloading joins it. Across processes sharing one cache, a lock file
lets one process download while the others wait for the published result; the lock is only an
optimisation (partials have one writer each and publishing is idempotent), so where ``flock``
lies every process still ends with one correct copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..catalog import ModelFile, ModelMetadata
from ..errors import (
    DownloadCancelledError,
    InsufficientStorageError,
    IntegrityError,
    ModelError,
    OfflineError,
)
from ..settings import Settings
from ..shared import (
    SharedTier,
    fetch_with_shared,
    shared_origin,
    shared_tier_from_settings,
    upload_after_publish,
)
from ..store import CacheEntry, ModelCache, StagedFile
from ..store.fsutil import crash_point
from .archive import extract
from .fetch import FetchConfig, FetchedFile, FileFetch
from .progress import DownloadProgress, ProgressCallback, ProgressTracker, Stage
from .retry import disk_error

log = logging.getLogger("runanywhere")
#: Room kept free on the disk besides what a download needs.
SPACE_MARGIN = 64 * 2**20


@dataclass
class _Job:
    meta: ModelMetadata
    future: asyncio.Future[Path]
    callbacks: list[ProgressCallback] = field(default_factory=list)
    cancel: threading.Event = field(default_factory=threading.Event)
    state: str = "queued"
    fetches: list[FileFetch] = field(default_factory=list)
    last: DownloadProgress | None = None


def entry_matches(entry: CacheEntry, meta: ModelMetadata, trusted: Callable[[ModelFile], str | None]
                  ) -> bool:
    """Is the cached entry the one the catalog asks for now (same hashes)?"""
    if meta.archive:
        want = meta.files[0].sha256 or trusted(meta.files[0])
        return want is not None and entry.sha256 == want
    have = {f.path: f.sha256 for f in entry.files}
    if set(have) != {f.path for f in meta.files}:
        return False
    for f in meta.files:
        want = f.sha256 or trusted(f)
        if want is not None and have[f.path] != want:
            return False
    return True


class ModelLoader:
    #: The team cache on S3 (``Settings.shared_cache``), or None.
    shared: SharedTier | None = None

    def __init__(self, concurrency: int = 2, chunk_size: int = 1 << 20, retry_attempts: int = 3,
                 retry_delay: float = 1.0, timeout: float = 60.0, *,
                 cache: ModelCache | None = None, settings: Settings | None = None,
                 resolve: Callable[[str], ModelMetadata] | None = None,
                 fetch_config: FetchConfig | None = None, files_in_parallel: int = 4) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self.settings = settings or Settings.from_env()
        self.cache = cache or ModelCache(self.settings.memory_limit, self.settings.home,
                                         durable=self.settings.durable,
                                         disk_limit=self.settings.disk_limit)
        base = fetch_config or FetchConfig()
        self.config = replace(base, chunk_size=chunk_size, retry_attempts=retry_attempts,
                              retry_delay=retry_delay, timeout=timeout,
                              durable=self.settings.durable,
                              token=self.settings.hf_token or base.token)
        self.concurrency = concurrency
        self.shared = shared_tier_from_settings(self.settings)
        self.files_in_parallel = files_in_parallel
        self._resolve = resolve
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
        job = self._jobs.get(meta.id)
        if job is None or job.future.done():
            # A cache hit needs no queue slot and no worker thread: one index read and a stat,
            # well under a millisecond. Only when the index is free, though: a thread holding it
            # may be waiting out another process's write, and this runs on the event loop.
            with self.cache.disk.index.unless_busy() as free:
                entry = self._cached(meta) if free else None
            if entry is not None:
                if on_progress is not None:
                    done = ProgressTracker(meta.id, meta.size, None)
                    done.add_resumed(meta.size)
                    done.stage = Stage.DONE
                    on_progress(done.snapshot("already in the cache"))
                return entry.path
            job = _Job(meta, loop.create_future())
            self._jobs[meta.id] = job
            self._queue.append(job)
            if on_progress:
                job.callbacks.append(on_progress)
            self._emit(job, ProgressTracker(meta.id, meta.size, None).snapshot("queued"))
            self._pump(loop)
        elif on_progress:
            job.callbacks.append(on_progress)
        return await asyncio.shield(job.future)

    async def preload_models(self, ids: Iterable[str | ModelMetadata],
                             on_progress: ProgressCallback | None = None
                             ) -> dict[str, Path | BaseException]:
        metas = [self._meta(i) for i in ids]
        results = await asyncio.gather(*(self.load_model(m, on_progress) for m in metas),
                                       return_exceptions=True)
        return {m.id: r for m, r in zip(metas, results, strict=True)}

    def cancel_download(self, model_id: str) -> bool:
        """Stop a queued or active download; its awaiters get ``DownloadCancelledError``."""
        job = self._jobs.get(model_id)
        if job is None or job.future.done():
            return False
        job.cancel.set()
        for f in list(job.fetches):
            f.abort_all()
        if job.state == "queued":
            with contextlib.suppress(ValueError):
                self._queue.remove(job)
            self._finish(job, DownloadCancelledError(f"download of {model_id} cancelled"))
        return True

    def cancel_all_downloads(self) -> int:
        return sum(self.cancel_download(i) for i in list(self._jobs))

    def get_active_downloads(self) -> list[str]:
        return [i for i, j in self._jobs.items() if j.state == "active" and not j.future.done()]

    def get_queued_downloads(self) -> list[str]:
        return [j.meta.id for j in self._queue]

    def get_progress(self, model_id: str) -> DownloadProgress | None:
        job = self._jobs.get(model_id)
        return job.last if job else None

    # -- queue -----------------------------------------------------------------------------------
    def _meta(self, model: str | ModelMetadata) -> ModelMetadata:
        if isinstance(model, ModelMetadata):
            return model
        if self._resolve is None:
            from ..registry import ModelRegistry

            return ModelRegistry.get_instance().require_model(model)
        return self._resolve(model)

    def _pump(self, loop: asyncio.AbstractEventLoop) -> None:
        while self._active < self.concurrency and self._queue:
            job = self._queue.popleft()
            if job.future.done():
                continue
            job.state = "active"
            self._active += 1
            loop.create_task(self._run(job, loop))

    async def _run(self, job: _Job, loop: asyncio.AbstractEventLoop) -> None:
        try:
            path = await loop.run_in_executor(None, self._download_blocking, job, loop)
            self._finish(job, path)
        except BaseException as e:
            self._finish(job, e if isinstance(e, Exception) else ModelError(str(e)))
        finally:
            self._active -= 1
            self._pump(loop)

    def _finish(self, job: _Job, outcome: Path | BaseException) -> None:
        job.state = "done"
        if job.future.done():
            return
        if isinstance(outcome, BaseException):
            job.future.set_exception(outcome)
            job.future.exception()  # mark retrieved: joiners may all have gone away
        else:
            job.future.set_result(outcome)

    def _emit(self, job: _Job, p: DownloadProgress) -> None:
        job.last = p
        for cb in list(job.callbacks):
            try:
                cb(p)
            except Exception:  # a broken callback must not break the download
                log.exception("progress callback failed")

    # -- the download of one model (runs in a worker thread) -------------------------------------
    def _download_blocking(self, job: _Job, loop: asyncio.AbstractEventLoop) -> Path:
        meta = job.meta

        def post(p: DownloadProgress) -> None:  # callbacks run on the event loop's thread
            loop.call_soon_threadsafe(self._emit, job, p)

        tracker = ProgressTracker(meta.id, meta.size, post)
        entry = self._cached(meta)
        if entry is not None:
            tracker.add_resumed(meta.size)
            tracker.set_stage(Stage.DONE, "already in the cache")
            return entry.path
        if self.settings.offline:
            raise OfflineError(f"{meta.id} is not in the cache and offline mode is on"
                               " (RUNANYWHERE_OFFLINE / --offline)")
        with self._process_lock(meta, job.cancel) as entry:
            if entry is not None:  # another process published it while we waited
                tracker.add_resumed(meta.size)
                tracker.set_stage(Stage.DONE, "published by another process")
                return entry.path
            path = self._fetch_and_publish(job, tracker)
        tracker.set_stage(Stage.DONE, "done")
        return path

    def _trusted(self, meta: ModelMetadata) -> Callable[[ModelFile], str | None]:
        def lookup(f: ModelFile) -> str | None:
            t = self.cache.disk.index.trusted(meta.id, f.path)
            return t[0] if t and t[1] == f.size else None
        return lookup

    def _cached(self, meta: ModelMetadata) -> CacheEntry | None:
        entry = self.cache.lookup(meta.id)
        if entry is not None and entry_matches(entry, meta, self._trusted(meta)):
            return entry
        return None

    @contextlib.contextmanager
    def _process_lock(self, meta: ModelMetadata, cancel: threading.Event
                      ) -> Iterator[CacheEntry | None]:
        """Hold the model's download lock, or yield the entry another process published."""
        path = self._working_dir(self.cache.disk.lock_dir) / f"download-{meta.id}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            delay = 0.02
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    entry = self._cached(meta)
                    if entry is not None:
                        yield entry
                        return
                    if cancel.wait(delay):
                        raise DownloadCancelledError(f"download of {meta.id} cancelled") from None
                    delay = min(delay * 1.5, 0.25)
            # We hold the lock: maybe the previous holder finished the job.
            yield self._cached(meta)
        finally:
            os.close(fd)  # releases the flock

    def _key(self, f: ModelFile, expected: str | None) -> str:
        return expected or "url-" + hashlib.sha256(f"{f.url}|{f.size}".encode()).hexdigest()[:40]

    @staticmethod
    def _working_dir(path: Path) -> Path:
        """``partials/`` or ``locks/``, recreated if someone removed it while we ran."""
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise disk_error(e, f"creating {path}") from e
        return path

    def _fetch_and_publish(self, job: _Job, tracker: ProgressTracker) -> Path:
        meta = job.meta
        disk = self.cache.disk
        self._working_dir(disk.partial_dir)
        trusted = self._trusted(meta)
        todo: list[tuple[ModelFile, str | None]] = []
        staged: dict[str, StagedFile] = {}
        for f in meta.files:
            expected = f.sha256 or trusted(f)
            # Same bytes already stored (another model, or a crash before the index commit)?
            reused = self._stage_stored_blob(f, expected) if expected else None
            if reused is not None:
                staged[f.path] = reused
                tracker.add_resumed(f.size)
            else:
                todo.append((f, expected))
        self._check_space(todo, meta.archive is not None)
        tracker.set_stage(Stage.DOWNLOADING, f"downloading {meta.id}")
        fetched: dict[str, FetchedFile] = {}
        if todo:
            with ThreadPoolExecutor(max_workers=min(self.files_in_parallel, len(todo)),
                                    thread_name_prefix=f"ra-{meta.id}") as pool:
                futures = {}
                for f, expected in todo:
                    fetch = FileFetch(f.urls, f.size, expected, partial_dir=disk.partial_dir,
                                      key=self._key(f, expected), config=self.config,
                                      tracker=tracker, cancel=job.cancel)
                    job.fetches.append(fetch)
                    futures[f.path] = pool.submit(fetch_with_shared, self.shared, fetch)
                errors: list[BaseException] = []
                for p, fut in futures.items():
                    try:
                        fetched[p] = fut.result()
                    except BaseException as e:
                        errors.append(e)
                        job.cancel.set()  # one file failed: stop the others, keep their partials
                        for other in job.fetches:
                            other.abort_all()
                if errors:
                    self._drop_leases(fetched.values())
                    real = [e for e in errors if not isinstance(e, DownloadCancelledError)]
                    raise (real or errors)[0]
        for f, expected in todo:
            got = fetched[f.path]
            if expected is None:  # trust on first use: enforced from now on
                disk.index.set_trusted(meta.id, f.path, f.url, got.sha256, got.size)
            staged[f.path] = StagedFile(f.path, got.path, got.sha256, got.size)
        crash_point("download:verified")  # verified and flushed, nothing published yet
        try:
            if meta.archive:
                return self._publish_archive(meta, staged[meta.files[0].path], tracker)
            tracker.set_stage(Stage.VERIFYING, "publishing")
            files = [staged[f.path] for f in meta.files]
            entry = self.cache.publish(meta.id, meta.version, files,
                                       kind="file" if meta.single_file else "dir",
                                       source_sha256=files[0].sha256 if meta.single_file else None,
                                       origin=shared_origin(self.shared, [f.sha256 for f in files]))
            upload_after_publish(self.shared, [(f.sha256, disk.blob_path(f.sha256), f.size)
                                               for f in files])
            crash_point("download:published")  # visible; the partial's journal not yet dropped
            return entry.path
        except OSError as e:
            if isinstance(e, ModelError):
                raise
            raise disk_error(e, f"publishing {meta.id} into {disk.root}") from e
        finally:
            self._drop_leases(fetched.values())  # not uploaded (a failure): nobody waits for it
            for got in fetched.values():
                got.release()
            for sf in staged.values():  # reuse links that publishing did not consume
                if sf.src.parent == disk.partial_dir and ".reuse-" in sf.src.name:
                    with contextlib.suppress(FileNotFoundError):
                        sf.src.unlink()

    def _drop_leases(self, fetched: Iterable[FetchedFile]) -> None:
        """Give up the shared tier's leases on files fetched from the origin (a no-op for those
        already uploaded): the fleet stops waiting for an upload that will not come."""
        if self.shared is not None:
            for got in fetched:
                self.shared.release(got.sha256)

    def _stage_stored_blob(self, f: ModelFile, sha256: str) -> StagedFile | None:
        """Stage a hard link to an existing blob with these bytes, or None if there is none.

        Publishing *moves* a staged file into ``blobs/`` and drops it when the blob exists, so the
        blob itself must never be staged: a link in ``partials/`` is, and it costs no copy.
        """
        disk = self.cache.disk
        if not disk.has_blob(sha256, f.size):
            return None
        link = disk.partial_dir / f"{sha256}.reuse-{uuid.uuid4().hex[:8]}.part"
        try:
            os.link(disk.blob_path(sha256), link)
        except FileNotFoundError:
            return None  # pruned a moment ago: download it
        except OSError:  # no hard links here: a copy is still cheaper than the network
            shutil.copyfile(disk.blob_path(sha256), link)
        return StagedFile(f.path, link, sha256, f.size)

    def _publish_archive(self, meta: ModelMetadata, archive: StagedFile,
                         tracker: ProgressTracker) -> Path:
        disk = self.cache.disk
        blob = disk.store_blob(archive)  # keep the verified archive until the unpack succeeded
        tracker.set_stage(Stage.EXTRACTING, f"unpacking {meta.archive}")
        work = disk.partial_dir / f"unpack-{meta.id}-{uuid.uuid4().hex[:8]}"
        try:
            assert meta.archive is not None
            members = extract(blob, meta.archive, work)
            if not members:
                raise IntegrityError(f"archive of {meta.id} holds no files")
            files = [StagedFile(m.path, m.file, m.sha256, m.size) for m in members]
            entry = self.cache.publish(meta.id, meta.version, files, kind="dir",
                                       source_sha256=archive.sha256,
                                       origin=shared_origin(self.shared, [archive.sha256]))
            upload_after_publish(self.shared, [(archive.sha256, blob, archive.size)])
        finally:
            shutil.rmtree(work, ignore_errors=True)
            self._drop_unshared_blob(archive.sha256)
        return entry.path

    def _drop_unshared_blob(self, sha256: str) -> None:
        """An archive is not the model (its unpacked files are), and a refused one must not stay:
        drop its blob unless some model uses the same bytes."""
        disk = self.cache.disk
        with disk.lock("gc"):  # the store's guard against racing a publisher that uses it
            if sha256 not in disk.index.blob_refs():
                with contextlib.suppress(FileNotFoundError):
                    disk.blob_path(sha256).unlink()

    def _check_space(self, todo: list[tuple[ModelFile, str | None]], archive: bool) -> None:
        if not todo:
            return
        disk = self.cache.disk
        have = 0
        for f, expected in todo:
            key = self._key(f, expected)
            for part in disk.partial_dir.glob(f"{key}.*.part"):
                with contextlib.suppress(OSError):
                    have += min(part.stat().st_blocks * 512, f.size)
        need = sum(f.size for f, _ in todo) - have
        # An archive is unpacked beside itself: count its size once more as a lower bound.
        extra = sum(f.size for f, _ in todo) if archive else 0
        free = shutil.disk_usage(disk.partial_dir).free
        if need + extra + SPACE_MARGIN > free:
            raise InsufficientStorageError(
                f"not enough disk space in {disk.root}: {need / 2**20:.1f} MiB still to download,"
                f" {free / 2**20:.1f} MiB free", needed=need, available=free)
