"""OpenAI's error objects: ``{"error": {"message", "type", "param", "code"}}`` with the status
OpenAI's clients map to their exception classes (the ``openai`` package's ``_make_status_error``:
400 BadRequestError, 401 AuthenticationError, 403 PermissionDeniedError, 404 NotFoundError,
413/422 ..., 429 RateLimitError, 5xx InternalServerError).

Routes raise :class:`APIError` for what the request got wrong; :func:`from_model_error` maps the
core's typed errors (a model that is not cached, an option out of range, a failed load) to the
status that says whose fault it is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from ...errors import (
    AudioError,
    DownloadCancelledError,
    DownloadError,
    InsufficientStorageError,
    InvalidOptionError,
    ModelError,
    ModelNotFoundError,
    OfflineError,
    PromptTooLongError,
    RuntimeUnavailableError,
    TranscriptionError,
)
from ..responses import json_response

if TYPE_CHECKING:
    from ..context import ServeContext

#: OpenAI's error ``type`` for each status it uses.
TYPES = {400: "invalid_request_error", 401: "invalid_request_error",
         403: "invalid_request_error", 404: "invalid_request_error",
         405: "invalid_request_error", 413: "invalid_request_error",
         415: "invalid_request_error", 429: "requests", 503: "server_error"}
#: The ``code`` of the errors the middleware answers for this group (401, 403, 404, 405).
CODES = {401: "invalid_api_key", 403: "forbidden_host", 404: "unknown_url",
         405: "method_not_allowed"}


class APIError(Exception):
    """An error answer in OpenAI's shape (raised by the routes, answered by the handler)."""

    def __init__(self, status: int, message: str, *, param: str | None = None,
                 code: str | None = None, type: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type or TYPES.get(status, "server_error" if status >= 500
                                      else "invalid_request_error")
        self.headers = headers

    def doc(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param,
                          "code": self.code}}

    def response(self) -> web.Response:
        return json_response(self.doc(), self.status, self.headers)


def bad_request(message: str, param: str | None = None, code: str = "invalid_value"
                ) -> APIError:
    return APIError(400, message, param=param, code=code)


def model_not_found(model_id: str, hint: str = "") -> APIError:
    return APIError(404, f"The model '{model_id}' does not exist in this server's cache{hint}",
                    param="model", code="model_not_found")


def answer(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """The middleware's errors on these routes (token, Host, unknown route, a failure)."""
    return APIError(status, message, code=CODES.get(status), headers=headers).response()


def from_model_error(e: ModelError) -> APIError:
    """The answer to a core error met while serving a request."""
    message = str(e)
    if isinstance(e, PromptTooLongError):
        return APIError(400, message, param="messages", code="context_length_exceeded")
    if isinstance(e, (InvalidOptionError, AudioError, TranscriptionError)):
        return bad_request(message)
    if isinstance(e, ModelNotFoundError):
        return APIError(404, message, param="model", code="model_not_found")
    if isinstance(e, (OfflineError, DownloadCancelledError)):
        return APIError(503, message, code="model_unavailable")
    if isinstance(e, InsufficientStorageError):
        return APIError(507, message, code="insufficient_storage")
    if isinstance(e, DownloadError):
        return APIError(502, message, code="pull_failed")
    if isinstance(e, RuntimeUnavailableError):
        return APIError(501, message, code="adapter_not_installed")
    return APIError(500, message, code=type(e).__name__)


def queue_full(e: Exception) -> web.Response:
    """429 for a model whose line is full, with OpenAI's ``Retry-After``."""
    retry = int(getattr(e, "retry_after", 1))
    return APIError(429, str(e), code="rate_limit_exceeded",
                    headers={"Retry-After": str(retry)}).response()


def register(ctx: ServeContext, paths: tuple[str, ...]) -> None:
    """Errors on ``paths`` (the middleware's too: token, Host, method) take OpenAI's shape."""
    from ..context import ErrorShape

    ctx.error_shapes.append(ErrorShape(paths, answer))
