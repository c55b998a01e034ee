"""HTTP/1.1 GET on top of ``http.client``: kept-alive connections, redirects, proxies, CA bundles,
tokens only where they belong, and failures that say what happened.

Why not httpx/requests: the body is read with ``readinto1`` straight into our buffers (no copy, no
1 KiB reads), every socket is ours to abort from a watchdog thread, and ``import runanywhere``
stays free of third-party HTTP stacks. Only http and https are ever followed.

Credentials in a URL (``https://user:password@host/file``) are sent as HTTP Basic auth, as
curl, requests and pooch send them (percent-decoded), to that URL's origin only: a redirect to
another host goes without them, and the URL a :class:`Response` names has none.

A :class:`Client` belongs to one worker thread and keeps one connection per origin (and proxy):
a response read to its end hands its connection back, and the next request to that origin reuses
it (no new TCP or TLS handshake). A connection the server closed while idle is reopened once.

The environment is read the way curl and requests read it: ``http_proxy``/``https_proxy``/
``no_proxy`` (credentials in the proxy URL are sent as ``Proxy-Authorization``), and
``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``, ``SSL_CERT_FILE``, ``SSL_CERT_DIR`` for the
certificate authorities. Every failure leaves as a ``DownloadError``: what cannot heal (a host
name that does not resolve, a certificate that does not verify, a proxy that refuses us, a
malformed URL) as a plain one, everything else (refused, reset, timed out, not HTTP, a temporary
DNS failure) as a ``TransientError``, worth another try.

Connects are ours to stop: the socket is created here and handed to the request's :class:`Watch`
before it connects, and the connect waits in slices of ``CONNECT_SLICE`` s, looking at
``Watch.aborted`` in between (a blocking ``connect()`` cannot be broken from another thread, and a
host that drops SYNs holds it for the whole timeout).
"""

from __future__ import annotations

import base64
import errno
import http.client
import os
import selectors
import socket
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import unquote, unquote_to_bytes, urljoin, urlsplit

from ..errors import DownloadError
from ..retry import RETRY_STATUSES, RetryPolicy, TransientError, retry_after_seconds
from .origins import Origin, origin_of

MAX_REDIRECTS = 10
#: Above http.client's read buffer (``io.DEFAULT_BUFFER_SIZE``, 8 KiB): a ``readinto1`` this
#: large takes what the buffer held and leaves it empty (or reads the socket directly).
_FILE_BUFFER = 64 * 1024
REDIRECT_CODES = {301, 302, 303, 307, 308}
USER_AGENT = "runanywhere/0.1 (+python)"
#: How small documents are retried unless the caller says otherwise.
DEFAULT_RETRY = RetryPolicy()
#: How often a connect in progress looks at its request's abort flag.
CONNECT_SLICE = 0.25
_IN_PROGRESS = {errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN,
                getattr(errno, "WSAEWOULDBLOCK", errno.EWOULDBLOCK)}


class Watch(Protocol):
    """A request in flight as another thread sees it (``watch.Request``)."""

    #: Set by the other thread: a connect in progress stops at its next slice.
    aborted: bool

    def attach(self, sock: socket.socket) -> None:
        """Receives each socket: before it connects, once connected (TLS-wrapped), and before a
        kept-alive one carries the next request. Shutting it down breaks a blocked read."""

_tls_lock = threading.Lock()
_tls_contexts: dict[tuple[str | None, str | None], ssl.SSLContext] = {}


def split_userinfo(url: str) -> tuple[str, str | None]:
    """``url`` without its user information, and the ``Authorization`` value that information
    stands for (``Basic``, percent-decoded; None when the URL has none)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url, None
    end = min((i for i in (rest.find(c) for c in "/?#") if i != -1), default=len(rest))
    userinfo, at, host = rest[:end].rpartition("@")
    if not at:
        return url, None
    user, _, password = userinfo.partition(":")
    creds = unquote_to_bytes(user) + b":" + unquote_to_bytes(password)
    return f"{scheme}://{host}{rest[end:]}", "Basic " + base64.b64encode(creds).decode()


def tls_context() -> ssl.SSLContext:
    """The verifying TLS context, with the CA bundle the environment names (as requests and
    curl read it), else the system's."""
    cafile = (os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
              or os.environ.get("SSL_CERT_FILE") or None)
    capath = os.environ.get("SSL_CERT_DIR") or None
    with _tls_lock:
        ctx = _tls_contexts.get((cafile, capath))
        if ctx is None:
            ctx = ssl.create_default_context(cafile=cafile, capath=capath)
            _tls_contexts[(cafile, capath)] = ctx
        return ctx


