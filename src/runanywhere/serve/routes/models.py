"""The cache's own routes: what is cached, and its files by model and by content.

    GET /v1/models[/{id}]                 what is cached: files, sizes, sha256 (JSON), in
                                          OpenAI's model list shape (see ``models``)
    GET /v1/models/{id}/files/{path}      a model's file (ETag = its sha256, no-cache)
    GET /blobs/sha256/{hex}[/{name}]      a file by content (immutable, cached a year)

No request names a filesystem path: ids, file paths and hashes are looked up, by exact string,
in the snapshot of the cache index (view.py); what is opened is the path the index recorded,
checked by file_response.py. With ``--pull-through`` a model the catalog knows is pulled first.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ...catalog import validate_id
from ..links import blob_capability, file_capability, file_path, signed_blob_url
from ..responses import IMMUTABLE, REVALIDATE, json_error, json_response

if TYPE_CHECKING:
    from ...catalog import ModelMetadata
    from ...store import CacheEntry
    from ..context import ServeContext

HEX64 = re.compile(r"[0-9a-f]{64}")


def add_routes(router: web.UrlDispatcher, ctx: ServeContext) -> None:
    routes = ModelRoutes(ctx)
    router.add_get("/v1/models", routes.models)
    router.add_get("/v1/models/{id}", routes.model)
    router.add_get("/v1/models/{id}/files/{path:.+}", routes.model_file, name="file")
    router.add_get("/blobs/sha256/{hex}", routes.blob, name="blob")
    router.add_get("/blobs/sha256/{hex}/{name}", routes.blob, name="blob-named")
    ctx.auth.signed_route("file", file_capability)
    ctx.auth.signed_route("blob", blob_capability)
    ctx.auth.signed_route("blob-named", blob_capability)


class ModelRoutes:
    def __init__(self, ctx: ServeContext) -> None:
        self.ctx = ctx

    async def models(self, request: web.Request) -> web.Response:
        """OpenAI's list (``object: "list"``, ``data``: one ``object: "model"`` per cached
        model with ``created`` and ``owned_by``, its cache fields beside them). ``models`` holds
        the same entries for the clients of 0.1 and 0.2, which read that key."""
        v = await self.ctx.view()
        base = self.ctx.base_url(request)
        docs = [self._doc(e, base, v.metas.get(e.model_id))
                for e in sorted(v.entries.values(), key=lambda e: e.model_id)]
        return json_response({"object": "list", "data": docs, "models": docs,
                              "pull_through": self.ctx.options.pull_through},
                             headers={"Cache-Control": REVALIDATE})

    async def model(self, request: web.Request) -> web.Response:
        mid = request.match_info["id"]
        v = await self.ctx.view(fresher_than=0.2)
        entry = v.entries.get(mid)
        if entry is None:
            return self.ctx.no_model(mid, v)
        return json_response(self._doc(entry, self.ctx.base_url(request), v.metas.get(mid)),
                             headers={"Cache-Control": REVALIDATE})

    def _doc(self, e: CacheEntry, base: str, meta: ModelMetadata | None) -> dict[str, Any]:
        d: dict[str, Any] = e.to_dict()
        d.pop("path", None)  # where it lies on this machine is nobody else's business
        # OpenAI's Model fields: created is whole seconds (when the model was cached).
        d.update(object="model", created=int(e.created),
                 owned_by=meta.provider if meta is not None else "runanywhere")
        if meta is not None:
            d["type"] = meta.type
        d["files"] = [{"path": f.path, "size": f.size, "sha256": f.sha256,
                       "url": base + file_path(e.model_id, f.path),
                       "blob_url": signed_blob_url(self.ctx.auth, base, f.sha256, f.path)}
                      for f in e.files]
        return d

    async def model_file(self, request: web.Request) -> web.StreamResponse:
        ctx = self.ctx
        mid, path = request.match_info["id"], request.match_info["path"]
        try:
            validate_id(mid)
        except ValueError:
            return json_error(404, f"{mid!r} is not a model id")
        entry = await ctx.entry(mid)
        if entry is None and ctx.options.pull_through:
            v = await ctx.view()
            if mid in v.metas:
                await ctx.pulls.pull(mid)
                entry = await ctx.entry(mid)
        if entry is None:
            return ctx.no_model(mid, await ctx.view())
        row = next((f for f in entry.files if f.path == path), None)
        if row is None:
            names = ", ".join(f.path for f in entry.files[:20])
            return json_error(404, f"model {mid!r} has no file {path!r} (its files: {names})",
                              id=mid)
        return await ctx.send(request, entry, row, row.sha256, REVALIDATE)

    async def blob(self, request: web.Request) -> web.StreamResponse:
        ctx = self.ctx
        sha = request.match_info["hex"]
        if not HEX64.fullmatch(sha):
            return json_error(404, f"{sha!r} is not a sha256 (64 lower-case hex digits)")
        v = await ctx.view()
        where = v.blobs.get(sha)
        if where is None:
            v = await ctx.view(fresher_than=0.2)
            where = v.blobs.get(sha)
        if where is None and ctx.options.pull_through and sha in v.pullable:
            await ctx.pulls.pull(v.pullable[sha])
            v = await ctx.view(fresher_than=0.0)
            where = v.blobs.get(sha)
        if where is None:
            return json_error(404, f"no file with sha256 {sha} is in this cache", sha256=sha)
        entry = await ctx.entry(where[0])
        row = next((f for f in entry.files if f.sha256 == sha), None) if entry else None
        if entry is None or row is None:  # removed a moment ago
            ctx.snapshots.forget()
            return json_error(404, f"no file with sha256 {sha} is in this cache", sha256=sha)
        name = request.match_info.get("name") or row.path.rsplit("/", 1)[-1]
        return await ctx.send(request, entry, row, sha, IMMUTABLE, name=name)
