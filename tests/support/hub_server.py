"""Loopback stand-in for the Hugging Face Hub and its LFS CDN, for tests.

Two stdlib HTTP/1.1 (keep-alive) servers on 127.0.0.1, each on a free port:

* the Hub (``endpoint``): ``/api/{models,datasets}/{id}[/revision/{rev}]``, ``.../tree/{rev}``,
  ``.../paths-info/{rev}``, ``.../refs`` and ``/[datasets/]{id}/resolve/{rev}/{path}``;
* the CDN (``cdn_endpoint``): LFS blobs behind signed links (``Expires`` + HMAC ``Signature``).

LFS files answer ``302`` to the CDN; regular files are served directly (or, with
``resolve_cache=True``, ``307`` to ``/api/resolve-cache/...`` as the real Hub now does).
Every request is recorded (``HubServer.requests``).

Faults on cue: :meth:`HubServer.fail_api` makes the next API requests answer an error status
(a 503 with or without ``Retry-After``); ``listing`` makes every ``/tree`` listing misbehave:
``"loop"`` (its ``Link: rel=next`` leads back to an earlier page) or ``"endless"`` (every page
names files never seen before and links to one more).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import mimetypes
import re
import secrets
import socket
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl, quote, unquote, urlencode, urlsplit

DEFAULT_LFS_THRESHOLD = 10 * 1024 * 1024
EXPAND_PAGE_SIZE = 50
_API_TYPES = {"models": "model", "datasets": "dataset"}
_SHA1 = re.compile(r"[0-9a-f]{40}")
_RANGE = re.compile(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", re.IGNORECASE)
_LAST_MODIFIED = formatdate(time.time(), usegmt=True)
Json = dict[str, Any]


def git_blob_sha1(data: bytes) -> str:
    """Git object id of a blob: ``sha1(b"blob <len>\\0" + data)``."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(data: bytes) -> bytes:
    """The git-lfs pointer file stored in git in place of ``data``."""
    sha = hashlib.sha256(data).hexdigest()
    return (
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize {len(data)}\n".encode()
    )


@dataclass(frozen=True)
class Blob:
    """A file's content; ``oid`` is the git id of what git stores (the pointer, for LFS)."""

    data: bytes
    lfs: bool
    sha256: str
    oid: str
    pointer_size: int

    @classmethod
    def make(cls, data: bytes, lfs: bool) -> Blob:
        stored = lfs_pointer(data) if lfs else data
        sha = hashlib.sha256(data).hexdigest()
        return cls(data, lfs, sha, git_blob_sha1(stored), len(stored) if lfs else 0)


@dataclass(frozen=True)
class Commit:
    sha: str
    files: Mapping[str, Blob]
    parent: str | None
    title: str
    date: str


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    gated: bool
    tokens: frozenset[str]
    default_branch: str
    created: str
    refs: dict[str, str] = field(default_factory=dict)
    tags: set[str] = field(default_factory=set)
    commits: dict[str, Commit] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordedRequest:
    """A request received by ``server`` (``"hub"`` or ``"cdn"``) on ``port``; headers lower-cased.

    ``client_port`` identifies the TCP connection, to check keep-alive reuse.
    """

    server: str
    host: str
    port: int
    client_port: int
    method: str
    path: str
    headers: Mapping[str, str]
    status: int


@dataclass(frozen=True)
class _Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]
    body: bytes
    host: str


@dataclass
class _Reply:
    status: int
    headers: dict[str, str]
    body: bytes = b""
    drop_after: int | None = None


class _HubError(Exception):
    def __init__(
        self, status: int, code: str | None, message: str, headers: Mapping[str, str] | None = None
    ):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = dict(headers or {})


class _Unsatisfiable(Exception):
    pass


def _json(status: int, obj: object, headers: Mapping[str, str] | None = None) -> _Reply:
    body = json.dumps(obj).encode()
    return _Reply(
        status, {"Content-Type": "application/json; charset=utf-8", **(headers or {})}, body
    )