@dataclass(frozen=True)
class _Route:
    """How to reach an origin: directly, or through a proxy (with its credentials)."""

    scheme: str
    host: str
    port: int
    proxy: tuple[str, int] | None = None
    proxy_auth: str | None = None

    @classmethod
    def of(cls, url: str) -> _Route:
        scheme, host, port = origin_of(url)
        proxy = urllib.request.getproxies().get(scheme)
        if not proxy or urllib.request.proxy_bypass(host):
            return cls(scheme, host, port)
        pp = urlsplit(proxy if "://" in proxy else "http://" + proxy)
        auth = None
        if pp.username is not None:
            creds = f"{unquote(pp.username)}:{unquote(pp.password or '')}"
            auth = "Basic " + base64.b64encode(creds.encode()).decode()
        return cls(scheme, host, port, (pp.hostname or "", pp.port or 8080), auth)

    def connect(self, timeout: float) -> _Conn:
        """A connection object, not connected yet (see :func:`_connect`)."""
        if self.proxy is None:
            if self.scheme == "https":
                return _HTTPS(self.host, self.port, timeout=timeout, context=tls_context())
            return _HTTP(self.host, self.port, timeout=timeout)
        if self.scheme == "https":  # a CONNECT tunnel through the proxy
            conn = _HTTPS(*self.proxy, timeout=timeout, context=tls_context())
            tunnel = {"Proxy-Authorization": self.proxy_auth} if self.proxy_auth else None
            conn.set_tunnel(self.host, self.port, headers=tunnel)
            return conn
        return _HTTP(*self.proxy, timeout=timeout)

    def target(self, url: str) -> str:
        """The request target: absolute-form through a plain HTTP proxy, else the path."""
        if self.proxy is not None and self.scheme == "http":
            return url
        parts = urlsplit(url)
        return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


class _HTTP(http.client.HTTPConnection):
    #: http.client's socket factory (an instance attribute it keeps for this purpose), set per
    #: connect to :func:`_open_socket` with the request's watch.
    _create_connection: Callable[..., socket.socket]


class _HTTPS(http.client.HTTPSConnection):
    _create_connection: Callable[..., socket.socket]


_Conn = _HTTP | _HTTPS


class Response:
    """An open response whose body has not been read yet (or only partly)."""

    def __init__(self, client: Client, route: _Route, url: str, conn: _Conn,
                 resp: http.client.HTTPResponse) -> None:
        self._client = client
        self._route = route
        self.url = url
        self.status = resp.status
        self.headers = resp.headers
        self._conn = conn
        self._resp = resp
        length = self.content_length
        self._left = length if length is not None and not resp.chunked else None
        self._reusable = not resp.will_close
        #: Set by :meth:`close`: the connection went back to the client for the next request.
        self.kept_alive = False
        #: The socket the body is read from once http.client's small read buffer is empty.
        self._sock: socket.socket | None = None

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    @property
    def content_length(self) -> int | None:
        value = self.headers.get("Content-Length")
        if value is None or not value.strip().isdigit():
            return None
        return int(value)

    def readinto1(self, buf: memoryview) -> int:
        """Read what one socket read gives (at most ``len(buf)``); 0 at end of stream.

        The first read goes through http.client's file, which may hold body bytes that came
        with the headers; a read larger than that file's buffer (8 KiB) leaves it empty, so
        the next reads go to the socket itself: ``recv_into`` straight into ``buf``, without
        the file's two Python layers per read. Over TLS a read is one 16 KiB record, so the
        layers ran 64 times per MiB, each under the GIL the other connections wait for
        (8 threads reading 2 GiB of TLS: 1.89 -> 1.62 s)."""
        if self._resp.chunked:
            # Rare for model files; http.client decodes chunked bodies for us.
            data = self._resp.read1(len(buf))
            buf[: len(data)] = data
            return len(data)
        fp = self._resp.fp
        if fp is None:
            return 0
        if self._left is not None:
            buf = buf[: self._left]
            if not buf:
                return 0
        if self._sock is not None:
            n = self._sock.recv_into(buf)
        else:
            n = fp.readinto1(buf)
            if len(buf) > _FILE_BUFFER:  # the file's buffer is empty now
                self._sock = self._conn.sock
        if self._left is not None:
            self._left -= n
        return n

    def read_small(self, limit: int = 65536) -> bytes:
        """Read a small body (error pages, API answers), bounded."""
        try:
            data = self._resp.read(limit)
        except (OSError, http.client.HTTPException):
            return b""
        if self._left is not None:
            self._left -= len(data)
        return data

    def expect_body(self, length: int | None) -> None:
        """The body's length as the caller worked it out (``Content-Range``). Reads follow it; a
        ``Content-Length`` that disagrees means the framing cannot be trusted, so the connection
        is not used again."""
        if length is None or self._resp.chunked:
            return
        if self._left is not None and length != self._left:
            self._reusable = False
        self._left = length

    @property
    def complete(self) -> bool:
        """Was the whole body read (so the connection can carry the next request)?"""
        return self._resp.isclosed() or self._left == 0

    def close(self) -> None:
        """Hand the connection back for the next request if the body was read to its end and
        the server keeps it open; close it otherwise."""
        reusable = self.complete and self._reusable
        try:
            self._resp.close()  # closes the response's file, not the socket
        finally:
            if reusable:
                self._client.give_back(self._route, self._conn)
            else:
                self._conn.close()
            self.kept_alive = reusable


