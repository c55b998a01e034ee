"""``--pull-through``: a model the catalog knows but the cache lacks is pulled when asked for.

Concurrent requests for one model wait for one pull (a future per model id); a client that
leaves does not cancel it for the others (the waiters are shielded). The pull is the registry's
ordinary one: verified, resumable, the shared tier first.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..registry import ModelRegistry

log = logging.getLogger("runanywhere.serve")


class PullThrough:
    def __init__(self, registry: ModelRegistry, on_pulled: Callable[[], None]) -> None:
        self._registry = registry
        self._on_pulled = on_pulled  # the cache changed (or a pull failed): forget snapshots
        self._pulls: dict[str, asyncio.Future[None]] = {}
        #: Models pulled through since start (for tests and the log).
        self.pulled: list[str] = []

    async def pull(self, model_id: str) -> None:
        """Pull a model; every concurrent caller waits for the same pull. Raises the pull's
        :class:`~runanywhere.errors.ModelError` when it fails."""
        fut = self._pulls.get(model_id)
        if fut is None:
            fut = asyncio.ensure_future(self._run(model_id))
            self._pulls[model_id] = fut
            fut.add_done_callback(lambda f: self._done(model_id, f))
        await asyncio.shield(fut)

    def cancel_all(self) -> None:
        """The server is stopping: cancel pulls in flight (their partial bytes stay)."""
        for fut in list(self._pulls.values()):
            fut.cancel()
        if self._pulls:
            self._registry.loader.cancel_all_downloads()

    def _done(self, model_id: str, fut: asyncio.Future[None]) -> None:
        self._pulls.pop(model_id, None)
        if not fut.cancelled():
            fut.exception()  # retrieved: reported by the waiters, or logged by _run

    async def _run(self, model_id: str) -> None:
        log.info("pull-through: %s is not cached; pulling it", model_id)
        t0 = time.monotonic()
        result = await self._registry.download_model(model_id)
        self._on_pulled()
        if not result.success:
            assert result.error is not None
            log.warning("pull-through: %s failed: %s", model_id, result.error)
            raise result.error
        self.pulled.append(model_id)
        log.info("pull-through: %s cached in %.1f s", model_id, time.monotonic() - t0)