def _error_reply(err: _HubError) -> _Reply:
    headers = {"X-Error-Message": err.message, **err.headers}
    if err.code:
        headers["X-Error-Code"] = err.code
    if err.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="Authentication required", charset="UTF-8"'
    return _json(err.status, {"error": err.message}, headers)


def _redirect(status: int, location: str, headers: Mapping[str, str]) -> _Reply:
    body = f"{'Found' if status == 302 else 'Temporary Redirect'}. Redirecting to {location}"
    out = {"Content-Type": "text/plain; charset=utf-8", **headers, "Location": location}
    return _Reply(status, out, body.encode())


def _xml_error(status: int, code: str, message: str) -> _Reply:
    body = f"<?xml version='1.0' encoding='UTF-8'?>\n<Error><Code>{code}</Code>"
    body += f"<Message>{message}</Message></Error>"
    return _Reply(status, {"Content-Type": "application/xml"}, body.encode())


def _flag(query: Mapping[str, list[str]], name: str) -> bool:
    return query.get(name, [""])[-1].lower() in ("1", "true", "yes")


def _split_revision(segs: list[str]) -> tuple[str, list[str]]:
    """Split ``<rev>/<path...>``; ``refs/pr/N`` and ``refs/convert/X`` may also come unquoted."""
    if not segs or not segs[0]:
        raise _HubError(404, None, "Not Found")
    n = 3 if len(segs) >= 3 and segs[0] == "refs" and segs[1] in ("pr", "convert") else 1
    return "/".join(segs[:n]), segs[n:]


def _dirs(files: Iterable[str]) -> set[str]:
    parts = (p.split("/") for p in files)
    return {"/".join(p[:i]) for p in parts for i in range(1, len(p))}


def _tree_oid(files: Mapping[str, Blob], base: str) -> str:
    """Git tree id of directory ``base`` (``""`` is the root)."""
    prefix = f"{base}/" if base else ""
    children: dict[str, str | None] = {}
    for path, blob in files.items():
        if path.startswith(prefix):
            name, sep, _ = path[len(prefix) :].partition("/")
            children[name] = None if sep else blob.oid
    body = b""
    for name in sorted(children, key=lambda n: n + "/" if children[n] is None else n):
        oid = children[name]
        mode, oid = ("100644", oid) if oid else ("40000", _tree_oid(files, prefix + name))
        body += f"{mode} {name}".encode() + b"\0" + bytes.fromhex(oid)
    return hashlib.sha1(b"tree %d\0" % len(body) + body).hexdigest()


def _entry_oid(files: Mapping[str, Blob], path: str) -> str | None:
    if path in files:
        return files[path].oid
    return _tree_oid(files, path) if path in _dirs(files) else None


def _lfs(blob: Blob, sha_key: str) -> Json:
    return {sha_key: blob.sha256, "size": len(blob.data), "pointerSize": blob.pointer_size}


def _entry(files: Mapping[str, Blob], path: str) -> Json:
    """A ``/tree`` / ``/paths-info`` entry for a file or a directory."""
    blob = files.get(path)
    if blob is None:
        return {"type": "directory", "oid": _tree_oid(files, path), "size": 0, "path": path}
    entry: Json = {"type": "file", "oid": blob.oid, "size": len(blob.data), "path": path}
    return {**entry, "lfs": _lfs(blob, "oid")} if blob.lfs else entry


def _byte_range(value: str | None, size: int) -> tuple[int, int] | None:
    """Parse a single ``bytes=`` range (inclusive bounds); ``None`` means serve the whole body."""
    match = _RANGE.fullmatch(value) if value else None
    if match is None or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if not first:
        if int(last) == 0:
            raise _Unsatisfiable
        return max(size - int(last), 0), size - 1
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        raise _Unsatisfiable
    return start, min(int(last), size - 1) if last else size - 1


