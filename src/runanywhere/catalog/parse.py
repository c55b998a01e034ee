"""Catalog JSON -> validated :class:`ModelMetadata`, with errors that name file, model and field.

Validation is strict on anything that becomes a path or decides what bytes are trusted (ids, file
paths, sizes, hashes, URL schemes) and lenient on descriptive text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any, cast
from urllib.parse import urlsplit

from ..errors import InvalidCatalogError
from .hub import HubRef, is_hub_url
from .model import Endpoint, ModelFile, ModelMetadata, Performance, Requirements

FORMAT_VERSION = 1
ID_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,127}")
HEX64_RE = re.compile(r"[0-9a-f]{64}")
TYPES = {"vad", "stt", "tts", "llm", "embedding", "vision", "custom"}
FORMATS = {"onnx", "tflite", "tensorflow", "pytorch", "safetensors", "gguf", "ctranslate2",
           "custom"}
#: An adapter name: what entry points may be called (``silero-vad``, ``faster-whisper``).
ADAPTER_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
ARCHIVES = {"tar.gz", "tar.bz2", "tar.xz", "zip"}
COMPUTES = {"cpu", "gpu", "webgpu"}
URL_SCHEMES = {"http", "https", "s3"}
HEX40_RE = re.compile(r"[0-9a-f]{40}")
#: No single model we manage is bigger than this; a larger size is a typo or an attack.
MAX_SIZE = 2**44  # 16 TiB
#: Longest file or folder name a model may use: filesystems allow 255 bytes, and the store adds
#: temporary names around it (``.<name>.<8 hex>.tmp``).
MAX_COMPONENT = 200
#: Longest relative file path in a model, in bytes.
MAX_PATH = 1024
#: Longest version string (it names a folder too).
MAX_VERSION = 128
#: An environment variable's name (a remote model's ``endpoint.api_key_env``).
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
#: Keys that describe a download: a remote model (``endpoint``) has none of them.
DOWNLOAD_KEYS = ("url", "files", "hash", "size", "size_estimate", "mirrors", "archive",
                 "unpacked_size", "git_sha1")
#: The seed's camelCase spellings, accepted as aliases.
ALIASES = {"supportedLanguages": "supported_languages"}


class _Where:
    """Builds error messages: ``catalog models.json, model 'x': size must be ...``."""

    def __init__(self, source: str, model_id: str | None = None) -> None:
        self.source = source
        self.model_id = model_id

    def error(self, msg: str) -> InvalidCatalogError:
        where = f"catalog {self.source}"
        if self.model_id is not None:
            where += f", model {self.model_id!r}"
        return InvalidCatalogError(f"{where}: {msg}")


def validate_id(model_id: object) -> str:
    """Return the id if it is a safe, canonical model id, else raise ``ValueError``."""
    if not isinstance(model_id, str):
        raise ValueError("id must be a string")
    if not ID_RE.fullmatch(model_id) or ".." in model_id:
        raise ValueError(
            f"id {model_id!r} is not allowed (use 1-128 of a-z 0-9 . _ -, starting with a letter"
            " or digit, no '..')"
        )
    return model_id


def normalize_hash(value: object) -> str:
    """``"sha256:<hex>"`` from ``"sha256:<hex>"`` or a bare 64-hex string; else ``ValueError``."""
    if not isinstance(value, str):
        raise ValueError("hash must be a string like 'sha256:<64 hex digits>'")
    text = value.strip()
    alg, sep, digest = text.partition(":")
    if not sep:
        alg, digest = "sha256", text
    digest = digest.lower()
    if alg.lower() != "sha256" or not HEX64_RE.fullmatch(digest):
        raise ValueError(f"hash {value!r} is malformed (expected 'sha256:<64 hex digits>')")
    return f"sha256:{digest}"


def _check_url(where: _Where, value: object, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise where.error(f"{field} must be a non-empty string")
    for i, c in enumerate(value):
        if c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F:
            raise where.error(f"{field} has a space or control character ({c!r}) at position"
                              f" {i}: percent-encode it (%20) or fix the URL")
        if ord(c) > 0x7E:
            raise where.error(f"{field} has a non-ASCII character ({c!r}) at position {i}:"
                              " percent-encode it")
    if is_hub_url(value):
        try:
            ref = HubRef.parse(value)
        except ValueError as e:
            raise where.error(f"{field}: {e}") from None
        if not ref.path:
            raise where.error(f"{field} {value!r} must name a file in the repository")
        return value
    parts = urlsplit(value)
    if parts.scheme not in URL_SCHEMES or not parts.netloc:
        raise where.error(f"{field} {value!r} must be an http(s) URL or an hf:// reference")
    return value


def _check_size(where: _Where, value: object, field: str, *, empty: bool = False) -> int:
    """A size in bytes; ``empty``: 0 is a size too (an empty file is a real file)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if empty else 1):
        raise where.error(f"{field} must be a positive integer"
                          + (" (or 0, for an empty file)" if empty else ""))
    if value > MAX_SIZE:
        raise where.error(f"{field} {value} is absurdly large (limit {MAX_SIZE} bytes)")
    return value


