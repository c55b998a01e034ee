"""One model, pulled synchronously: find it, or fetch every file, verify, publish, share.

Order (each step is where a crash may stop; the store's publish order keeps the cache right):

1. the cache answers if it holds the model as the catalog describes it now;
2. offline mode stops here;
3. the model's download lock: one process downloads while the others wait for its publish (only
   an optimisation: partials have one writer each and publishing is idempotent);
4. files whose bytes are stored already (another model, or a crash before a commit) are staged
   from their blobs; the others download in parallel (up to ``files_in_parallel``), each from the
   shared tier or its origin (``sources.py``); one failure stops the others, keeping partials;
5. first-use hashes are recorded, the files published (an archive unpacked first), the blobs
   offered to the shared tier.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..catalog import ModelFile, ModelMetadata
from ..catalog.hub import is_hub_url
from ..errors import DownloadCancelledError, IntegrityError, ModelError, OfflineError
from ..progress import ProgressTracker, Stage
from ..redact import redact_url
from ..settings import Settings
from ..store import ModelCache, StagedFile, partial_key
from ..store.fsutil import crash_point, disk_error
from .config import FetchConfig
from .fetch import FetchedFile, FileFetch
from .hub import download_url
from .sources import fetch_file

if TYPE_CHECKING:
    from ..shared import SharedTier


@dataclass(frozen=True)
class Pull:
    """Everything one pull needs besides the model."""

    cache: ModelCache
    config: FetchConfig
    shared: SharedTier | None
    settings: Settings
    files_in_parallel: int = 4


def pull_model(pull: Pull, meta: ModelMetadata, tracker: ProgressTracker,
               cancel: threading.Event) -> Path:
    """Make ``meta`` available in the cache and return its path (blocking)."""
    cache = pull.cache
    entry = cache.entry_matching(meta)
    if entry is not None:
        tracker.add_resumed(meta.size)
        tracker.set_stage(Stage.DONE, "already in the cache")
        return entry.path
    cache.require_writable()  # before a single byte is fetched for nothing
    if pull.settings.offline:
        raise OfflineError(f"{meta.id} is not in the cache and offline mode is on"
                           " (RUNANYWHERE_OFFLINE / --offline)")
    if pull.settings.hf_offline and any(is_hub_url(u) for f in meta.files for u in f.urls):
        raise OfflineError(f"{meta.id} is not in the cache and comes from the Hub, and"
                           " HF_HUB_OFFLINE is on")
    elsewhere = _Elsewhere(cache, meta, tracker)
    with cache.download_lock(meta, cancel, on_wait=elsewhere.look) as mine:
        elsewhere.stop()
        entry = cache.entry_matching(meta)
        if not mine or entry is not None:  # another process published it while we waited
            assert entry is not None
            tracker.add_resumed(meta.size)
            tracker.set_stage(Stage.DONE, "published by another process")
            return entry.path
        path = _fetch_and_publish(pull, meta, tracker, cancel)
    tracker.set_stage(Stage.DONE, "done")
    return path


class _Elsewhere:
    """While another process downloads the model (it holds the download lock), its progress
    as its partial files show it, so a second ``pull`` does not sit at "queued 0.0%"."""

    def __init__(self, cache: ModelCache, meta: ModelMetadata,
                 tracker: ProgressTracker) -> None:
        self.cache, self.meta, self.tracker = cache, meta, tracker
        self.seen = 0
        self.todo: list[tuple[str, int]] | None = None

    def look(self) -> None:
        if self.todo is None:  # the first look: we wait for someone
            self.todo = [(partial_key(f.url, f.expected_size,
                                      self.cache.expected_sha256(self.meta.id, f)),
                          f.expected_size) for f in self.meta.files]
            self.tracker.set_stage(Stage.QUEUED, "another process is downloading it")
        now = self.cache.bytes_in_partials(self.todo)
        if now > self.seen:
            self.tracker.add(now - self.seen)
            self.seen = now

    def stop(self) -> None:
        """The lock is ours (or the model published): what was shown was the other's."""
        if self.seen:
            self.tracker.rewind(self.seen)
            self.seen = 0