def _content(
    req: _Request, data: bytes, etag: str, headers: Mapping[str, str], name: str
) -> _Reply:
    """Serve ``data`` with ETag, Range (206/416) and If-Range support."""
    quoted = f'"{etag}"'
    out = {
        "Content-Type": mimetypes.guess_type(name)[0] or "application/octet-stream",
        "Content-Disposition": f"inline; filename*=UTF-8''{quote(name)}; filename=\"{name}\";",
        **headers,
        "ETag": quoted,
        "Accept-Ranges": "bytes",
        "Last-Modified": _LAST_MODIFIED,
    }
    if req.headers.get("if-range", quoted).strip() not in (quoted, _LAST_MODIFIED):
        return _Reply(200, out, data)
    try:
        span = _byte_range(req.headers.get("range"), len(data))
    except _Unsatisfiable:
        return _Reply(416, {**out, "Content-Range": f"bytes */{len(data)}"})
    if span is None:
        return _Reply(200, out, data)
    start, end = span
    return _Reply(
        206, {**out, "Content-Range": f"bytes {start}-{end}/{len(data)}"}, data[start : end + 1]
    )


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, hub: HubServer, role: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.hub, self.role = hub, role
        self.connections: set[socket.socket] = set()
        self.conn_lock = threading.Lock()
        self.thread = threading.Thread(target=self.serve_forever, name=f"hub-{role}", daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet when a client resets its connection; report anything else."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        with self.conn_lock:
            for conn in self.connections:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        self.thread.join()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        with self.server.conn_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.conn_lock:
            self.server.connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def do_GET(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        url = urlsplit(self.path)
        req = _Request(
            method=self.command,
            path=url.path,
            query=parse_qs(url.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=self.rfile.read(length) if length else b"",
            host=self.headers.get("Host", ""),
        )
        reply = self.server.hub._dispatch(self.server.role, req)
        peer = int(self.client_address[1])
        record = (req.host, self.server.port, peer, req.method, self.path, req.headers)
        self.server.hub._record(RecordedRequest(self.server.role, *record, reply.status))
        self._write(reply)

    def _write(self, reply: _Reply) -> None:
        self.send_response(reply.status)
        self.send_header("X-Request-Id", f"Root=1-{secrets.token_hex(4)}-{secrets.token_hex(12)}")
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command == "HEAD":
            return
        try:
            self.wfile.write(reply.body[: reply.drop_after])
            if reply.drop_after is not None:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
        except ConnectionError:  # the client went away mid-body
            self.close_connection = True


class HubServer:
    """A Hub + CDN pair on loopback; use as a context manager or call :meth:`close`.

    Public attributes may be changed between requests: ``lfs_threshold`` (files strictly larger
    are LFS), ``link_ttl`` (seconds a signed CDN link lives), ``page_size`` (``/tree`` entries per
    page: 1000 on the real Hub, at most 50 with ``expand``), ``resolve_cache`` (307 small files).
    """

    def __init__(
        self,
        *,
        lfs_threshold: int = DEFAULT_LFS_THRESHOLD,
        link_ttl: float = 3600.0,
        page_size: int = 1000,
        resolve_cache: bool = False,
        cdn_host: str = "127.0.0.1",
    ) -> None:
        self.lfs_threshold, self.link_ttl = lfs_threshold, link_ttl
        self.page_size, self.resolve_cache = page_size, resolve_cache
        self._lock = threading.RLock()
        self._repos: dict[tuple[str, str], Repo] = {}
        self._blobs: dict[str, bytes] = {}
        self._tokens: set[str] = set()
        self._requests: list[RecordedRequest] = []
        self._clock_offset = 0.0
        self._fault: tuple[int, bool] | None = None
        self._api_faults: list[tuple[int, str | None]] = []
        #: None, "loop" or "endless": how ``/tree`` listings misbehave (see the module comment).
        self.listing: str | None = None
        self._counter = 0
        self._secret = secrets.token_bytes(32)
        self._hub = _HTTPServer(self, "hub")
        self._cdn = _HTTPServer(self, "cdn")
        self.endpoint = f"http://127.0.0.1:{self._hub.port}"
        self.cdn_endpoint = f"http://{cdn_host}:{self._cdn.port}"

    def __enter__(self) -> HubServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop both servers and drop open keep-alive connections."""
        self._hub.stop()
        self._cdn.stop()

    def add_repo(
        self,
        repo_id: str,
        files: Mapping[str, bytes | Path],
        *,
        repo_type: str = "model",
        branch: str = "main",
        private: bool = False,
        gated: bool = False,
        tokens: Iterable[str] = (),
        lfs_threshold: int | None = None,
        message: str = "Update files",
    ) -> str:
        """Commit exactly ``files`` on ``branch``, creating the repo if needed; returns the sha.

        A new branch starts from the default branch. ``private``, ``gated`` and ``tokens`` (those
        that may read a private repo or download from a gated one) apply when the repo is created.
        """
        if repo_type not in _API_TYPES.values() or repo_id.count("/") != 1:
            raise ValueError(f"unsupported repo {repo_type} {repo_id!r}")
        limit = self.lfs_threshold if lfs_threshold is None else lfs_threshold
        blobs: dict[str, Blob] = {}
        for path, content in files.items():
            data = content.read_bytes() if isinstance(content, Path) else content
            blobs[path.strip("/")] = Blob.make(data, len(data) > limit)
        with self._lock:
            key = (repo_type, repo_id)
            if key not in self._repos:
                self._tokens.update(tokens)
                self._repos[key] = Repo(
                    *key, private, gated, frozenset(tokens), branch, self._date()
                )
            repo = self._repos[key]
            parent = repo.refs.get(branch, repo.refs.get(repo.default_branch))
            self._counter += 1
            seed = f"{key}\n{parent}\n{message}\n{self._counter}\n{_tree_oid(blobs, '')}"
            sha = hashlib.sha1(seed.encode()).hexdigest()
            repo.commits[sha] = Commit(sha, blobs, parent, message, self._date())
            repo.refs[branch] = sha
            self._blobs.update((b.sha256, b.data) for b in blobs.values() if b.lfs)
        return sha

    def add_tag(self, repo_id: str, tag: str, revision: str, *, repo_type: str = "model") -> str:
        """Point tag ``tag`` at ``revision`` (branch or sha); returns the commit sha."""
        with self._lock:
            repo = self._repos[(repo_type, repo_id)]
            sha = repo.refs.get(revision, revision)
            if sha not in repo.commits:
                raise ValueError(f"unknown revision {revision!r}")
            repo.refs[tag] = sha
            repo.tags.add(tag)
        return sha

    def add_token(self, token: str) -> None:
        """Register a valid token that grants no private/gated access (unknown tokens get 401)."""
        with self._lock:
            self._tokens.add(token)

    def advance_clock(self, seconds: float) -> None:
        """Move the server clock (link signing and expiry checks) forward."""
        with self._lock:
            self._clock_offset += seconds

    def drop_next_cdn_body(self, after_bytes: int, *, expire_links: bool = False) -> None:
        """Make the next CDN GET send ``after_bytes`` of its body then close the connection.

        With ``expire_links`` the clock also jumps past every link issued so far: the link
        expires mid-download.
        """
        with self._lock:
            self._fault = (after_bytes, expire_links)

    def fail_api(self, times: int, status: int = 503, retry_after: str | None = None) -> None:
        """Make the next ``times`` API requests answer ``status`` (with ``Retry-After`` if
        given) instead of their answer; ``times=0`` ends the faults."""
        with self._lock:
            self._api_faults = [(status, retry_after)] * times

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, on both servers, in arrival order."""
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def _now(self) -> float:
        return time.time() + self._clock_offset

    def _date(self) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(self._now()))

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _dispatch(self, role: str, req: _Request) -> _Reply:
        try:
            return self._route_cdn(req) if role == "cdn" else self._route_hub(req)
        except _HubError as err:
            return _error_reply(err)
        except Exception as exc:
            return _json(500, {"error": f"{type(exc).__name__}: {exc}"})

    def _route_hub(self, req: _Request) -> _Reply:
        segs = [unquote(s) for s in req.path.strip("/").split("/")]
        if segs[:2] == ["api", "resolve-cache"] and len(segs) >= 7 and segs[2] in _API_TYPES:
            if not _SHA1.fullmatch(segs[5]):
                raise _HubError(400, None, "Invalid commit id")
            repo_id, path = f"{segs[3]}/{segs[4]}", "/".join(segs[6:])
            return self._resolve(req, _API_TYPES[segs[2]], repo_id, segs[5], path, False)
        if segs[0] == "api" and len(segs) >= 4 and segs[1] in _API_TYPES:
            with self._lock:
                fault = self._api_faults.pop(0) if self._api_faults else None
            if fault is not None:
                status, retry_after = fault
                headers = {"Retry-After": retry_after} if retry_after is not None else {}
                return _json(status, {"error": "Service Unavailable"}, headers)
            return self._api(req, _API_TYPES[segs[1]], f"{segs[2]}/{segs[3]}", segs[4:])
        repo_type = "dataset" if segs[0] == "datasets" else "model"
        segs = segs[1:] if repo_type == "dataset" else segs
        if len(segs) >= 4 and segs[2] == "resolve" and req.method in ("GET", "HEAD"):
            revision, tail = _split_revision(segs[3:])
            repo_id, path = f"{segs[0]}/{segs[1]}", "/".join(tail)
            return self._resolve(req, repo_type, repo_id, revision, path, True)
        raise _HubError(404, None, "Not Found")

    def _repo(self, req: _Request, repo_type: str, repo_id: str, *, download: bool) -> Repo:
        """The repo, or the error the Hub answers when this request's token may not see it."""
        auth = req.headers.get("authorization")
        token: str | None = None
        if auth is not None:
            scheme, _, token = auth.partition(" ")
            if scheme.lower() != "bearer" or token not in self._tokens:
                raise _HubError(401, None, "Invalid credentials in Authorization header")
        repo = self._repos.get((repo_type, repo_id))
        if repo is None or (repo.private and token not in repo.tokens):
            if token is None:
                raise _HubError(401, "RepoNotFound", "Invalid username or password.")
            raise _HubError(404, "RepoNotFound", "Repository not found")
        if download and repo.gated and token not in repo.tokens:
            what = f"Access to {repo_type} {repo_id} is restricted"
            login = "You must have access to it and be authenticated to access it. Please log in."
            visit = f"Visit {self.endpoint}/{repo_id} to ask for access."
            if token is None:
                raise _HubError(401, "GatedRepo", f"{what}. {login}")
            raise _HubError(
                403, "GatedRepo", f"{what} and you are not in the authorized list. {visit}"
            )
        return repo

    def _commit(self, repo: Repo, revision: str) -> Commit:
        with self._lock:
            commit = repo.commits.get(repo.refs.get(revision, revision))
        if commit is None:
            raise _HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return commit

    def _api(self, req: _Request, repo_type: str, repo_id: str, rest: list[str]) -> _Reply:
        repo = self._repo(req, repo_type, repo_id, download=False)
        if rest == ["refs"]:
            return _json(200, self._refs_json(repo, "include_prs" in req.query))
        op = rest[0] if rest else "revision"
        revision, tail = _split_revision(rest[1:]) if rest else (repo.default_branch, [])
        commit = self._commit(repo, revision)
        if op == "revision" and not tail:
            return _json(200, self._info_json(repo, commit, _flag(req.query, "blobs")))
        if op == "tree":
            return self._tree(req, repo, commit, "/".join(tail).strip("/"))
        if op == "paths-info" and req.method == "POST":
            paths, expand = self._paths_form(req)
            files, dirs = commit.files, _dirs(commit.files)
            found = [p.strip("/") for p in paths if p.strip("/") in files or p.strip("/") in dirs]
            return _json(200, self._entries(repo, commit, found, expand))
        raise _HubError(404, None, "Not Found")

    def _info_json(self, repo: Repo, commit: Commit, blobs: bool) -> Json:
        siblings: list[Json] = []
        for path, blob in sorted(commit.files.items()):
            sibling: Json = {"rfilename": path}
            if blobs:
                sibling.update(blobId=blob.oid, size=len(blob.data))
                sibling.update({"lfs": _lfs(blob, "sha256")} if blob.lfs else {})
            siblings.append(sibling)
        info: Json = {
            "_id": hashlib.sha1(f"{repo.repo_type}/{repo.repo_id}".encode()).hexdigest()[:24],
            "id": repo.repo_id,
            **({"modelId": repo.repo_id} if repo.repo_type == "model" else {}),
            "author": repo.repo_id.split("/")[0],
            "sha": commit.sha,
            "lastModified": commit.date,
            "private": repo.private,
            "gated": "manual" if repo.gated else False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "createdAt": repo.created,
            "siblings": siblings,
            "usedStorage": sum(len(b.data) for b in commit.files.values()),
        }
        return info

    def _refs_json(self, repo: Repo, include_prs: bool) -> Json:
        with self._lock:
            refs = dict(sorted(repo.refs.items()))
        out: Json = {"branches": [], "converts": [], "tags": [], "pullRequests": []}
        for name, sha in refs.items():
            if name.startswith("refs/pr/"):
                kind, short, full = "pullRequests", name, name
            elif name.startswith("refs/convert/"):
                kind, short, full = "converts", name.removeprefix("refs/convert/"), name
            else:
                kind = "tags" if name in repo.tags else "branches"
                short, full = name, f"refs/{'tags' if name in repo.tags else 'heads'}/{name}"
            out[kind].append({"name": short, "ref": full, "targetCommit": sha})
        return out if include_prs else {k: v for k, v in out.items() if k != "pullRequests"}

    def _tree(self, req: _Request, repo: Repo, commit: Commit, base: str) -> _Reply:
        files, dirs = commit.files, _dirs(commit.files)
        if base and base not in dirs:
            raise _HubError(404, "EntryNotFound", f'{base} does not exist on "{commit.sha}"')
        prefix = f"{base}/" if base else ""
        recursive, expand = _flag(req.query, "recursive"), _flag(req.query, "expand")
        paths = [
            p
            for p in [*sorted(dirs), *sorted(files)]
            if p.startswith(prefix) and (recursive or "/" not in p[len(prefix) :])
        ]
        size = min(self.page_size, EXPAND_PAGE_SIZE) if expand else self.page_size
        start = int(req.query.get("cursor", ["0"])[-1] or 0)
        headers: dict[str, str] = {}
        if self.listing is not None:
            return self._bad_listing(req, size, start)
        if start + size < len(paths):
            query = [
                (k, v) for k, v in parse_qsl(urlencode(req.query, doseq=True)) if k != "cursor"
            ]
            next_url = (
                f"http://{req.host}{req.path}?{urlencode([*query, ('cursor', str(start + size))])}"
            )
            headers["Link"] = f'<{next_url}>; rel="next"'
        return _json(200, self._entries(repo, commit, paths[start : start + size], expand), headers)

    def _bad_listing(self, req: _Request, size: int, start: int) -> _Reply:
        """A page of a listing that never ends: ``"loop"`` alternates between two pages (the
        second links back to the first); ``"endless"`` names ``size`` new files per page."""
        query = [(k, v) for k, v in parse_qsl(urlencode(req.query, doseq=True)) if k != "cursor"]
        nxt = (start + size) % (2 * size) if self.listing == "loop" else start + size
        next_url = f"http://{req.host}{req.path}?{urlencode([*query, ('cursor', str(nxt))])}"
        entries = [{"type": "file", "oid": git_blob_sha1(b"%d" % i), "size": 1,
                    "path": f"generated/{i:09d}.bin"} for i in range(start, start + size)]
        return _json(200, entries, {"Link": f'<{next_url}>; rel="next"'})

    def _entries(self, repo: Repo, commit: Commit, paths: list[str], expand: bool) -> list[Json]:
        entries = [_entry(commit.files, path) for path in paths]
        for entry in entries if expand else []:
            entry["lastCommit"] = self._last_commit(repo, commit, entry["path"])
        return entries

    def _last_commit(self, repo: Repo, commit: Commit, path: str) -> Json:
        current = commit
        while current.parent is not None:
            parent = repo.commits[current.parent]
            if _entry_oid(parent.files, path) != _entry_oid(current.files, path):
                break
            current = parent
        return {"id": current.sha, "title": current.title, "date": current.date}

    @staticmethod
    def _paths_form(req: _Request) -> tuple[list[str], bool]:
        if req.headers.get("content-type", "").startswith("application/json"):
            data = json.loads(req.body or b"{}")
            paths = data.get("paths", [])
            return ([paths] if isinstance(paths, str) else list(paths)), bool(data.get("expand"))
        form = parse_qs(req.body.decode(), keep_blank_values=True)
        return form.get("paths", []), _flag(form, "expand")

    def _resolve(
        self, req: _Request, repo_type: str, repo_id: str, revision: str, path: str, redirect: bool
    ) -> _Reply:
        repo = self._repo(req, repo_type, repo_id, download=True)
        commit = self._commit(repo, revision)
        blob = commit.files.get(path)
        if blob is None:
            raise _HubError(404, "EntryNotFound", "Entry not found", {"X-Repo-Commit": commit.sha})
        headers = {"X-Repo-Commit": commit.sha, "Accept-Ranges": "bytes"}
        if blob.lfs:
            size, etag = str(len(blob.data)), f'"{blob.sha256}"'
            headers.update({"X-Linked-Etag": etag, "X-Linked-Size": size})
            return _redirect(302, self._signed_url(repo, blob, path), headers)
        if redirect and self.resolve_cache:
            prefix = "datasets/" if repo_type == "dataset" else ""
            origin = f"/{prefix}{repo_id}/resolve/{quote(revision, safe='')}/{path}"
            query = urlencode({origin: "", "etag": f'"{blob.oid}"'})
            where = f"/api/resolve-cache/{repo_type}s/{repo_id}/{commit.sha}/{quote(path)}?{query}"
            return _redirect(307, where, headers)
        return _content(req, blob.data, blob.oid, headers, path.rsplit("/", 1)[-1])

    def _signature(self, path: str, expires: int, disposition: str) -> str:
        return hmac.new(
            self._secret, f"{path}\n{expires}\n{disposition}".encode(), hashlib.sha256
        ).hexdigest()

    def _signed_url(self, repo: Repo, blob: Blob, path: str) -> str:
        name = path.rsplit("/", 1)[-1]
        disposition = f"inline; filename*=UTF-8''{quote(name)}; filename=\"{name}\";"
        repo_hash = hashlib.sha256(f"{repo.repo_type}s/{repo.repo_id}".encode()).hexdigest()
        cdn_path = f"/repos/{repo_hash[:2]}/{repo_hash[2:4]}/{repo_hash}/{blob.sha256}"
        expires = int(self._now() + self.link_ttl)
        query = {
            "response-content-disposition": disposition,
            "Expires": str(expires),
            "Signature": self._signature(cdn_path, expires, disposition),
            "Key-Pair-Id": "K3STANDIN",
        }
        return f"{self.cdn_endpoint}{cdn_path}?{urlencode(query)}"

    def _route_cdn(self, req: _Request) -> _Reply:
        if req.method not in ("GET", "HEAD"):
            return _xml_error(405, "MethodNotAllowed", "The method is not allowed.")
        params = {k: v[-1] for k, v in req.query.items()}
        expires = params.get("Expires", "")
        disposition = params.get("response-content-disposition", "")
        expected = self._signature(req.path, int(expires), disposition) if expires.isdigit() else ""
        if not expected or not hmac.compare_digest(params.get("Signature", ""), expected):
            return _xml_error(403, "AccessDenied", "Invalid signature")
        if self._now() > int(expires):
            return _xml_error(403, "AccessDenied", "Request has expired")
        sha256 = req.path.rsplit("/", 1)[-1]
        data = self._blobs.get(sha256)
        if data is None:
            return _xml_error(404, "NoSuchKey", "The specified key does not exist.")
        reply = _content(req, data, sha256, {"Content-Disposition": disposition}, sha256)
        if req.method == "GET" and reply.status in (200, 206):
            with self._lock:
                fault, self._fault = self._fault, None
            if fault is not None:
                reply.drop_after = fault[0]
                if fault[1]:
                    self.advance_clock(self.link_ttl + 1)
        return reply