class Client:
    """The HTTP connections of one worker thread (not thread-safe: one per thread)."""

    def __init__(self, *, timeout: float = 60.0, token: str | None = None,
                 token_origins: Iterable[Origin] = ()) -> None:
        self.timeout = timeout
        self.token = token
        self.token_origins = frozenset(token_origins)
        self._idle: dict[_Route, _Conn] = {}
        #: Connections opened (for tests and benchmarks: keep-alive is counted, not assumed).
        self.connects = 0

    def give_back(self, route: _Route, conn: _Conn) -> None:
        old = self._idle.pop(route, None)
        if old is not None and old is not conn:
            old.close()
        self._idle[route] = conn

    def close(self) -> None:
        for conn in self._idle.values():
            conn.close()
        self._idle.clear()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, url: str, headers: dict[str, str] | None = None, *,
            watch: Watch | None = None,
            on_redirect: Callable[[str], object] | None = None) -> Response:
        """GET ``url``, following at most 10 http(s) redirects; the body is left unread.
        ``on_redirect`` is told each place a redirect sends the request (without user
        information), before it goes there.

        Credentials go only to their origin (scheme, host and port), and only while the
        redirects stay on it: once a redirect leaves it (a CDN), they stay behind for good, as
        requests does. That holds for the bearer token (sent to ``token_origins``) and for the
        URL's own user information (sent as Basic auth to the URL's origin; a redirect's
        ``Location`` with credentials of its own brings those). A redirect from https to http of
        a request that carried credentials is refused. ``watch`` receives every socket (see
        :class:`Watch`), so another thread can break a request that hangs, from the connect on.

        Raises only ``DownloadError`` (``TransientError`` for what another try may heal).
        """
        seen: set[str] = set()
        url, basic = split_userinfo(url)
        first = _origin_or_error(url)
        token = self.token if first in self.token_origins else None
        basic_origin = first
        for _ in range(MAX_REDIRECTS + 1):
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise DownloadError(f"refusing to fetch {url!r}: only http and https URLs are"
                                    " followed", url=url)
            seen.add(url)
            here = _origin_or_error(url)
            if here != first:
                token = None
            if here != basic_origin:
                basic = None
            hdrs = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **(headers or {})}
            if basic or token:
                hdrs["Authorization"] = basic or f"Bearer {token}"
            resp = self._send(url, hdrs, watch)
            if resp.status not in REDIRECT_CODES:
                return resp
            location = resp.header("Location")
            resp.close()
            if not location:
                raise DownloadError(f"redirect without Location from {url}", url=url,
                                    status=resp.status)
            nxt, own = split_userinfo(urljoin(url, location))
            if own:
                basic, basic_origin = own, _origin_or_error(nxt)
            carried = token or basic
            if carried and parts.scheme == "https" and urlsplit(nxt).scheme != "https":
                raise DownloadError(f"refusing a redirect from https to {urlsplit(nxt).scheme}"
                                    f" at {url}: the request carried credentials", url=url,
                                    status=resp.status)
            if nxt in seen:
                raise DownloadError(f"redirect loop at {url}", url=url, status=resp.status)
            if on_redirect is not None:
                on_redirect(nxt)
            url = nxt
        raise DownloadError(f"more than {MAX_REDIRECTS} redirects starting at {url}", url=url)

    def preconnect(self, url: str, watch: Watch | None = None) -> bool:
        """Connect (TCP, TLS) to where ``url`` is served and keep the connection for the next
        request there, without sending one: a stream that knows where it will ask connects
        while the first answer is still on its way. False if it could not; the request meets
        (and reports) the failure itself."""
        try:
            route = _Route.of(url)
            if route in self._idle:
                return True
            conn = route.connect(self.timeout)
        except (ValueError, http.client.InvalidURL):
            return False
        self.connects += 1
        try:
            _connect(conn, route, url, watch)
        except (DownloadError, OSError, http.client.HTTPException):
            conn.close()
            return False
        except BaseException:
            conn.close()
            raise
        self._idle[route] = conn
        return True

    def _send(self, url: str, headers: dict[str, str], watch: Watch | None) -> Response:
        try:
            route = _Route.of(url)
        except ValueError as e:  # a proxy variable with a port out of range
            raise DownloadError(f"cannot route {url}: {e} (check http_proxy/https_proxy)",
                                url=url) from None
        if route.proxy is not None and route.scheme == "http" and route.proxy_auth:
            headers = {**headers, "Proxy-Authorization": route.proxy_auth}
        idle = self._idle.pop(route, None)
        for reused in ((True, False) if idle is not None else (False,)):
            step = "sending the request to"
            try:
                conn = idle if reused and idle is not None else route.connect(self.timeout)
            except http.client.InvalidURL as e:
                raise DownloadError(f"invalid URL {url!r}: {e}", url=url) from None
            try:
                if not reused:
                    self.connects += 1
                    step = "connecting to"
                    _connect(conn, route, url, watch)
                    step = "sending the request to"
                if watch is not None and conn.sock is not None:
                    watch.attach(conn.sock)
                conn.request("GET", route.target(url), headers=headers)
                step = "waiting for the answer of"
                resp = conn.getresponse()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                conn.close()
                if reused:
                    continue  # the server closed it while idle: once more on a new one
                raise _transient(step, url, e) from e
            except DownloadError:
                conn.close()
                raise
            except http.client.InvalidURL as e:  # control characters in the URL
                conn.close()
                raise DownloadError(f"invalid URL {url!r}: {e}", url=url) from None
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                raise _transient(step, url, e) from e
            except BaseException:
                conn.close()
                raise
            if resp.status == 407:
                resp.close()
                conn.close()
                raise DownloadError(f"the proxy for {url} refused us (407 Proxy Authentication"
                                    " Required): give its user and password in the proxy URL"
                                    " (http_proxy/https_proxy), before an @", url=url,
                                    status=407)
            return Response(self, route, url, conn, resp)
        raise AssertionError("unreachable")


