"""Bytes on the wire: HTTP, one retry policy, one file's ranged fetch, where bytes come from,
one model's pull, and the ``ModelLoader`` queue over them."""

from ..retry import RetryPolicy
from .config import Auth, FetchConfig, Stalls, Streams
from .fetch import FetchedFile, FileFetch
from .loader import ModelLoader

__all__ = ["Auth", "FetchConfig", "FetchedFile", "FileFetch", "ModelLoader", "RetryPolicy",
           "Stalls", "Streams"]
