"""``GET /catalog.json``: a catalog another runanywhere can pull everything here from.

The cached models, in the usual catalog format, whose URLs point back at this server's blobs,
with the hashes the cache verified and the catalog's own URLs kept as ``mirrors`` where the
bytes are the same. With ``--pull-through`` it also offers the catalog's uncached models whose
hashes are known (their links go to the file route, which pulls them first).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from ...redact import has_secret, redact_values
from ..links import signed_blob_url, signed_file_url
from ..responses import REVALIDATE, json_response

if TYPE_CHECKING:
    from ...catalog import ModelMetadata
    from ...store import CacheEntry
    from ..context import ServeContext


def add_routes(router: web.UrlDispatcher, ctx: ServeContext) -> None:
    router.add_get("/catalog.json", CatalogRoute(ctx).catalog)


class CatalogRoute:
    def __init__(self, ctx: ServeContext) -> None:
        self.ctx = ctx

    async def catalog(self, request: web.Request) -> web.Response:
        v = await self.ctx.view()
        base = self.ctx.base_url(request)
        models = [self._cached(e, v.metas.get(e.model_id), base)
                  for e in sorted(v.entries.values(), key=lambda e: e.model_id)]
        if self.ctx.options.pull_through:
            models += [self._pullable(m, base) for m in sorted(v.metas.values(),
                                                               key=lambda m: m.id)
                       if m.id not in v.entries and not m.archive
                       and all(f.sha256 for f in m.files)]
        return json_response({"format_version": 1, "models": models},
                             headers={"Cache-Control": REVALIDATE})

    def _cached(self, e: CacheEntry, meta: ModelMetadata | None, base: str) -> dict[str, Any]:
        """The cached model as a catalog entry whose URLs are this server's blobs; the catalog's
        own URLs stay as mirrors where the bytes are the same."""
        d: dict[str, Any] = redact_values(meta.to_dict()) if meta is not None else {
            "id": e.model_id, "name": e.model_id, "type": "custom", "format": "custom",
            "provider": "runanywhere serve"}
        for k in ("url", "hash", "mirrors", "files", "archive", "size"):
            d.pop(k, None)
        d["version"] = e.version
        origin = {f.path: f for f in meta.files} if meta is not None else {}
        files = []
        for f in e.files:
            mf = origin.get(f.path)
            same = mf is not None and mf.sha256 in (None, f.sha256) and mf.size == f.size
            # A URL that carries a password or a token is not ours to hand out.
            mirrors = [u for u in (mf.urls if mf is not None and same else ())
                       if u.startswith(("http://", "https://")) and not has_secret(u)]
            files.append({"path": f.path,
                          "url": signed_blob_url(self.ctx.auth, base, f.sha256, f.path),
                          "size": f.size, "hash": f"sha256:{f.sha256}",
                          **({"mirrors": mirrors} if mirrors else {})})
        if e.kind == "file" and len(files) == 1:
            one = files[0]
            d.update(url=one["url"], hash=one["hash"], size=one["size"])
            if "mirrors" in one:
                d["mirrors"] = one["mirrors"]
        else:
            d["files"] = files
            d["size"] = sum(f["size"] for f in files)
        return d

    def _pullable(self, m: ModelMetadata, base: str) -> dict[str, Any]:
        """A model not cached yet, offered through pull-through (its files' hashes known)."""
        d: dict[str, Any] = redact_values(m.to_dict())
        files = [{"path": f.path, "url": signed_file_url(self.ctx.auth, base, m.id, f.path),
                  "size": f.size, "hash": f.hash} for f in m.files]
        for k in ("url", "hash", "mirrors", "files"):
            d.pop(k, None)
        if m.single_file:
            d.update(url=files[0]["url"], hash=files[0]["hash"])
        else:
            d["files"] = files
        return d
