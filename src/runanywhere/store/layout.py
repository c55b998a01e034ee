"""Where everything lives in a cache folder: every path the store builds comes from here, and
everything read back from the folder is checked here before a path is built from it.

::

    index.db                     the index (see index.py)
    blobs/sha256/<hex>           every verified file, named by its hash (stored once)
    models/<id>/<version>/...    the model as users see it: hard links to blobs (copies where
                                 links are impossible)
    manifests/<id>.json          per-model manifest, enough to rebuild the index
    trusted/<id>.json            first-use sha256 records (kept after ``rm``; see trust.py)
    partials/                    downloads and imports in progress (see partial.py)
    locks/                       flocks (see locks.py)
    quarantine/                  whatever failed verification, kept for inspection
    sources.json                 the catalog of models pulled by URL or ``hf://`` reference

The rule (SECURITY.md, "What the cache folder may say"): whoever can write the folder may have
written anything into ``index.db``, ``manifests/``, ``trusted/`` and ``sources.json``. So an id
read back from them must be a catalog id (``[a-z0-9][a-z0-9._-]{0,127}``, no ``..``), a sha256
64 lower-case hex digits, a file path relative with no ``..``, ``.``, empty part, backslash or
NUL, and a manifest's entry exactly ``models/<its id>/<version>[/<its one file>]``; anything else
raises :class:`~runanywhere.errors.UnsafeCacheError` before a path is built. (Links planted where
a folder or file of ours should be are the other half of the rule: see ``fsutil.planted_link``.)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..catalog import validate_id
from ..errors import UnsafeCacheError
from ..logs import warn_once

HEX64 = re.compile(r"[0-9a-f]{64}")
#: The characters of a model id (the catalog's rule, without its ``..`` clause).
ID_CHARS = re.compile(r"[a-z0-9][a-z0-9._-]*")
#: A version folder's name (what :func:`safe_component` makes of a version).
COMPONENT = re.compile(r"[A-Za-z0-9._-]+")


def check_id(value: object, what: str = "model id") -> str:
    """``value`` if it is a model id by the catalog's rule, else ``UnsafeCacheError``."""
    try:
        return validate_id(value)
    except ValueError:
        raise UnsafeCacheError(f"{what} {value!r} is not a model id") from None


def is_model_id(value: str) -> bool:
    """Does ``value`` meet :func:`check_id`? (Fast: for many names.)"""
    return len(value) <= 128 and ID_CHARS.fullmatch(value) is not None and ".." not in value


def check_sha256(value: object, what: str = "sha256") -> str:
    """``value`` if it is 64 lower-case hex digits, else ``UnsafeCacheError``."""
    if not isinstance(value, str) or not HEX64.fullmatch(value):
        raise UnsafeCacheError(f"{what} {value!r} is not a sha256 (64 lower-case hex digits)")
    return value


def check_relpath(value: object, what: str = "file path") -> str:
    """``value`` if it is a relative path that stays where it is put, else ``UnsafeCacheError``."""
    if (not isinstance(value, str) or not value or "\x00" in value or "\\" in value
            or value.startswith("/")
            or any(part in ("", ".", "..") for part in value.split("/"))):
        raise UnsafeCacheError(f"{what} {value!r} is not a relative path inside the model folder")
    return value


