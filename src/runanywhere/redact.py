"""Secrets out of what runanywhere shows: the one masking function for URLs and text.

A URL may carry a secret in two places: its user information (``https://user:password@host/``,
sent as HTTP Basic auth as curl, requests and pooch do; a user name alone may be a token, as
GitHub's are) and its query (a token or a signature: ``?token=``, ``?sig=``,
``X-Amz-Signature=``, a presigned S3 or CDN link). :func:`redact_url` replaces the password (a
lone user name) and each secret query value with ``***`` and leaves every other character as it
was, so a message still says which URL it is about. :func:`redact` does that for every URL in a
text (a message, a log line, an error). :func:`without_credentials` is the form written to disk:
no user information at all.

Used wherever text leaves the process: every ``ModelError``'s message (``errors.py``), the
package's log records (``logs.py``), and what the command line, ``sources.json`` and ``serve``
show of a catalog entry. This module is a leaf: it imports nothing of runanywhere, so any layer
may call it.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

MASK = "***"
#: Query parameter names (lower case, percent-decoded) whose value is a secret.
SECRET_PARAMS = frozenset({"sig", "key", "apikey", "api_key", "auth", "pass", "pwd", "passwd",
                           "jwt", "code", "policy"})
#: A parameter whose name contains one of these is a secret too (``access_token``,
#: ``X-Amz-Security-Token``, ``X-Amz-Signature``, ``client_secret``, ``X-Goog-Credential``).
SECRET_WORDS = ("token", "secret", "password", "signature", "credential")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
#: A URL inside free text: up to the next space or quote.
_URL_IN_TEXT = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s<>\"'`]+")


def is_secret_param(name: str) -> bool:
    """Does a query parameter of this name (as written, percent-encoded or not) carry a secret?"""
    key = unquote(name).strip().lower()
    return key in SECRET_PARAMS or any(word in key for word in SECRET_WORDS)


def _split(url: str) -> tuple[str, str, str]:
    """``(scheme://, authority, rest)``; ``("", "", url)`` for text without a scheme."""
    m = _SCHEME.match(url)
    if not m:
        return "", "", url
    end = len(url)
    for stop in "/?#":
        i = url.find(stop, m.end())
        if i != -1:
            end = min(end, i)
    return url[: m.end()], url[m.end():end], url[end:]


def redact_url(url: str) -> str:
    """``url`` with its password and secret query values replaced by ``***``."""
    head, authority, rest = _split(url)
    if "@" in authority:
        userinfo, _, hostport = authority.rpartition("@")
        user, colon, password = userinfo.partition(":")
        if colon and password:
            authority = f"{user}:{MASK}@{hostport}"
        elif user and not colon:
            authority = f"{MASK}@{hostport}"  # a user name alone may be a token
    q = rest.find("?")
    if q != -1:
        f = rest.find("#", q)
        query = rest[q + 1: f if f != -1 else len(rest)]
        masked = "&".join(_redact_pair(p) for p in query.split("&"))
        rest = rest[: q + 1] + masked + (rest[f:] if f != -1 else "")
    return head + authority + rest


def _redact_pair(pair: str) -> str:
    name, eq, value = pair.partition("=")
    return f"{name}={MASK}" if eq and value and is_secret_param(name) else pair


def redact(text: str) -> str:
    """``text`` with every URL in it passed through :func:`redact_url` (punctuation that ends a
    sentence after a URL stays outside it)."""
    if "://" not in text:
        return text

    def one(m: re.Match[str]) -> str:
        core = m[0].rstrip(".,;:!?)]}")
        return redact_url(core) + m[0][len(core):]

    return _URL_IN_TEXT.sub(one, text)


def without_credentials(url: str) -> str:
    """``url`` without its user information: the form written to disk, where neither a password
    nor a user name (which may be a token) goes. A later request without them is answered 401."""
    head, authority, rest = _split(url)
    if "@" not in authority:
        return url
    return head + authority.rpartition("@")[2] + rest


def has_secret(url: str) -> bool:
    """Does ``url`` carry credentials (user information) or a secret query value?"""
    return redact_url(url) != url


def redact_values(value: Any) -> Any:
    """A JSON-like value (dicts, lists, strings) with every string passed through
    :func:`redact`: a catalog entry fit to be shown or handed out."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_values(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_values(v) for v in value]
    return value
