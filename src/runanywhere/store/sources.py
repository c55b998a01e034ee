"""``sources.json``: a catalog of the models pulled by URL or ``hf://`` reference, so a later
run (offline too) knows them by id. The catalog reads it like any catalog file (validated);
here it is only ever replaced whole, atomically, under ``locks/sources.lock``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import CacheError
from .fsutil import atomic_write
from .locks import Locks


class SourcesFile:
    def __init__(self, path: Path, locks: Locks, *, durable: bool) -> None:
        self.path = path
        self.locks = locks
        self.durable = durable

    def record(self, entry: dict[str, Any]) -> None:
        """Add (or replace, by id) a catalog entry."""
        with self.locks.sources():
            try:
                doc = json.loads(self.path.read_text(encoding="utf-8"))
                models = [m for m in doc.get("models", []) if m.get("id") != entry["id"]]
            except FileNotFoundError:
                models = []
            except (OSError, ValueError, AttributeError) as e:
                raise CacheError(f"{self.path} cannot be read ({e}); move it aside to start a"
                                 " new one") from e
            doc = {"format_version": 1, "models": [*models, entry]}
            atomic_write(self.path, json.dumps(doc, indent=1).encode(), durable=self.durable)

    def forget(self, model_id: str) -> bool:
        """Drop the entry of ``model_id`` (False if there was none): its id is free again."""
        with self.locks.sources():
            try:
                doc = json.loads(self.path.read_text(encoding="utf-8"))
                models = list(doc.get("models", []))
            except FileNotFoundError:
                return False
            except (OSError, ValueError, AttributeError) as e:
                raise CacheError(f"{self.path} cannot be read ({e}); move it aside to start a"
                                 " new one") from e
            kept = [m for m in models if not (isinstance(m, dict) and m.get("id") == model_id)]
            if len(kept) == len(models):
                return False
            doc = {"format_version": 1, "models": kept}
            atomic_write(self.path, json.dumps(doc, indent=1).encode(), durable=self.durable)
            return True
