"""Catalog entries for models that come from a URL or an ``hf://`` reference, not a catalog.

The entry's ``name`` is the source as the user gave it (the URL with its password and tokens
masked, or the ``hf://`` reference unpinned): pulling the same source again updates the entry (a
branch that moved is pinned anew), while another source asking for a taken id is refused. The
entry keeps the URL whole for this process's download; :func:`stored_entry` is what is written
to ``sources.json``, without the credentials (a later download, after ``cache rm``, is answered
401: pull the URL again to give them).

``runanywhere pull https://host/file.onnx --sha256 HEX`` and ``pull hf://owner/repo/file`` (and
``registry.fetch``) build an entry here: a readable id (from the file name, ``owner--repo`` for
the Hub, or ``--id``), the format from the file extension, and the hashes the user gave or the
Hub's API published for a pinned commit. The registry remembers it in the cache's
``sources.json``, so the next run (offline too) knows the model by id.
"""

from __future__ import annotations

import posixpath
import re
import threading
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from ..catalog.hub import HubRef, is_hub_url
from ..catalog.parse import normalize_hash, validate_id
from ..errors import DownloadError, InvalidCatalogError, OfflineError
from ..redact import redact_url, without_credentials
from ..settings import Settings

if TYPE_CHECKING:  # HTTP, TLS and the Hub's client load when a source is fetched, not before
    from .config import FetchConfig

_FORMATS = {".onnx": "onnx", ".ort": "onnx", ".tflite": "tflite", ".safetensors": "safetensors",
            ".gguf": "gguf", ".pt": "pytorch", ".pth": "pytorch", ".bin": "custom"}


def readable_id(name: str) -> str:
    """An id from a file or repository name: lower case, ``[a-z0-9._-]``, at most 128."""
    text = re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-._")
    text = re.sub(r"\.\.+", ".", text)[:128].rstrip("-._")
    return text or "model"


def guess_format(paths: Sequence[str]) -> str:
    for ext in (".onnx", ".ort", ".tflite", ".safetensors", ".gguf", ".pt", ".pth"):
        if any(p.lower().endswith(ext) for p in paths):
            return _FORMATS[ext]
    return "custom"


def url_entry(url: str, *, sha256: str | None, size: int | None, model_id: str | None,
              settings: Settings, config: FetchConfig | None = None) -> dict[str, Any]:
    """A single-file entry for an http(s) URL. Without a sha256 the size is asked of the origin
    (a one-byte range, see :func:`probe_size`), so trust on first use still has an exact length
    to hold to."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidCatalogError(f"{url!r} is not an http(s) URL or an hf:// reference")
    name = posixpath.basename(unquote(parts.path)) or parts.hostname
    shown = redact_url(url)
    entry: dict[str, Any] = {
        "id": _checked_id(model_id or readable_id(name)), "name": shown, "type": "custom",
        "format": guess_format([name]), "provider": parts.hostname, "version": "1", "url": url,
        "description": f"pulled from {shown}",
    }
    if sha256:
        try:
            entry["hash"] = normalize_hash(sha256)
        except ValueError as e:
            raise InvalidCatalogError(f"--sha256: {e}") from None
    if size is None and not sha256:
        size = probe_size_of(url, settings, config)
    if size is not None:
        entry["size"] = size
    return entry


def probe_size_of(url: str, settings: Settings, config: FetchConfig | None = None) -> int:
    """The length of the file at ``url``, asked as a download asks it (``probe.py``: retries,
    token rules, typed errors), with the loader's ``config`` when given. Offline: no request."""
    if settings.offline:
        raise OfflineError(f"{url} is not in the cache, and learning its size needs the"
                           " network while offline mode is on (RUNANYWHERE_OFFLINE / --offline)")
    from .config import Auth, FetchConfig, Stalls
    from .hub import hub_token, token_origins
    from .probe import probe_size

    config = config or FetchConfig(stalls=Stalls(timeout=30.0))
    if config.auth.token is None:  # a token of the caller's own keeps its own origins
        config = replace(config, auth=Auth(hub_token(settings), token_origins(settings)))
    try:
        return probe_size([url], config, threading.Event()).total
    except DownloadError as e:
        if e.status in (200, 206):  # it answered, but without a length
            raise DownloadError(f"{e}; give --size or --sha256", url=url,
                                status=e.status) from None
        raise


def hub_entry(ref_text: str, *, model_id: str | None, include: Sequence[str],
              exclude: Sequence[str], settings: Settings, config: FetchConfig | None = None
              ) -> dict[str, Any]:
    """An entry for an ``hf://`` file, folder or repository, pinned to the commit its revision
    names now, with each file's size and the hash the Hub publishes for it. The API is asked
    under the loader's retry policy (``config``), or the default one."""
    try:
        ref = HubRef.parse(ref_text)
    except ValueError as e:  # the message names the reference
        raise InvalidCatalogError(str(e)) from None
    from .hub import Hub

    with Hub(settings, retry=config.retry if config is not None else None) as hub:
        found = hub.resolve(ref, include, exclude)
    pinned, commit = found.ref, found.commit
    repo_name = ref.repo.split("/", 1)[1]
    if found.single:
        base = posixpath.basename(ref.path)
        if not base.lower().startswith(repo_name.lower()):  # "model.onnx" alone says little
            base = f"{repo_name}-{base}"
    elif ref.path:
        base = f"{repo_name}-{posixpath.basename(ref.path)}"
    else:
        base = repo_name
    # The owner is part of the id (acme--whisper-tiny, as the Hub's own cache names its
    # folders): a repository named like a built-in model never collides with it.
    base = f"{ref.repo.split('/', 1)[0]}--{base}"
    files = [{"path": f.path, "url": pinned.at(commit, f.path).url(), "size": f.size,
              **({"hash": f"sha256:{f.sha256}"} if f.sha256 else {"git_sha1": f.blob_id})}
             for f in found.files]
    entry: dict[str, Any] = {
        "id": _checked_id(model_id or readable_id(base)),
        "name": ref.url(), "type": "custom", "format": guess_format([f.path for f in found.files]),
        "provider": ref.repo.split("/", 1)[0], "version": commit[:12],
        "description": f"pulled from {pinned.at(commit).url()}",
    }
    if found.single:
        (f,) = files
        if not f["size"]:
            raise InvalidCatalogError(f"{ref.url()} is an empty file: a model needs bytes (pull"
                                      " its folder or repository to have it with the others)")
        entry.update({k: v for k, v in f.items() if k != "path"})
    else:
        entry["files"] = files
    return entry


def stored_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """``entry`` as it may be written to disk (``sources.json``): every URL without its user
    information. Query tokens stay: the URL does not work without them, and they are masked
    wherever the entry is shown."""
    out = dict(entry)
    if isinstance(out.get("url"), str):
        out["url"] = without_credentials(out["url"])
    if isinstance(out.get("mirrors"), list):
        out["mirrors"] = [without_credentials(u) for u in out["mirrors"]]
    if isinstance(out.get("files"), list):
        out["files"] = [stored_entry(f) if isinstance(f, dict) else f for f in out["files"]]
    return out


def _checked_id(model_id: str) -> str:
    try:
        return validate_id(model_id)
    except ValueError as e:
        raise InvalidCatalogError(f"--id: {e}") from None


def is_source(text: str) -> bool:
    """Does a ``pull`` argument name a source (a URL or ``hf://``) rather than a catalog id?"""
    return is_hub_url(text) or text.startswith(("http://", "https://"))
