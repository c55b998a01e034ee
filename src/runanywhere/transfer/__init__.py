"""Bytes on the wire: HTTP, one retry policy, one file's ranged fetch, where bytes come from,
one model's pull, and the ``ModelLoader`` queue over them.

The names below load on first use: a command that imports one small module of this package
(``transfer.adhoc`` to tell a source from an id) does not pay for HTTP, TLS and the fetch."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..retry import RetryPolicy
    from .config import Auth, FetchConfig, Stalls, Streams
    from .fetch import FetchedFile, FileFetch
    from .loader import ModelLoader

_LAZY = {"RetryPolicy": "..retry", "Auth": ".config", "FetchConfig": ".config",
         "Stalls": ".config", "Streams": ".config", "FetchedFile": ".fetch",
         "FileFetch": ".fetch", "ModelLoader": ".loader"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


__all__ = ["Auth", "FetchConfig", "FetchedFile", "FileFetch", "ModelLoader", "RetryPolicy",
           "Stalls", "Streams"]
