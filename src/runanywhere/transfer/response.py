"""What an HTTP answer to a (range) request means, decided from its status and headers alone.

:func:`classify` is a pure function: it reads nothing from the network and changes no state, so
every rule about trusting an answer sits in one place and is tested by itself. The caller acts on
the :class:`Answer` (or the error raised): write the body at ``start``, retry, move to a mirror,
or start the file over.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import DownloadError, IntegrityError
from ..retry import RETRY_STATUSES, TransientError, retry_after_seconds

CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")

#: (strong ETag, Last-Modified) of the version of a file we hold bytes of.
Validators = tuple[str | None, str | None]


class SourceChanged(Exception):
    """The file behind the URL changed (or cannot be resumed against): start it over."""


@dataclass(frozen=True)
class Answer:
    #: True for a ``206`` (the range asked for, or a prefix of it); False for a whole ``200``.
    ranged: bool
    #: File offset of the first body byte.
    start: int
    #: Body length, when the server says it.
    length: int | None
    #: The validators this answer carries (recorded for ``If-Range`` on later requests).
    validators: Validators


def one_line(text: str) -> str:
    """Server-provided text (error bodies, bad status lines) folded for a one-line message."""
    return " ".join(text.split())


def classify(status: int, header: Callable[[str], str | None], *, url: str, size: int,
             asked_from: int, known: Validators | None, had_bytes: bool,
             error_body: Callable[[], bytes] = lambda: b"") -> Answer:
    """Decide what an answer to ``Range: bytes=<asked_from>-...`` is.

    ``known`` are the validators of the bytes already held for this URL (None if none were
    recorded), ``had_bytes`` whether any bytes of the file are held. Raises ``TransientError``
    (worth another try), ``DownloadError`` (not at this URL), ``IntegrityError`` (the wrong file)
    or :class:`SourceChanged` (start the file over).
    """
    check_status(status, header, url=url, error_body=error_body)
    encoding = (header("Content-Encoding") or "identity").strip().lower()
    if encoding not in ("identity", ""):
        raise DownloadError(f"{url} sent Content-Encoding {encoding!r} although identity was"
                            " asked for", url=url, status=status)
    etag = header("ETag")
    validators = (etag if etag and not etag.startswith("W/") else None, header("Last-Modified"))
    if status == 206:
        return _ranged(header, url, size, asked_from, known, validators)
    return _whole(header, url, size, known, had_bytes, validators)


def check_status(status: int, header: Callable[[str], str | None], *, url: str,
                 error_body: Callable[[], bytes] = lambda: b"") -> None:
    """Accept a ``200`` or ``206``; raise ``TransientError`` for an answer worth another try
    (5xx, 408, 429, with its ``Retry-After``) and ``DownloadError`` for any other."""
    if status in RETRY_STATUSES:
        body = error_body()
        detail = ": " + one_line(body[:80].decode(errors="replace")) if body else ""
        raise TransientError(f"{url} answered HTTP {status}{detail}", url=url, status=status,
                             retry_after=retry_after_seconds(header("Retry-After")))
    if status == 401:  # never stored: a URL remembered without them asks anew
        raise DownloadError(f"{url} answered HTTP 401: it asks for credentials (user:password@"
                            " before the host; runanywhere never stores them)", url=url,
                            status=status)
    if status not in (200, 206):
        raise DownloadError(f"{url} answered HTTP {status}", url=url, status=status)


def total_size(status: int, header: Callable[[str], str | None]) -> int | None:
    """The file's full size from an answer to ``Range: bytes=0-0``: the total of its
    ``Content-Range`` (a 206), or the ``Content-Length`` of a whole 200."""
    if status == 206:
        m = CONTENT_RANGE.fullmatch((header("Content-Range") or "").strip())
        return int(m[3]) if m and m[3] != "*" else None
    value = header("Content-Length") if status == 200 else None
    return int(value) if value is not None and value.strip().isdigit() else None


def _ranged(header: Callable[[str], str | None], url: str, size: int, asked_from: int,
            known: Validators | None, validators: Validators) -> Answer:
    m = CONTENT_RANGE.fullmatch((header("Content-Range") or "").strip())
    if not m:
        raise TransientError(f"{url}: 206 without a valid Content-Range", url=url)
    first, last, total = int(m[1]), int(m[2]), m[3]
    if total != "*" and int(total) != size:
        raise IntegrityError(f"{url} has {total} bytes but the catalog says {size}",
                             expected=str(size), actual=total, url=url)
    if first != asked_from or last < first:
        raise TransientError(f"{url}: Content-Range {first}-{last} does not match the requested"
                             f" start {asked_from}", url=url)
    if known and known[0] and validators[0] and known[0] != validators[0]:
        # If-Range should have made this a 200; the server ignored it. The bytes we hold are
        # from another version of the file.
        raise SourceChanged(f"{url} changed while downloading (ETag {known[0]} ->"
                            f" {validators[0]})")
    return Answer(True, first, last - first + 1, known or validators)


def _whole(header: Callable[[str], str | None], url: str, size: int, known: Validators | None,
           had_bytes: bool, validators: Validators) -> Answer:
    value = header("Content-Length")
    length = int(value) if value is not None and value.strip().isdigit() else None
    if length is not None and length != size:
        raise IntegrityError(
            f"{url} sent {length} bytes (Content-Length) but the catalog says {size}"
            + (" - an error page?" if length < size else ""),
            expected=str(size), actual=str(length), url=url)
    strong, last_mod = validators
    recorded = known is not None and bool(known[0] or known[1])
    changed = recorded and known is not None and (
        (known[0] is not None and known[0] != strong)
        or (known[0] is None and known[1] != last_mod))
    if changed:
        raise SourceChanged(f"{url} changed while downloading (If-Range answered 200)")
    if had_bytes and not recorded:
        raise SourceChanged(f"{url} ignores Range and gives no ETag or Last-Modified to resume"
                            " against")
    return Answer(False, 0, length, validators)
