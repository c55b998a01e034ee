"""``ModelRegistry``: the design note's facade. Find, download, load a model; manage the cache.

Data flows one way: registry -> catalog (what a model is) -> cache (hit: done) -> loader (miss:
fetch, verify, publish) -> runtime. The catalog is read lazily on first use (or by
``initialize()``), so constructing a registry costs nothing. Every ``async`` method keeps the
event loop free: blocking work (index reads, file locks, runtime loads) runs in a thread.

Catalogs given as ``http(s)`` URLs (``--catalog http://host:8765/catalog.json``, the catalog a
``runanywhere serve`` hands out) are fetched (``transfer/remote_catalog.py``) when the catalog is
first read, kept under ``<home>/catalogs/``, and that copy is used, with a one-line warning,
whenever the server cannot be reached (or offline mode is on).

``BlockingRegistry`` is the same API for scripts and notebooks: each call runs to completion on a
private event loop in a background thread (so it works where a loop already runs, as in Jupyter),
and Ctrl-C during a call cancels what it started.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .catalog import Catalog, ModelMetadata, parse_model
from .errors import DownloadError, InvalidCatalogError, ModelError, ModelLoadError, OfflineError
from .logs import log
from .progress import DownloadProgress, SimpleProgress, progress_callback
from .result import Result
from .settings import Settings

if TYPE_CHECKING:
    import asyncio

    from .runtimes.loaded import Loaded, LoadedSessions
    from .store import CacheEntry, ModelCache
    from .transfer import ModelLoader

T = TypeVar("T")


def _fetch_catalog(url: str, settings: Settings) -> Path:
    from .transfer.remote_catalog import fetch_catalog

    return fetch_catalog(url, settings)


async def _in_thread(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """``asyncio.to_thread``; asyncio (ssl, subprocess...) loads when a coroutine runs, not with
    this module: a cached answer from the command line never needs it."""
    import asyncio

    return await asyncio.to_thread(fn, *args, **kwargs)


async def _hold(cache: ModelCache, model_id: str) -> None:
    """``cache.hold`` off the event loop. If the caller is cancelled meanwhile, the hold the
    thread still takes is released when it lands, or the model could never be evicted."""
    import asyncio

    taking = asyncio.get_running_loop().run_in_executor(None, cache.hold, model_id)
    try:
        await asyncio.shield(taking)
    except asyncio.CancelledError:
        def undo(f: asyncio.Future[None]) -> None:
            if not f.cancelled() and f.exception() is None:
                cache.release(model_id)

        taking.add_done_callback(undo)
        raise


def _remote(meta: ModelMetadata) -> DownloadError:
    """A remote model (catalog ``endpoint``) has no files: its adapter talks to the API."""
    assert meta.endpoint is not None
    return DownloadError(f"{meta.id} is a remote model ({meta.endpoint.url}): there is nothing to"
                         f" download or load; its adapter ({meta.adapter_name}) calls the API",
                         url=meta.endpoint.url)


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
                                             fetch=lambda url: _fetch_catalog(url, s))
        if loader_options.get("fetch_config") is not None:
            from .transfer.config import check_config

            check_config(loader_options["fetch_config"], s)  # now, not at the first download
        self._loader_options = loader_options
        self._loader: ModelLoader | None = None
        self._cache: ModelCache | None = None
        self._parts_lock = threading.Lock()
        self._sessions: LoadedSessions | None = None

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
        await _in_thread(self.catalog.load)

    def load_catalogs(self) -> None:
        self.catalog.load()

    def register_model(self, meta: ModelMetadata | Mapping[str, Any]) -> ModelMetadata:
        """Add or replace a model (a metadata object or a catalog-style dict, validated)."""
        return self.catalog.register(meta)

    def unregister_model(self, model_id: str) -> bool:
        return self.catalog.unregister(model_id)

    def get_model(self, model_id: str) -> ModelMetadata | None:
        """The model of this id, or of this ``hf://`` reference once it was pulled."""
        if model_id.startswith("hf://"):
            return self._by_reference(model_id)
        return self.catalog.get(model_id)

    def require_model(self, model_id: str) -> ModelMetadata:
        if model_id.startswith("hf://"):
            meta = self._by_reference(model_id)
            if meta is None:
                from .errors import ModelNotFoundError

                raise ModelNotFoundError(model_id, [])
            return meta
        return self.catalog.require(model_id)

    def _by_reference(self, text: str) -> ModelMetadata | None:
        """The pulled model an ``hf://`` reference names: the same file, folder or repository,
        at the same revision as pulled or at the commit it was pinned to."""
        from .catalog.hub import HubRef

        try:
            asked = HubRef.parse(text)
        except ValueError:
            return None
        for meta in self.catalog.list():
            if not meta.name.startswith("hf://"):
                continue
            try:
                pulled = HubRef.parse(meta.name)
            except ValueError:
                continue
            if (pulled.kind, pulled.repo, pulled.path) != (asked.kind, asked.repo, asked.path):
                continue
            rev = asked.revision
            if rev == pulled.revision or (rev is not None and len(rev) >= 12
                                          and rev[:12] == meta.version):
                return meta
        return None

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
                                         disk_limit=s.disk_limit,
                                         scratch_fallback=s.scratch_fallback)
            return self._cache

    @property
    def _loaded(self) -> LoadedSessions:
        """The models loaded into runtimes (made on first use: the runtimes' package is not
        imported for an answer from the catalog or the cache)."""
        with self._parts_lock:
            if self._sessions is None:
                from .runtimes.loaded import LoadedSessions

                self._sessions = LoadedSessions(self.settings.max_loaded_memory,
                                                self._release_hold)
            return self._sessions

    @property
    def loader(self) -> ModelLoader:
        cache = self.cache
        with self._parts_lock:
            if self._loader is None:
                from .transfer import ModelLoader

                self._loader = ModelLoader(cache=cache, settings=self.settings,
                                           resolve=self.require_model, **self._loader_options)
            return self._loader

    # Opening the cache may wait out another process's lock or rebuild the index: never on
    # the event loop.
    async def _open_cache(self) -> ModelCache:
        return self._cache if self._cache is not None else await _in_thread(
            lambda: self.cache)

    async def _open_loader(self) -> ModelLoader:
        return self._loader if self._loader is not None else await _in_thread(
            lambda: self.loader)

    # -- the design note's API ---------------------------------------------------------------------
    async def download_model(self, model_id: str, on_progress: SimpleProgress | None = None,
                             *, on_detail: Callable[[DownloadProgress], None] | None = None
                             ) -> Result[Path, ModelError]:
        """Make the model available on disk. ``on_progress(percent, message)`` as in the design
        note (``"auto"``: a ready display); ``on_detail`` gets each :class:`DownloadProgress`,
        the last one ``DONE``, ``FAILED`` or ``CANCELLED``.

        Cancelling the awaiting task cancels the download unless another caller waits for the
        same model; its partial bytes stay for a resume."""
        try:
            meta = self.require_model(model_id)
            if meta.endpoint is not None:
                raise _remote(meta)
            loader = await self._open_loader()
            path = await loader.load_model(meta, progress_callback(on_progress, on_detail))
            if self._size_unknown(meta):
                await _in_thread(self._remember_size, meta, path)
            return Result.ok(path)
        except ModelError as e:
            return Result.err(e)

    async def preload(self, model_ids: Iterable[str], on_progress: SimpleProgress | None = None
                      ) -> dict[str, Result[Path, ModelError]]:
        """Download several models at once; one result per model (an unknown id or a failed
        download does not stop the others)."""
        import asyncio

        ids = list(dict.fromkeys(model_ids))
        results = await asyncio.gather(*(self.download_model(i, on_progress) for i in ids))
        return dict(zip(ids, results, strict=True))

    async def load_model(self, model_id: str, runtime: str | None = None,
                         on_progress: SimpleProgress | None = None, **options: Any
                         ) -> Result[Any, ModelError]:
        """Download if needed, then load into a runtime (cached per model, runtime, options).

        Loaded sessions stay within ``Settings.max_loaded_memory`` (each costs its runtime's
        ``memory_estimate``, else its model's ``requirements.memory``, else its size): the
        least recently used one no adapter holds is unloaded (and closed) to make room."""
        if model_id.startswith("hf://"):  # its reference names it too: one session, one id
            found = self.get_model(model_id)
            model_id = found.id if found is not None else model_id
        from .runtimes.loaded import closer, memory_cost, session_key

        key = session_key(model_id, runtime, options)
        session = self._loaded.get(key)
        if session is not None:
            return Result.ok(session)
        try:
            from .runtimes import default_runtime_for, get_runtime

            meta = self.require_model(model_id)
            if meta.endpoint is not None:
                raise _remote(meta)
            rt = get_runtime(runtime or default_runtime_for(meta.format))
            ensure = getattr(rt, "ensure_available", None)
            if callable(ensure):  # its library missing: say so before any download
                ensure()
            cache = await self._open_cache()
            # Hold first (no process may evict it from now on), then find or download it: a
            # hold taken after the lookup could arrive just after another process evicted it.
            await _hold(cache, model_id)
            try:
                path = (await self.download_model(model_id, on_progress)).unwrap()
                session = await _in_thread(rt.load, path, meta, **options)
            except BaseException:
                cache.release(model_id)
                raise
            kept = self._loaded.add(key, session, memory_cost(rt, session, meta),
                                    closer(rt, session))
            if kept is not session:  # a concurrent call loaded it first: one session, one hold
                cache.release(model_id)
                close = closer(rt, session)
                if close is not None:
                    close()
            return Result.ok(kept)
        except ModelError as e:
            return Result.err(e)
        except Exception as e:  # a runtime's own error (bad model bytes, bad options)
            return Result.err(ModelLoadError(
                f"could not load {model_id} into {runtime or 'its runtime'}: {e}"))

    def unload_model(self, model_id: str, runtime: str | None = None) -> int:
        """Drop the loaded sessions of a model (all runtimes unless one is named); returns how
        many. The model stays in the cache."""
        return self._loaded.unload(model_id, runtime)

    unload = unload_model

    def loaded_models(self) -> list[Loaded]:
        """What is loaded into runtimes now, least recently used first (``budget`` and ``used``
        bytes: :attr:`loaded_budget`)."""
        return self._loaded.listing()

    @property
    def loaded_budget(self) -> tuple[int, int]:
        """(budget, bytes the loaded sessions take)."""
        return self._loaded.budget, self._loaded.used

    def hold_loaded(self, model_id: str, holder: object) -> None:
        """``holder`` (an adapter) runs on this model: do not unload it to make room while
        ``holder`` lives (it is held weakly)."""
        self._loaded.hold(model_id, holder)

    def _release_hold(self, model_id: str) -> None:
        if self._cache is not None:
            self._cache.release(model_id)

    async def get_cached_models(self) -> list[CacheEntry]:
        return await _in_thread(lambda: self.cache.entries())

    async def get_cache_size(self) -> int:
        return await _in_thread(lambda: self.cache.size())

    async def clear_cache(self, model_id: str | None = None) -> int:
        """Remove one model (or all) from the cache; returns the bytes freed."""
        if model_id is None:
            for mid in self._loaded.models():
                self.unload_model(mid)
            return await _in_thread(lambda: self.cache.clear())
        found = self.get_model(model_id)
        model_id = found.id if found is not None else model_id  # an hf:// reference names it
        self.unload_model(model_id)
        return await _in_thread(lambda: self.cache.delete(model_id))

    # -- models from a URL or the Hub ------------------------------------------------------------
    def add_source(self, source: str, *, sha256: str | None = None, size: int | None = None,
                   model_id: str | None = None, include: Sequence[str] = (),
                   exclude: Sequence[str] = (), trust_first_use: bool = False
                   ) -> ModelMetadata:
        """Make a URL (with its sha256) or an ``hf://`` reference a model of the catalog, and
        remember it in the cache (``sources.json``) so later runs know it by id (blocking: an
        ``hf://`` reference is resolved to a commit through the Hub's API).

        Without ``sha256`` a URL is refused unless ``trust_first_use``: the first verified
        download then records the hash every later one must match.
        """
        from .transfer.adhoc import hub_entry, stored_entry, url_entry

        if source.startswith("hf://"):
            if sha256 or size:
                raise InvalidCatalogError("--sha256 and --size do not apply to hf://"
                                          " references: the Hub's API gives both")
            try:
                entry = hub_entry(source, model_id=model_id, include=include, exclude=exclude,
                                  settings=self.settings, config=self.loader.config)
            except (OfflineError, DownloadError) as e:  # offline, or the Hub is down
                cached = self._cached_reference(source)
                if cached is None:
                    raise
                # As hf_hub_download does: the copy this reference was pulled as is served.
                log.warning("%s: %s; using the cached copy (commit %s)", source, e,
                            cached.version)
                return cached
        else:
            if not sha256 and not trust_first_use:
                raise InvalidCatalogError(
                    f"{source}: give its --sha256 (or --trust-first-use to record the hash of"
                    " the first download and hold every later one to it)")
            entry = url_entry(source, sha256=sha256, size=size, model_id=model_id,
                              settings=self.settings, config=self.loader.config)
        meta = parse_model(entry, str(self.cache.sources_path))
        known = self.get_model(meta.id)
        if known is not None and known.name != meta.name:  # the same source may update it
            if _same_commit(known, meta):  # hf://o/r@<its commit>/f: the model pulled before
                return known
            if self._claimed(known):
                raise InvalidCatalogError(f"id {meta.id!r} already names another model"
                                          f" ({known.name}, from {known.source}); choose an id"
                                          " with --id")
        self.cache.record_source(stored_entry(entry))  # no password on disk
        return self.register_model(meta)

    def _cached_reference(self, source: str) -> ModelMetadata | None:
        """The model an ``hf://`` reference was pulled as, if its files are in the cache."""
        meta = self._by_reference(source)
        if meta is None or self.cache.entry_matching(meta) is None:
            return None
        return meta

    def _claimed(self, known: ModelMetadata) -> bool:
        """Does ``known`` keep its id from a new source? A catalog's model always; a pulled
        source only once its download landed in the cache (a pull that failed claims
        nothing)."""
        if known.source != str(self.cache.sources_path):
            return True
        return self.cache.entry(known.id) is not None

    def _size_unknown(self, meta: ModelMetadata) -> bool:
        return (meta.single_file and meta.files[0].size is None
                and meta.source == str(self.cache.sources_path))

    def _remember_size(self, meta: ModelMetadata, path: Path) -> None:
        """A URL pulled without ``--size``: its download learned the size, which its entry
        in ``sources.json`` now keeps (``list``, ``info`` and later pulls show it, not 0 B)."""
        from .transfer.adhoc import stored_entry

        if not path.is_file():
            return
        entry = {**meta.to_dict(), "size": path.stat().st_size}
        entry.pop("size_estimate", None)
        updated = parse_model(entry, str(self.cache.sources_path))
        if self.cache.degraded is None:
            self.cache.record_source(stored_entry(entry))
        self.register_model(updated)

    def forget_source(self, model_id: str) -> bool:
        """Release the id of a model pulled by URL or ``hf://`` reference: its entry leaves
        ``sources.json`` and the catalog (the cached copy, if any, is not touched). False if
        ``model_id`` was not pulled from a source."""
        meta = self.get_model(model_id)
        if meta is None or meta.source != str(self.cache.sources_path):
            return False
        self.cache.forget_source(meta.id)
        self.unregister_model(meta.id)
        return True

    async def fetch(self, source: str, *, sha256: str | None = None, size: int | None = None,
                    model_id: str | None = None, include: Sequence[str] = (),
                    exclude: Sequence[str] = (), trust_first_use: bool = False,
                    on_progress: SimpleProgress | None = None
                    ) -> Result[Path, ModelError]:
        """``pooch.retrieve`` and ``hf_hub_download`` in one: any URL with its sha256, or an
        ``hf://`` file, folder or repository, through the same verified, resumable, cached pull
        as a catalog model. A second call is a cache hit."""
        try:
            meta = await _in_thread(
                self.add_source, source, sha256=sha256, size=size, model_id=model_id,
                include=include, exclude=exclude, trust_first_use=trust_first_use)
        except ModelError as e:
            return Result.err(e)
        return await self.download_model(meta.id, on_progress)

    def import_model(self, model_id: str, path: str | Path) -> CacheEntry:
        """Sideload a file or folder as ``model_id``, verified against its catalog entry."""
        return self.cache.import_path(self.require_model(model_id), path)

    def blocking(self) -> BlockingRegistry:
        return BlockingRegistry(self)


