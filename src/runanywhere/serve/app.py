"""The server: the aiohttp application over one registry, its life cycle and its signals."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

from ..errors import ServeError
from .access_log import access_log, access_log_class, protocol_log
from .context import ServeContext
from .middleware import middleware_for
from .options import ServeOptions
from .responses import json_response
from .routes import catalog, hub, models, openai_audio, openai_text

if TYPE_CHECKING:
    from ..registry import ModelRegistry

KEEPALIVE_TIMEOUT = 15.0
SHUTDOWN_TIMEOUT = 3.0
#: Bytes of a request body aiohttp buffers for ``request.read()``/``json()``; a route that takes
#: uploads reads ``request.content`` in its own bounded loop instead.
MAX_BODY = 64 * 1024

RouteGroup = Callable[[web.UrlDispatcher, ServeContext], None]
#: Every route group, in the order their routes are matched (the Hub's ``/{owner}/{name}/...``
#: catch-all last). A new group is one module in ``routes/`` and one line here.
ROUTE_GROUPS: tuple[RouteGroup, ...] = (
    models.add_routes,
    openai_text.add_routes,
    openai_audio.add_routes,
    catalog.add_routes,
    hub.add_routes,
)


class ModelServer:
    """``start()``/``stop()`` in a running loop, or ``serve()`` until SIGINT/SIGTERM."""

    def __init__(self, registry: ModelRegistry, options: ServeOptions | None = None) -> None:
        self.context = ServeContext.create(registry, options or ServeOptions())
        self.options = self.context.options
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return self.context.url

    @property
    def pulled(self) -> list[str]:
        """Models pulled through since start."""
        return self.context.pulls.pulled

    def sign(self, capability: str) -> str:
        """The ``?sig=`` that opens one link (``blob:<hex>``, ``file:<id>/<path>``)."""
        return self.context.auth.sign(capability)

    def app(self) -> web.Application:
        ctx = self.context
        app = web.Application(middlewares=[middleware_for(ctx)], client_max_size=MAX_BODY)
        app.router.add_get("/healthz", healthz)
        for add_routes in ROUTE_GROUPS:
            add_routes(app.router, ctx)
        ctx.cors = ctx.cors.with_methods(r.method for r in app.router.routes())
        return app

    async def start(self) -> str:
        """Bind and serve in the running loop; returns the base URL."""
        o = self.options
        self._runner = web.AppRunner(
            self.app(), handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT,
            keepalive_timeout=KEEPALIVE_TIMEOUT, access_log_class=access_log_class(o.token),
            access_log=access_log if o.access_log else None, logger=protocol_log)
        await self._runner.setup()
        site = web.TCPSite(self._runner, o.host, o.port, backlog=1024, reuse_address=True)
        try:
            await site.start()
        except OSError as e:
            await self._runner.cleanup()
            raise ServeError(f"cannot listen on {o.host}:{o.port}: {e.strerror or e}") from None
        host, port = self._runner.addresses[0][:2]
        shown = f"[{host}]" if ":" in host else host
        self.context.url = f"http://{shown}:{port}"
        return self.context.url

    async def stop(self) -> None:
        self.context.stopping.set()  # bodies in flight end first (file_response.py)
        self.context.pulls.cancel_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.context.pool.close()  # the models the OpenAI routes loaded

    async def serve(self, on_ready: Callable[[str], None] | None = None) -> int:
        """Serve until SIGINT (returns 130) or SIGTERM (returns 0)."""
        url = await self.start()
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        got: list[int] = []

        def on_signal(signum: int) -> None:
            got.append(signum)
            stop.set()
            for s in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C stops at once
                loop.remove_signal_handler(s)

        for s in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(s, on_signal, s)
        try:
            if on_ready is not None:
                on_ready(url)
            await stop.wait()
        finally:
            for s in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(s)
            await self.stop()
        return 130 if got and got[0] == signal.SIGINT else 0


async def healthz(request: web.Request) -> web.Response:
    """Liveness, for load balancers and readiness checks: never needs the token."""
    return json_response({"ok": True})
