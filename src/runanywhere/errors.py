"""Every public error of runanywhere, in one module.

Every failure a user can meet is a subclass of :class:`ModelError`, so one ``except`` catches them
all and a narrower one picks a case. Each error carries a one-line message fit for a terminal and
the process exit status the CLI uses for it (``exit_code``)::

    ModelError                          1
    ├── ModelNotFoundError              1   (also LookupError)
    ├── InvalidCatalogError             2   (also ValueError)
    ├── DownloadError                   1   url, status
    │   └── IntegrityError              1   expected, actual
    │       └── UnsafeArchiveError      1
    ├── DownloadCancelledError          130
    ├── InsufficientStorageError        1   needed, available (also OSError)
    ├── OfflineError                    1
    ├── RuntimeUnavailableError         1   (also ImportError)
    ├── UnknownRuntimeError             2   name, known (also LookupError)
    ├── UnknownAdapterError             2   name, known (also LookupError)
    ├── ModelLoadError                  1
    │   └── InvalidModelFileError       1   path (not what its format says: truncated, foreign)
    ├── GenerationError                 1   (an LLM could not produce text)
    │   ├── PromptTooLongError          1   prompt_tokens, context (also ValueError)
    │   └── InvalidOptionError          2   (also ValueError)
    ├── AudioError                      1   path (also ValueError)
    ├── SynthesisError                  1
    ├── TranscriptionError              1
    ├── CacheError                      1
    │   ├── CacheBusy                   1
    │   └── UnsafeCacheError            1
    └── ServeError                      2

Every message is shown with the secrets of the URLs in it masked (``redact.py``, a leaf below
this module): a password or a signed link's token never reaches a terminal, a log or ``--json``.
Nothing else of runanywhere is imported here: this module is the bottom of the house.
"""

from __future__ import annotations

from pathlib import Path

from .redact import redact


def install_hint(extra: str) -> str:
    """The one way to say which extra installs an optional part."""
    return f"pip install 'runanywhere[{extra}]'"


class ModelError(Exception):
    """Base of every runanywhere error."""

    #: Process exit status the CLI uses for this kind of failure.
    exit_code = 1

    def __str__(self) -> str:
        return redact(super().__str__())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class ModelNotFoundError(ModelError, LookupError):
    """No model with this id in any loaded catalog (or not in the cache, where that is asked)."""

    def __init__(self, model_id: str, suggestions: list[str] | None = None) -> None:
        self.model_id = model_id
        self.suggestions = suggestions or []
        hint = f" (did you mean: {', '.join(self.suggestions)}?)" if self.suggestions else ""
        super().__init__(f"unknown model '{model_id}'{hint}")


class InvalidCatalogError(ModelError, ValueError):
    """A catalog file (or a registered entry) breaks the catalog format."""

    exit_code = 2


class DownloadError(ModelError):
    """The bytes could not be fetched (network, HTTP status, server misbehaviour)."""

    def __init__(self, message: str, *, url: str | None = None, status: int | None = None) -> None:
        self.url = url
        self.status = status
        super().__init__(message)


class IntegrityError(DownloadError):
    """Bytes arrived (or sat in the cache) but do not match the expected size or hash."""

    def __init__(
        self, message: str, *, expected: str | None = None, actual: str | None = None,
        url: str | None = None,
    ) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(message, url=url)


class UnsafeArchiveError(IntegrityError):
    """An archive member tries to escape the model's folder or is not a plain file."""


class DownloadCancelledError(ModelError):
    """The download was cancelled by the caller; the partial bytes are kept for a resume."""

    exit_code = 130


class InsufficientStorageError(ModelError, OSError):
    """Not enough free disk space for what is still to be downloaded."""

    def __init__(self, message: str, *, needed: int = 0, available: int = 0) -> None:
        self.needed = needed
        self.available = available
        super().__init__(message)


class OfflineError(ModelError):
    """Offline mode is on and the model is not in the cache."""


class RuntimeUnavailableError(ModelError, ImportError):
    """The runtime (or other optional part) a model needs is not installed; names the extra."""


