"""Catalog entries for tests: one model as the catalog format writes it."""

from __future__ import annotations

from typing import Any


def model_entry(model_id: str, url: str, size: int, sha256: str | None, **extra: Any
                ) -> dict[str, Any]:
    """A single-file model at ``url`` (``size`` bytes; no ``sha256``: trust on first use);
    ``extra`` keys are added as they are."""
    d: dict[str, Any] = {"id": model_id, "name": model_id, "type": "custom", "format": "custom",
                         "provider": "tests", "version": "1", "size": size, "url": url}
    if sha256:
        d["hash"] = f"sha256:{sha256}"
    d.update(extra)
    return d
