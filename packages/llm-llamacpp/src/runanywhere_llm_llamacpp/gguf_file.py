"""A GGUF file's header, read and checked before llama.cpp is handed the file.

llama.cpp answers a truncated or foreign file with "Failed to init server" (or worse); this reads
the header (metadata and tensor table) itself and says what is wrong, naming the file: not GGUF,
a version it cannot read, a header or tensor data that runs past the end of the file, a tensor
type or architecture nobody here knows, a model that cannot generate text.

It walks the header with ``struct`` over a memory map and skips the big arrays (a 49k-token
vocabulary and its merges) instead of decoding them: ``gguf.GGUFReader`` takes seconds on
SmolLM2's 98 MB file, this takes milliseconds. The ``gguf`` package supplies the format's
tables (value types, tensor block sizes, file types, architecture names), from its
``constants`` module alone: the package's ``__init__`` imports numpy and its writer (a quarter
of a second at every ``runanywhere run``), and the tables need neither.
"""

from __future__ import annotations

import importlib.util
import math
import mmap
import struct
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from runanywhere.errors import InvalidModelFileError, RuntimeUnavailableError, install_hint

if TYPE_CHECKING:
    import gguf.constants as gguf


def _gguf_constants() -> ModuleType:
    """``gguf.constants`` without running ``gguf/__init__.py`` (constants.py imports only the
    standard library). Registered under its own name, so a later ``import gguf`` uses it."""
    loaded = sys.modules.get("gguf.constants")
    if loaded is not None:
        return loaded
    spec = importlib.util.find_spec("gguf")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeUnavailableError(f"reading GGUF files needs the gguf package:"
                                      f" {install_hint('llm')}")
    path = Path(next(iter(spec.submodule_search_locations))) / "constants.py"
    const_spec = importlib.util.spec_from_file_location("gguf.constants", path)
    assert const_spec is not None and const_spec.loader is not None
    module = importlib.util.module_from_spec(const_spec)
    sys.modules["gguf.constants"] = module
    const_spec.loader.exec_module(module)
    return module


if not TYPE_CHECKING:
    gguf = _gguf_constants()

#: Architectures llama.cpp loads that do not generate text (embedding encoders, vision
#: projectors, audio decoders): an LLM adapter refuses them up front.
NOT_GENERATIVE = frozenset({
    "clip", "bert", "modern-bert", "nomic-bert", "nomic-bert-moe", "neo-bert", "jina-bert-v2",
    "jina-bert-v3", "eurobert", "t5encoder", "wavtokenizer-dec",
})
#: Arrays longer than this (vocabularies, merges) are skipped, only their length kept.
KEEP_ARRAY = 4096
#: Bytes per KV-cache element: llama.cpp's default cache type is f16.
KV_BYTES = 2

_SCALARS: dict[int, struct.Struct] = {
    gguf.GGUFValueType.UINT8: struct.Struct("<B"), gguf.GGUFValueType.INT8: struct.Struct("<b"),
    gguf.GGUFValueType.UINT16: struct.Struct("<H"), gguf.GGUFValueType.INT16: struct.Struct("<h"),
    gguf.GGUFValueType.UINT32: struct.Struct("<I"), gguf.GGUFValueType.INT32: struct.Struct("<i"),
    gguf.GGUFValueType.FLOAT32: struct.Struct("<f"), gguf.GGUFValueType.BOOL: struct.Struct("<?"),
    gguf.GGUFValueType.UINT64: struct.Struct("<Q"), gguf.GGUFValueType.INT64: struct.Struct("<q"),
    gguf.GGUFValueType.FLOAT64: struct.Struct("<d"),
}
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_STRING = int(gguf.GGUFValueType.STRING)
_ARRAY = int(gguf.GGUFValueType.ARRAY)


@dataclass(frozen=True)
class SkippedArray:
    """An array the reader did not decode: its item type and length."""

    item_type: int
    length: int


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    type_name: str
    n_elements: int
    n_bytes: int
    offset: int