def _check_rel_path(where: _Where, value: object, field: str) -> str:
    if not isinstance(value, str) or not value or "\x00" in value or "\\" in value:
        raise where.error(f"{field} must be a relative path without NUL or backslash")
    p = PurePosixPath(value)
    if p.is_absolute() or any(part in ("..", ".", "") for part in value.split("/")):
        raise where.error(f"{field} {value!r} must be relative and must not contain '..'")
    long = [part for part in p.parts if len(part.encode()) > MAX_COMPONENT]
    if long:
        raise where.error(f"{field} has a name of {len(long[0].encode())} bytes (at most"
                          f" {MAX_COMPONENT} fit on every filesystem): {long[0][:40]!r}...")
    if len(value.encode()) > MAX_PATH:
        raise where.error(f"{field} is {len(value.encode())} bytes long (at most {MAX_PATH})")
    return str(p)


def _opt_git_sha1(where: _Where, value: object, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not HEX40_RE.fullmatch(value.lower()):
        raise where.error(f"{field} must be a git blob id (40 hex digits)")
    return value.lower()


def _sizes(where: _Where, raw: Mapping[str, Any], prefix: str, has_hash: bool, *,
           empty: bool = False) -> tuple[int | None, int | None]:
    """``(size, size_estimate)``: an exact size, or (with a hash) only an estimate. ``empty``:
    a size of 0 is allowed (a file of a multi-file model; a model itself has bytes)."""
    size, estimate = raw.get("size"), raw.get("size_estimate")
    if size is None:
        if not has_hash:
            raise where.error(f"{prefix}size must be a positive integer (it may be left out,"
                              " with a size_estimate, only for a file with a hash)")
        if estimate is None:
            return None, None  # learned from the origin; the hash decides
        return None, _check_size(where, estimate, f"{prefix}size_estimate")
    return _check_size(where, size, f"{prefix}size", empty=empty), None


def _check_no_clash(where: _Where, path: str, earlier: list[ModelFile], field: str) -> None:
    """A path cannot be a file and a folder at once (``a`` and ``a/b``): the folder would be
    created over the file (or the other way round) after every byte was downloaded."""
    low = path.lower()
    for i, other in enumerate(earlier):
        o = other.path.lower()
        if low.startswith(o + "/") or o.startswith(low + "/"):
            inner, outer = (path, other.path) if low.startswith(o + "/") else (other.path, path)
            raise where.error(f"{field}.path {path!r} clashes with files[{i}].path"
                              f" {other.path!r}: {outer!r} would have to be a file and the"
                              f" folder of {inner!r}")


def _version(where: _Where, raw: Mapping[str, Any]) -> str:
    version = str(raw.get("version", "1"))
    if not version.strip() or len(version) > MAX_VERSION:
        raise where.error(f"version must be 1-{MAX_VERSION} characters (it names a folder),"
                          f" not {len(version)}")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in version):
        raise where.error("version must not contain control characters")
    return version


def _opt_hash(where: _Where, value: object, field: str) -> str | None:
    if value is None:
        return None
    try:
        return normalize_hash(value)
    except ValueError as e:
        raise where.error(f"{field}: {e}") from None