def check_manifest(doc: object, model_id: str | None = None) -> dict[str, Any]:
    """A manifest (from an index row or ``manifests/``) whose every path stays in its model's
    folder; ``model_id``: the id it must have (its row's, its file's name)."""
    if not isinstance(doc, dict):
        raise UnsafeCacheError(f"the manifest of {model_id!r} is not a JSON object")
    mid = check_id(doc.get("id"))
    if model_id is not None and mid != model_id:
        raise UnsafeCacheError(f"the manifest of {model_id!r} names another model ({mid!r})")
    kind, files, entry = doc.get("kind"), doc.get("files"), doc.get("entry")
    if kind not in ("file", "dir") or not isinstance(files, list) or not files or (
            kind == "file" and len(files) != 1):
        raise UnsafeCacheError(f"the manifest of {mid!r} has kind {kind!r} with"
                               f" {len(files) if isinstance(files, list) else 'no'} file(s)")
    for f in files:
        if not isinstance(f, dict):
            raise UnsafeCacheError(f"the manifest of {mid!r} lists a file that is not an object")
        check_relpath(f.get("path"), f"file path of {mid!r}")
        check_sha256(f.get("sha256"), f"sha256 of {mid!r}")
        size = f.get("size")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise UnsafeCacheError(f"the manifest of {mid!r} gives a file the size {size!r}")
    if doc.get("source_sha256") is not None:
        check_sha256(doc["source_sha256"], f"source sha256 of {mid!r}")
    parts = entry.split("/") if isinstance(entry, str) else []
    rest = "/".join(parts[3:])
    if (parts[:2] != ["models", mid] or len(parts) < 3 or not COMPONENT.fullmatch(parts[2])
            or parts[2] in (".", "..")
            or rest != (files[0]["path"] if kind == "file" else "")):
        raise UnsafeCacheError(f"the entry {entry!r} of {mid!r} is not inside models/{mid}/")
    return doc


def listable(model_id: str, manifest: str) -> bool:
    """A fast, conservative form of the rule for listing many rows without parsing them: True
    when the id is a model id, the manifest gives an entry in ``models/<id>/``, and its text
    holds no ``..``, no backslash (so no JSON escape) and no string that starts with ``/``:
    every path built from such a row stays in the cache folder. (A raw NUL is no concern: JSON
    refuses it when the row is parsed.) False says nothing: parse and check it
    (:func:`check_manifest`; a row that passes here is still checked in full when parsed)."""
    return (f'"entry":"models/{model_id}/' in manifest and is_model_id(model_id)
            and ".." not in manifest and "\\" not in manifest and '"/' not in manifest)


def ignored(root: Path, what: str, problem: str) -> None:
    """Say once per process and cache that something unsafe is ignored (``runanywhere doctor``
    lists them all)."""
    warn_once(f"unsafe:{root}:{what}", "ignored: %s", problem)


def safe_component(text: str) -> str:
    """A version string as a folder name (anything but ``[A-Za-z0-9._-]`` becomes ``_``)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", text).strip(".") or "v"


class Layout:
    """The paths of one cache folder (a value: nothing here touches the disk)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.index_path = root / "index.db"
        self.blob_dir = root / "blobs" / "sha256"
        self.model_dir = root / "models"
        self.manifest_dir = root / "manifests"
        self.partial_dir = root / "partials"
        self.quarantine_dir = root / "quarantine"
        self.trusted_dir = root / "trusted"
        self.lock_dir = root / "locks"
        self.sources_path = root / "sources.json"

    @property
    def folders(self) -> tuple[Path, ...]:
        """The folders a writable cache creates when it opens."""
        return (self.blob_dir, self.model_dir, self.manifest_dir, self.partial_dir,
                self.lock_dir, self.quarantine_dir, self.trusted_dir)

    def blob(self, sha256: str) -> Path:
        return self.blob_dir / check_sha256(sha256)

    def model_folder(self, model_id: str) -> Path:
        """``models/<id>``: every version of the model."""
        return self.model_dir / check_id(model_id)

    def version_folder(self, model_id: str, version: str) -> Path:
        return self.model_folder(model_id) / safe_component(version)

    def entry(self, model_id: str, version: str, kind: str, file: str | None = None) -> str:
        """A manifest's ``entry``: the model folder, or its one file, relative to the root."""
        rel = f"models/{model_id}/{safe_component(version)}"
        return f"{rel}/{file}" if kind == "file" and file is not None else rel

    def entry_path(self, doc: dict[str, Any]) -> Path:
        """Where a manifest's ``entry`` is (the manifest checked first)."""
        return self.root / str(check_manifest(doc)["entry"])

    def base(self, doc: dict[str, Any]) -> Path:
        """A manifest's model folder (the parent of the entry for a single file)."""
        p = self.entry_path(doc)
        return p if doc["kind"] == "dir" else p.parent

    def manifest(self, model_id: str) -> Path:
        return self.manifest_dir / f"{check_id(model_id)}.json"

    def trust_file(self, model_id: str) -> Path:
        return self.trusted_dir / f"{check_id(model_id)}.json"

    def quarantined(self, name: str) -> Path:
        return self.quarantine_dir / name