def _fetch_and_publish(pull: Pull, meta: ModelMetadata, tracker: ProgressTracker,
                       cancel: threading.Event) -> Path:
    cache = pull.cache
    todo: list[tuple[ModelFile, str | None]] = []
    staged: dict[str, StagedFile] = {}
    fetched: dict[str, FetchedFile] = {}
    claimed: set[tuple[str, str]] = set()
    try:
        partials = cache.partial_dir()
        hashes = {f.path: cache.expected_sha256(meta.id, f) for f in meta.files}
        # Another model of this process may be downloading the same bytes: wait for it.
        claimed = FLIGHTS.claim({(str(cache.directory), h) for h in hashes.values() if h},
                                cancel, lambda: tracker.set_stage(
                                    Stage.QUEUED, "waiting for the same bytes of another model"))
        for f in meta.files:
            expected = hashes[f.path]
            # Same bytes already stored (another model, or a crash before the index commit)?
            reused = cache.stage_stored_blob(f.path, expected, f.size) if expected else None
            if reused is not None:
                staged[f.path] = reused
                tracker.add_resumed(f.expected_size)
            else:
                todo.append((f, expected))
        unpacked = (meta.unpacked_size or meta.size) if meta.archive else 0
        cache.check_space([(partial_key(f.url, f.expected_size, e), f.expected_size)
                           for f, e in todo], unpacked=unpacked)
        tracker.set_stage(Stage.DOWNLOADING, f"downloading {meta.id}")
        if todo:
            fetches = {f.path: FileFetch([download_url(u, pull.settings) for u in f.urls],
                                         f.size, expected, partial_dir=partials,
                                         key=partial_key(f.url, f.expected_size, expected),
                                         config=pull.config, tracker=tracker, cancel=cancel,
                                         git_sha1=f.git_sha1, size_estimate=f.size_estimate)
                       for f, expected in todo}
            try:
                fetched = _run_all(fetches, pull.shared, pull.files_in_parallel, cancel)
            except IntegrityError as e:
                if any(e2 and not f.hash and not f.git_sha1 for f, e2 in todo):
                    # The hash it missed was recorded at the first download (trust on first
                    # use): say how to start over if the file changed on purpose.
                    e.args = (f"{e} (the sha256 recorded at the first download of {meta.id};"
                              " if the file changed on purpose, `runanywhere cache forget"
                              f" {meta.id}` resets it)",)
                raise
        for f, expected in todo:
            got = fetched[f.path]
            if expected is None:  # trust on first use (or the Hub's git blob id, checked):
                cache.record_trusted(meta.id, f, redact_url(f.url), got.sha256,  # from now on
                                     got.size)
            staged[f.path] = StagedFile(f.path, got.path, got.sha256, got.size)
        crash_point("download:verified")  # verified and flushed, nothing published yet
        return _publish(pull, meta, [staged[f.path] for f in meta.files], tracker)
    except OSError as e:
        if isinstance(e, ModelError):
            raise
        raise disk_error(e, f"publishing {meta.id} into {cache.directory}",
                         cache.directory) from e
    finally:
        _drop_leases(pull.shared, fetched.values())  # not uploaded (a failure): nobody waits
        for got in fetched.values():
            got.release()
        cache.discard_staged(staged.values())
        FLIGHTS.release(claimed)  # published (or failed): the waiters look for the blob now


