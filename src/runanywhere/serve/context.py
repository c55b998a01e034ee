"""The one object every part of the server shares: options, registry, token, CORS, Host rules,
snapshots, pull-through, and the few calls into the cache.

Route groups, the middleware and the access log receive a :class:`ServeContext` and nothing
else; none of them reaches into another. Every read of the cache goes through the three methods
under "the cache" below, so a change of the store's API is a change here only.
"""

from __future__ import annotations

import asyncio
import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from .auth import TokenAuth
from .cors import CorsPolicy
from .file_response import file_response
from .hosts import HostRules
from .openai_api.pool import ModelPool
from .options import ServeOptions, check_options
from .pull import PullThrough
from .responses import json_error
from .view import Snapshots, View, build_view

if TYPE_CHECKING:
    from ..registry import ModelRegistry
    from ..store import CacheEntry, FileRow

#: A Host header worth echoing into links (a name or an IP literal, an optional port).
_HOST = re.compile(r"[A-Za-z0-9.\-]+(:\d{1,5})?|\[[0-9A-Fa-f:.]+\](:\d{1,5})?")

#: A route group's own error answer: (status, message, headers) -> the response.
ErrorAnswer = Callable[[int, str, "dict[str, str] | None"], web.Response]


@dataclass(frozen=True)
class ErrorShape:
    """The paths whose errors (those the middleware answers too: 401, 403, 404, 405, 500) take
    a route group's own shape, such as OpenAI's error objects."""

    prefixes: tuple[str, ...]
    answer: ErrorAnswer

    def applies(self, path: str) -> bool:
        return path.startswith(self.prefixes)


@dataclass
class ServeContext:
    registry: ModelRegistry
    options: ServeOptions
    auth: TokenAuth
    cors: CorsPolicy
    hosts: HostRules
    #: Set once the server is stopping: bodies still being sent end.
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    #: The base URL it listens on (set by the server once bound).
    url: str = ""
    snapshots: Snapshots = field(init=False)
    pulls: PullThrough = field(init=False)
    #: The models the OpenAI routes run on, loaded on first use (openai_api/pool.py).
    pool: ModelPool = field(init=False)
    #: Route groups whose errors have a shape of their own (see :meth:`error`).
    error_shapes: list[ErrorShape] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.snapshots = Snapshots(self._build_view)
        self.pulls = PullThrough(self.registry, self.snapshots.forget)
        self.pool = ModelPool(self.registry, keep_alive=self.options.keep_alive,
                              max_queue=self.options.max_queue)

    def error(self, request: web.Request, status: int, message: str,
              headers: dict[str, str] | None = None, **extra: object) -> web.Response:
        """An error answer in the shape of the route group the path belongs to (the plain
        ``{"error": message, **extra}`` unless a group registered one in ``error_shapes``)."""
        for shape in self.error_shapes:
            if shape.applies(request.path):
                return shape.answer(status, message, headers)
        return json_error(status, message, headers, **extra)

    @classmethod
    def create(cls, registry: ModelRegistry, options: ServeOptions) -> ServeContext:
        hosts = check_options(options)
        return cls(registry, options, TokenAuth(options.token), CorsPolicy(options.cors), hosts)

    # -- the cache (the only calls into it) -------------------------------------------------------
    @property
    def root(self) -> Path:
        """The cache folder: nothing outside it is ever opened."""
        return Path(self.registry.cache.directory)

    def cached_entries(self) -> list[CacheEntry]:
        """Every cached model (blocking: the index and an lstat per file)."""
        return list(self.registry.cache.entries())

    def cached_entry(self, model_id: str) -> CacheEntry | None:
        """One cached model, cheap-checked (blocking: the index row and an lstat per file)."""
        return self.registry.cache.entry(model_id)

    # -- what is served --------------------------------------------------------------------------
    async def view(self, *, fresher_than: float | None = None) -> View:
        return await self.snapshots.get(fresher_than=fresher_than)

    def _build_view(self) -> View:
        return build_view(self.cached_entries(), self.registry.list_models())

    async def entry(self, model_id: str) -> CacheEntry | None:
        return await asyncio.to_thread(self.cached_entry, model_id)

    async def send(self, request: web.Request, entry: CacheEntry, row: FileRow, etag: str,
                   cache_control: str, *, headers: dict[str, str] | None = None,
                   name: str | None = None) -> web.StreamResponse:
        """A cached file as the answer (ranges, conditionals, sendfile: file_response.py)."""
        return await file_response(
            request, entry.base / row.path, self.root, size=row.size, etag=etag,
            name=(name or row.path).rsplit("/", 1)[-1], cache_control=cache_control,
            headers=headers, stall_timeout=self.options.stall_timeout, stopping=self.stopping)

    def no_model(self, model_id: str, v: View) -> web.Response:
        """The 404 of a model this cache lacks, with near names and a pull-through hint."""
        close = difflib.get_close_matches(model_id, list(v.entries), n=3, cutoff=0.6)
        hint = f" (did you mean: {', '.join(close)}?)" if close else ""
        known = " (the catalog knows it: start the server with --pull-through to fetch it)" \
            if model_id in v.metas and not self.options.pull_through else ""
        return json_error(404, f"model {model_id!r} is not in this cache{hint}{known}",
                          id=model_id)

    # -- links -----------------------------------------------------------------------------------
    def base_url(self, request: web.Request) -> str:
        """Where links in answers point: ``--public-url``, else the Host the client used."""
        if self.options.public_url:
            return self.options.public_url.rstrip("/")
        host = request.headers.get("Host", "")
        if not _HOST.fullmatch(host):
            return self.url
        return f"{request.scheme}://{host}"