def _same_commit(known: ModelMetadata, new: ModelMetadata) -> bool:
    """Two ``hf://`` pulls of the same files at the same commit (one named by its branch, one
    by the commit itself) are one model."""
    if not (known.name.startswith("hf://") and new.name.startswith("hf://")):
        return False
    from .catalog.hub import HubRef

    a, b = HubRef.parse(known.name), HubRef.parse(new.name)
    return ((a.kind, a.repo, a.path) == (b.kind, b.repo, b.path)
            and known.version == new.version)


class BlockingRegistry:
    """The registry for scripts and notebooks: every coroutine method, run to completion.

    Runs coroutines on a private event loop in a background thread, so it works where a loop is
    already running (Jupyter) as well as in plain scripts. Several may share one registry.
    """

    def __init__(self, registry: ModelRegistry | None = None, **kwargs: Any) -> None:
        self.registry = registry or (ModelRegistry(**kwargs) if kwargs
                                     else ModelRegistry.get_instance())
        from .bridge import Bridge  # asyncio: only for blocking callers

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

    def preload(self, model_ids: Iterable[str], on_progress: SimpleProgress | None = None
                ) -> dict[str, Result[Path, ModelError]]:
        return self._run(self.registry.preload(model_ids, on_progress))

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

    def unload_model(self, model_id: str, runtime: str | None = None) -> int:
        return self.registry.unload_model(model_id, runtime)

    unload = unload_model

    def loaded_models(self) -> list[Loaded]:
        return self.registry.loaded_models()

    def add_source(self, source: str, *, sha256: str | None = None, size: int | None = None,
                   model_id: str | None = None, include: Sequence[str] = (),
                   exclude: Sequence[str] = (), trust_first_use: bool = False
                   ) -> ModelMetadata:
        return self.registry.add_source(source, sha256=sha256, size=size, model_id=model_id,
                                        include=include, exclude=exclude,
                                        trust_first_use=trust_first_use)

    def import_model(self, model_id: str, path: str | Path) -> CacheEntry:
        return self.registry.import_model(model_id, path)

    def fetch(self, source: str, *, sha256: str | None = None, size: int | None = None,
              model_id: str | None = None, include: Sequence[str] = (),
              exclude: Sequence[str] = (), trust_first_use: bool = False,
              on_progress: SimpleProgress | None = None) -> Result[Path, ModelError]:
        return self._run(self.registry.fetch(
            source, sha256=sha256, size=size, model_id=model_id, include=include,
            exclude=exclude, trust_first_use=trust_first_use, on_progress=on_progress))

    def close(self) -> None:
        """Stop the private loop (the registry stays usable by others)."""
        self._bridge.close()

    def __enter__(self) -> BlockingRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
