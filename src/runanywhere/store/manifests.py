"""``manifests/<id>.json``: what each model is, kept beside the index so a lost index can be
rebuilt (see rebuild.py). The index row carries the same document; the file also keeps the pin."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .fsutil import atomic_write, read_own
from .layout import Layout, check_manifest


class Manifests:
    def __init__(self, layout: Layout, *, durable: bool) -> None:
        self.layout = layout
        self.durable = durable

    def write(self, doc: dict[str, Any], pinned: bool) -> None:
        data = json.dumps({**doc, "pinned": pinned}, indent=1, sort_keys=True).encode()
        atomic_write(self.layout.manifest(doc["id"]), data, durable=self.durable)

    def remove(self, model_id: str) -> None:
        self.layout.manifest(model_id).unlink(missing_ok=True)

    def files(self) -> list[Path]:
        """Every manifest file, sorted."""
        return sorted(self.layout.manifest_dir.glob("*.json"))

    @staticmethod
    def read(path: Path) -> tuple[dict[str, Any], bool]:
        """``(manifest, pinned)`` from a manifest file, checked (``layout.check_manifest``: its
        id is the file's name, its paths stay in the model's folder) and never read through a
        link. ``OSError``, ``ValueError`` or ``UnsafeCacheError`` if it is not such a file."""
        doc = json.loads(read_own(path))
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        pinned = bool(doc.pop("pinned", False))
        return check_manifest(doc, path.stem), pinned
