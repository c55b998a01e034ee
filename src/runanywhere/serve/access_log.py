"""One access-log line per request, secrets masked (masking.py).

``remote "METHOD target" status bytes seconds "user agent"``: the target as the client sent it
(``raw_path``), with the token and signatures masked wherever they appear; the
``Authorization`` header is never logged. A body cut short logs the bytes of its whole pieces.
A request that did not parse, or a client that left mid-response, gets its one line here and
nothing else (no traceback): :class:`ClientFaultsFilter`.
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError

from .file_response import SendfileResponse
from .masking import mask_target, mask_values

access_log = logging.getLogger("runanywhere.serve.access")
#: aiohttp's own messages about connections (its ``logger=``): errors in the server itself.
protocol_log = logging.getLogger("runanywhere.serve.http")


class ClientFaultsFilter(logging.Filter):
    """Drops aiohttp's report, with a traceback, of a request that did not parse (oversized
    or too many headers, garbage, TLS on the plain port) or of a client that left: each is the
    client's doing, not the server's, and the access log already has its one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, (HttpProcessingError, ConnectionError))


protocol_log.addFilter(ClientFaultsFilter())


class AccessLog(AbstractAccessLogger):
    #: The secrets masked wherever they appear (the token); see :func:`access_log_class`.
    secrets: tuple[str, ...] = ()

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        target = mask_target(request.raw_path, self.secrets)
        agent = mask_values(request.headers.get("User-Agent", "-"), self.secrets)
        if isinstance(response, SendfileResponse):
            sent = response.sent_bytes
        else:
            sent = 0 if request.method == "HEAD" else response.content_length or 0
        self.logger.info('%s "%s %s" %d %d %.3fs "%s"', request.remote, request.method, target,
                         response.status, sent, time, agent)


def access_log_class(token: str | None) -> type[AccessLog]:
    """The access logger of a server with this token (aiohttp builds it from the class)."""

    class TokenMaskingAccessLog(AccessLog):
        secrets = (token,) if token else ()

    return TokenMaskingAccessLog