def _origin_or_error(url: str) -> Origin:
    try:
        return origin_of(url)
    except ValueError as e:  # a port out of range, a malformed IPv6 address
        raise DownloadError(f"invalid URL {url!r}: {e}", url=url) from None


def _transient(step: str, url: str, e: BaseException) -> TransientError:
    """A failure that another try may not meet: refused, reset, timed out, not HTTP."""
    what = " ".join(f"{type(e).__name__}: {e}".split())
    return TransientError(f"{step} {url} failed: {what}", url=url)


def _connect(conn: _Conn, route: _Route, url: str, watch: Watch | None) -> None:
    """Connect through :func:`_open_socket` (so ``watch`` sees the socket before it connects),
    turning failures that no retry can heal into a clear ``DownloadError``."""

    def open_socket(address: tuple[str, int], timeout: float | None = None,
                    source_address: object = None) -> socket.socket:
        return _open_socket(address, timeout, watch)

    conn._create_connection = open_socket
    host = route.proxy[0] if route.proxy else route.host
    try:
        conn.connect()
    except socket.gaierror as e:
        if e.errno == socket.EAI_AGAIN:  # the resolver did not answer in time: may heal
            raise TransientError(f"cannot resolve host {host} for now ({url}):"
                                 f" {e.strerror or e}", url=url) from e
        raise DownloadError(f"cannot resolve host {host} ({url}): {e.strerror or e}",
                            url=url) from e
    except ssl.SSLCertVerificationError as e:
        raise DownloadError(
            f"certificate for {route.host} is not trusted ({e.verify_message}; set SSL_CERT_FILE"
            f" or REQUESTS_CA_BUNDLE to the CA that signed it): {url}", url=url) from e
    except UnicodeError as e:  # a host name IDNA cannot encode
        raise DownloadError(f"invalid host name {host!r} ({url}): {e}", url=url) from None
    except OSError as e:
        if "Tunnel connection failed" in str(e):
            raise DownloadError(f"the proxy would not connect us to {route.host}: {e}",
                                url=url) from e
        raise
    if watch is not None and conn.sock is not None:
        watch.attach(conn.sock)  # the TLS socket now carries the bytes