def _mirrors(where: _Where, value: object, field: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise where.error(f"{field} must be a list of URLs")
    return tuple(_check_url(where, u, f"{field}[{i}]") for i, u in enumerate(value))


def _str(where: _Where, raw: Mapping[str, Any], key: str, *, required: bool = True) -> str:
    value = raw.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise where.error(f"{key} must be a non-empty string")
    return value


def parse_model(raw: object, source: str = "registered", index: int | None = None) -> ModelMetadata:
    """Validate one catalog entry (a JSON object) and build its metadata."""
    label = f"models[{index}]" if index is not None else "entry"
    if not isinstance(raw, dict):
        raise _Where(source).error(f"{label} must be an object")
    raw = {ALIASES.get(str(k), str(k)): v for k, v in raw.items()}
    model_id = raw.get("id")
    where = _Where(source, model_id if isinstance(model_id, str) else None)
    if where.model_id is None:
        where = _Where(source + f" {label}")
    try:
        validate_id(model_id)
    except ValueError as e:
        raise where.error(str(e)) from None

    mtype = _str(where, raw, "type")
    if mtype not in TYPES:
        raise where.error(f"type must be one of {sorted(TYPES)}, not {mtype!r}")
    endpoint = _endpoint(where, raw, str(model_id))
    if endpoint is not None and raw.get("format") is None:
        raw["format"] = "custom"  # a remote model has no files, so no file format
    fmt = _str(where, raw, "format")
    if fmt not in FORMATS:
        raise where.error(f"format must be one of {sorted(FORMATS)}, not {fmt!r}")
    adapter = raw.get("adapter")
    if adapter is not None and (not isinstance(adapter, str) or not ADAPTER_RE.fullmatch(adapter)):
        raise where.error(f"adapter must be an adapter name (lower case letters, digits, '.',"
                          f" '_' or '-'), not {adapter!r}")
    archive = raw.get("archive")
    if archive is not None and archive not in ARCHIVES:
        raise where.error(f"archive must be one of {sorted(ARCHIVES)}, not {archive!r}")
    unpacked = raw.get("unpacked_size")
    if unpacked is not None:
        if archive is None:
            raise where.error("unpacked_size applies to archive models only")
        unpacked = _check_size(where, unpacked, "unpacked_size")

    files: list[ModelFile] = []
    if endpoint is not None:
        size, single = 0, False
    elif "files" in raw and raw["files"] is not None:
        if "url" in raw:
            raise where.error("give either url (single file) or files (multi-file), not both")
        if archive is not None:
            raise where.error("archive applies to single-file models only")
        rfiles = raw["files"]
        if not isinstance(rfiles, list) or not rfiles:
            raise where.error("files must be a non-empty list")
        seen: set[str] = set()
        for i, rf in enumerate(rfiles):
            f = f"files[{i}]"
            if not isinstance(rf, dict):
                raise where.error(f"{f} must be an object")
            path = _check_rel_path(where, rf.get("path"), f"{f}.path")
            if path.lower() in seen:
                raise where.error(f"{f}.path {path!r} appears twice")
            _check_no_clash(where, path, files, f)
            seen.add(path.lower())
            fhash = _opt_hash(where, rf.get("hash"), f"{f}.hash")
            fsize, festimate = _sizes(where, rf, f"{f}.", fhash is not None, empty=True)
            files.append(ModelFile(
                path=path,
                url=_check_url(where, rf.get("url"), f"{f}.url"),
                size=fsize,
                hash=fhash,
                mirrors=_mirrors(where, rf.get("mirrors"), f"{f}.mirrors"),
                size_estimate=festimate,
                git_sha1=_opt_git_sha1(where, rf.get("git_sha1"), f"{f}.git_sha1"),
            ))
        total = sum(f.expected_size for f in files)
        exact = all(f.size is not None for f in files)
        if raw.get("size") is not None:
            size = _check_size(where, raw.get("size"), "size")
            if not exact:
                raise where.error("size must be left out when a file's size is only an"
                                  " estimate (give size_estimate, or nothing)")
            if total != size:
                raise where.error(f"size {size} does not equal the sum of files[].size"
                                  f" ({total})")
        size = total
        single = False
    else:
        url = _check_url(where, raw.get("url"), "url")
        if is_hub_url(url):
            name = PurePosixPath(HubRef.parse(url).path).name
        else:
            name = PurePosixPath(urlsplit(url).path).name or str(model_id)
        if archive is not None:
            name = f"{model_id}.{archive}"
        fhash = _opt_hash(where, raw.get("hash"), "hash")
        fsize, festimate = _sizes(where, raw, "", fhash is not None)
        files = [ModelFile(path=_safe_leaf(str(name), str(model_id)), url=url, size=fsize,
                           hash=fhash,
                           mirrors=_mirrors(where, raw.get("mirrors"), "mirrors"),
                           size_estimate=festimate,
                           git_sha1=_opt_git_sha1(where, raw.get("git_sha1"), "git_sha1"))]
        size = files[0].expected_size
        single = True

    requirements = None
    rreq = raw.get("requirements")
    if rreq is not None:
        if not isinstance(rreq, dict):
            raise where.error("requirements must be an object")
        compute = rreq.get("compute", "cpu")
        if compute not in COMPUTES:
            raise where.error(f"requirements.compute must be one of {sorted(COMPUTES)}")
        requirements = Requirements(
            memory=_check_size(where, rreq.get("memory"), "requirements.memory"),
            compute=compute,
        )
    perf = raw.get("performance")
    performance = None
    if perf is not None:
        if not isinstance(perf, dict):
            raise where.error("performance must be an object")
        performance = Performance(str(perf.get("latency", "")), str(perf.get("throughput", "")))
    langs = raw.get("supported_languages") or []
    if not isinstance(langs, list) or not all(isinstance(x, str) for x in langs):
        raise where.error("supported_languages must be a list of strings")

    return ModelMetadata(
        id=cast(str, model_id),
        name=_str(where, raw, "name"),
        type=mtype,
        provider=_str(where, raw, "provider", required=False) or "unknown",
        size=size,
        format=cast(Any, fmt),
        version=_version(where, raw),
        files=tuple(files),
        single_file=single,
        archive=cast(Any, archive),
        unpacked_size=unpacked,
        requirements=requirements,
        supported_languages=tuple(langs),
        performance=performance,
        description=_str(where, raw, "description", required=False),
        license=_str(where, raw, "license", required=False),
        adapter=adapter,
        endpoint=endpoint,
        source=source,
    )


def _endpoint(where: _Where, raw: Mapping[str, Any], model_id: str) -> Endpoint | None:
    """A remote model's ``endpoint``: ``{"url", "model"?, "api_key_env"?}``, or None."""
    value = raw.get("endpoint")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise where.error("endpoint must be an object: {\"url\": \"https://host/v1\","
                          " \"model\": \"...\", \"api_key_env\": \"...\"}")
    clash = [k for k in DOWNLOAD_KEYS if raw.get(k) is not None]
    if clash:
        raise where.error(f"a remote model (endpoint) has nothing to download: drop"
                          f" {', '.join(clash)}")
    unknown = sorted(set(value) - {"url", "model", "api_key_env"})
    if unknown:
        raise where.error(f"endpoint has no field {', '.join(map(repr, unknown))} (it takes url,"
                          " model, api_key_env)")
    url = _check_url(where, value.get("url"), "endpoint.url")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise where.error(f"endpoint.url {url!r} must be an http(s) URL")
    if parts.username is not None or parts.password is not None:
        raise where.error("endpoint.url must not carry credentials: name the environment"
                          " variable that holds the key in endpoint.api_key_env")
    if parts.query or parts.fragment:
        raise where.error(f"endpoint.url {url!r} must be a base URL, without ? or #")
    model = value.get("model", model_id)
    if not isinstance(model, str) or not model.strip() or any(
            ord(c) < 0x20 or ord(c) == 0x7F for c in model):
        raise where.error("endpoint.model must be a non-empty string (the server's name for the"
                          " model)")
    key_env = value.get("api_key_env")
    if key_env is not None and (not isinstance(key_env, str)
                                or not ENV_NAME_RE.fullmatch(key_env)):
        raise where.error(f"endpoint.api_key_env must name an environment variable (letters,"
                          f" digits, '_'), not {key_env!r}")
    return Endpoint(url.rstrip("/"), model, key_env)


def _safe_leaf(name: str, fallback: str) -> str:
    """A file name taken from a URL, made safe to use as a path component."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".")
    return cleaned[:200] or fallback


def parse_catalog(data: object, source: str) -> list[ModelMetadata]:
    """Validate a whole catalog document."""
    where = _Where(source)
    if not isinstance(data, dict):
        raise where.error("top level must be an object with 'format_version' and 'models'")
    version = data.get("format_version", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise where.error(
            f"format_version {version!r} is not supported (expected {FORMAT_VERSION})"
        )
    models = data.get("models")
    if not isinstance(models, list):
        raise where.error("models must be a list")
    out: list[ModelMetadata] = []
    ids: set[str] = set()
    for i, raw in enumerate(models):
        meta = parse_model(raw, source, i)
        if meta.id in ids:
            raise _Where(source, meta.id).error("id appears twice in this catalog")
        ids.add(meta.id)
        out.append(meta)
    return out


def load_catalog_file(path: Path | str, source: str | None = None) -> list[ModelMetadata]:
    """Read and validate a catalog JSON file; errors (and each model's ``source``) name
    ``source``, by default the path (a fetched catalog's copy is named by its URL)."""
    source = source or str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise InvalidCatalogError(f"catalog {source}: cannot read: {e.strerror or e}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise InvalidCatalogError(
            f"catalog {source}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})"
        ) from None
    return parse_catalog(data, source)


def load_builtin() -> list[ModelMetadata]:
    """The catalog shipped inside the package."""
    path = Path(__file__).with_name("builtin.json")
    if path.is_file():  # installed as files: importlib.resources (zipfile...) is not needed
        text = path.read_text(encoding="utf-8")
    else:  # pragma: no cover - imported from a zip
        from importlib.resources import files

        text = files("runanywhere.catalog").joinpath("builtin.json").read_text(encoding="utf-8")
    return parse_catalog(json.loads(text), "builtin")