class Flights:
    """Blobs (cache folder, sha256) the pulls of this process are fetching right now.

    Two models with identical bytes in one command would otherwise both download them (and
    store them once). A pull claims all of its blobs or none: if any is in flight it claims
    nothing and waits, then stages the blob the other pull published (or, if that one failed,
    claims and downloads it itself). A waiter holds no claim, so no two pulls wait on each other.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._busy: dict[tuple[str, str], threading.Event] = {}

    def claim(self, keys: set[tuple[str, str]], cancel: threading.Event,
              on_wait: Callable[[], object] | None = None) -> set[tuple[str, str]]:
        while True:
            with self._lock:
                waits = [self._busy[k] for k in keys if k in self._busy]
                if not waits:
                    self._busy.update((k, threading.Event()) for k in keys)
                    return keys
            if on_wait is not None:
                on_wait()
            for ev in waits:
                while not ev.wait(0.25):
                    if cancel.is_set():
                        raise DownloadCancelledError("cancelled while waiting for another"
                                                     " download of the same bytes")

    def release(self, keys: set[tuple[str, str]]) -> None:
        with self._lock:
            events = [self._busy.pop(k) for k in keys if k in self._busy]
        for ev in events:
            ev.set()


FLIGHTS = Flights()


def _run_all(fetches: dict[str, FileFetch], shared: SharedTier | None, width: int,
             cancel: threading.Event) -> dict[str, FetchedFile]:
    """Run the fetches, ``width`` at a time, in daemon threads (an interrupted process must not
    wait for them). One failure cancels the rest, whose partials stay for a resume."""
    results: dict[str, FetchedFile] = {}
    errors: list[BaseException] = []
    pending = list(fetches.items())
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                if not pending or errors:
                    return
                path, fetch = pending.pop(0)
            try:
                got = fetch_file(shared, fetch)
            except BaseException as e:
                with lock:
                    errors.append(e)
                cancel.set()  # one file failed: stop the others, keep their partials
                return
            with lock:
                results[path] = got

    threads = [threading.Thread(target=work, daemon=True, name=f"ra-file-{i}")
               for i in range(min(width, len(fetches)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        _drop_leases(shared, results.values())
        real = [e for e in errors if not isinstance(e, DownloadCancelledError)]
        raise (real or errors)[0]
    return results


def _publish(pull: Pull, meta: ModelMetadata, files: list[StagedFile],
             tracker: ProgressTracker) -> Path:
    cache, shared = pull.cache, pull.shared
    if meta.archive:
        archive = files[0]
        entry = cache.publish_archive(
            meta, archive, origin=_origin(shared, [archive.sha256]),
            on_extract=lambda: tracker.set_stage(Stage.EXTRACTING, f"unpacking {meta.archive}"),
            after_publish=lambda blob: _upload(shared, [(archive.sha256, blob, archive.size)]))
        return entry.path
    tracker.set_stage(Stage.VERIFYING, "publishing")
    entry = cache.publish(meta.id, meta.version, files,
                          kind="file" if meta.single_file else "dir",
                          source_sha256=files[0].sha256 if meta.single_file else None,
                          origin=_origin(shared, [f.sha256 for f in files]))
    _upload(shared, [(f.sha256, cache.blob_path(f.sha256), f.size) for f in files])
    crash_point("download:published")  # visible; the partial's journal not yet dropped
    return entry.path


def _origin(shared: SharedTier | None, shas: list[str]) -> str:
    """The ``origin`` to record (``shared.shared_origin``). Without a shared tier (most pulls)
    it is ``"download"`` and the tier's package is never imported."""
    if shared is None:
        return "download"
    from ..shared import shared_origin

    return shared_origin(shared, shas)


def _upload(shared: SharedTier | None, blobs: list[tuple[str, Path, int]]) -> None:
    """Offer published blobs to the shared tier, if there is one (``upload_after_publish``)."""
    if shared is not None:
        from ..shared import upload_after_publish

        upload_after_publish(shared, blobs)


def _drop_leases(shared: SharedTier | None, fetched: Iterable[FetchedFile]) -> None:
    """Give up the shared tier's leases on files fetched from the origin (a no-op for those
    already uploaded): the fleet stops waiting for an upload that will not come."""
    if shared is not None:
        for got in fetched:
            shared.release(got.sha256)
