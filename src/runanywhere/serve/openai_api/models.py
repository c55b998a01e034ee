"""Which model a request names: the catalog's entry of the right type, in the cache (or pulled
through first with ``--pull-through``), else OpenAI's 404 ``model_not_found``.

A model that is loaded already is taken as it is (no cache lookup on the hot path).
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING

from .errors import APIError, model_not_found

if TYPE_CHECKING:
    from ...catalog import ModelMetadata
    from ..context import ServeContext

#: What each route runs: model type -> the routes' word for it.
TASKS = {"llm": "a language model (type llm)", "stt": "a speech-to-text model (type stt)",
         "tts": "a text-to-speech voice (type tts)"}


async def resolve(ctx: ServeContext, model_id: str, model_type: str, route: str
                  ) -> ModelMetadata:
    meta = ctx.registry.get_model(model_id)
    if meta is None or meta.is_remote:
        v = await ctx.view()
        close = difflib.get_close_matches(model_id, list(v.entries), n=3, cutoff=0.6)
        hint = f" (did you mean: {', '.join(close)}?)" if close else ""
        if meta is not None:
            hint = " (it is a remote model: this server serves the models of its cache)"
        raise model_not_found(model_id, hint)
    if meta.type != model_type:
        raise APIError(400, f"{route} runs {TASKS[model_type]}; '{model_id}' is a {meta.type}"
                       " model", param="model", code="model_not_supported")
    worker = ctx.pool.worker(model_id)
    if worker is not None and worker.adapter is not None:
        return meta
    if await ctx.entry(model_id) is None:
        if not ctx.options.pull_through:
            raise model_not_found(model_id, " (the catalog knows it: pull it first, or start"
                                  " the server with --pull-through)")
        await ctx.pulls.pull(model_id)
    return meta
