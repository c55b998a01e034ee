"""``ModelRegistry``: the seed's facade. Find a model, download it, load it, manage the cache.

Data flows one way: registry -> cache (hit: done) -> loader (miss: fetch, verify, publish) ->
runtime. The catalog is read lazily on first use (or by ``initialize()``), so constructing a
registry costs nothing.
"""

from __future__ import annotations

import asyncio
import difflib
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from .catalog import ModelMetadata, load_builtin, load_catalog_file, parse_model
from .errors import ModelError, ModelNotFoundError
from .result import Result
from .settings import Settings

SimpleProgress = Callable[[float, str], None]


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
            s = replace(s, catalogs=(*s.catalogs, *(Path(c) for c in catalogs)))
        if offline is not None:
            s = replace(s, offline=offline)
        self.settings = s
        self._include_builtin = include_builtin
        self._models: dict[str, ModelMetadata] = {}
        self._loaded = False
        self._lock = threading.RLock()
        self._loader_options = loader_options
        self._loader: Any = None
        self._cache: Any = None
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
        self.load_catalogs()

    def load_catalogs(self) -> None:
        with self._lock:
            if self._loaded:
                return
            models: dict[str, ModelMetadata] = {}
            if self._include_builtin:
                models.update((m.id, m) for m in load_builtin())
            for path in self.settings.catalogs:
                models.update((m.id, m) for m in load_catalog_file(path))
            # Entries registered before the catalogs were read win, as the latest word.
            models.update(self._models)
            self._models = models
            self._loaded = True

    def register_model(self, meta: ModelMetadata | Mapping[str, Any]) -> ModelMetadata:
        """Add or replace a model (a metadata object or a catalog-style dict, validated)."""
        if not isinstance(meta, ModelMetadata):
            meta = parse_model(dict(meta), "registered")
        with self._lock:
            self._models[meta.id] = meta
        return meta

    def unregister_model(self, model_id: str) -> bool:
        self.load_catalogs()
        with self._lock:
            return self._models.pop(model_id, None) is not None

    def get_model(self, model_id: str) -> ModelMetadata | None:
        self.load_catalogs()
        return self._models.get(model_id)

    def require_model(self, model_id: str) -> ModelMetadata:
        meta = self.get_model(model_id)
        if meta is None:
            raise ModelNotFoundError(model_id, self.suggest(model_id))
        return meta

    def suggest(self, model_id: str, n: int = 3) -> list[str]:
        self.load_catalogs()
        ids = list(self._models)
        close = difflib.get_close_matches(model_id.lower(), ids, n=n, cutoff=0.4)
        return close or [i for i in ids if model_id.lower() in i][:n]

    def list_models(self, type: str | None = None, format: str | None = None,
                    search: str | None = None) -> list[ModelMetadata]:
        self.load_catalogs()
        out = []
        for m in self._models.values():
            if type and m.type != type:
                continue
            if format and m.format != format:
                continue
            if search:
                hay = " ".join((m.id, m.name, m.provider, m.description)).lower()
                if search.lower() not in hay:
                    continue
            out.append(m)
        return sorted(out, key=lambda m: m.id)

    # -- cache and loader (created on first use) ---------------------------------------------------
    @property
    def cache(self) -> Any:
        if self._cache is None:
            from .store import ModelCache

            s = self.settings
            self._cache = ModelCache(s.memory_limit, s.home, durable=s.durable,
                                     disk_limit=s.disk_limit)
        return self._cache

    @property
    def loader(self) -> Any:
        if self._loader is None:
            from .transfer import ModelLoader

            self._loader = ModelLoader(cache=self.cache, settings=self.settings,
                                       resolve=self.require_model, **self._loader_options)
        return self._loader

    # -- the seed's API ----------------------------------------------------------------------
    async def download_model(self, model_id: str, on_progress: SimpleProgress | None = None,
                             *, on_detail: Callable[[Any], None] | None = None
                             ) -> Result[Path, ModelError]:
        """Make the model available on disk. ``on_progress(percent, message)`` as in the seed."""
        try:
            meta = self.require_model(model_id)

            def cb(p: Any) -> None:
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
            # Hold first (no process may evict it from now on), then find or download it: a
            # hold taken after the lookup could arrive just after another process evicted it.
            self.cache.hold(model_id)
            try:
                path = (await self.download_model(model_id, on_progress)).unwrap()
                session = await asyncio.to_thread(rt.load, path, meta, **options)
            except BaseException:
                self.cache.release(model_id)
                raise
            earlier = self._sessions.get(key)
            if earlier is not None:  # a concurrent call loaded it first: one session, one hold
                self.cache.release(model_id)
                return Result.ok(earlier)
            self._sessions[key] = session
            return Result.ok(session)
        except ModelError as e:
            return Result.err(e)
        except Exception as e:  # a runtime's own error (bad model bytes, bad options)
            from .errors import ModelLoadError

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

    async def get_cached_models(self) -> list[Any]:
        return list(self.cache.entries())

    async def get_cache_size(self) -> int:
        return int(self.cache.size())

    async def clear_cache(self, model_id: str | None = None) -> int:
        """Remove one model (or all) from the cache; returns the bytes freed."""
        if model_id is None:
            self._sessions.clear()
            return int(self.cache.clear())
        self.unload(model_id)
        return int(self.cache.delete(model_id))

    def blocking(self) -> BlockingRegistry:
        return BlockingRegistry(self)


class BlockingRegistry:
    """The registry for scripts and notebooks: every coroutine method, run to completion.

    Runs coroutines on a private event loop in a background thread, so it works where a loop is
    already running (Jupyter) as well as in plain scripts.
    """

    def __init__(self, registry: ModelRegistry | None = None, **kwargs: Any) -> None:
        self.registry = registry or (ModelRegistry(**kwargs) if kwargs
                                     else ModelRegistry.get_instance())
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="runanywhere-loop")
        self._thread.start()

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def initialize(self) -> None:
        self._run(self.registry.initialize())

    def download_model(self, model_id: str, on_progress: SimpleProgress | None = None
                       ) -> Result[Path, ModelError]:
        return self._run(self.registry.download_model(model_id, on_progress))  # type: ignore[no-any-return]

    def load_model(self, model_id: str, runtime: str | None = None, **options: Any
                   ) -> Result[Any, ModelError]:
        return self._run(self.registry.load_model(model_id, runtime, **options))  # type: ignore[no-any-return]

    def get_cached_models(self) -> list[Any]:
        return self._run(self.registry.get_cached_models())  # type: ignore[no-any-return]

    def get_cache_size(self) -> int:
        return self._run(self.registry.get_cache_size())  # type: ignore[no-any-return]

    def clear_cache(self, model_id: str | None = None) -> int:
        return self._run(self.registry.clear_cache(model_id))  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        # Synchronous methods (get_model, list_models, register_model, ...) pass straight through.
        return getattr(self.registry, name)

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
