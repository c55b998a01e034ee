"""How big is the file at a URL (or at the first of its mirrors that says so)?

One request, ``Range: bytes=0-0``, answered with the total in ``Content-Range`` (a 206) or with
the ``Content-Length`` of a whole 200. Shared by the fetch of a file the catalog gives only a
``size_estimate`` for (``fetch.py``) and by ``pull URL`` without a hash (``adhoc.py``), so both
accept the same answers, retry under the same :class:`~.retry.RetryPolicy` as a body request (a
4xx moves to the next mirror at once), send credentials only where ``FetchConfig.auth`` and the
URL allow, and raise typed errors only. A watchdog breaks the request on cancel (from the
connect on) and when its answer takes longer than ``stalls.timeout``.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import DownloadCancelledError, DownloadError
from ..retry import TransientError
from .config import FetchConfig
from .http import Client
from .response import check_status, one_line, total_size
from .watch import Request, watchdog


@dataclass(frozen=True)
class Size:
    """What the probe learned."""

    total: int
    #: Which of the URLs answered.
    index: int
    #: Where that URL's redirects led (later requests may go there directly).
    final: str
    #: The URLs before it that could not say, with why.
    failed: dict[str, str] = field(default_factory=dict)


def probe_size(urls: Sequence[str], config: FetchConfig, cancel: threading.Event) -> Size:
    """The size of the file, asked of each URL in turn. Raises ``DownloadError`` (its ``status``
    is the last answer's when a server answered without a size), ``DownloadCancelledError``."""
    failed: dict[str, str] = {}
    status: int | None = None
    current: list[Request] = []
    stalls = config.stalls
    with Client(timeout=stalls.timeout, token=config.auth.token,
                token_origins=config.auth.origins) as client, \
            watchdog(lambda: list(current), cancel, timeout=stalls.timeout,
                     window=stalls.window, min_speed=stalls.min_speed):
        for index, url in enumerate(urls):
            try:
                total, final = config.retry.call(
                    functools.partial(_ask, client, url, config, cancel, current), cancel=cancel)
            except DownloadCancelledError:
                raise
            except DownloadError as e:
                failed[url] = one_line(str(e))
                status = e.status
                continue
            return Size(total, index, final, failed)
    # Each reason names its URL already.
    raise DownloadError(f"cannot learn the file's size: {'; '.join(failed.values())}",
                        url=urls[0], status=status)


def _ask(client: Client, url: str, config: FetchConfig, cancel: threading.Event,
         current: list[Request]) -> tuple[int, str]:
    """One request: (total size, where it was answered from)."""
    if cancel.is_set():
        raise DownloadCancelledError("download cancelled")
    req = Request(time.monotonic())
    current[:] = [req]
    try:
        try:
            resp = client.get(url, {"Range": "bytes=0-0"}, watch=req)
        except DownloadError:
            _raise_interrupted(req, cancel, url, config)
            raise
        except Exception as e:  # a last guard: whatever happens, the caller gets a typed error
            _raise_interrupted(req, cancel, url, config)
            raise TransientError(f"{url}: {type(e).__name__}: {e}", url=url) from e
        req.answered = time.monotonic()
        try:
            check_status(resp.status, resp.header, url=url, error_body=resp.read_small)
            total = total_size(resp.status, resp.header)
            if total is None:
                raise DownloadError(f"{url} answered HTTP {resp.status} without saying its size",
                                    url=url, status=resp.status)
            if resp.status == 206:
                resp.read_small(2)  # the one byte: the connection may carry the next request
            return total, resp.url
        finally:
            resp.close()
    finally:
        current.clear()


def _raise_interrupted(req: Request, cancel: threading.Event, url: str,
                       config: FetchConfig) -> None:
    """A request the watchdog broke fails for that reason, not for the broken socket's."""
    if cancel.is_set():
        raise DownloadCancelledError("download cancelled") from None
    if req.stalled:
        raise TransientError(f"{url}: no answer within {config.stalls.timeout:.0f} s", url=url,
                             slow=True)
