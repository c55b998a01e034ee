"""Bytes on the wire: HTTP, one file's ranged fetch, where bytes come from, one model's pull, and
the ``ModelLoader`` queue over them."""

from .fetch import FetchConfig, FetchedFile, FileFetch
from .loader import ModelLoader

__all__ = ["FetchConfig", "FetchedFile", "FileFetch", "ModelLoader"]
