"""Which endpoint, model and key an adapter uses, from what it was given.

In order of precedence:

1. the adapter's own options (``OpenAILLMAdapter(base_url=..., api_key=..., model=...)``, or the
   same names given to ``load_model``);
2. the model's catalog entry, when it names an ``endpoint`` (``url``, ``model``,
   ``api_key_env``: the name of the environment variable holding the key; a catalog never
   holds a key, and one fetched from a URL may not name one: it would choose which of your
   secrets goes where);
3. for a model the catalog does not describe as remote: ``OPENAI_BASE_URL`` and
   ``OPENAI_API_KEY`` from the environment (the ``openai`` package's variables), else
   ``https://api.openai.com/v1``; the model's name is its id. ``OPENAI_API_KEY`` is sent only
   to that URL: an adapter given a ``base_url`` of its own sends the ``api_key`` it is given,
   or none.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from runanywhere.errors import InvalidOptionError

DEFAULT_BASE_URL = "https://api.openai.com/v1"
#: Seconds an answer may stay silent (a long prompt on a slow machine, a long transcription).
READ_TIMEOUT = 600.0
#: Seconds to open a connection.
CONNECT_TIMEOUT = 10.0
#: Retries of a request answered 408/429/5xx or not answered at all (before any of it was read).
MAX_RETRIES = 2
#: The names ``load_model`` and the constructors take.
OPTIONS = ("base_url", "api_key", "model", "timeout", "connect_timeout", "max_retries",
           "headers")


@dataclass(frozen=True)
class EndpointConfig:
    """One remote model: where, which, with what key, how patiently."""

    base_url: str
    model: str
    api_key: str | None = None
    timeout: float = READ_TIMEOUT
    connect_timeout: float = CONNECT_TIMEOUT
    max_retries: int = MAX_RETRIES
    #: More headers for every request (``OpenAI-Organization``, a gateway's own, ...).
    headers: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidOptionError(f"base_url {self.base_url!r} must be an http(s) URL such"
                                     " as http://127.0.0.1:8080/v1")
        if parts.query or parts.fragment:
            raise InvalidOptionError(f"base_url {self.base_url!r} must be a base URL, without"
                                     " ? or #")
        if not self.model:
            raise InvalidOptionError("the remote model's name is empty")
        for name in ("timeout", "connect_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise InvalidOptionError(f"{name} must be a positive number of seconds, got"
                                         f" {value!r}")
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int) or \
                self.max_retries < 0:
            raise InvalidOptionError(f"max_retries must be a whole number from 0 up, got"
                                     f" {self.max_retries!r}")
        if self.api_key is not None and (not self.api_key or any(
                c.isspace() or not c.isprintable() for c in self.api_key)):
            raise InvalidOptionError("api_key is blank or holds spaces or control characters,"
                                     " which an Authorization header cannot carry")

    def describe(self) -> str:
        return f"{self.model!r} at {self.base_url}"


def resolve(model_id: str, meta: Any, given: Mapping[str, Any],
            env: Mapping[str, str] | None = None) -> EndpointConfig:
    """The endpoint of ``model_id`` (``meta``: its catalog entry or None; ``given``: the
    adapter's options, None meaning not given)."""
    env = os.environ if env is None else env
    unknown = sorted(set(given) - set(OPTIONS))
    if unknown:
        raise InvalidOptionError(f"unknown option(s) {', '.join(unknown)} (the openai adapters"
                                 f" take {', '.join(OPTIONS)})")
    opts = {k: v for k, v in given.items() if v is not None}
    endpoint = getattr(meta, "endpoint", None)
    if endpoint is not None:
        base_url = opts.get("base_url", endpoint.url)
        model = opts.get("model", endpoint.model)
        key = opts.get("api_key")
        if key is None and endpoint.api_key_env:
            source = str(getattr(meta, "source", ""))
            if source.startswith(("http://", "https://")):
                raise InvalidOptionError(
                    f"{model_id}: a catalog fetched from {source} may not choose which"
                    f" environment variable ({endpoint.api_key_env}) is sent to"
                    f" {endpoint.url}; give api_key= yourself or put the entry in a local"
                    " catalog file")
            key = env.get(endpoint.api_key_env) or None
    else:
        base_url = opts.get("base_url") or env.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        model = opts.get("model", model_id)
        key = opts.get("api_key")
        if key is None and "base_url" not in opts:  # OPENAI_API_KEY goes where OPENAI_BASE_URL
            key = env.get("OPENAI_API_KEY") or None  # (or OpenAI) is, never to a base_url given
    headers = opts.get("headers") or {}
    if not isinstance(headers, Mapping):
        raise InvalidOptionError("headers must be a mapping of header names to values")
    return EndpointConfig(
        base_url=str(base_url).rstrip("/"), model=str(model), api_key=key,
        timeout=opts.get("timeout", READ_TIMEOUT),
        connect_timeout=opts.get("connect_timeout", CONNECT_TIMEOUT),
        max_retries=opts.get("max_retries", MAX_RETRIES),
        headers=tuple((str(k), str(v)) for k, v in headers.items()))