@dataclass(frozen=True)
class GGUFInfo:
    """What a GGUF file says about itself, read without loading it."""

    path: Path
    version: int
    metadata: dict[str, Any]
    tensors: tuple[TensorInfo, ...]
    data_offset: int
    file_size: int

    # -- what people ask ---------------------------------------------------------------------------
    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", ""))

    def arch_key(self, key: str, default: Any = None) -> Any:
        return self.metadata.get(f"{self.architecture}.{key}", default)

    @property
    def context_length(self) -> int | None:
        n = self.arch_key("context_length")
        return int(n) if isinstance(n, int) and n > 0 else None

    @property
    def parameters(self) -> int:
        return sum(t.n_elements for t in self.tensors)

    @property
    def weight_bytes(self) -> int:
        return sum(t.n_bytes for t in self.tensors)

    @property
    def quantization(self) -> str:
        """The file type (``Q4_1``), else the type most weights have."""
        ftype = self.metadata.get("general.file_type")
        if isinstance(ftype, int):
            try:
                return gguf.LlamaFileType(ftype).name.removeprefix("MOSTLY_").removeprefix(
                    "ALL_")
            except ValueError:
                pass
        matrices = Counter(t.type_name for t in self.tensors if len(t.shape) >= 2)
        return matrices.most_common(1)[0][0] if matrices else "unknown"

    @property
    def chat_template(self) -> str | None:
        template = self.metadata.get("tokenizer.chat_template")
        return template if isinstance(template, str) and template.strip() else None

    @property
    def vocab_size(self) -> int | None:
        tokens = self.metadata.get("tokenizer.ggml.tokens")
        if isinstance(tokens, SkippedArray):
            return tokens.length
        return len(tokens) if isinstance(tokens, list) else None

    @property
    def name(self) -> str:
        return str(self.metadata.get("general.name", ""))

    # -- memory ------------------------------------------------------------------------------------
    def kv_cache_bytes(self, n_ctx: int) -> int:
        """The f16 KV cache for ``n_ctx`` tokens: per layer, K and V of n_ctx x (heads_kv x
        head size) each (a per-layer ``head_count_kv`` array is summed as it is)."""
        n_layer = self.arch_key("block_count", 0)
        n_embd = self.arch_key("embedding_length", 0)
        n_head = self.arch_key("attention.head_count", 0)
        if isinstance(n_head, list):
            n_head = max(n_head, default=0)
        if not (isinstance(n_layer, int) and isinstance(n_embd, int) and n_layer > 0
                and isinstance(n_head, int) and n_head > 0):
            return 0
        head_k = self.arch_key("attention.key_length", n_embd // n_head)
        head_v = self.arch_key("attention.value_length", n_embd // n_head)
        heads_kv = self.arch_key("attention.head_count_kv", n_head)
        per_layer = heads_kv if isinstance(heads_kv, list) else [heads_kv] * n_layer
        return int(sum(int(h) * (head_k + head_v) for h in per_layer) * n_ctx * KV_BYTES)

    # -- checks ------------------------------------------------------------------------------------
    def check_generative(self) -> None:
        """Raise :class:`InvalidModelFileError` unless llama.cpp can generate text with it."""
        arch = self.architecture
        if not arch:
            raise InvalidModelFileError(f"{self.path}: a GGUF without general.architecture",
                                        path=self.path)
        known = set(gguf.MODEL_ARCH_NAMES.values())
        if arch not in known or arch in NOT_GENERATIVE:
            why = ("does not generate text" if arch in known else
                   f"is not one of the {len(known)} architectures llama.cpp knows")
            raise InvalidModelFileError(
                f"{self.path}: architecture '{arch}' {why} (an LLM such as llama, qwen2, phi3"
                " or gemma is needed)", path=self.path)
        if not self.tensors:
            raise InvalidModelFileError(f"{self.path}: a GGUF with no tensors (no weights)",
                                        path=self.path)

    def describe(self) -> dict[str, str]:
        """``runanywhere info``'s lines for this file."""
        ctx = self.context_length
        return {
            "architecture": self.architecture or "-",
            "parameters": _count(self.parameters),
            "context length": f"{ctx} tokens" if ctx else "-",
            "quantization": self.quantization,
            "chat template": "yes" if self.chat_template else "no",
        }


def _count(n: int) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f}{unit} ({n:,})"
    return str(n)


class _Cursor:
    """Reads little-endian GGUF values from a buffer; every read is bounds-checked."""

    def __init__(self, buf: mmap.mmap | bytes, path: Path) -> None:
        self.buf = buf
        self.pos = 0
        self.end = len(buf)
        self.path = path

    def truncated(self, what: str) -> InvalidModelFileError:
        return InvalidModelFileError(
            f"{self.path} is truncated or corrupt: its {what} runs past the end of the file"
            f" ({self.end:,} bytes)", path=self.path)

    def unpack(self, s: struct.Struct, what: str) -> Any:
        if self.pos + s.size > self.end:
            raise self.truncated(what)
        (value,) = s.unpack_from(self.buf, self.pos)
        self.pos += s.size
        return value

    def string(self, what: str) -> str:
        n = self.unpack(_U64, what)
        if self.pos + n > self.end:
            raise self.truncated(what)
        raw = self.buf[self.pos:self.pos + n]
        self.pos += n
        return bytes(raw).decode("utf-8", errors="replace")

    def skip_strings(self, count: int, what: str) -> None:
        buf, pos, end, unpack = self.buf, self.pos, self.end, _U64.unpack_from
        for _ in range(count):
            if pos + 8 > end:
                raise self.truncated(what)
            pos += 8 + unpack(buf, pos)[0]
        if pos > end:
            raise self.truncated(what)
        self.pos = pos

    def value(self, vtype: int, key: str) -> Any:
        if vtype == _STRING:
            return self.string(f"value of {key}")
        scalar = _SCALARS.get(vtype)
        if scalar is not None:
            return self.unpack(scalar, f"value of {key}")
        if vtype != _ARRAY:
            raise InvalidModelFileError(f"{self.path}: metadata {key} has an unknown value type"
                                        f" {vtype} (not a GGUF file, or a newer one)",
                                        path=self.path)
        item_type = self.unpack(_U32, f"array {key}")
        count = self.unpack(_U64, f"array {key}")
        if count > self.end:  # every item takes at least a byte
            raise self.truncated(f"array {key}")
        if count <= KEEP_ARRAY:
            return [self.value(item_type, key) for _ in range(count)]
        if item_type == _STRING:
            self.skip_strings(count, f"array {key}")
        elif item_type in _SCALARS:
            self.pos += count * _SCALARS[item_type].size
            if self.pos > self.end:
                raise self.truncated(f"array {key}")
        else:  # arrays of arrays: walk them
            for _ in range(count):
                self.value(item_type, key)
        return SkippedArray(item_type, count)


def read_gguf(path: str | Path) -> GGUFInfo:
    """The header of the GGUF file at ``path``, checked: every tensor's bytes lie inside the
    file. Raises :class:`~runanywhere.errors.InvalidModelFileError` naming the file."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            size = f.seek(0, 2)
            if size < 24:
                raise InvalidModelFileError(f"{path} is not a GGUF file ({size} bytes)",
                                            path=path)
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                return _parse(buf, path, size)
    except OSError as e:
        raise InvalidModelFileError(f"cannot read {path}: {e.strerror or e}", path=path) from e


def _parse(buf: mmap.mmap, path: Path, size: int) -> GGUFInfo:
    if buf[:4] != b"GGUF":
        raise InvalidModelFileError(f"{path} is not a GGUF file (it starts with"
                                    f" {bytes(buf[:4])!r}, not b'GGUF')", path=path)
    c = _Cursor(buf, path)
    c.pos = 4
    version = c.unpack(_U32, "header")
    if version not in (2, 3):
        raise InvalidModelFileError(f"{path}: GGUF version {version} is not supported (2 or 3)",
                                    path=path)
    n_tensors = c.unpack(_U64, "header")
    n_kv = c.unpack(_U64, "header")
    if n_tensors > size // 32 or n_kv > size // 16:
        raise c.truncated(f"header (it claims {n_tensors:,} tensors and {n_kv:,} metadata keys)")
    metadata: dict[str, Any] = {}
    for _ in range(n_kv):
        key = c.string("metadata key")
        metadata[key] = c.value(c.unpack(_U32, f"type of {key}"), key)
    tensors = []
    for _ in range(n_tensors):
        name = c.string("tensor table")
        n_dims = c.unpack(_U32, f"tensor {name}")
        if n_dims > 8:
            raise InvalidModelFileError(f"{path}: tensor {name} has {n_dims} dimensions (at most"
                                        " 8): corrupt", path=path)
        shape = tuple(c.unpack(_U64, f"tensor {name}") for _ in range(n_dims))
        raw_type = c.unpack(_U32, f"tensor {name}")
        offset = c.unpack(_U64, f"tensor {name}")
        try:
            qtype = gguf.GGMLQuantizationType(raw_type)
            block, type_size = gguf.GGML_QUANT_SIZES[qtype]
        except (ValueError, KeyError):
            raise InvalidModelFileError(
                f"{path}: tensor {name} has type {raw_type}, unknown to the gguf package"
                " (corrupt, or a newer format: upgrade gguf)", path=path) from None
        n = math.prod(shape)
        tensors.append(TensorInfo(name, shape, qtype.name, n, n // block * type_size, offset))
    alignment = metadata.get("general.alignment", gguf.GGUF_DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        raise InvalidModelFileError(f"{path}: general.alignment {alignment!r} is not a power of"
                                    " two", path=path)
    data_offset = -(-c.pos // alignment) * alignment
    for t in tensors:
        if data_offset + t.offset + t.n_bytes > size:
            missing = data_offset + t.offset + t.n_bytes - size
            raise InvalidModelFileError(
                f"{path} is truncated: tensor {t.name} needs {missing:,} bytes past the end of"
                f" the file ({size:,} bytes)", path=path)
    return GGUFInfo(path, version, metadata, tuple(tensors), data_offset, size)
