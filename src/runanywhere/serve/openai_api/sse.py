"""Server-sent events as OpenAI streams them: ``data: <json>`` blocks, then ``data: [DONE]``.

The response is prepared (its headers sent) by the handler, so the CORS headers an ordinary
answer gets from the middleware afterwards are put on before, here. Each event is one write: a
client that went away makes it raise ``ConnectionResetError``, which ends the generation.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..cors import add_headers
from .shapes import dumps

HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache",
           "X-Accel-Buffering": "no"}  # proxies such as nginx: pass each event on at once


class EventStream:
    def __init__(self, response: web.StreamResponse) -> None:
        self.response = response

    @classmethod
    async def open(cls, request: web.Request, cors: dict[str, str]) -> EventStream:
        response = web.StreamResponse(headers=HEADERS)
        add_headers(response.headers, cors)
        await response.prepare(request)
        return cls(response)

    async def send(self, doc: dict[str, Any] | str) -> None:
        """One event; ``doc`` is a JSON object or its text."""
        text = doc if isinstance(doc, str) else dumps(doc)
        await self.response.write(b"data: " + text.encode() + b"\n\n")

    async def close(self) -> None:
        await self.response.write(b"data: [DONE]\n\n")
        await self.response.write_eof()
