"""What an OpenAI-compatible endpoint can answer besides what was asked, as typed errors.

Every one is a :class:`~runanywhere.errors.ModelError` (one ``except`` still catches all of
runanywhere) carrying the endpoint's own words: ``status`` (None when no answer came), and the
``type`` and ``code`` of OpenAI's error object when the server sent one::

    RemoteAPIError                   status, type, code, url
    ├── RemoteBadRequestError        400, 413, 415, 422: the request (also ValueError)
    ├── RemoteAuthError              401, 403: the key
    ├── RemoteModelNotFoundError     404: the model (or the route) is not there
    ├── RemoteRateLimitError         429 after the retries; retry_after
    └── RemoteUnavailableError       no answer (refused, timed out, reset) or 5xx after the
                                     retries
"""

from __future__ import annotations

import json
from typing import Any

from runanywhere.errors import ModelError


class RemoteAPIError(ModelError):
    def __init__(self, message: str, *, status: int | None = None, type: str | None = None,
                 code: str | None = None, url: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.type = type
        self.code = code
        self.url = url


class RemoteBadRequestError(RemoteAPIError, ValueError):
    exit_code = 2


class RemoteAuthError(RemoteAPIError):
    pass


class RemoteModelNotFoundError(RemoteAPIError):
    pass


class RemoteRateLimitError(RemoteAPIError):
    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class RemoteUnavailableError(RemoteAPIError):
    pass


def _fields(body: bytes) -> tuple[str | None, str | None, str | None]:
    """(message, type, code) of an OpenAI error object, as far as the body is one."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        text = body.decode("utf-8", "replace").strip()
        return (text[:300] or None), None, None
    err = doc.get("error", doc) if isinstance(doc, dict) else doc
    if isinstance(err, dict):
        message = err.get("message") or err.get("detail")
        code = err.get("code")
        kind = err.get("type")
        return (str(message) if message else None, str(kind) if kind else None,
                str(code) if code is not None else None)
    return (str(err)[:300] if err else None), None, None


def error_for(status: int, body: bytes, url: str, retry_after: float | None = None
              ) -> RemoteAPIError:
    """The typed error of an HTTP error answer."""
    message, kind, code = _fields(body)
    said = f": {message}" if message else ""
    kw: dict[str, Any] = {"status": status, "type": kind, "code": code, "url": url}
    if status in (401, 403):
        hint = (" (give the adapter api_key=..., or set the variable the catalog entry's"
                " endpoint.api_key_env names)")
        return RemoteAuthError(f"{url} refused the key ({status}){said}{hint}", **kw)
    if status == 404:
        return RemoteModelNotFoundError(f"{url} answered 404{said}", **kw)
    if status == 429:
        return RemoteRateLimitError(f"{url} is busy (429) and stayed so through the"
                                    f" retries{said}", retry_after=retry_after, **kw)
    if status in (400, 413, 415, 422):
        return RemoteBadRequestError(f"{url} refused the request ({status}){said}", **kw)
    if status >= 500:
        return RemoteUnavailableError(f"{url} failed ({status}){said}", **kw)
    return RemoteAPIError(f"{url} answered {status}{said}", **kw)


def error_in_stream(doc: dict[str, Any], url: str) -> RemoteAPIError:
    """An error a server sent as an event of a stream it had begun."""
    message, kind, code = _fields(json.dumps(doc).encode())
    return RemoteAPIError(f"{url} failed in the middle of the answer: {message or doc}",
                          type=kind, code=code, url=url)
