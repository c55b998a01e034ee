"""What every request passes through before and after its route: CORS, the token, errors.

One aiohttp middleware, in this order: the Host header must name this server (hosts.py: the
guard against DNS rebinding) or the answer is 403; a preflight (``OPTIONS``) is answered at
once (browsers send it without credentials); then the token (auth.py); then the route.
Whatever the route raises becomes a JSON error with a status that means what it says (a failed
pull-through: 502/503/507, see :func:`status_of`); a client that left is let go quietly. Every
answer gets the CORS headers of its Origin.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from ..errors import (
    DownloadCancelledError,
    DownloadError,
    InsufficientStorageError,
    IntegrityError,
    ModelError,
    ModelNotFoundError,
    OfflineError,
)
from .cors import add_headers
from .file_response import NotServable

if TYPE_CHECKING:
    from .context import ServeContext

log = logging.getLogger("runanywhere.serve")


def middleware_for(ctx: ServeContext) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not _host_allowed(ctx, request):
            host = request.headers.get("Host", "")
            return ctx.error(request, 403, f"this server does not answer to the name {host!r}"
                             " (a guard against DNS rebinding); it answers to"
                             f" {ctx.hosts.describe()}. To add a name, start it with"
                             " --allow-host NAME")
        origin = request.headers.get("Origin")
        if request.method == "OPTIONS":
            return web.Response(status=204, headers=ctx.cors.preflight(origin))
        resp = await _answer(ctx, request, handler)
        add_headers(resp.headers, ctx.cors.headers(origin))
        return resp

    return middleware


def _host_allowed(ctx: ServeContext, request: web.Request) -> bool:
    if request.path == "/healthz":
        return True
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    reached = sockname[0] if isinstance(sockname, tuple) and sockname else None
    return ctx.hosts.allows(request.headers.get("Host"), reached)


async def _answer(ctx: ServeContext, request: web.Request, handler: Handler
                  ) -> web.StreamResponse:
    try:
        if not ctx.auth.authorizes(request):
            return ctx.error(request, 401, "this server wants a token: 'Authorization: Bearer"
                             " <token>'", {"WWW-Authenticate": 'Bearer realm="runanywhere"'})
        return await handler(request)
    except web.HTTPException as e:  # unknown routes (404), other methods (405)
        return ctx.error(request, e.status, f"{e.reason}: {request.method} {request.path}",
                         {k: v for k, v in e.headers.items() if k == "Allow"})
    except NotServable as e:
        log.warning("refused to serve a file the cache index lists: %s", e)
        return ctx.error(request, 500, "the cache changed under this file; try again (or run"
                         " 'runanywhere cache verify')")
    except ModelError as e:
        return ctx.error(request, status_of(e), str(e), error_type=type(e).__name__)
    except (ConnectionError, asyncio.CancelledError):
        raise  # the client left: aiohttp closes quietly
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return ctx.error(request, 500, "internal error (the server's log has the details)")


def status_of(e: ModelError) -> int:
    """The HTTP status of a failed pull-through."""
    if isinstance(e, ModelNotFoundError):
        return 404
    if isinstance(e, (OfflineError, DownloadCancelledError)):
        return 503
    if isinstance(e, InsufficientStorageError):
        return 507
    if isinstance(e, (IntegrityError, DownloadError)):
        return 502
    return 500
