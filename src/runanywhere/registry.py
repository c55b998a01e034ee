"""``ModelRegistry``: the design note's facade. Find, download, load a model; manage the cache.

Data flows one way: registry -> catalog (what a model is) -> cache (hit: done) -> loader (miss:
fetch, verify, publish) -> runtime. The catalog is read lazily on first use (or by
``initialize()``), so constructing a registry costs nothing. Every ``async`` method keeps the
event loop free: blocking work (index reads, file locks, runtime loads) runs in a thread.

Catalogs given as ``http(s)`` URLs (``--catalog http://host:8765/catalog.json``, the catalog a
``runanywhere serve`` hands out) are fetched by :func:`fetch_catalog` when the catalog is first
read, kept under ``<home>/catalogs/``, and that copy is used, with a one-line warning, whenever
the server cannot be reached (or offline mode is on).

``BlockingRegistry`` is the same API for scripts and notebooks: each call runs to completion on a
private event loop in a background thread (so it works where a loop already runs, as in Jupyter),
and Ctrl-C during a call cancels what it started.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .catalog import Catalog, ModelMetadata, parse_catalog
from .errors import DownloadError, InvalidCatalogError, ModelError, ModelLoadError, OfflineError
from .logs import log
from .progress import DownloadProgress
from .result import Result
from .settings import Settings

if TYPE_CHECKING:
    from .store import CacheEntry, ModelCache
    from .transfer import ModelLoader

T = TypeVar("T")
#: The design note's ``onProgress(progress, message)``.
SimpleProgress = Callable[[float, str], None]
#: How long a Ctrl-C'd blocking call waits for what it started to stop.
WIND_DOWN = 5.0
#: Seconds a catalog server has to answer (connect, then each read).
CATALOG_TIMEOUT = 15.0
#: No catalog is this big; a larger body is a wrong URL, not a catalog.
CATALOG_MAX_BYTES = 64 * 2**20


def catalog_copy_path(settings: Settings, url: str) -> Path:
    """Where the copy of a catalog URL is kept: ``<home>/catalogs/<sha256 of the URL>.json``."""
    return settings.home / "catalogs" / f"{hashlib.sha256(url.encode()).hexdigest()}.json"


def fetch_catalog(url: str, settings: Settings) -> Path:
    """A catalog URL as a local file: fetched, checked, kept; or the kept copy (with a warning)
    when the server cannot be reached, answers an error, or sends something that is not a
    catalog. Raises ``InvalidCatalogError`` (``OfflineError`` in offline mode) without a copy."""
    copy = catalog_copy_path(settings, url)
    if settings.offline:
        if copy.is_file():
            return copy
        raise OfflineError(f"offline mode is on and catalog {url} was never fetched")
    try:
        body = _download_catalog(url)
        parse_catalog(json.loads(body), url)  # a copy is only ever a valid catalog
    except (DownloadError, OSError, ValueError) as e:
        why = str(e) or type(e).__name__
        if not copy.is_file():
            if isinstance(e, InvalidCatalogError):
                raise
            raise InvalidCatalogError(f"catalog {url}: {why} (and no copy of it is kept"
                                      " here yet)") from None
        age = time.time() - copy.stat().st_mtime
        log.warning("catalog %s: %s; using the copy fetched %s ago", url, why, _age(age))
        return copy
    from .store.fsutil import atomic_write

    atomic_write(copy, body, durable=settings.durable)
    return copy


def _download_catalog(url: str) -> bytes:
    import http.client

    try:
        return _read_catalog(url)
    except http.client.HTTPException as e:  # a reply that is not HTTP at all
        raise DownloadError(f"not an HTTP answer ({type(e).__name__})", url=url) from None


def _read_catalog(url: str) -> bytes:
    from .transfer.http import open_url

    resp = open_url(url, {"Accept": "application/json"}, timeout=CATALOG_TIMEOUT)
    try:
        if resp.status != 200:
            raise DownloadError(f"the server answered HTTP {resp.status}", url=url,
                                status=resp.status)
        length = resp.content_length
        if length is not None and length > CATALOG_MAX_BYTES:
            raise DownloadError(f"{length} bytes is too big for a catalog", url=url)
        out = bytearray()
        buf = memoryview(bytearray(1 << 16))
        # Stop at Content-Length: past it, a keep-alive connection just waits.
        while length is None or len(out) < length:
            want = buf if length is None else buf[:min(len(buf), length - len(out))]
            n = resp.readinto1(want)
            if not n:
                break
            out += buf[:n]
            if len(out) > CATALOG_MAX_BYTES:
                raise DownloadError("the body is too big for a catalog", url=url)
        if length is not None and len(out) != length:
            raise DownloadError(f"the body ended after {len(out)} of {length} bytes", url=url)
        return bytes(out)
    finally:
        resp.close()


def _age(seconds: float) -> str:
    for unit, n in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= n:
            return f"{seconds / n:.0f} {unit}"
    return f"{max(seconds, 0):.0f} s"


class ModelRegistry:
    _instance: ModelRegistry | None = None
    _instance_lock = threading.Lock()

    def __init__(self, *, home: str | Path | None = None,
                 catalogs: Iterable[str | Path] | None = None, offline: bool | None = None,
                 settings: Settings | None = None, include_builtin: bool = True,
                 **loader_options: Any) -> None:
        s = settings or Settings.from_env()
        if home is not None:
            s = replace(s, home=Path(home))
        if catalogs is not None:
            s = replace(s, catalogs=(*s.catalogs, *catalogs))
        if offline is not None:
            s = replace(s, offline=offline)
        self.settings = s
        self.catalog = Catalog.from_settings(s, include_builtin=include_builtin,
                                             fetch=lambda url: fetch_catalog(url, s))
        self._loader_options = loader_options
        self._loader: ModelLoader | None = None
        self._cache: ModelCache | None = None
        self._parts_lock = threading.Lock()
        self._sessions: dict[tuple[str, str, str], Any] = {}

    @classmethod
    def get_instance(cls) -> ModelRegistry:
        """The process-wide registry (configured from the environment)."""
        with cls._instance_lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    @classmethod
    def reset_instance(cls) -> None:
        with cls._instance_lock:
            cls._instance = None

    # -- catalog ---------------------------------------------------------------------------------
    async def initialize(self) -> None:
        """Read the built-in and user catalogs (idempotent; raises InvalidCatalogError)."""
        await asyncio.to_thread(self.catalog.load)

    def load_catalogs(self) -> None:
        self.catalog.load()

    def register_model(self, meta: ModelMetadata | Mapping[str, Any]) -> ModelMetadata:
        """Add or replace a model (a metadata object or a catalog-style dict, validated)."""
        return self.catalog.register(meta)

    def unregister_model(self, model_id: str) -> bool:
        return self.catalog.unregister(model_id)

    def get_model(self, model_id: str) -> ModelMetadata | None:
        return self.catalog.get(model_id)

    def require_model(self, model_id: str) -> ModelMetadata:
        return self.catalog.require(model_id)

    def suggest(self, model_id: str, n: int = 3) -> list[str]:
        return self.catalog.suggest(model_id, n)

    def list_models(self, type: str | None = None, format: str | None = None,
                    search: str | None = None) -> list[ModelMetadata]:
        return self.catalog.list(type, format, search)

    # -- cache and loader (created on first use) -------------------------------------------------
    @property
    def cache(self) -> ModelCache:
        with self._parts_lock:
            if self._cache is None:
                from .store import ModelCache

                s = self.settings
                self._cache = ModelCache(s.memory_limit, s.home, durable=s.durable,
                                         disk_limit=s.disk_limit)
            return self._cache

    @property
    def loader(self) -> ModelLoader:
        cache = self.cache
        with self._parts_lock:
            if self._loader is None:
                from .transfer import ModelLoader

                self._loader = ModelLoader(cache=cache, settings=self.settings,
                                           resolve=self.require_model, **self._loader_options)
            return self._loader

    # -- the design note's API ---------------------------------------------------------------------
    async def download_model(self, model_id: str, on_progress: SimpleProgress | None = None,
                             *, on_detail: Callable[[DownloadProgress], None] | None = None
                             ) -> Result[Path, ModelError]:
        """Make the model available on disk. ``on_progress(percent, message)`` as in the design
        note; ``on_detail`` gets each :class:`DownloadProgress`."""
        try:
            meta = self.require_model(model_id)

            def cb(p: DownloadProgress) -> None:
                if on_progress is not None:
                    on_progress(p.progress, p.message)
                if on_detail is not None:
                    on_detail(p)

            path = await self.loader.load_model(meta, cb)
            return Result.ok(path)
        except ModelError as e:
            return Result.err(e)

    async def load_model(self, model_id: str, runtime: str | None = None,
                         on_progress: SimpleProgress | None = None, **options: Any
                         ) -> Result[Any, ModelError]:
        """Download if needed, then load into a runtime (cached per model, runtime, options)."""
        key = (model_id, runtime or "", repr(sorted(options.items())))
        session = self._sessions.get(key)
        if session is not None:
            return Result.ok(session)
        try:
            from .runtimes import default_runtime_for, get_runtime

            meta = self.require_model(model_id)
            rt = get_runtime(runtime or default_runtime_for(meta.format))
            cache = self.cache
            # Hold first (no process may evict it from now on), then find or download it: a
            # hold taken after the lookup could arrive just after another process evicted it.
            await asyncio.to_thread(cache.hold, model_id)
            try:
                path = (await self.download_model(model_id, on_progress)).unwrap()
                session = await asyncio.to_thread(rt.load, path, meta, **options)
            except BaseException:
                cache.release(model_id)
                raise
            earlier = self._sessions.get(key)
            if earlier is not None:  # a concurrent call loaded it first: one session, one hold
                cache.release(model_id)
                return Result.ok(earlier)
            self._sessions[key] = session
            return Result.ok(session)
        except ModelError as e:
            return Result.err(e)
        except Exception as e:  # a runtime's own error (bad model bytes, bad options)
            return Result.err(ModelLoadError(
                f"could not load {model_id} into {runtime or 'its runtime'}: {e}"))

    def unload(self, model_id: str, runtime: str | None = None) -> int:
        """Drop loaded sessions of a model (all runtimes unless one is named)."""
        gone = [k for k in self._sessions
                if k[0] == model_id and (runtime is None or k[1] == (runtime or ""))]
        for k in gone:
            del self._sessions[k]
            if self._cache is not None:
                self._cache.release(model_id)
        return len(gone)

    async def get_cached_models(self) -> list[CacheEntry]:
        return await asyncio.to_thread(self.cache.entries)

    async def get_cache_size(self) -> int:
        return await asyncio.to_thread(self.cache.size)

    async def clear_cache(self, model_id: str | None = None) -> int:
        """Remove one model (or all) from the cache; returns the bytes freed."""
        if model_id is None:
            for mid in {k[0] for k in self._sessions}:
                self.unload(mid)
            return await asyncio.to_thread(self.cache.clear)
        self.unload(model_id)
        return await asyncio.to_thread(self.cache.delete, model_id)

    def import_model(self, model_id: str, path: str | Path) -> CacheEntry:
        """Sideload a file or folder as ``model_id``, verified against its catalog entry."""
        return self.cache.import_path(self.require_model(model_id), path)

    def blocking(self) -> BlockingRegistry:
        return BlockingRegistry(self)


class Bridge:
    """An event loop in a daemon thread that runs coroutines for blocking callers: the one way
    synchronous code (scripts, notebooks, other threads) calls the async API."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="runanywhere-loop")
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` to completion; Ctrl-C cancels it (a download nobody else waits for
        stops, its partial kept) and lets it stop before the interrupt goes on."""
        finished = threading.Event()

        async def run() -> T:
            try:
                return await coro
            finally:
                finished.set()

        future = asyncio.run_coroutine_threadsafe(run(), self._loop)
        try:
            return future.result()
        except KeyboardInterrupt:
            future.cancel()
            finished.wait(WIND_DOWN)
            raise
        except concurrent.futures.CancelledError:
            raise ModelError("the call was cancelled") from None

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()


_shared_bridge: Bridge | None = None
_shared_bridge_lock = threading.Lock()


def run_blocking(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine of the API from synchronous code (works inside a running loop too)."""
    global _shared_bridge
    with _shared_bridge_lock:
        if _shared_bridge is None:
            _shared_bridge = Bridge()
    return _shared_bridge.run(coro)


class BlockingRegistry:
    """The registry for scripts and notebooks: every coroutine method, run to completion.

    Runs coroutines on a private event loop in a background thread, so it works where a loop is
    already running (Jupyter) as well as in plain scripts. Several may share one registry.
    """

    def __init__(self, registry: ModelRegistry | None = None, **kwargs: Any) -> None:
        self.registry = registry or (ModelRegistry(**kwargs) if kwargs
                                     else ModelRegistry.get_instance())
        self._bridge = Bridge()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._bridge.run(coro)

    # -- the coroutine methods, blocking ---------------------------------------------------------
    def initialize(self) -> None:
        self._run(self.registry.initialize())

    def download_model(self, model_id: str, on_progress: SimpleProgress | None = None, *,
                       on_detail: Callable[[DownloadProgress], None] | None = None
                       ) -> Result[Path, ModelError]:
        return self._run(self.registry.download_model(model_id, on_progress,
                                                      on_detail=on_detail))

    def load_model(self, model_id: str, runtime: str | None = None,
                   on_progress: SimpleProgress | None = None, **options: Any
                   ) -> Result[Any, ModelError]:
        return self._run(self.registry.load_model(model_id, runtime, on_progress, **options))

    def get_cached_models(self) -> list[CacheEntry]:
        return self._run(self.registry.get_cached_models())

    def get_cache_size(self) -> int:
        return self._run(self.registry.get_cache_size())

    def clear_cache(self, model_id: str | None = None) -> int:
        return self._run(self.registry.clear_cache(model_id))

    # -- the plain methods, passed through -------------------------------------------------------
    @property
    def settings(self) -> Settings:
        return self.registry.settings

    @property
    def cache(self) -> ModelCache:
        return self.registry.cache

    @property
    def loader(self) -> ModelLoader:
        return self.registry.loader

    def register_model(self, meta: ModelMetadata | Mapping[str, Any]) -> ModelMetadata:
        return self.registry.register_model(meta)

    def unregister_model(self, model_id: str) -> bool:
        return self.registry.unregister_model(model_id)

    def get_model(self, model_id: str) -> ModelMetadata | None:
        return self.registry.get_model(model_id)

    def require_model(self, model_id: str) -> ModelMetadata:
        return self.registry.require_model(model_id)

    def list_models(self, type: str | None = None, format: str | None = None,
                    search: str | None = None) -> list[ModelMetadata]:
        return self.registry.list_models(type, format, search)

    def unload(self, model_id: str, runtime: str | None = None) -> int:
        return self.registry.unload(model_id, runtime)

    def import_model(self, model_id: str, path: str | Path) -> CacheEntry:
        return self.registry.import_model(model_id, path)

    def close(self) -> None:
        """Stop the private loop (the registry stays usable by others)."""
        self._bridge.close()

    def __enter__(self) -> BlockingRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
