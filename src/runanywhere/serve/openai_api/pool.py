"""The models the OpenAI routes run on: loaded on first use, unloaded when idle, one fair line
of requests each.

A request takes a turn with ``async with pool.use(meta) as adapter``:

1. the model's :class:`Worker` is found or made; when ``max_queue`` requests already wait for
   it the request is refused at once (:class:`~.turns.QueueFull`: 429 with Retry-After);
2. the model is loaded if it is not (one load however many wait for it, shielded: a client that
   leaves never cancels a load the others wait for), after unloading the least recently used
   idle models whose room it needs within the registry's loaded-model budget;
3. the request waits its turn (first come, first served; as many at once as the adapter runs:
   the llama adapter's ``parallel`` sequences, one for speech models);
4. when the last request of a model ends, its idle clock starts: after ``keep_alive`` seconds it
   is unloaded (0: at once; None: never), as ollama's ``keep_alive``.

The adapter comes from the model's catalog entry (``ModelMetadata.adapter_name``), made with
the registry so it loads through the cache and counts against the budget like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from .turns import Turns

if TYPE_CHECKING:
    from ...catalog import ModelMetadata
    from ...registry import ModelRegistry

log = logging.getLogger("runanywhere.serve")


class Worker:
    """One model: its adapter once loaded, its line of requests, its idle clock."""

    def __init__(self, meta: ModelMetadata, max_queue: int) -> None:
        self.meta = meta
        self.turns = Turns(meta.id, 1, max_queue)
        self.adapter: Any = None
        #: Requests holding or waiting for a turn (loading included).
        self.active = 0
        self.last_used = time.monotonic()
        self.lock = asyncio.Lock()  # one load or unload at a time
        self.loading: asyncio.Future[Any] | None = None
        self.idle: asyncio.TimerHandle | None = None

    @property
    def waiting(self) -> int:
        return self.active - self.turns.busy

    def stop_idle_clock(self) -> None:
        if self.idle is not None:
            self.idle.cancel()
            self.idle = None


class ModelPool:
    def __init__(self, registry: ModelRegistry, *, keep_alive: float | None,
                 max_queue: int) -> None:
        self.registry = registry
        self.keep_alive = keep_alive
        self.max_queue = max_queue
        self._workers: dict[str, Worker] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # -- what tests and the log look at ------------------------------------------------------------
    def loaded(self) -> list[str]:
        """Ids of the models loaded for the OpenAI routes now."""
        return sorted(mid for mid, w in self._workers.items() if w.adapter is not None)

    def worker(self, model_id: str) -> Worker | None:
        return self._workers.get(model_id)

    # -- a request's turn --------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def use(self, meta: ModelMetadata) -> AsyncIterator[Any]:
        """The loaded adapter of ``meta``, for one request's turn (see the module's steps)."""
        w = self._workers.get(meta.id)
        if w is None:
            w = self._workers[meta.id] = Worker(meta, self.max_queue)
        w.turns.refuse_if_full(w.waiting)
        w.active += 1
        w.stop_idle_clock()
        try:
            adapter = await self._loaded(w)
            await w.turns.acquire()
            start = time.monotonic()
            try:
                yield adapter
            finally:
                w.turns.release(time.monotonic() - start)
        finally:
            w.active -= 1
            w.last_used = time.monotonic()
            if w.active == 0:
                self._start_idle_clock(w)

    async def _loaded(self, w: Worker) -> Any:
        if w.adapter is not None:
            return w.adapter
        if w.loading is None:
            w.loading = asyncio.ensure_future(self._load(w))
            w.loading.add_done_callback(lambda f: self._load_done(w, f))
        return await asyncio.shield(w.loading)

    def _load_done(self, w: Worker, fut: asyncio.Future[Any]) -> None:
        w.loading = None
        if not fut.cancelled():
            fut.exception()  # retrieved: the waiters report it

    async def _load(self, w: Worker) -> Any:
        from ...adapters import create_adapter
        from ...adapters.llm import LLMAdapter

        async with w.lock:
            if w.adapter is not None:
                return w.adapter
            await self._make_room(w)
            name = w.meta.adapter_name
            if name is None:
                from ...errors import ModelError

                raise ModelError(f"no adapter runs {w.meta.type} models in {w.meta.format};"
                                 " name one with the catalog entry's 'adapter'")
            adapter = create_adapter(name, self.registry)
            t0 = time.monotonic()
            (await adapter.load_model(w.meta.id)).unwrap()
            log.info("loaded %s (%s) in %.1f s", w.meta.id, name, time.monotonic() - t0)
            w.turns.resize(adapter.slots().slots if isinstance(adapter, LLMAdapter) else 1)
            w.adapter = adapter
            return adapter

    async def _make_room(self, w: Worker) -> None:
        """Unload idle models, least recently used first, until ``w``'s model fits the budget
        (as the catalog sizes it; the runtime's own estimate is known only once it loaded)."""
        meta = w.meta
        need = meta.requirements.memory if meta.requirements else meta.size
        budget, used = self.registry.loaded_budget
        idle = sorted((o for o in self._workers.values()
                       if o is not w and o.adapter is not None and o.active == 0),
                      key=lambda o: o.last_used)
        for other in idle:
            if used + need <= budget:
                break
            log.info("unloading %s to make room for %s", other.meta.id, meta.id)
            await self._unload(other)
            budget, used = self.registry.loaded_budget

    # -- idle models -------------------------------------------------------------------------------
    def _start_idle_clock(self, w: Worker) -> None:
        if self.keep_alive is None or (w.adapter is None and w.loading is None):
            return
        if self.keep_alive == 0:
            self._spawn(self._unload_if_idle(w))
            return
        loop = asyncio.get_running_loop()
        w.idle = loop.call_later(self.keep_alive, lambda: self._spawn(self._unload_if_idle(w)))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _unload_if_idle(self, w: Worker) -> None:
        w.idle = None
        if w.loading is not None:  # a load still running: unload what it leaves when idle
            with contextlib.suppress(Exception):
                await asyncio.shield(w.loading)
        if w.active == 0:
            await self._unload(w)

    async def _unload(self, w: Worker) -> None:
        async with w.lock:
            if w.adapter is None or w.active:
                return
            w.adapter = None
            w.turns.resize(1)
            # The runtime's close waits for a generation that was cancelled a moment ago to
            # reach its next token: off the event loop.
            await asyncio.to_thread(self.registry.unload_model, w.meta.id)
            log.info("unloaded %s (idle)", w.meta.id)

    async def close(self) -> None:
        """The server stops: every model is unloaded (requests in flight have ended)."""
        for w in self._workers.values():
            w.stop_idle_clock()
        for task in list(self._tasks):
            task.cancel()
        for w in list(self._workers.values()):
            if w.loading is not None:
                with contextlib.suppress(BaseException):
                    await asyncio.shield(w.loading)
            w.active = 0
            await self._unload(w)
        self._workers.clear()
