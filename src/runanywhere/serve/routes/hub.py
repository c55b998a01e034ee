"""The Hugging Face Hub's read routes over the cache.

With ``HF_ENDPOINT=http://host:8765``, huggingface_hub (``hf_hub_download``,
``snapshot_download``) and transformers.js load models from this cache. The wire protocol is the
one huggingface_hub 2.4 speaks (checked against its source and the project's Hub notes):

* ``HEAD|GET /[datasets/]{owner}/{name}/resolve/{rev}/{path}``: the file, with ``X-Repo-Commit``
  (without it huggingface_hub refuses the answer), ``ETag`` and, for LFS files,
  ``X-Linked-Etag`` (the sha256, which names huggingface_hub's cache blob) and
  ``X-Linked-Size``; ``Content-Length``, ``Range``. A missing file is ``404`` with
  ``X-Error-Code: EntryNotFound`` and ``X-Repo-Commit``; an unknown repo or revision
  ``RepoNotFound`` / ``RevisionNotFound``, as the Hub answers them.
* ``GET /api/{models|datasets}/{owner}/{name}[/revision/{rev}]``: the repo info (``sha``,
  ``siblings``; with ``?blobs=true`` each sibling's ``blobId``, ``size`` and ``lfs``).
* ``GET /api/{models|datasets}/{owner}/{name}/tree/{rev}[/{path}]``: the listing
  ``snapshot_download`` walks (``recursive``; one page).

Which repos, commits and files exist, and which are LFS: hub_repos.py.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiohttp import web

from ..file_response import open_verified
from ..hub_repos import (
    COMMIT,
    HubCommit,
    HubFile,
    HubRepo,
    git_blob_oid,
    hub_error,
    info_json,
    repo_kind,
    tree_json,
)
from ..responses import IMMUTABLE, REVALIDATE, json_error, json_response

if TYPE_CHECKING:
    from ..context import ServeContext


def add_routes(router: web.UrlDispatcher, ctx: ServeContext) -> None:
    routes = HubRoutes(ctx)
    kinds = "{kind:models|datasets}"
    router.add_get(f"/api/{kinds}/{{owner}}/{{name}}", routes.info)
    router.add_get(f"/api/{kinds}/{{owner}}/{{name}}/revision/{{rev:.+}}", routes.info)
    router.add_get(f"/api/{kinds}/{{owner}}/{{name}}/tree/{{rev}}", routes.tree)
    router.add_get(f"/api/{kinds}/{{owner}}/{{name}}/tree/{{rev}}/{{path:.+}}", routes.tree)
    router.add_get("/datasets/{owner}/{name}/resolve/{rev}/{path:.+}", routes.resolve)
    router.add_get("/{owner}/{name}/resolve/{rev}/{path:.+}", routes.resolve)


class HubRoutes:
    def __init__(self, ctx: ServeContext) -> None:
        self.ctx = ctx
        #: sha256 -> git blob id of small (non-LFS) files, hashed once per process.
        self._git_oids: dict[str, str] = {}

    async def info(self, request: web.Request) -> web.Response:
        repo, repo_id = await self._repo(request)
        if repo is None:
            return _missing_repo(repo_id)
        commit = _commit(repo, request.match_info.get("rev", "main"))
        if isinstance(commit, web.Response):
            return commit
        files = commit.servable(self.ctx.options.pull_through)
        blobs = request.query.get("blobs", "").lower() in ("1", "true")
        oids = await self._oids(files) if blobs else {}
        return json_response(info_json(repo, commit, files, oids, blobs))

    async def tree(self, request: web.Request) -> web.Response:
        repo, repo_id = await self._repo(request)
        if repo is None:
            return _missing_repo(repo_id)
        commit = _commit(repo, request.match_info["rev"])
        if isinstance(commit, web.Response):
            return commit
        files = commit.servable(self.ctx.options.pull_through)
        recursive = request.query.get("recursive", "").lower() in ("1", "true")
        base = request.match_info.get("path", "").strip("/")
        entries = tree_json(files, await self._oids(files), base, recursive)
        if entries is None:
            msg = f'{base} does not exist on "{commit.sha}"'
            return json_error(404, msg, hub_error("EntryNotFound", msg))
        return json_response(entries)

    async def resolve(self, request: web.Request) -> web.StreamResponse:
        ctx = self.ctx
        repo, repo_id = await self._repo(request)
        if repo is None:
            return _missing_repo(repo_id)
        rev, path = request.match_info["rev"], request.match_info["path"]
        commit = _commit(repo, rev)
        if isinstance(commit, web.Response):
            return commit
        f = commit.files.get(path)
        if f is not None and not f.cached and ctx.options.pull_through:
            await ctx.pulls.pull(f.model_id)
            repo, _ = await self._repo(request)
            found = repo.commits.get(commit.sha) if repo is not None else None
            f = found.files.get(path) if found is not None else None
        if f is None or not f.cached:
            msg = "Entry not found"
            return json_error(404, f"{msg}: {path} at {commit.sha} is not in this cache",
                              hub_error("EntryNotFound", msg, commit.sha))
        entry = await ctx.entry(f.model_id)
        row = next((r for r in entry.files if r.path == f.model_path), None) if entry else None
        if entry is None or row is None or row.sha256 != f.sha256:
            ctx.snapshots.forget()
            msg = "Entry not found"
            return json_error(404, f"{msg}: {path} left this cache a moment ago",
                              hub_error("EntryNotFound", msg, commit.sha))
        headers = {"X-Repo-Commit": commit.sha}
        if f.lfs:
            etag = row.sha256
            headers.update({"X-Linked-Etag": f'"{row.sha256}"', "X-Linked-Size": str(row.size)})
        else:
            etag = (await self._oids([f]))[f.path]
        pinned = COMMIT.fullmatch(rev) is not None
        return await ctx.send(request, entry, row, etag, IMMUTABLE if pinned else REVALIDATE,
                              headers=headers, name=path)

    async def _repo(self, request: web.Request) -> tuple[HubRepo | None, str]:
        kind = repo_kind(request.match_info.get("kind") or (
            "datasets" if request.path.startswith("/datasets/") else "models"))
        repo_id = f"{request.match_info['owner']}/{request.match_info['name']}"
        repo = (await self.ctx.view()).repos.get((kind, repo_id))
        if repo is None:
            repo = (await self.ctx.view(fresher_than=0.2)).repos.get((kind, repo_id))
        return repo, repo_id

    async def _oids(self, files: list[HubFile]) -> dict[str, str]:
        """Git blob ids: of the LFS pointer for LFS files, of the bytes for the others."""
        out: dict[str, str] = {}
        for f in files:
            if f.lfs or not f.cached or not f.sha256:
                out[f.path] = f.pointer_oid() or ""
                continue
            oid = self._git_oids.get(f.sha256)
            if oid is None:
                oid = await asyncio.to_thread(self._hash_git_blob, f)
                self._git_oids[f.sha256] = oid
            out[f.path] = oid
        return out

    def _hash_git_blob(self, f: HubFile) -> str:
        entry = self.ctx.cached_entry(f.model_id)
        if entry is None:
            return f.pointer_oid() or ""
        opened = open_verified(entry.base / f.model_path, self.ctx.root, f.size)
        with opened.file:
            data = opened.file.read()
        return git_blob_oid(data)


def _missing_repo(repo_id: str) -> web.Response:
    msg = f"Repository {repo_id} is not in this cache"
    return json_error(404, msg, hub_error("RepoNotFound", msg))


def _commit(repo: HubRepo, rev: str) -> HubCommit | web.Response:
    commit = repo.resolve(rev)
    if commit is None:
        msg = f"Invalid rev id: {rev}"
        return json_error(404, msg, hub_error("RevisionNotFound", msg))
    return commit
