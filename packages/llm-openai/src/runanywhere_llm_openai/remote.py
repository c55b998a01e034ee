"""What the three adapters share: ``load_model`` finds the endpoint (endpoint.py), checks that
it answers, and leaves a :class:`RemoteModel` in ``adapter.model``. Nothing is downloaded and
nothing counts against the loaded-model budget: the model runs on the server.

The check is ``GET {base_url}/models``: it proves the server is there and takes the key (a
refused key fails the load with :class:`~.errors.RemoteAuthError`). A server without that route
(404, 405) passes; whether it knows the model is learned at the first request, since servers
such as llama.cpp's answer to any model name.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from runanywhere import Result
from runanywhere.adapters import AdapterError, BaseAdapter, ModelLoaded, ModelLoading
from runanywhere.errors import ModelError

from .endpoint import EndpointConfig, resolve
from .errors import RemoteAPIError
from .http import Client


class RemoteModel:
    """An adapter's model when it runs remotely: the endpoint and a client for it."""

    def __init__(self, config: EndpointConfig) -> None:
        self.config = config
        self.client = Client(config)

    def __repr__(self) -> str:
        return f"<RemoteModel {self.config.describe()}>"


def probe(client: Client) -> None:
    """Raise the typed error of an endpoint that is not there or refuses the key."""
    try:
        client.json("GET", "/models")
    except RemoteAPIError as e:
        if e.status not in (404, 405):
            raise


async def load_remote(adapter: BaseAdapter[Any], model_id: str | None, given: Mapping[str, Any],
                      *, check: bool = True) -> Result[None, ModelError]:
    """``load_model`` of a remote adapter: the events and the Result of every adapter."""
    mid = model_id or adapter.default_model_id
    if not mid:
        return _failed(adapter, None, ModelError(
            f"{type(adapter).__name__}.load_model needs a model id (the catalog's, or the"
            " server's name for it)"))
    start = time.perf_counter()
    adapter.emit(ModelLoading(mid, 0.0, f"Connecting to {mid}..."))
    try:
        get_model = getattr(adapter.registry, "get_model", None)
        meta = get_model(mid) if callable(get_model) else None
        model = RemoteModel(resolve(mid, meta, given))
        if check:
            await asyncio.to_thread(probe, model.client)
    except ModelError as e:
        return _failed(adapter, mid, e)
    adapter.model = model
    adapter.model_id = mid
    adapter.emit(ModelLoading(mid, 100.0, f"{model.config.describe()} answers"))
    adapter.emit(ModelLoaded(mid, time.perf_counter() - start))
    return Result.ok(None)


def _failed(adapter: BaseAdapter[Any], model_id: str | None, error: ModelError
            ) -> Result[None, ModelError]:
    adapter.emit(AdapterError(error, model_id))
    return Result.err(error)


def require_remote(adapter: BaseAdapter[Any]) -> RemoteModel:
    model = adapter.require_model()
    if not isinstance(model, RemoteModel):
        raise ModelError(f"{type(adapter).__name__} needs a model loaded by its own load_model,"
                         f" not {type(model).__name__}")
    return model