def _open_socket(address: tuple[str, int], timeout: float | None, watch: Watch | None
                 ) -> socket.socket:
    """``socket.create_connection`` that another thread can stop (see the module comment)."""
    host, port = address
    last: OSError | None = None
    for family, kind, proto, _, addr in socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM):
        sock = socket.socket(family, kind, proto)
        try:
            if watch is not None:
                watch.attach(sock)
            _connect_in_slices(sock, addr, timeout, watch)
        except OSError as e:
            sock.close()
            if watch is not None and watch.aborted:
                raise
            last = e
            continue
        sock.settimeout(timeout)
        return sock
    raise last or OSError(f"no address found for {host}")


def _connect_in_slices(sock: socket.socket, addr: tuple[Any, ...], timeout: float | None,
                       watch: Watch | None) -> None:
    sock.setblocking(False)
    code = sock.connect_ex(addr)
    if code == 0:
        return
    if code not in _IN_PROGRESS:
        raise OSError(code, os.strerror(code))
    deadline = None if timeout is None else time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(sock, selectors.EVENT_WRITE)
        while True:
            if watch is not None and watch.aborted:
                raise ConnectionAbortedError(errno.ECONNABORTED, "aborted while connecting")
            left = CONNECT_SLICE if deadline is None else deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(errno.ETIMEDOUT, "timed out while connecting")
            if sel.select(min(CONNECT_SLICE, left)):
                break
    if watch is not None and watch.aborted:  # a shutdown may end a connect as if it succeeded
        raise ConnectionAbortedError(errno.ECONNABORTED, "aborted while connecting")
    code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if code:
        raise OSError(code, os.strerror(code))  # ConnectionRefusedError and its kin


def get_small(url: str, headers: dict[str, str] | None = None, *, timeout: float = 30.0,
              limit: int = 16 * 2**20, client: Client | None = None,
              retry: RetryPolicy | None = DEFAULT_RETRY, cancel: threading.Event | None = None
              ) -> tuple[int, http.client.HTTPMessage, bytes]:
    """GET a small document (an API answer, a catalog): ``(status, headers, body)``, the body
    read whole (at most ``limit`` bytes; more is an error, not a truncation).

    A failure that may heal, and an answer with a status of ``RETRY_STATUSES`` (with its
    ``Retry-After``), is tried again under ``retry`` (None: one try). Raises only
    ``DownloadError`` (as :meth:`Client.get`; :class:`~.retry.RetriesExhausted` when every try
    failed) and ``DownloadCancelledError`` when ``cancel`` is set during a wait."""
    own = client is None
    c = client or Client(timeout=timeout)
    try:
        def once() -> tuple[int, http.client.HTTPMessage, bytes]:
            answer = _get_small_once(c, url, headers, limit)
            status, hdrs, body = answer
            if status in RETRY_STATUSES:
                detail = " ".join(body[:80].decode(errors="replace").split())
                raise TransientError(f"{url} answered HTTP {status}"
                                     + (f": {detail}" if detail else ""), url=url,
                                     status=status,
                                     retry_after=retry_after_seconds(hdrs.get("Retry-After")))
            return answer

        return retry.call(once, cancel=cancel) if retry is not None else once()
    finally:
        if own:
            c.close()


def _get_small_once(client: Client, url: str, headers: dict[str, str] | None, limit: int
                    ) -> tuple[int, http.client.HTTPMessage, bytes]:
    resp = client.get(url, headers)
    try:
        body = resp.read_small(limit + 1)
    finally:
        resp.close()
    if len(body) > limit:
        raise DownloadError(f"{url} answered more than {limit} bytes", url=url)
    return resp.status, resp.headers, body
