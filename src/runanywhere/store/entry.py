"""The store's values: a cached model (``CacheEntry``), a file waiting to be published, what a
verification found, where a folder's bytes are, and a publish waiting for its index commit."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UnsafeCacheError
from .index import FileRow, ListingRow
from .layout import check_manifest


@dataclass(frozen=True, slots=True)
class StagedFile:
    """A verified file waiting to be published: ``src`` is moved (not copied) into the store."""

    path: str
    src: Path
    sha256: str
    size: int


class CacheEntry:
    """One cached model version (read-only by convention).

    Built from an index row; the manifest is parsed on first use, so listing many entries costs
    one query and one small object each. Parsing checks it (``layout.check_manifest``): a row
    whose paths would lead outside its model's folder raises ``UnsafeCacheError`` the moment
    any field of it is read, before a path is ever built from it.
    """

    __slots__ = ("_doc", "_manifest", "_path", "_root", "checked_inode", "hits", "last_access",
                 "model_id", "pinned", "tier")

    def __init__(self, root: str, model_id: str, manifest: str, last_access: float, hits: int,
                 pinned: int, tier: str = "disk") -> None:
        self._root = root
        self.model_id = model_id
        self._manifest = manifest
        self._doc: dict[str, Any] | None = None
        self._path: Path | None = None
        self.last_access = last_access
        self.hits = hits
        self.pinned = bool(pinned)
        self.tier = tier
        #: (st_dev, st_ino) of a single file as the cheap check saw it: whoever opens the file
        #: later compares, so a concurrent replacement is never served under this entry.
        self.checked_inode: tuple[int, int] | None = None

    @classmethod
    def from_row(cls, root: str, row: ListingRow, tier: str = "disk") -> CacheEntry:
        """An entry from an index row (``Index.row``, ``Index.listing``)."""
        return cls(root, *row, tier)

    @property
    def manifest(self) -> dict[str, Any]:
        if self._doc is None:
            try:
                self._doc = check_manifest(json.loads(self._manifest), self.model_id)
            except (ValueError, UnsafeCacheError) as e:
                raise UnsafeCacheError(
                    f"the cache index row of {self.model_id!r} is unsafe: {e} (`runanywhere"
                    " cache verify` removes it; `runanywhere doctor` lists every such thing)"
                ) from None
        return self._doc

    def problem(self) -> str | None:
        """Why this row is unsafe (see :attr:`manifest`), or None."""
        try:
            _ = self.manifest
        except UnsafeCacheError as e:
            return str(e)
        return None

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    @property
    def kind(self) -> str:
        """``"file"`` (``path`` is the file) or ``"dir"`` (``path`` is the model's folder)."""
        return str(self.manifest["kind"])

    @property
    def size(self) -> int:
        return int(self.manifest["size"])

    @property
    def sha256(self) -> str | None:
        """The sha256 of the downloaded file (single file or archive); None for multi-file."""
        return self.manifest["source_sha256"]  # type: ignore[no-any-return]

    @property
    def created(self) -> float:
        return float(self.manifest["created"])

    @property
    def origin(self) -> str:
        return str(self.manifest["origin"])

    @property
    def files(self) -> tuple[FileRow, ...]:
        return tuple(FileRow(f["path"], f["sha256"], f["size"]) for f in self.manifest["files"])

    @property
    def path(self) -> Path:
        if self._path is None:
            self._path = Path(self._root, self.manifest["entry"])
        return self._path

    @property
    def base(self) -> Path:
        """The model's folder (the parent of ``path`` for single files)."""
        p = self.path
        return p if self.kind == "dir" else p.parent

    def with_stats(self, *, tier: str | None = None, hits: int = 0,
                   last_access: float = 0.0) -> CacheEntry:
        """A copy in another ``tier``, with ``hits`` more and a later ``last_access`` (hits this
        process counted but has not written yet)."""
        e = CacheEntry(self._root, self.model_id, self._manifest,
                       max(self.last_access, last_access), self.hits + hits, self.pinned,
                       tier or self.tier)
        e._doc = self._doc
        e.checked_inode = self.checked_inode
        return e

    def with_tier(self, tier: str) -> CacheEntry:
        return self.with_stats(tier=tier)

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.model_id, "version": self.version, "path": str(self.path),
            "kind": self.kind, "size": self.size, "sha256": self.sha256, "tier": self.tier,
            "created": self.created, "last_access": self.last_access, "hits": self.hits,
            "pinned": self.pinned, "origin": self.origin,
            "files": [{"path": f.path, "sha256": f.sha256, "size": f.size} for f in self.files],
        }

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, CacheEntry) and other.model_id == self.model_id
                and other._manifest == self._manifest and other._root == self._root)

    def __hash__(self) -> int:
        return hash((self.model_id, self._manifest))

    def __repr__(self) -> str:
        return (f"CacheEntry({self.model_id!r}, version={self.version!r}, size={self.size},"
                f" tier={self.tier!r}, pinned={self.pinned})")


@dataclass
class VerifyResult:
    model_id: str
    ok: bool
    #: What is wrong (the model was quarantined: it is no longer visible).
    problems: list[str] = field(default_factory=list)
    #: What was wrong but fixed from a good copy (the model stays visible).
    repaired: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DiskUsage:
    """What a cache folder holds on the disk: bytes of files, each inode counted once (a
    sparse partial by its allocated blocks; see ``fsutil.file_bytes``)."""

    #: The models as the index shows them: their folders, manifests and blobs.
    models: int
    #: Downloads and imports in progress or abandoned (``partials/``).
    partials: int
    #: Whatever failed verification, kept aside (``quarantine/``).
    quarantine: int
    #: ``index.db`` and its journal files (and damaged copies kept aside).
    index: int
    #: Everything else: orphan blobs, old version folders, strays, locks, trust records.
    other: int

    @property
    def total(self) -> int:
        return self.models + self.partials + self.quarantine + self.index + self.other

    def to_dict(self) -> dict[str, int]:
        return {"total": self.total, "models": self.models, "partials": self.partials,
                "quarantine": self.quarantine, "index": self.index, "other": self.other}


@dataclass(frozen=True)
class Prepared:
    """A model whose files are in place, waiting for its index commit."""

    doc: dict[str, Any]
    pinned: bool | None
    file_mtimes: dict[str, int]
    blob_mtimes: dict[str, int]
    #: The model folder, if this publish created it (removed again if the commit fails).
    folder: Path | None
