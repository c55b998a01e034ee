"""The signer behind the harness's Hub route (nginx verifies links but cannot make them).

nginx answers ``/{repo}/resolve/{rev}/{path}`` on the origin site by proxying to this small
HTTP server, which replies as the Hugging Face Hub does for an LFS file: ``302 Found`` with

* ``Location``: the CDN site's ``{prefix}{repo}/{path}?expires=E&md5=H``, a link valid until E
  (Unix seconds), H = base64url(md5("E" + decoded path + " " + secret)), no padding: exactly
  what nginx's ``secure_link $arg_md5,$arg_expires`` with
  ``secure_link_md5 "$secure_link_expires$uri <secret>"`` checks (a wrong H or a past E: 403);
* ``X-Repo-Commit`` (40 hex: the revision if it is one, else derived from repo and revision),
  ``X-Linked-Etag`` and ``ETag`` (the quoted sha256 of the file), ``X-Linked-Size``.

A missing file is a 404 with ``X-Error-Code: EntryNotFound``; with a ``token`` set, a request
without ``Authorization: Bearer <token>`` is a 401 with ``X-Error-Code: RepoNotFound``. Files
live at ``{root}/{repo}/{path}`` whatever the revision. nginx sends ``X-Forwarded-Proto`` so the
link keeps the scheme of the request when the CDN has it.
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
import time
import urllib.parse
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

_RESOLVE = re.compile(r"^/(?P<repo>.+?)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")
_HEX40 = re.compile(r"^[0-9a-f]{40}$")


def sign(path: str, expires: int, secret: str) -> str:
    """The ``md5`` argument nginx's secure_link expects for the decoded URI ``path``."""
    digest = hashlib.md5(f"{expires}{path} {secret}".encode(), usedforsecurity=False).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def commit_of(repo: str, rev: str) -> str:
    """What the fake Hub reports as ``X-Repo-Commit``: the revision when it is a commit id."""
    if _HEX40.match(rev):
        return rev
    return hashlib.sha1(f"{repo}@{rev}".encode(), usedforsecurity=False).hexdigest()


class HubSigner:
    """A threaded HTTP server on 127.0.0.1 answering resolve requests with signed redirects."""

    def __init__(self, root: Path, secret: str, cdn_bases: Mapping[str, str], *,
                 prefix: str = "/lfs/", ttl: float = 3600.0, token: str | None = None,
                 cdn_scheme: str | None = None) -> None:
        self.root = Path(root).resolve()
        self.secret = secret
        self.cdn_bases = dict(cdn_bases)  # scheme -> "https://127.0.0.1:PORT"
        self.prefix = "/" + prefix.strip("/") + "/"
        self.ttl = ttl  # may be changed while running (a test shortening the next links)
        self.token = token
        self.cdn_scheme = cdn_scheme
        self._hashes: dict[tuple[str, int, int], str] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # -- links --------------------------------------------------------------------------------
    def link_path(self, repo: str, path: str) -> str:
        """The decoded URI path a link to ``repo``'s ``path`` has on the CDN."""
        return f"{self.prefix}{repo.strip('/')}/{path.lstrip('/')}"

    def signed_url(self, repo: str, path: str, *, expires: int | None = None,
                   scheme: str | None = None, secret: str | None = None) -> str:
        """A CDN link as the Hub route would give it (``expires`` in Unix seconds, default now
        + ttl). A past ``expires`` or another ``secret`` makes links the CDN must refuse."""
        if expires is None:
            expires = int(time.time() + self.ttl + 0.999)
        scheme = scheme or self.cdn_scheme or next(iter(self.cdn_bases))
        if scheme not in self.cdn_bases:
            scheme = next(iter(self.cdn_bases))
        link = self.link_path(repo, path)
        query = urllib.parse.urlencode({"expires": expires,
                                        "md5": sign(link, expires, secret or self.secret)})
        return f"{self.cdn_bases[scheme]}{urllib.parse.quote(link)}?{query}"

    def remember(self, file: Path, sha256: str) -> None:
        """Take ``file``'s sha256 from the caller (who knows it already), instead of hashing
        it on the first resolve; forgotten like any other once the size or mtime changes."""
        st = file.stat()
        with self._lock:
            self._hashes[(str(file), st.st_size, st.st_mtime_ns)] = sha256

    def sha256(self, file: Path) -> str:
        """The file's sha256, remembered while its size and mtime stay the same."""
        st = file.stat()
        key = (str(file), st.st_size, st.st_mtime_ns)
        with self._lock:
            known = self._hashes.get(key)
        if known is None:
            h = hashlib.sha256()
            with open(file, "rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
            known = h.hexdigest()
            with self._lock:
                self._hashes[key] = known
        return known

    # -- serving ------------------------------------------------------------------------------
    def answer(self, raw_path: str, authorization: str | None, proto: str | None
               ) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body) for one resolve request."""
        m = _RESOLVE.match(raw_path.split("?", 1)[0])
        if not m:
            return 404, {"X-Error-Code": "EntryNotFound"}, b"not a resolve URL\n"
        repo, rev, path = (urllib.parse.unquote(m[k]) for k in ("repo", "rev", "path"))
        if self.token is not None and authorization != f"Bearer {self.token}":
            return 401, {"X-Error-Code": "RepoNotFound"}, b"Repository not found\n"
        file = (self.root / repo / path).resolve()
        if not file.is_relative_to(self.root) or not file.is_file():
            return 404, {"X-Error-Code": "EntryNotFound"}, b"Entry not found\n"
        sha = self.sha256(file)
        headers = {
            "Location": self.signed_url(repo, path, scheme=self.cdn_scheme or proto),
            "X-Repo-Commit": commit_of(repo, rev),
            "X-Linked-Etag": f'"{sha}"', "ETag": f'"{sha}"',
            "X-Linked-Size": str(file.stat().st_size),
        }
        return 302, headers, b""

    def start(self) -> HubSigner:
        signer = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, body: bool) -> None:
                status, headers, data = signer.answer(
                    self.path, self.headers.get("Authorization"),
                    self.headers.get("X-Forwarded-Proto"))
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def do_GET(self) -> None:
                self._reply(True)

            def do_HEAD(self) -> None:
                self._reply(False)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="hub-signer")
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
