"""A ``multipart/form-data`` upload (``/v1/audio/transcriptions``): its fields, and its file
written to a temporary file as it arrives, within a size limit (413 past it, with nothing
kept). The caller removes the file (:meth:`Upload.remove`) when it is done with it.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import BodyPartReader, web

from .errors import APIError

#: OpenAI takes audio files up to 25 MB.
MAX_UPLOAD = 25 * 1024 * 1024
#: A form field's value (not the file) is small.
MAX_FIELD = 64 * 1024
_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,8}$")


@dataclass
class Upload:
    fields: dict[str, list[str]] = field(default_factory=dict)
    #: The uploaded file's bytes on disk (None: no file part came).
    path: Path | None = None
    filename: str = ""
    size: int = 0

    def field(self, name: str) -> str | None:
        values = self.fields.get(name)
        return values[-1] if values else None

    def remove(self) -> None:
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            self.path = None


async def read_upload(request: web.BaseRequest, file_field: str = "file",
                      limit: int = MAX_UPLOAD) -> Upload:
    """Every field of the form; the part named ``file_field`` goes to a temporary file."""
    if request.content_type != "multipart/form-data":
        raise APIError(400, f"send the audio as multipart/form-data (a 'file' part and the"
                       f" other fields), not {request.content_type}", code="invalid_body")
    if request.content_length is not None and request.content_length > limit + MAX_FIELD * 8:
        raise APIError(413, f"the upload is {request.content_length} bytes; the most is {limit}",
                       code="request_too_large")
    upload = Upload()
    try:
        reader = await request.multipart()
        while True:
            part = await reader.next()
            if part is None:
                return upload
            if not isinstance(part, BodyPartReader):
                raise APIError(400, "nested multipart bodies are not taken", code="invalid_body")
            name = part.name or ""
            if name == file_field and part.filename is not None:
                if upload.path is not None:
                    raise APIError(400, f"send one '{file_field}'", param=file_field)
                await _save(part, upload, limit)
            else:
                upload.fields.setdefault(name, []).append(await _text(part))
    except BaseException:
        upload.remove()
        raise


async def _save(part: BodyPartReader, upload: Upload, limit: int) -> None:
    name = part.filename or ""
    m = _SUFFIX.search(name)
    fd, tmp = tempfile.mkstemp(prefix="runanywhere-upload-", suffix=m.group(0) if m else "")
    upload.path, upload.filename = Path(tmp), name
    with os.fdopen(fd, "wb") as f:
        while True:
            chunk = await part.read_chunk(256 * 1024)
            if not chunk:
                return
            upload.size += len(chunk)
            if upload.size > limit:
                raise APIError(413, f"the file is over {limit} bytes, the most this server"
                               " takes", param="file", code="file_too_large")
            f.write(chunk)


async def _text(part: BodyPartReader) -> str:
    data = b""
    while True:
        chunk = await part.read_chunk(16 * 1024)
        if not chunk:
            break
        data += chunk
        if len(data) > MAX_FIELD:
            raise APIError(400, f"the form field {part.name!r} is over {MAX_FIELD} bytes",
                           param=part.name, code="invalid_value")
    try:
        return data.decode(part.get_charset("utf-8"))
    except (LookupError, UnicodeDecodeError):
        raise APIError(400, f"the form field {part.name!r} is not text", param=part.name,
                       code="invalid_value") from None