class PluginNotInstalledError(RuntimeUnavailableError):
    """A plugin the project knows by name (an adapter) whose package is not installed.

    ``name`` is the plugin, ``distribution`` the package that provides it and ``extra`` the
    core's one-word extra that installs it (``runanywhere[vad]``).
    """

    def __init__(self, kind: str, name: str, distribution: str, extra: str | None = None
                 ) -> None:
        self.kind = kind
        self.name = name
        self.distribution = distribution
        self.extra = extra
        also = f" (or {install_hint(extra)})" if extra else ""
        super().__init__(f"{kind} '{name}' is not installed: pip install {distribution}{also}")


class _UnknownName(ModelError, LookupError):
    """A name nobody provides, with the known names and the closest one."""

    exit_code = 2
    kind = "name"

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        import difflib  # for the message of an unknown name only

        close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        super().__init__(
            f"unknown {self.kind} '{name}' (known {self.kind}s: {', '.join(known) or 'none'})"
            f"{hint}")


class UnknownRuntimeError(_UnknownName):
    """No runtime with this name, built in or installed as a plugin."""

    kind = "runtime"


class UnknownAdapterError(_UnknownName):
    """No adapter with this name, built in or installed as a plugin."""

    kind = "adapter"


class ModelLoadError(ModelError):
    """The runtime is installed but could not load the model (bad bytes, bad options)."""


class InvalidModelFileError(ModelLoadError):
    """A model file is not what its format promises (truncated, another format, a model kind
    the runtime cannot run): found before any runtime is handed the file. ``path`` names it."""

    def __init__(self, message: str, *, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        super().__init__(message)


class GenerationError(ModelError):
    """A language model could not produce text (the runtime reported a failure)."""


class PromptTooLongError(GenerationError, ValueError):
    """The prompt (with the chat history and template) does not fit the model's context."""

    def __init__(self, message: str, *, prompt_tokens: int | None = None,
                 context: int | None = None) -> None:
        self.prompt_tokens = prompt_tokens
        self.context = context
        super().__init__(message)


class InvalidOptionError(GenerationError, ValueError):
    """A generation option or chat message is out of range or malformed."""

    exit_code = 2


class CacheError(ModelError):
    """The cache cannot do what was asked (newer index schema, entry in use, ...)."""


class CacheBusy(CacheError):
    """Another process holds the cache index (or a cache lock) longer than the timeout.

    ``pending`` is set when a publish put its files in place but could not commit the index row:
    the store keeps the model usable by this process and commits it later.
    """

    def __init__(self, message: str, *, pending: object | None = None) -> None:
        self.pending = pending
        super().__init__(message)


class UnsafeCacheError(CacheError):
    """Something read back from the cache folder (an index row, a manifest, a first-use record)
    names a path outside it, or a link stands where a file or folder of the cache should be: the
    store never follows it (``runanywhere doctor`` lists each such thing)."""


class AudioError(ModelError, ValueError):
    """An audio file cannot be read or written; ``path`` names it."""

    def __init__(self, message: str, *, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        super().__init__(message)


class SynthesisError(ModelError):
    """Text-to-speech failed: the speech engine or the model gave no usable audio."""


class TranscriptionError(ModelError):
    """Speech-to-text failed or cannot run as asked (a language the model does not know, the
    decoder's own failure)."""


class ServeError(ModelError):
    """``runanywhere serve`` cannot start as asked (a non-loopback address without a token, a
    blank token, an address in use, a malformed ``--cors`` origin or ``--allow-host`` name)."""

    exit_code = 2


__all__ = [
    "AudioError",
    "CacheBusy",
    "CacheError",
    "DownloadCancelledError",
    "DownloadError",
    "GenerationError",
    "InsufficientStorageError",
    "IntegrityError",
    "InvalidCatalogError",
    "InvalidModelFileError",
    "InvalidOptionError",
    "ModelError",
    "ModelLoadError",
    "ModelNotFoundError",
    "OfflineError",
    "PluginNotInstalledError",
    "PromptTooLongError",
    "RuntimeUnavailableError",
    "ServeError",
    "SynthesisError",
    "TranscriptionError",
    "UnknownAdapterError",
    "UnknownRuntimeError",
    "UnsafeArchiveError",
    "UnsafeCacheError",
    "install_hint",
]
