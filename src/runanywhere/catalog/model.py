"""Immutable model metadata: the seed's ``ModelMetadata`` plus files, archive and mirrors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

ModelType = str  # "vad" | "stt" | "tts" | "llm" | future types
ModelFormat = Literal["onnx", "tflite", "tensorflow", "pytorch", "safetensors", "gguf",
                      "ctranslate2", "custom"]
ArchiveKind = Literal["tar.gz", "tar.bz2", "tar.xz", "zip"]
Compute = Literal["cpu", "gpu", "webgpu"]

#: The adapter that runs a model when its catalog entry names none: (type, format) -> adapter.
DEFAULT_ADAPTERS: dict[tuple[str, str], str] = {
    ("vad", "onnx"): "silero-vad",
    ("stt", "onnx"): "whisper",
    ("stt", "ctranslate2"): "faster-whisper",
    ("tts", "onnx"): "speecht5",
    ("llm", "gguf"): "llama",
}


#: The adapter that runs a remote model (an entry with an ``endpoint``) of each type by default.
REMOTE_ADAPTERS: dict[str, str] = {"llm": "openai", "stt": "openai-stt", "tts": "openai-tts"}


def default_adapter_for(type: str, format: str) -> str | None:
    """The adapter that runs a ``type`` model in ``format`` by default, or None."""
    return DEFAULT_ADAPTERS.get((type, format))


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a remote model runs: an OpenAI-compatible API, nothing to download.

    ``url`` is the API's base URL (the part before ``/chat/completions``, for example
    ``https://api.openai.com/v1`` or ``http://127.0.0.1:8080/v1``); ``model`` is the server's
    name for the model; ``api_key_env`` names the environment variable holding its key (the
    catalog never holds a secret; None: no key is sent).
    """

    url: str
    model: str
    api_key_env: str | None = None

    def to_dict(self) -> dict[str, str]:
        d = {"url": self.url, "model": self.model}
        if self.api_key_env:
            d["api_key_env"] = self.api_key_env
        return d


@dataclass(frozen=True, slots=True)
class ModelFile:
    """One file of a model: where it lives in the model's folder, where it comes from."""

    path: str
    url: str
    #: Exact bytes, or None when only ``size_estimate`` is known (then ``hash`` decides).
    size: int | None
    #: ``"sha256:<hex>"``, or None when the catalog gives none (trust on first use).
    hash: str | None = None
    mirrors: tuple[str, ...] = ()
    #: For progress and the space check when ``size`` is not known exactly.
    size_estimate: int | None = None
    #: The git blob id the Hub publishes for a small file (checked when ``hash`` is absent).
    git_sha1: str | None = None

    @property
    def sha256(self) -> str | None:
        return self.hash.split(":", 1)[1] if self.hash else None

    @property
    def expected_size(self) -> int:
        """The exact size, else the estimate (for progress and space)."""
        return self.size if self.size is not None else (self.size_estimate or 0)

    @property
    def urls(self) -> tuple[str, ...]:
        return (self.url, *self.mirrors)


@dataclass(frozen=True, slots=True)
class Requirements:
    memory: int
    compute: Compute = "cpu"


@dataclass(frozen=True, slots=True)
class Performance:
    latency: str = ""
    throughput: str = ""


@dataclass(frozen=True, slots=True)
class ModelMetadata:
    id: str
    name: str
    type: ModelType
    provider: str
    size: int
    format: ModelFormat
    version: str
    files: tuple[ModelFile, ...]
    #: True when the catalog used the single-file form (``url`` + ``hash``).
    single_file: bool = True
    archive: ArchiveKind | None = None
    #: For an archive: the most bytes it may unpack to (the catalog's ``unpacked_size``); None
    #: means a bound of ``UNPACK_RATIO`` times the archive (see ``store/archive.py``).
    unpacked_size: int | None = None
    requirements: Requirements | None = None
    supported_languages: tuple[str, ...] = ()
    performance: Performance | None = None
    description: str = ""
    license: str = ""
    #: The adapter the catalog names for this model; None means the default for type + format
    #: (see :attr:`adapter_name`).
    adapter: str | None = None
    #: A remote model's API (then ``files`` is empty: nothing is downloaded or cached).
    endpoint: Endpoint | None = None
    #: Where this entry was read from ("builtin", a file path, or "registered").
    source: str = "registered"
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def url(self) -> str:
        """The seed's ``url``: the first (for single-file models, the only) file's URL; a
        remote model's endpoint."""
        return self.endpoint.url if self.endpoint is not None else self.files[0].url

    @property
    def is_remote(self) -> bool:
        """True for a model that runs behind an API (``endpoint``): nothing to download."""
        return self.endpoint is not None

    @property
    def adapter_name(self) -> str | None:
        """The adapter that runs this model: the catalog's ``adapter``, else the default for
        its type and format (None when there is neither)."""
        if self.adapter:
            return self.adapter
        if self.endpoint is not None:
            return REMOTE_ADAPTERS.get(self.type)
        return default_adapter_for(self.type, self.format)

    @property
    def size_is_estimate(self) -> bool:
        """True when some file's size is only an estimate (``size`` is then approximate)."""
        return any(f.size is None for f in self.files)

    @property
    def hash(self) -> str | None:
        return self.files[0].hash if self.single_file and self.files else None

    @property
    def mirrors(self) -> tuple[str, ...]:
        return self.files[0].mirrors if self.single_file and self.files else ()

    def to_dict(self) -> dict[str, Any]:
        """The catalog JSON form of this entry (snake_case keys)."""
        d: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "type": self.type,
            "provider": self.provider,
            "version": self.version,
            "format": self.format,
        }
        if self.adapter:
            d["adapter"] = self.adapter
        if self.endpoint is not None:
            d["endpoint"] = self.endpoint.to_dict()
        elif self.size_is_estimate:
            d["size_estimate"] = self.size
        else:
            d["size"] = self.size
        if self.endpoint is not None:
            pass  # nothing to download
        elif self.single_file:
            f = self.files[0]
            d["url"] = f.url
            for key, value in (("hash", f.hash), ("git_sha1", f.git_sha1),
                               ("mirrors", list(f.mirrors) or None)):
                if value:
                    d[key] = value
        else:
            d["files"] = [
                {k: v for k, v in (("path", f.path), ("url", f.url), ("size", f.size),
                                   ("size_estimate", f.size_estimate), ("hash", f.hash),
                                   ("git_sha1", f.git_sha1),
                                   ("mirrors", list(f.mirrors) or None))
                 if v is not None}
                for f in self.files
            ]
        if self.archive:
            d["archive"] = self.archive
        if self.unpacked_size:
            d["unpacked_size"] = self.unpacked_size
        if self.requirements:
            d["requirements"] = {"memory": self.requirements.memory,
                                 "compute": self.requirements.compute}
        if self.supported_languages:
            d["supported_languages"] = list(self.supported_languages)
        if self.performance:
            d["performance"] = {"latency": self.performance.latency,
                                "throughput": self.performance.throughput}
        if self.description:
            d["description"] = self.description
        if self.license:
            d["license"] = self.license
        return d
