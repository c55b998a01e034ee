"""``Catalog``: the models known to a process, merged from the built-in catalog and user files.

Files are read lazily on first use (or by :meth:`Catalog.load`); a later entry with the same id
replaces an earlier one, and entries registered in code win over every file. A ``ModelLoader``
built on its own resolves ids with ``Catalog.from_settings(settings)``; the registry keeps one.

A catalog may also be an ``http(s)`` URL. This package never touches the network, so whoever
builds the catalog passes ``fetch``: a function that turns such a URL into a local file (the
registry's fetches it and keeps a copy for when the server is away). Without one, a URL is an
``InvalidCatalogError`` that says so.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InvalidCatalogError, ModelNotFoundError
from .model import ModelMetadata
from .parse import load_builtin, load_catalog_file, parse_model

if TYPE_CHECKING:
    from ..settings import Settings


#: Turns a catalog URL into a local file holding its JSON.
CatalogFetcher = Callable[[str], Path]


def is_catalog_url(entry: str | Path) -> bool:
    return isinstance(entry, str) and entry.lower().startswith(("http://", "https://"))


class Catalog:
    def __init__(self, files: Iterable[str | Path] = (), *, include_builtin: bool = True,
                 fetch: CatalogFetcher | None = None, remembered: Path | None = None) -> None:
        """``files`` are catalog files or URLs (``fetch`` turns a URL into a local copy).
        ``remembered``: a catalog file that may not exist yet (the cache's ``sources.json`` of
        models pulled by URL), read after the built-in one and before ``files``."""
        #: Local files (as Paths) and catalog URLs (kept as strings).
        self.files: tuple[str | Path, ...] = tuple(
            f if is_catalog_url(f) else Path(f) for f in files)
        self.include_builtin = include_builtin
        self.fetch = fetch
        self.remembered = remembered
        self._models: dict[str, ModelMetadata] = {}
        self._registered: dict[str, ModelMetadata] = {}
        self._loaded = False
        self._lock = threading.RLock()

    @classmethod
    def from_settings(cls, settings: Settings, *, include_builtin: bool = True,
                      fetch: CatalogFetcher | None = None) -> Catalog:
        return cls(settings.catalogs, include_builtin=include_builtin, fetch=fetch,
                   remembered=settings.home / "sources.json")

    def load(self) -> None:
        """Read the built-in and user catalogs (idempotent; raises InvalidCatalogError)."""
        with self._lock:
            if self._loaded:
                return
            models: dict[str, ModelMetadata] = {}
            if self.include_builtin:
                models.update((m.id, m) for m in load_builtin())
            if self.remembered is not None and self.remembered.exists():
                models.update((m.id, m) for m in load_catalog_file(self.remembered))
            for entry in self.files:
                models.update((m.id, m) for m in self._read(entry))
            models.update(self._registered)
            self._models = models
            self._loaded = True

    def _read(self, entry: str | Path) -> list[ModelMetadata]:
        if isinstance(entry, Path):
            return load_catalog_file(entry)
        if self.fetch is None:
            raise InvalidCatalogError(f"catalog {entry}: a catalog URL needs a ModelRegistry (it"
                                      " fetches the URL and keeps a copy); download it and give"
                                      " the file instead")
        return load_catalog_file(self.fetch(entry), source=entry)

    def register(self, meta: ModelMetadata | Mapping[str, Any]) -> ModelMetadata:
        """Add or replace a model (a metadata object or a catalog-style dict, validated)."""
        if not isinstance(meta, ModelMetadata):
            meta = parse_model(dict(meta), "registered")
        with self._lock:
            self._registered[meta.id] = meta
            self._models[meta.id] = meta
        return meta

    def unregister(self, model_id: str) -> bool:
        self.load()
        with self._lock:
            self._registered.pop(model_id, None)
            return self._models.pop(model_id, None) is not None

    def get(self, model_id: str) -> ModelMetadata | None:
        self.load()
        return self._models.get(model_id)

    def require(self, model_id: str) -> ModelMetadata:
        """The model, or ``ModelNotFoundError`` with the closest ids as suggestions."""
        meta = self.get(model_id)
        if meta is None:
            raise ModelNotFoundError(model_id, self.suggest(model_id))
        return meta

    def suggest(self, model_id: str, n: int = 3) -> list[str]:
        import difflib  # an unknown id's suggestions: not on a known id's path

        self.load()
        ids = list(self._models)
        close = difflib.get_close_matches(model_id.lower(), ids, n=n, cutoff=0.4)
        return close or [i for i in ids if model_id.lower() in i][:n]

    def list(self, type: str | None = None, format: str | None = None,
             search: str | None = None) -> list[ModelMetadata]:
        """Models of a ``type`` / ``format`` whose id, name, provider or description contains
        ``search``, sorted by id."""
        self.load()
        out = []
        for m in self._models.values():
            if type and m.type != type:
                continue
            if format and m.format != format:
                continue
            if search:
                hay = " ".join((m.id, m.name, m.provider, m.description)).lower()
                if search.lower() not in hay:
                    continue
            out.append(m)
        return sorted(out, key=lambda m: m.id)
