"""OpenAI's text routes over the cached LLMs:

    POST /v1/chat/completions     the model's chat template over ``messages``
    POST /v1/completions          the ``prompt`` continued as it is

Both answer whole (``chat.completion`` / ``text_completion`` with ``usage``) or, with
``"stream": true``, as server-sent events: one chunk per piece of text, a last chunk with the
``finish_reason``, the usage chunk when ``stream_options.include_usage`` asks for it, then
``data: [DONE]``. The model loads on first use and each request waits its turn
(openai_api/pool.py); a client that leaves stops its generation at the next token.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ...adapters.llm import GenerationStream, LLMAdapter
from ...errors import ModelError
from ..openai_api import errors
from ..openai_api.connection import read_json, until_gone
from ..openai_api.models import resolve
from ..openai_api.requests import TextRequest, chat_request, completion_request
from ..openai_api.shapes import TextShapes
from ..openai_api.sse import EventStream
from ..openai_api.turns import QueueFull
from ..responses import json_response

if TYPE_CHECKING:
    from ...catalog import ModelMetadata
    from ..context import ServeContext

log = logging.getLogger("runanywhere.serve")
#: The largest JSON body (a long chat history) these routes read.
MAX_JSON = 4 * 1024 * 1024
PATHS = ("/v1/chat/completions", "/v1/completions")


def add_routes(router: web.UrlDispatcher, ctx: ServeContext) -> None:
    routes = TextRoutes(ctx)
    router.add_post(PATHS[0], routes.chat)
    router.add_post(PATHS[1], routes.completions)
    errors.register(ctx, PATHS)


class TextRoutes:
    def __init__(self, ctx: ServeContext) -> None:
        self.ctx = ctx

    async def chat(self, request: web.Request) -> web.StreamResponse:
        return await self._answer(request, chat=True)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._answer(request, chat=False)

    async def _answer(self, request: web.Request, *, chat: bool) -> web.StreamResponse:
        try:
            body = await read_json(request, MAX_JSON)
            req = chat_request(body) if chat else completion_request(body)
            meta = await resolve(self.ctx, req.model, "llm", request.path)
            return await until_gone(request, self._generate(request, meta, req, chat))
        except errors.APIError as e:
            return e.response()
        except QueueFull as e:
            return errors.queue_full(e)
        except ModelError as e:
            return errors.from_model_error(e).response()

    async def _generate(self, request: web.Request, meta: ModelMetadata, req: TextRequest,
                        chat: bool) -> web.StreamResponse:
        async with self.ctx.pool.use(meta) as llm:
            if not isinstance(llm, LLMAdapter):
                raise errors.APIError(400, f"'{meta.id}' runs on the adapter"
                                      f" {meta.adapter_name!r}, which writes no text",
                                      param="model", code="model_not_supported")
            o = req.options
            options: dict[str, Any] = {"max_tokens": o.max_tokens, "temperature": o.temperature,
                                       "top_p": o.top_p, "stop": o.stop, "seed": o.seed}
            stream = (llm.chat(req.messages, **options) if chat
                      else llm.generate(req.prompt or "", **options))
            shapes = TextShapes(req.model, chat=chat)
            if req.stream:
                return await self._stream(request, stream, shapes, req)
            try:
                result = await stream.acollect()
            finally:
                stream.cancel()
            text = (req.prompt or "") + result.text if req.echo else result.text
            return json_response(shapes.whole(result, text))

    async def _stream(self, request: web.Request, stream: GenerationStream, shapes: TextShapes,
                      req: TextRequest) -> web.StreamResponse:
        events = await EventStream.open(request, self.ctx.cors.headers(
            request.headers.get("Origin")))
        nulls = req.include_usage  # OpenAI then puts "usage": null on every other chunk
        try:
            if shapes.chat:
                await events.send(shapes.first(usage_null=nulls))
            if req.echo and req.prompt:
                await events.send(shapes.delta(req.prompt, usage_null=nulls))
            async for delta in stream:
                await events.send(shapes.delta(delta, usage_null=nulls))
            result = await stream.aresult()
            await events.send(shapes.last(result, usage_null=nulls))
            if req.include_usage:
                await events.send(shapes.usage(result))
        except ModelError as e:  # the headers are out: the error is the stream's last event
            await events.send(errors.from_model_error(e).doc())
        except (ConnectionError, asyncio.CancelledError):
            raise  # the client left
        except Exception:
            log.exception("%s: the stream failed", request.path)
            await events.send(errors.APIError(500, "internal error (the server's log has the"
                                              " details)").doc())
        finally:
            stream.cancel()
        await events.close()
        return events.response
