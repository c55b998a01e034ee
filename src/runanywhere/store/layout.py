"""Where everything lives in a cache folder: every path the store builds comes from here.

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
"""

from __future__ import annotations

import re
from pathlib import Path


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
        return self.blob_dir / sha256

    def model_folder(self, model_id: str) -> Path:
        """``models/<id>``: every version of the model."""
        return self.model_dir / model_id

    def version_folder(self, model_id: str, version: str) -> Path:
        return self.model_folder(model_id) / safe_component(version)

    def entry(self, model_id: str, version: str, kind: str, file: str | None = None) -> str:
        """A manifest's ``entry``: the model folder, or its one file, relative to the root."""
        rel = f"models/{model_id}/{safe_component(version)}"
        return f"{rel}/{file}" if kind == "file" and file is not None else rel

    def entry_path(self, doc: dict[str, object]) -> Path:
        """Where a manifest's ``entry`` is."""
        return self.root / str(doc["entry"])

    def base(self, doc: dict[str, object]) -> Path:
        """A manifest's model folder (the parent of the entry for a single file)."""
        p = self.entry_path(doc)
        return p if doc["kind"] == "dir" else p.parent

    def manifest(self, model_id: str) -> Path:
        return self.manifest_dir / f"{model_id}.json"

    def trust_file(self, model_id: str) -> Path:
        return self.trusted_dir / f"{model_id}.json"

    def quarantined(self, name: str) -> Path:
        return self.quarantine_dir / name
