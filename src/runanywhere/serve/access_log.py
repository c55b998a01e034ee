"""One access-log line per request, secrets masked."""

from __future__ import annotations

import logging
import re

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from .file_response import SendfileResponse

access_log = logging.getLogger("runanywhere.serve.access")
_SECRET_QUERY = re.compile(r"((?:^|[?&])(?:token|sig)=)[^&]*")


class AccessLog(AbstractAccessLogger):
    """``remote "METHOD target" status bytes seconds "user agent"``; tokens and signatures in
    the query are masked."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        target = _SECRET_QUERY.sub(r"\1***", request.path_qs)
        if isinstance(response, SendfileResponse):
            sent = response.sent_bytes
        else:
            sent = 0 if request.method == "HEAD" else response.content_length or 0
        self.logger.info('%s "%s %s" %d %d %.3fs "%s"', request.remote, request.method, target,
                         response.status, sent, time, request.headers.get("User-Agent", "-"))
