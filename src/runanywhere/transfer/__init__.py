"""Downloads: the ``ModelLoader`` queue and the one-file fetch underneath it."""

from .fetch import FetchConfig, FetchedFile, FileFetch
from .loader import ModelLoader
from .progress import DownloadProgress, ProgressTracker, Stage

__all__ = ["DownloadProgress", "FetchConfig", "FetchedFile", "FileFetch", "ModelLoader",
           "ProgressTracker", "Stage"]
