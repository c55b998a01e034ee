"""Helpers of the llama package's tests: catalog entries for GGUF files, and a registry on a fresh
cache holding some (a module of its own: test modules import it, never ``conftest``, whose name
the core's tests use too)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from runanywhere import ModelRegistry, Settings


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def llm_entry(model_id: str, path: Path, url: str | None = None, **extra: Any
              ) -> dict[str, Any]:
    """A catalog entry for the GGUF at ``path`` with its exact size and sha256."""
    return {"id": model_id, "name": model_id, "type": "llm", "format": "gguf",
            "provider": "tests", "version": "1", "size": path.stat().st_size,
            "url": url or f"http://127.0.0.1:9/{path.name}",
            "hash": f"sha256:{sha256_of(path)}", **extra}


def write_catalog(path: Path, entries: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"format_version": 1, "models": entries}))
    return path


def registry_with(home: Path, models: dict[str, Path], **settings: Any) -> ModelRegistry:
    """A registry on a fresh cache holding ``models`` (id -> GGUF file), imported (verified
    against their entries) as a user sideloads them."""
    base = replace(Settings.from_env(), home=home, **settings)
    reg = ModelRegistry(settings=base, include_builtin=False)
    for model_id, path in models.items():
        reg.register_model(llm_entry(model_id, path))
        reg.import_model(model_id, path)
    return reg
