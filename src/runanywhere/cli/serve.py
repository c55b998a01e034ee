"""``runanywhere serve``: the cache as a model server for browsers, other machines and tools.

Read-only HTTP over what the cache holds, every byte one the cache verified:

    GET /healthz                             liveness (never needs the token)
    GET /v1/models[/{id}]                    what is cached: files, sizes, sha256 (JSON)
    GET /v1/models/{id}/files/{path}         a model's file (ETag = its sha256, no-cache)
    GET /blobs/sha256/{hex}[/{name}]         a file by content (immutable, cached a year)
    GET /catalog.json                        a catalog whose URLs point back here, for
                                             ``runanywhere --catalog http://host:8765/catalog.json``
    GET /{repo}/resolve/{rev}/{path}, /api/models/{repo}[/revision/{rev}], .../tree/{rev}
                                             the Hugging Face Hub's read routes (serve_hub.py)

All accept HEAD, ``Range``/``If-Range`` (206) and conditional requests (304/412), see
serve_http.py. Security rules:

* Bound to 127.0.0.1 by default. Any other address needs a token (``--token`` or
  ``RUNANYWHERE_SERVE_TOKEN``); with a token every route but ``/healthz`` wants
  ``Authorization: Bearer <token>`` (what huggingface_hub sends from ``HF_TOKEN``) or
  ``?token=<token>``. The catalog it hands out carries a per-blob signature in each URL
  (``?sig=`` = HMAC-SHA256(token, hex)), so a runanywhere on another machine downloads with
  plain GETs and the token itself never lands in a catalog. Tokens and signatures are masked
  in the access log.
* No request names a filesystem path: ids, file paths, hashes and repo paths are looked up, by
  exact string, in the cache index and the catalog; what is opened is the path the index
  recorded, opened with ``O_NOFOLLOW``, checked to lie inside the cache folder after
  ``realpath``, to be a regular file and to have the recorded size. Traversal, symlinks and
  encoded dots find nothing to open.
* CORS only for the origins given with ``--cors`` (``*`` for any); preflights are answered
  without the token, as browsers send them without credentials.
* Idle connections close after 15 s; a client that stops reading a body is dropped after
  ``STALL_TIMEOUT``; every connection is its own coroutine, so none holds up another.

``--pull-through``: a model the catalog knows but the cache lacks is pulled through the normal
loader (verified, resumable, the shared tier first) when a request asks for it, then served;
concurrent requests for one model wait for one pull (``_pull``), which a client that leaves does
not cancel.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import difflib
import hashlib
import hmac
import ipaddress
import logging
import re
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from ..catalog import ModelMetadata, validate_id
from ..errors import (
    DownloadCancelledError,
    DownloadError,
    InsufficientStorageError,
    IntegrityError,
    ModelError,
    ModelNotFoundError,
    OfflineError,
    ServeError,
)
from ..redact import has_secret, redact_values
from ..units import human_size
from . import serve_hub as hub
from .serve_http import (
    STALL_TIMEOUT,
    NotServable,
    SendfileResponse,
    file_response,
    json_error,
    json_response,
    open_verified,
)

if TYPE_CHECKING:
    from ..registry import ModelRegistry
    from ..store import CacheEntry, FileRow

log = logging.getLogger("runanywhere.serve")
access_log = logging.getLogger("runanywhere.serve.access")

HEX64 = re.compile(r"[0-9a-f]{64}")
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
#: Seconds a snapshot of the cache listing and the catalog is reused before it is rebuilt.
VIEW_TTL = 1.0
KEEPALIVE_TIMEOUT = 15.0
SHUTDOWN_TIMEOUT = 3.0
_HOST = re.compile(r"[A-Za-z0-9.\-]+(:\d{1,5})?|\[[0-9A-Fa-f:.]+\](:\d{1,5})?")
_SECRET_QUERY = re.compile(r"((?:^|[?&])(?:token|sig)=)[^&]*")
_EXPOSE = ("Content-Length, Content-Range, Accept-Ranges, ETag, Last-Modified, X-Repo-Commit,"
           " X-Linked-Etag, X-Linked-Size, X-Error-Code, X-Error-Message")
_ALLOW_HEADERS = "Authorization, Range, If-Range, If-None-Match, If-Match, If-Modified-Since"


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = None
    #: Origins whose pages may read the responses (``*``: any).
    cors: tuple[str, ...] = ()
    pull_through: bool = False
    #: The base URL the catalog's links use (default: the Host the client asked for).
    public_url: str | None = None
    access_log: bool = True
    stall_timeout: float = STALL_TIMEOUT


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_options(options: ServeOptions) -> None:
    if not is_loopback(options.host) and not options.token:
        raise ServeError(f"serving on {options.host} (not a loopback address) needs a token:"
                         " --token T or RUNANYWHERE_SERVE_TOKEN (clients send"
                         " 'Authorization: Bearer T')")
    if not 0 <= options.port <= 65535:
        raise ServeError(f"port {options.port} is not a TCP port")
    for origin in options.cors:
        if origin != "*" and not re.fullmatch(r"https?://[^/\s]+", origin):
            raise ServeError(f"--cors {origin!r}: give an origin like http://localhost:3000"
                             " (scheme and host, no path) or *")


@dataclass
class View:
    """A snapshot of what can be served: the cache listing joined with the catalog."""

    built: float
    entries: dict[str, CacheEntry]
    metas: dict[str, ModelMetadata]
    #: sha256 -> (model id, file path in the model) of every cached file.
    blobs: dict[str, tuple[str, str]]
    #: sha256 -> model id of every catalog file with a hash that is not cached (pull-through).
    pullable: dict[str, str]
    repos: dict[tuple[str, str], hub.HubRepo] = field(default_factory=dict)


class ModelServer:
    """The aiohttp application over one registry; ``start()``/``stop()`` or ``serve()``."""

    def __init__(self, registry: ModelRegistry, options: ServeOptions | None = None) -> None:
        self.registry = registry
        self.options = options or ServeOptions()
        check_options(self.options)
        self.cache = registry.cache
        self.root = Path(self.cache.directory)
        self._view: View | None = None
        self._view_lock = asyncio.Lock()
        self._pulls: dict[str, asyncio.Future[None]] = {}
        self._git_oids: dict[str, str] = {}
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()
        #: Models pulled through since start (for tests and the log).
        self.pulled: list[str] = []
        self.url = ""

    # -- life cycle ------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024)
        r = app.router
        r.add_get("/healthz", self.healthz)
        r.add_get("/v1/models", self.models)
        r.add_get("/v1/models/{id}", self.model)
        r.add_get("/v1/models/{id}/files/{path:.+}", self.model_file, name="file")
        r.add_get("/blobs/sha256/{hex}", self.blob, name="blob")
        r.add_get("/blobs/sha256/{hex}/{name}", self.blob, name="blob-named")
        r.add_get("/catalog.json", self.catalog)
        kinds = "{kind:models|datasets}"
        r.add_get(f"/api/{kinds}/{{owner}}/{{name}}", self.hub_info)
        r.add_get(f"/api/{kinds}/{{owner}}/{{name}}/revision/{{rev:.+}}", self.hub_info)
        r.add_get(f"/api/{kinds}/{{owner}}/{{name}}/tree/{{rev}}", self.hub_tree)
        r.add_get(f"/api/{kinds}/{{owner}}/{{name}}/tree/{{rev}}/{{path:.+}}", self.hub_tree)
        r.add_get("/datasets/{owner}/{name}/resolve/{rev}/{path:.+}", self.hub_resolve)
        r.add_get("/{owner}/{name}/resolve/{rev}/{path:.+}", self.hub_resolve)
        return app

    async def start(self) -> str:
        """Bind and serve in the running loop; returns the base URL."""
        o = self.options
        self._runner = web.AppRunner(
            self.app(), handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT,
            keepalive_timeout=KEEPALIVE_TIMEOUT, access_log_class=AccessLog,
            access_log=access_log if o.access_log else None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, o.host, o.port, backlog=1024, reuse_address=True)
        try:
            await site.start()
        except OSError as e:
            await self._runner.cleanup()
            raise ServeError(f"cannot listen on {o.host}:{o.port}: {e.strerror or e}") from None
        host, port = self._runner.addresses[0][:2]
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{port}"
        return self.url

    async def stop(self) -> None:
        self._stopping.set()  # bodies in flight end first (see SendfileResponse._piece)
        for fut in list(self._pulls.values()):
            fut.cancel()
        if self._pulls:
            self.registry.loader.cancel_all_downloads()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

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

    # -- the snapshot of what is served ---------------------------------------------------------
    async def view(self, *, fresher_than: float | None = None) -> View:
        """The current snapshot; rebuilt when older than ``VIEW_TTL`` (or ``fresher_than``
        seconds, to notice a model published a moment ago)."""
        limit = VIEW_TTL if fresher_than is None else fresher_than
        v = self._view
        if v is not None and time.monotonic() - v.built < limit:
            return v
        async with self._view_lock:
            v = self._view
            if v is None or time.monotonic() - v.built >= limit:
                v = self._view = await asyncio.to_thread(self._build_view)
            return v

    def _build_view(self) -> View:
        entries = {e.model_id: e for e in self.cache.entries()}
        metas = {m.id: m for m in self.registry.list_models()}
        blobs: dict[str, tuple[str, str]] = {}
        for e in entries.values():
            for f in e.files:
                blobs.setdefault(f.sha256, (e.model_id, f.path))
        pullable = {f.sha256: m.id for m in metas.values() if not m.archive
                    for f in m.files if f.sha256 and f.sha256 not in blobs}
        return View(time.monotonic(), entries, metas, blobs, pullable,
                    hub.build_hub(metas.values(), entries))

    def _forget_view(self) -> None:
        self._view = None

    # -- middleware: CORS, auth, errors ----------------------------------------------------------
    @web.middleware
    async def _middleware(self, request: web.Request,
                          handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                          ) -> web.StreamResponse:
        cors = self._cors(request.headers.get("Origin"))
        if request.method == "OPTIONS":
            resp: web.StreamResponse = web.Response(status=204, headers={
                **cors, "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
                "Access-Control-Allow-Headers": _ALLOW_HEADERS,
                "Access-Control-Max-Age": "600"})
            return resp
        try:
            if self._authorized(request):
                resp = await handler(request)
            else:
                resp = json_error(401, "this server wants a token: 'Authorization: Bearer <token>'",
                                  {"WWW-Authenticate": 'Bearer realm="runanywhere"'})
        except web.HTTPException as e:  # unknown routes (404), other methods (405)
            resp = json_error(e.status, f"{e.reason}: {request.method} {request.path}",
                              {k: v for k, v in e.headers.items() if k == "Allow"})
        except NotServable as e:
            log.warning("refused to serve a file the cache index lists: %s", e)
            resp = json_error(500, "the cache changed under this file; try again (or run"
                              " 'runanywhere cache verify')")
        except ModelError as e:
            resp = json_error(_status_of(e), str(e), error_type=type(e).__name__)
        except (ConnectionError, asyncio.CancelledError):
            raise  # the client left: aiohttp closes quietly
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            resp = json_error(500, "internal error (the server's log has the details)")
        resp.headers.update(cors)
        return resp

    def _cors(self, origin: str | None) -> dict[str, str]:
        allowed = self.options.cors
        if not origin or not allowed:
            return {}
        if "*" in allowed:
            return {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": _EXPOSE}
        if origin in allowed:
            return {"Access-Control-Allow-Origin": origin, "Vary": "Origin",
                    "Access-Control-Expose-Headers": _EXPOSE}
        return {}

    def _authorized(self, request: web.Request) -> bool:
        token = self.options.token
        if not token or request.path == "/healthz":
            return True
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and _same(given.strip(), token):
            return True
        if _same(request.query.get("token", ""), token):
            return True
        sig = request.query.get("sig", "")
        route = request.match_info.route.name
        if route in ("blob", "blob-named"):
            return _same(sig, self.sign(f"blob:{request.match_info['hex']}"))
        if route == "file":
            m = request.match_info
            return _same(sig, self.sign(f"file:{m['id']}/{m['path']}"))
        return False

    def sign(self, what: str) -> str:
        """The capability for one link of the served catalog (``blob:<hex>`` or
        ``file:<id>/<path>``): an HMAC only the token's holder can make."""
        key = (self.options.token or "").encode()
        return hmac.new(key, what.encode(), hashlib.sha256).hexdigest()[:32]

    # -- routes ---------------------------------------------------------------------------------
    async def healthz(self, request: web.Request) -> web.Response:
        return json_response({"ok": True})

    async def models(self, request: web.Request) -> web.Response:
        v = await self.view()
        base = self._base(request)
        docs = [self._model_doc(e, base) for e in sorted(v.entries.values(),
                                                         key=lambda e: e.model_id)]
        return json_response({"models": docs, "pull_through": self.options.pull_through},
                             headers={"Cache-Control": REVALIDATE})

    async def model(self, request: web.Request) -> web.Response:
        mid = request.match_info["id"]
        v = await self.view(fresher_than=0.2)
        entry = v.entries.get(mid)
        if entry is None:
            return self._no_model(mid, v)
        return json_response(self._model_doc(entry, self._base(request)),
                             headers={"Cache-Control": REVALIDATE})

    def _model_doc(self, e: CacheEntry, base: str) -> dict[str, Any]:
        d: dict[str, Any] = e.to_dict()
        d.pop("path", None)  # where it lies on this machine is nobody else's business
        d["files"] = [{"path": f.path, "size": f.size, "sha256": f.sha256,
                       "url": f"{base}/v1/models/{e.model_id}/files/{quote(f.path)}",
                       "blob_url": self._blob_url(base, f.sha256, f.path)} for f in e.files]
        return d

    async def model_file(self, request: web.Request) -> web.StreamResponse:
        mid, path = request.match_info["id"], request.match_info["path"]
        try:
            validate_id(mid)
        except ValueError:
            return json_error(404, f"{mid!r} is not a model id")
        entry = await self._entry(mid)
        if entry is None and self.options.pull_through:
            v = await self.view()
            if mid in v.metas:
                await self._pull(mid)
                entry = await self._entry(mid)
        if entry is None:
            return self._no_model(mid, await self.view())
        row = next((f for f in entry.files if f.path == path), None)
        if row is None:
            names = ", ".join(f.path for f in entry.files[:20])
            return json_error(404, f"model {mid!r} has no file {path!r} (its files: {names})",
                              id=mid)
        return await self._send(request, entry, row, row.sha256, REVALIDATE)

    async def blob(self, request: web.Request) -> web.StreamResponse:
        sha = request.match_info["hex"]
        if not HEX64.fullmatch(sha):
            return json_error(404, f"{sha!r} is not a sha256 (64 lower-case hex digits)")
        v = await self.view()
        where = v.blobs.get(sha)
        if where is None:
            v = await self.view(fresher_than=0.2)
            where = v.blobs.get(sha)
        if where is None and self.options.pull_through and sha in v.pullable:
            await self._pull(v.pullable[sha])
            v = await self.view(fresher_than=0.0)
            where = v.blobs.get(sha)
        if where is None:
            return json_error(404, f"no file with sha256 {sha} is in this cache", sha256=sha)
        entry = await self._entry(where[0])
        row = next((f for f in entry.files if f.sha256 == sha), None) if entry else None
        if entry is None or row is None:  # removed a moment ago
            self._forget_view()
            return json_error(404, f"no file with sha256 {sha} is in this cache", sha256=sha)
        name = request.match_info.get("name") or row.path.rsplit("/", 1)[-1]
        return await self._send(request, entry, row, sha, IMMUTABLE, name=name)

    async def catalog(self, request: web.Request) -> web.Response:
        v = await self.view()
        base = self._base(request)
        models = [self._catalog_entry(e, v.metas.get(e.model_id), base)
                  for e in sorted(v.entries.values(), key=lambda e: e.model_id)]
        if self.options.pull_through:
            models += [self._pull_entry(m, base) for m in sorted(v.metas.values(),
                                                                 key=lambda m: m.id)
                       if m.id not in v.entries and not m.archive
                       and all(f.sha256 for f in m.files)]
        return json_response({"format_version": 1, "models": models},
                             headers={"Cache-Control": REVALIDATE})

    def _catalog_entry(self, e: CacheEntry, meta: ModelMetadata | None, base: str
                       ) -> dict[str, Any]:
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
            files.append({"path": f.path, "url": self._blob_url(base, f.sha256, f.path),
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

    def _pull_entry(self, m: ModelMetadata, base: str) -> dict[str, Any]:
        """A model not cached yet, offered through pull-through (its files' hashes known)."""
        d: dict[str, Any] = redact_values(m.to_dict())
        files = [{"path": f.path, "url": self._file_url(base, m.id, f.path), "size": f.size,
                  "hash": f.hash} for f in m.files]
        for k in ("url", "hash", "mirrors", "files"):
            d.pop(k, None)
        if m.single_file:
            d.update(url=files[0]["url"], hash=files[0]["hash"])
        else:
            d["files"] = files
        return d

    def _blob_url(self, base: str, sha256: str, path: str) -> str:
        url = f"{base}/blobs/sha256/{sha256}/{quote(path.rsplit('/', 1)[-1])}"
        return f"{url}?sig={self.sign(f'blob:{sha256}')}" if self.options.token else url

    def _file_url(self, base: str, model_id: str, path: str) -> str:
        url = f"{base}/v1/models/{model_id}/files/{quote(path)}"
        sig = self.sign(f"file:{model_id}/{path}")
        return f"{url}?sig={sig}" if self.options.token else url

    # -- the Hub ---------------------------------------------------------------------------------
    async def _hub_repo(self, request: web.Request) -> tuple[hub.HubRepo | None, str]:
        kind = hub.repo_kind(request.match_info.get("kind") or (
            "datasets" if request.path.startswith("/datasets/") else "models"))
        repo_id = f"{request.match_info['owner']}/{request.match_info['name']}"
        v = await self.view()
        repo = v.repos.get((kind, repo_id))
        if repo is None:
            repo = (await self.view(fresher_than=0.2)).repos.get((kind, repo_id))
        return repo, repo_id

    def _hub_missing(self, repo_id: str) -> web.Response:
        msg = f"Repository {repo_id} is not in this cache"
        return json_error(404, msg, hub.hub_error("RepoNotFound", msg))

    def _hub_commit(self, repo: hub.HubRepo, rev: str) -> hub.HubCommit | web.Response:
        commit = repo.resolve(rev)
        if commit is None:
            msg = f"Invalid rev id: {rev}"
            return json_error(404, msg, hub.hub_error("RevisionNotFound", msg))
        return commit

    async def hub_info(self, request: web.Request) -> web.Response:
        repo, repo_id = await self._hub_repo(request)
        if repo is None:
            return self._hub_missing(repo_id)
        commit = self._hub_commit(repo, request.match_info.get("rev", "main"))
        if isinstance(commit, web.Response):
            return commit
        files = commit.servable(self.options.pull_through)
        blobs = request.query.get("blobs", "").lower() in ("1", "true")
        oids = await self._oids(files) if blobs else {}
        return json_response(hub.info_json(repo, commit, files, oids, blobs))

    async def hub_tree(self, request: web.Request) -> web.Response:
        repo, repo_id = await self._hub_repo(request)
        if repo is None:
            return self._hub_missing(repo_id)
        commit = self._hub_commit(repo, request.match_info["rev"])
        if isinstance(commit, web.Response):
            return commit
        files = commit.servable(self.options.pull_through)
        recursive = request.query.get("recursive", "").lower() in ("1", "true")
        base = request.match_info.get("path", "").strip("/")
        entries = hub.tree_json(files, await self._oids(files), base, recursive)
        if entries is None:
            msg = f'{base} does not exist on "{commit.sha}"'
            return json_error(404, msg, hub.hub_error("EntryNotFound", msg))
        return json_response(entries)

    async def hub_resolve(self, request: web.Request) -> web.StreamResponse:
        repo, repo_id = await self._hub_repo(request)
        if repo is None:
            return self._hub_missing(repo_id)
        rev, path = request.match_info["rev"], request.match_info["path"]
        commit = self._hub_commit(repo, rev)
        if isinstance(commit, web.Response):
            return commit
        f = commit.files.get(path)
        if f is not None and not f.cached and self.options.pull_through:
            await self._pull(f.model_id)
            repo, _ = await self._hub_repo(request)
            found = repo.commits.get(commit.sha) if repo is not None else None
            f = found.files.get(path) if found is not None else None
        if f is None or not f.cached:
            msg = "Entry not found"
            return json_error(404, f"{msg}: {path} at {commit.sha} is not in this cache",
                              hub.hub_error("EntryNotFound", msg, commit.sha))
        entry = await self._entry(f.model_id)
        row = next((r for r in entry.files if r.path == f.model_path), None) if entry else None
        if entry is None or row is None or row.sha256 != f.sha256:
            self._forget_view()
            msg = "Entry not found"
            return json_error(404, f"{msg}: {path} left this cache a moment ago",
                              hub.hub_error("EntryNotFound", msg, commit.sha))
        headers = {"X-Repo-Commit": commit.sha}
        if f.lfs:
            etag = row.sha256
            headers.update({"X-Linked-Etag": f'"{row.sha256}"', "X-Linked-Size": str(row.size)})
        else:
            etag = (await self._oids([f]))[f.path]
        pinned = hub.COMMIT.fullmatch(rev) is not None
        return await self._send(request, entry, row, etag, IMMUTABLE if pinned else REVALIDATE,
                                headers=headers, name=path)

    async def _oids(self, files: list[hub.HubFile]) -> dict[str, str]:
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

    def _hash_git_blob(self, f: hub.HubFile) -> str:
        entry = self.cache.lookup(f.model_id)
        if entry is None:
            return f.pointer_oid() or ""
        opened = open_verified(entry.base / f.model_path, self.root, f.size)
        with opened.file:
            data = opened.file.read()
        return hub.git_blob_oid(data)

    # -- helpers ---------------------------------------------------------------------------------
    async def _entry(self, model_id: str) -> CacheEntry | None:
        """The cheap-checked cache entry (the index row and an lstat per file)."""
        return await asyncio.to_thread(self.cache.lookup, model_id)

    async def _send(self, request: web.Request, entry: CacheEntry, row: FileRow, etag: str,
                    cache_control: str, *, headers: dict[str, str] | None = None,
                    name: str | None = None) -> web.StreamResponse:
        return await file_response(
            request, entry.base / row.path, self.root, size=row.size, etag=etag,
            name=(name or row.path).rsplit("/", 1)[-1], cache_control=cache_control,
            headers=headers, stall_timeout=self.options.stall_timeout, stopping=self._stopping)

    def _no_model(self, mid: str, v: View) -> web.Response:
        close = difflib.get_close_matches(mid, list(v.entries), n=3, cutoff=0.6)
        hint = f" (did you mean: {', '.join(close)}?)" if close else ""
        known = " (the catalog knows it: start the server with --pull-through to fetch it)" \
            if mid in v.metas and not self.options.pull_through else ""
        return json_error(404, f"model {mid!r} is not in this cache{hint}{known}", id=mid)

    def _base(self, request: web.Request) -> str:
        if self.options.public_url:
            return self.options.public_url.rstrip("/")
        host = request.headers.get("Host", "")
        if not _HOST.fullmatch(host):
            return self.url
        return f"{request.scheme}://{host}"

    async def _pull(self, model_id: str) -> None:
        """Pull a model through the loader; every concurrent caller waits for the same pull."""
        fut = self._pulls.get(model_id)
        if fut is None:
            fut = asyncio.ensure_future(self._run_pull(model_id))
            self._pulls[model_id] = fut
            fut.add_done_callback(lambda f: self._pull_done(model_id, f))
        await asyncio.shield(fut)

    def _pull_done(self, model_id: str, fut: asyncio.Future[None]) -> None:
        self._pulls.pop(model_id, None)
        if not fut.cancelled():
            fut.exception()  # retrieved: reported by the waiters, or logged by _run_pull

    async def _run_pull(self, model_id: str) -> None:
        log.info("pull-through: %s is not cached; pulling it", model_id)
        t0 = time.monotonic()
        result = await self.registry.download_model(model_id)
        self._forget_view()
        if not result.success:
            assert result.error is not None
            log.warning("pull-through: %s failed: %s", model_id, result.error)
            raise result.error
        self.pulled.append(model_id)
        log.info("pull-through: %s cached in %.1f s", model_id, time.monotonic() - t0)


def _same(given: str, expected: str) -> bool:
    return bool(given) and hmac.compare_digest(given.encode(), expected.encode())


def _status_of(e: ModelError) -> int:
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


class AccessLog(AbstractAccessLogger):
    """One line per request; tokens and signatures in the query are masked."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        target = _SECRET_QUERY.sub(r"\1***", request.path_qs)
        if isinstance(response, SendfileResponse):
            sent = response.sent_bytes
        else:
            sent = 0 if request.method == "HEAD" else response.content_length or 0
        self.logger.info('%s "%s %s" %d %d %.3fs "%s"', request.remote, request.method, target,
                         response.status, sent, time, request.headers.get("User-Agent", "-"))


# -- the command ---------------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace, registry: ModelRegistry) -> int:
    options = ServeOptions(
        host=args.host, port=args.port, token=args.token or registry.settings.serve_token,
        cors=tuple(args.cors), pull_through=args.pull_through, public_url=args.public_url,
        access_log=not args.no_access_log)
    check_options(options)
    _log_to_stderr()
    server = ModelServer(registry, options)

    def ready(url: str) -> None:
        entries = registry.cache.entries()
        size = sum(e.size for e in entries)
        sys.stderr.write(
            f"runanywhere serve: {len(entries)} model(s), {human_size(size)}, from"
            f" {registry.cache.directory}\n  listening on {url}"
            f"{' (token required)' if options.token else ''}"
            f"{', pull-through on' if options.pull_through else ''}\n"
            f"  catalog: {url}/catalog.json   models: {url}/v1/models   HF_ENDPOINT={url}\n"
            "  Ctrl-C stops it\n")
        sys.stderr.flush()

    code = asyncio.run(server.serve(ready))
    sys.stderr.write("runanywhere serve: stopped\n")
    return code


def _log_to_stderr() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    log.setLevel(logging.INFO)  # the access log is its child: one handler for both
    log.addHandler(handler)
    log.propagate = False
    with contextlib.suppress(ValueError, OSError):  # many clients: as many descriptors as allowed
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
