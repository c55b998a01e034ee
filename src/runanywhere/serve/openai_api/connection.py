"""A request's connection: its JSON body read within a limit of the route's own, and the work
done for it stopped when its client goes away.

aiohttp cancels nothing when a client disconnects (its ``handler_cancellation`` is off for every
route of this server), and a handler that waits (for a turn, for the first token, for Whisper)
writes nothing that would fail. :func:`until_gone` runs the work as a task and looks at the
connection every ``POLL`` seconds: once the transport is gone the task is cancelled (a
generation stops at its next token and gives its slot back) and the handler ends with
``ConnectionResetError``, which the middleware lets aiohttp close quietly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web

from .errors import APIError

T = TypeVar("T")
#: Seconds between two looks at a waiting request's connection.
POLL = 0.1


def client_gone(request: web.BaseRequest) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def until_gone(request: web.BaseRequest, work: Awaitable[T]) -> T:
    """Await ``work``; cancel it and raise ``ConnectionResetError`` if the client leaves."""
    task = asyncio.ensure_future(work)
    left = False

    async def watch() -> None:
        nonlocal left
        while not task.done():
            if client_gone(request):
                left = True
                task.cancel()
                return
            await asyncio.sleep(POLL)

    watcher = asyncio.ensure_future(watch())
    try:
        return await task
    except asyncio.CancelledError:
        if left:
            raise ConnectionResetError("the client went away") from None
        raise
    finally:
        watcher.cancel()


async def read_body(request: web.BaseRequest, limit: int) -> bytes:
    """The whole body, refused with 413 past ``limit`` bytes (before reading it all)."""
    if request.content_length is not None and request.content_length > limit:
        raise APIError(413, f"the request body is {request.content_length} bytes; this route"
                       f" takes at most {limit}", code="request_too_large")
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(64 * 1024)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise APIError(413, f"the request body is over {limit} bytes, the most this route"
                           " takes", code="request_too_large")
        chunks.append(chunk)


async def read_json(request: web.BaseRequest, limit: int) -> dict[str, Any]:
    """The request's JSON object (400 for anything else, 413 past ``limit`` bytes).

    Only ``Content-Type: application/json``: a web page may send another origin a form or
    text/plain POST without asking first (no CORS preflight), but never JSON, so a page the
    ``--cors`` list does not name cannot make this server generate."""
    ctype = request.content_type
    if ctype != "application/json":
        raise APIError(415, f"send the request as JSON with 'Content-Type: application/json'"
                       f" (it came as {ctype or 'no Content-Type'})",
                       code="unsupported_media_type")
    raw = await read_body(request, limit)
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise APIError(400, f"the body is not valid JSON: {e}", code="invalid_json") from None
    if not isinstance(doc, dict):
        raise APIError(400, "the body must be a JSON object", code="invalid_json")
    return doc


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a worker thread. If the caller is cancelled meanwhile, the thread is
    waited for before the cancel goes on: it is using a model that only one request may use
    at a time, and the caller's turn must not end before it does."""
    fut = asyncio.get_running_loop().run_in_executor(None, fn, *args)
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        while not fut.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait([fut])
        if not fut.cancelled():
            fut.exception()  # retrieved: the caller left, nobody else will read it
        raise
