"""nginx's access log as records, and what the tests count from them.

The harness's nginx writes one JSON object per request (``log_format ... escape=json``, see
:data:`LOG_FORMAT`), so values with spaces or quotes (an If-Range ETag, a User-Agent) parse
safely. nginx writes a line when a request *ends*: an aborted response may be logged after
later requests, and a response still being sent is not logged yet.

Counting helpers (each takes records, usually already filtered with :func:`select`):

* :func:`connections` -- distinct TCP connections (nginx's ``$connection`` serial numbers)
* :func:`tls_handshakes` -- TLS connections that made a full handshake (a session not reused)
* :func:`bytes_served` -- body bytes sent
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

#: Every value is a JSON string (``$status`` can be ``000``, not a JSON number); ``$harness_auth``
#: is 1 when the request carried an Authorization header (its value is never logged).
LOG_FORMAT = (
    '{"msec":"$msec","site":"$server_name","port":"$server_port","scheme":"$scheme",'
    '"host":"$host","connection":"$connection","connection_requests":"$connection_requests",'
    '"ssl_reused":"$ssl_session_reused","ssl_protocol":"$ssl_protocol",'
    '"method":"$request_method","uri":"$request_uri","status":"$status",'
    '"body_bytes":"$body_bytes_sent","bytes_sent":"$bytes_sent","range":"$http_range",'
    '"if_range":"$http_if_range","authorization":"$harness_auth",'
    '"completion":"$request_completion","request_time":"$request_time",'
    '"user_agent":"$http_user_agent"}'
)


@dataclass(frozen=True)
class Record:
    """One request as nginx logged it."""

    time: float  # when the request ended (``$msec``)
    site: str  # the server block's name ("origin", "cdn", ...)
    port: int  # the port the client connected to (the throttle's, when a site is capped)
    scheme: str  # "http" or "https"
    host: str  # the Host header (or the server name)
    connection: int  # nginx's connection serial number: equal on one kept-alive connection
    connection_requests: int  # 1 for the first request on its connection, then 2, 3, ...
    ssl_reused: bool | None  # TLS session resumed (None on plain http)
    ssl_protocol: str  # "TLSv1.3", or "" on plain http
    method: str
    uri: str  # ``$request_uri``: path and query as sent
    status: int  # 0 when nginx answered nothing (``000``)
    body_bytes: int  # ``$body_bytes_sent``
    bytes_sent: int  # headers included
    range: str | None  # the Range header, if any
    if_range: str | None  # the If-Range header, if any
    authorization: bool  # an Authorization header was sent (its value is not logged)
    completed: bool  # nginx sent the whole response (``$request_completion``)
    request_time: float
    user_agent: str

    @property
    def path(self) -> str:
        """``uri`` without its query string."""
        return self.uri.split("?", 1)[0]

    @property
    def range_span(self) -> tuple[int, int | None] | None:
        """``bytes=A-B`` as (A, B), ``bytes=A-`` as (A, None); None without a simple Range."""
        if not self.range or not self.range.startswith("bytes=") or "," in self.range:
            return None
        first, _, last = self.range[6:].partition("-")
        try:
            return int(first), (int(last) if last else None)
        except ValueError:
            return None


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 0


def parse_line(line: str, ports: Mapping[int, int] | None = None) -> Record | None:
    """One log line as a :class:`Record`, or None for a line that is not one (a torn write).
    ``ports`` maps nginx's own listening ports to the ports clients used (a capped site listens
    behind the throttle proxy)."""
    try:
        d = json.loads(line)
    except ValueError:
        return None
    if not isinstance(d, dict):
        return None
    try:
        port = _int(d["port"])
        reused = d["ssl_reused"]
        return Record(
            time=float(d["msec"] or 0), site=d["site"], port=(ports or {}).get(port, port),
            scheme=d["scheme"], host=d["host"], connection=_int(d["connection"]),
            connection_requests=_int(d["connection_requests"]),
            ssl_reused=None if reused in ("", "-") else reused == "r",
            ssl_protocol=d["ssl_protocol"], method=d["method"], uri=d["uri"],
            status=_int(d["status"]), body_bytes=_int(d["body_bytes"]),
            bytes_sent=_int(d["bytes_sent"]), range=d["range"] or None,
            if_range=d["if_range"] or None, authorization=d["authorization"] == "1",
            completed=d["completion"] == "OK", request_time=float(d["request_time"] or 0),
            user_agent=d["user_agent"])
    except (KeyError, TypeError, ValueError):
        return None


def read_log(path: Path, ports: Mapping[int, int] | None = None, since: int = 0
             ) -> list[Record]:
    """Every record of the log at ``path`` (none if it does not exist yet), from byte offset
    ``since`` on (a size the log had earlier: only what was logged after it)."""
    try:
        with open(path, "rb") as f:
            f.seek(since)
            text = f.read().decode(errors="replace")
    except FileNotFoundError:
        return []
    return [r for r in (parse_line(ln, ports) for ln in text.splitlines() if ln.strip())
            if r is not None]


def select(records: Iterable[Record], *, uri: str | None = None, prefix: str | None = None,
           contains: str | None = None, site: str | None = None, port: int | None = None,
           scheme: str | None = None, status: int | None = None,
           authorized: bool | None = None) -> list[Record]:
    """The records matching every filter given: ``uri`` equal to ``$request_uri`` (query
    included), ``prefix`` of the path, ``contains`` anywhere in the uri, ``site`` name, client
    ``port``, ``scheme``, ``status``, and whether the request carried an ``Authorization``."""
    out = []
    for r in records:
        if uri is not None and r.uri != uri:
            continue
        if prefix is not None and not r.path.startswith(prefix):
            continue
        if contains is not None and contains not in r.uri:
            continue
        if site is not None and r.site != site:
            continue
        if port is not None and r.port != port:
            continue
        if scheme is not None and r.scheme != scheme:
            continue
        if status is not None and r.status != status:
            continue
        if authorized is not None and bool(r.authorization) != authorized:
            continue
        out.append(r)
    return out


def connections(records: Iterable[Record]) -> int:
    """Distinct TCP connections that carried these requests."""
    return len({r.connection for r in records})


def connections_by_path(records: Iterable[Record]) -> dict[str, int]:
    """Per path (no query): how many distinct connections asked for it."""
    seen: dict[str, set[int]] = {}
    for r in records:
        seen.setdefault(r.path, set()).add(r.connection)
    return {path: len(conns) for path, conns in seen.items()}


def tls_handshakes(records: Iterable[Record]) -> int:
    """Full TLS handshakes: distinct https connections whose session was not resumed."""
    return len({r.connection for r in records if r.ssl_reused is False})


def tls_resumptions(records: Iterable[Record]) -> int:
    """https connections that resumed an earlier session (an abbreviated handshake)."""
    return len({r.connection for r in records if r.ssl_reused is True})


def bytes_served(records: Iterable[Record]) -> int:
    """Body bytes nginx sent for these requests."""
    return sum(r.body_bytes for r in records)
