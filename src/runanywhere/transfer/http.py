"""A small HTTP/1.1 GET on top of ``http.client``: redirects, proxies, tokens, abortable reads.

Why not httpx/requests: the body is read with ``readinto1`` straight into our buffers (no copy, no
1 KiB reads), every socket is ours to abort from a watchdog thread, and ``import runanywhere``
stays free of third-party HTTP stacks. Only http and https are ever followed.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from ..errors import DownloadError

MAX_REDIRECTS = 10
REDIRECT_CODES = {301, 302, 303, 307, 308}
USER_AGENT = "runanywhere/0.1 (+python)"
_ssl_context: ssl.SSLContext | None = None


def _tls() -> ssl.SSLContext:
    global _ssl_context
    if _ssl_context is None:
        _ssl_context = ssl.create_default_context()
    return _ssl_context


@dataclass
class Response:
    """An open response whose body has not been read yet."""

    url: str
    status: int
    headers: http.client.HTTPMessage
    _conn: http.client.HTTPConnection
    _resp: http.client.HTTPResponse

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    @property
    def content_length(self) -> int | None:
        value = self.headers.get("Content-Length")
        if value is None or not value.strip().isdigit():
            return None
        return int(value)

    def readinto1(self, buf: memoryview) -> int:
        """Read what one socket read gives (at most ``len(buf)``); 0 at end of stream."""
        if self._resp.chunked:
            # Rare for model files; http.client decodes chunked bodies for us.
            data = self._resp.read1(len(buf))
            buf[: len(data)] = data
            return len(data)
        fp = self._resp.fp
        if fp is None:
            return 0
        return fp.readinto1(buf)

    def read_small(self, limit: int = 65536) -> bytes:
        """Read a small body (error pages), bounded."""
        try:
            return self._resp.read(limit)
        except (OSError, http.client.HTTPException):
            return b""

    def close(self) -> None:
        try:
            self._resp.close()
        finally:
            self._conn.close()


def _connect(url: str, timeout: float) -> tuple[http.client.HTTPConnection, str]:
    """Open a connection for ``url`` (through a proxy if the environment says so)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme)
    if proxy and urllib.request.proxy_bypass(host):
        proxy = None
    conn: http.client.HTTPConnection
    if proxy:
        pp = urlsplit(proxy if "://" in proxy else "http://" + proxy)
        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(pp.hostname or "", pp.port or 8080,
                                               timeout=timeout, context=_tls())
            conn.set_tunnel(host, port or 443)
        else:
            conn = http.client.HTTPConnection(pp.hostname or "", pp.port or 8080, timeout=timeout)
            target = url  # absolute-form through a plain HTTP proxy
    elif parts.scheme == "https":
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=_tls())
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    return conn, target


def _origin(url: str) -> tuple[str, int | None]:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return (parts.hostname or "").lower(), parts.port or default


def open_url(
    url: str,
    headers: dict[str, str] | None = None,
    *,
    timeout: float = 60.0,
    token: str | None = None,
    token_hosts: tuple[str, ...] = ("huggingface.co", "hf.co"),
    on_socket: Callable[[socket.socket], None] | None = None,
) -> Response:
    """GET ``url`` following at most 10 http(s) redirects; the body is left unread.

    ``token`` is sent as a bearer token only to hosts in ``token_hosts``, and only while the
    redirects stay on the first request's host and port (never after one leaves it, like
    requests). A redirect from https to http of a request that carried the token is refused.
    ``on_socket`` receives each new socket right after it connects, so another thread can break
    a request that hangs before its headers.
    """
    seen: set[str] = set()
    origin = _origin(url)
    for _ in range(MAX_REDIRECTS + 1):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise DownloadError(f"refusing to fetch {url!r}: only http and https URLs are followed",
                                url=url)
        seen.add(url)
        if _origin(url) != origin:
            token = None  # the chain left the first host: the token stays behind for good
        conn, target = _connect(url, timeout)
        hdrs = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **(headers or {})}
        carries = bool(token) and any(parts.hostname == h or parts.hostname.endswith("." + h)
                                      for h in token_hosts)
        if carries:
            hdrs["Authorization"] = f"Bearer {token}"
        try:
            conn.connect()
            sock = conn.sock
            if on_socket is not None and sock is not None:
                on_socket(sock)
            conn.request("GET", target, headers=hdrs)
            resp = conn.getresponse()
        except BaseException:
            conn.close()
            raise
        if resp.status in REDIRECT_CODES:
            location = resp.getheader("Location")
            resp.close()
            conn.close()
            if not location:
                raise DownloadError(f"redirect without Location from {url}", url=url,
                                    status=resp.status)
            nxt = urljoin(url, location)
            if carries and parts.scheme == "https" and urlsplit(nxt).scheme != "https":
                raise DownloadError(f"refusing a redirect from https to {urlsplit(nxt).scheme}"
                                    f" at {url}: the request carried a token", url=url,
                                    status=resp.status)
            if nxt in seen:
                raise DownloadError(f"redirect loop at {url}", url=url, status=resp.status)
            url = nxt
            continue
        return Response(url, resp.status, resp.headers, conn, resp)
    raise DownloadError(f"more than {MAX_REDIRECTS} redirects starting at {url}", url=url)
