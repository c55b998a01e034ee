"""``runanywhere serve``: the cache as a model server for browsers, other machines and tools.

Read-only HTTP over what the cache holds, every byte one the cache verified, and OpenAI's API
over its models, loaded on first use (docs/serve.md and docs/openai.md are the user's
guides). The package, top to bottom:

    command.py        the command in the foreground: stderr log, banner, Ctrl-C (the CLI calls it)
    app.py            ModelServer: the aiohttp app, start/stop/serve, ROUTE_GROUPS
    middleware.py     every request: CORS preflight, the token, errors -> JSON with a status
    access_log.py     one line per request, secrets masked
    routes/           one module per route group, each ``add_routes(router, ctx)``:
        models.py       /v1/models[/{id}], /v1/models/{id}/files/{path}, /blobs/sha256/{hex}
        catalog.py      /catalog.json (links back to this server's blobs)
        hub.py          the Hugging Face Hub's read routes (/{repo}/resolve/..., /api/models/...)
        openai_text.py  OpenAI's /v1/chat/completions and /v1/completions (SSE streaming)
        openai_audio.py OpenAI's /v1/audio/transcriptions and /v1/audio/speech
    openai_api/       what the OpenAI routes share: the model pool (load on first use,
                      keep-alive, fair bounded lines), request checks, response shapes, SSE,
                      uploads, OpenAI's error objects
    context.py        ServeContext: the one object they all share (options, registry, token,
                      CORS, snapshots, pull-through) and the only calls into the cache
    view.py           the snapshot of what can be served (cache listing + catalog)
    pull.py           --pull-through: one pull per model however many ask
    auth.py, cors.py, links.py      the token and signed links, CORS, where links point
    file_response.py  a verified file out: Range, If-Range, conditionals, sendfile, stalls
    hub_repos.py      the Hub's repos, commits and files as this cache can show them
    options.py        ServeOptions and the refusals before binding
    responses.py      JSON answers and cache policies
    devserver.py      the demo's tiny stdlib origin (not the model server)

Adding a route group: write ``routes/<group>.py`` with ``add_routes(router: web.UrlDispatcher,
ctx: ServeContext)`` that adds its routes (handlers may close over ``ctx``: the registry, the
options, the snapshots, the model pool), and add its ``add_routes`` to ``ROUTE_GROUPS`` in
app.py. The middleware applies the Host check, the token and CORS to it as to every route
(preflights then list POST and allow Content-Type by themselves). What escapes a handler becomes
the middleware's ``{"error": ...}`` answer; a group with an error shape of its own answers its
errors itself and registers the shape for its paths in ``ctx.error_shapes`` (as the OpenAI
groups do), so the middleware's own answers (401, 403, 404, 405, 500) take it too. A response
prepared inside a handler (a stream) adds ``ctx.cors.headers(...)`` before it is prepared.
``/v1/models`` belongs to routes/models.py. Request bodies over ``app.MAX_BODY`` must be read
from ``request.content`` with a limit of the route's own.

Imports flow one way inside the package too (routes -> context -> view, pull, auth, ...), with
no cycle; ``import runanywhere.serve`` loads nothing heavy (aiohttp comes with what needs it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .options import ServeOptions

if TYPE_CHECKING:
    from .app import ModelServer
    from .command import run

__all__ = ["ModelServer", "ServeOptions", "run"]


def __getattr__(name: str) -> Any:
    # aiohttp is the [serve] extra: load it when a server is asked for, not with the package.
    if name == "ModelServer":
        from .app import ModelServer

        return ModelServer
    if name == "run":
        from .command import run

        return run
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
