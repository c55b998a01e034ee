"""HTTP to an OpenAI-compatible endpoint with the standard library (``http.client``, ``ssl``).

- One connection per request (``Connection: close``): a streamed answer owns its socket, so
  cancelling it is closing that socket, which the server sees at once (llama.cpp's server and
  ``runanywhere serve`` stop generating when their client leaves).
- Retries: a request answered 408, 429, 500, 502, 503 or 504, or not answered at all (refused,
  reset, timed out before the status line), is sent again up to ``max_retries`` times, after
  ``Retry-After`` when the server gives one (at most ``MAX_WAIT`` seconds), else after an
  exponential backoff with jitter (0.5 s, 1 s, 2 s, ... at most 8 s). Nothing is retried once
  a body has begun to be read: a stream is never replayed.
- Waits (connecting, the backoff) look at ``should_stop`` every ``SLICE`` seconds, so a cancel
  is never held up by a retry.
- Certificates from the system (``SSL_CERT_FILE``/``SSL_CERT_DIR`` as OpenSSL reads them);
  proxies from ``https_proxy``/``http_proxy``/``no_proxy`` (credentials included), always
  through a ``CONNECT`` tunnel.
- ``timeout`` bounds how long an answer may stay silent, not how long it may take.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import http.client
import json
import random
import socket
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

from .endpoint import EndpointConfig
from .errors import RemoteAPIError, RemoteUnavailableError, error_for

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
#: The longest ``Retry-After`` honoured (a longer one is an answer: the error is raised).
MAX_WAIT = 60.0
BACKOFF = 0.5
BACKOFF_CAP = 8.0
SLICE = 0.05
#: Bytes of an error answer read for its message.
MAX_ERROR_BODY = 64 * 1024
USER_AGENT = "runanywhere-llm-openai"

StopCheck = Callable[[], bool]


class Stopped(Exception):
    """``should_stop`` said so while waiting (connecting, backing off)."""


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` in seconds (a number of seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _sleep(seconds: float, should_stop: StopCheck | None) -> None:
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        if should_stop is not None and should_stop():
            raise Stopped
        time.sleep(min(SLICE, left))


class Response:
    """An answer being read; ``abort()`` (any thread) cuts its connection."""

    def __init__(self, conn: http.client.HTTPConnection, resp: http.client.HTTPResponse,
                 url: str) -> None:
        self._conn = conn
        self._resp = resp
        self.url = url
        self.status = resp.status
        self.headers = resp.headers
        self._aborted = threading.Event()

    @property
    def aborted(self) -> bool:
        return self._aborted.is_set()

    def lines(self) -> Iterator[bytes]:
        """The body line by line (server-sent events); ends at its end or at ``abort()``."""
        while True:
            try:
                line = self._resp.readline()
            except (OSError, ValueError, http.client.HTTPException) as e:
                if self.aborted:
                    return
                raise self._lost(e) from e
            if not line:
                return
            yield line

    def read(self, limit: int | None = None) -> bytes:
        """The body (at most ``limit`` bytes)."""
        try:
            return self._resp.read(limit) if limit is not None else self._resp.read()
        except (OSError, ValueError, http.client.HTTPException) as e:
            raise self._lost(e) from e

    def _lost(self, e: BaseException) -> RemoteUnavailableError:
        what = "went silent" if isinstance(e, (TimeoutError, socket.timeout)) else "broke off"
        return RemoteUnavailableError(f"{self.url}: the answer {what} ({e})", url=self.url)

    def abort(self) -> None:
        """Cut the connection: a reader blocked in it wakes up at once."""
        self._aborted.set()
        sock = self._conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):  # closed already
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._resp.close()
        self._conn.close()

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Client:
    """Requests to one endpoint (``config.base_url``), with its key and headers."""

    def __init__(self, config: EndpointConfig) -> None:
        self.config = config
        parts = urlsplit(config.base_url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.https else 80)
        self.prefix = parts.path.rstrip("/")
        self._ssl = ssl.create_default_context() if self.https else None

    def url(self, path: str) -> str:
        return f"{self.config.base_url}{path}"

    # -- requests ----------------------------------------------------------------------------------
    def request(self, method: str, path: str, *, body: bytes | None = None,
                content_type: str | None = None, accept: str = "application/json",
                should_stop: StopCheck | None = None) -> Response:
        """Send (retrying as the module says) and return the answer once its status is 2xx;
        raise the typed error of any other. The caller reads and closes the response."""
        headers = {"User-Agent": USER_AGENT, "Accept": accept, "Connection": "close",
                   **dict(self.config.headers)}
        if self.config.api_key:
            headers["Authorization"] = f"Bearer {self.config.api_key}"
        if content_type is not None:
            headers["Content-Type"] = content_type
        url = self.url(path)
        attempt = 0
        while True:
            try:
                response = self._send(method, self.prefix + path, headers, body, url,
                                      should_stop)
            except RemoteUnavailableError:
                if attempt >= self.config.max_retries:
                    raise
                wait = None
            else:
                if response.status < 300:
                    return response
                with response:
                    error_body = response.read(MAX_ERROR_BODY)
                wait = retry_after_seconds(response.headers.get("Retry-After"))
                if response.status not in RETRY_STATUSES or attempt >= self.config.max_retries \
                        or (wait is not None and wait > MAX_WAIT):
                    raise error_for(response.status, error_body, url, wait)
            if wait is None:
                high = min(BACKOFF_CAP, BACKOFF * 2**attempt)
                wait = random.uniform(high / 2, high)
            _sleep(wait, should_stop)
            attempt += 1

    def json(self, method: str, path: str, doc: Any = None,
             should_stop: StopCheck | None = None) -> Any:
        """A JSON request answered with JSON."""
        body = None if doc is None else json.dumps(doc).encode()
        with self.request(method, path, body=body,
                          content_type=None if doc is None else "application/json",
                          should_stop=should_stop) as r:
            raw = r.read()
        try:
            return json.loads(raw)
        except ValueError:
            raise RemoteAPIError(f"{self.url(path)} answered something that is not JSON:"
                                 f" {raw[:200]!r}", url=self.url(path)) from None

    # -- one attempt -------------------------------------------------------------------------------
    def _send(self, method: str, target: str, headers: dict[str, str], body: bytes | None,
              url: str, should_stop: StopCheck | None) -> Response:
        conn = self._connection()
        try:
            self._connect(conn, should_stop)
            conn.request(method, target, body=body, headers=headers)
            assert conn.sock is not None
            conn.sock.settimeout(self.config.timeout)
            resp = conn.getresponse()
        except Stopped:
            conn.close()
            raise
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            if isinstance(e, ssl.SSLCertVerificationError):
                raise RemoteAPIError(f"{url}: the server's certificate is not trusted"
                                     f" ({e.verify_message}; set SSL_CERT_FILE to the CA that"
                                     " signed it)", url=url) from e
            raise RemoteUnavailableError(f"{url}: no answer ({e or type(e).__name__})",
                                         url=url) from e
        return Response(conn, resp, url)

    def _connection(self) -> http.client.HTTPConnection:
        proxy = self._proxy()
        host, port = (proxy.hostname or "", proxy.port or 8080) if proxy else (self.host,
                                                                              self.port)
        conn: http.client.HTTPConnection
        if self.https:
            conn = http.client.HTTPSConnection(host, port, context=self._ssl,
                                               timeout=self.config.connect_timeout)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=self.config.connect_timeout)
        if proxy is not None:
            tunnel: dict[str, str] = {}
            if proxy.username is not None:
                cred = f"{unquote(proxy.username)}:{unquote(proxy.password or '')}"
                tunnel["Proxy-Authorization"] = "Basic " + base64.b64encode(
                    cred.encode()).decode()
            conn.set_tunnel(self.host, self.port, headers=tunnel)
        return conn

    def _proxy(self) -> Any:
        if urllib.request.proxy_bypass(f"{self.host}:{self.port}") or \
                urllib.request.proxy_bypass(self.host):
            return None
        url = urllib.request.getproxies().get("https" if self.https else "http")
        return urlsplit(url if "://" in url else f"http://{url}") if url else None

    def _connect(self, conn: http.client.HTTPConnection, should_stop: StopCheck | None
                 ) -> None:
        """``conn.connect()`` in a helper thread, so a cancel need not wait for a slow
        connect (or a host that drops packets) to give up."""
        if should_stop is None:
            conn.connect()
            return
        done, stopped = threading.Event(), threading.Event()
        failure: list[BaseException] = []

        def connect() -> None:
            try:
                conn.connect()
                if stopped.is_set():  # given up on meanwhile: nobody will use this socket
                    conn.close()
            except BaseException as e:
                failure.append(e)
            finally:
                done.set()

        threading.Thread(target=connect, daemon=True, name="openai-connect").start()
        while not done.wait(SLICE):
            if should_stop():
                stopped.set()
                raise Stopped
        if failure:
            raise failure[0]
