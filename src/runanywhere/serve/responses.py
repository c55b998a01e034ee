"""The small answers every route group shares: JSON bodies, JSON errors, cache policies."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

#: A content address: the bytes can never change, so caches may keep them for a year.
IMMUTABLE = "public, max-age=31536000, immutable"
#: A name (a model id, a branch) may later point at other bytes: revalidate every time.
REVALIDATE = "no-cache"


def json_response(doc: Any, status: int = 200, headers: dict[str, str] | None = None
                  ) -> web.Response:
    body = json.dumps(doc, separators=(",", ":")).encode()
    return web.Response(body=body, status=status, content_type="application/json",
                        headers=headers)


def json_error(status: int, message: str, headers: dict[str, str] | None = None,
               **extra: Any) -> web.Response:
    """``{"error": message, **extra}`` with ``status``: what every failed request gets."""
    return json_response({"error": message, **extra}, status, headers)
