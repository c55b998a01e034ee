"""Sideload a model from a local file or folder (air-gapped machines), verified first.

The user's files are copied (never moved) into the cache's partials folder while hashing, checked
against the catalog's size and sha256 (or the trusted-on-first-use hash), and only then published
exactly like a download.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import IntegrityError, ModelError

if TYPE_CHECKING:
    from .registry import ModelRegistry
    from .store import CacheEntry, StagedFile


def _copy_hashing(src: Path, dst: Path, durable: bool) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with open(src, "rb") as fi, open(dst, "xb") as fo:
        while chunk := fi.read(4 << 20):
            h.update(chunk)
            fo.write(chunk)
            size += len(chunk)
        if durable:
            fo.flush()
            os.fsync(fo.fileno())
    return h.hexdigest(), size


def import_model(registry: ModelRegistry, model_id: str, path: Path) -> CacheEntry:
    from .store import StagedFile
    from .transfer.archive import extract

    meta = registry.require_model(model_id)
    cache = registry.cache
    disk = cache.disk
    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path} does not exist")
    if meta.single_file:
        if not path.is_file():
            raise ModelError(f"{model_id} is a single-file model: give a file, not {path}")
        sources = {meta.files[0].path: path}
    else:
        if not path.is_dir():
            raise ModelError(f"{model_id} has {len(meta.files)} files: give the folder that"
                             " holds them")
        sources = {f.path: path / f.path for f in meta.files}
        missing = [p for p, s in sources.items() if not s.is_file()]
        if missing:
            raise ModelError(f"{path} lacks {', '.join(missing)}")
    staged: list[StagedFile] = []
    work: list[Path] = []
    try:
        for f in meta.files:
            src = sources[f.path]
            actual_size = src.stat().st_size
            if actual_size != f.size:
                raise IntegrityError(f"{src}: {actual_size} bytes, the catalog says {f.size}",
                                     expected=str(f.size), actual=str(actual_size))
            tmp = disk.partial_dir / f"import-{uuid.uuid4().hex}.part"
            work.append(tmp)
            digest, size = _copy_hashing(src, tmp, cache.durable)
            trusted = disk.index.trusted(meta.id, f.path)
            want = f.sha256 or (trusted[0] if trusted else None)
            if want is not None and digest != want:
                raise IntegrityError(f"{src}: sha256 {digest} does not match {want}",
                                     expected=want, actual=digest)
            if want is None:
                disk.index.set_trusted(meta.id, f.path, f"file://{src}", digest, size)
            staged.append(StagedFile(f.path, tmp, digest, size))
        if meta.archive:
            unpack = disk.partial_dir / f"unpack-{uuid.uuid4().hex[:8]}"
            work.append(unpack)
            members = extract(staged[0].src, meta.archive, unpack)
            files = [StagedFile(m.path, m.file, m.sha256, m.size) for m in members]
            return cache.publish(meta.id, meta.version, files, kind="dir",
                                 source_sha256=staged[0].sha256, origin="import")
        return cache.publish(meta.id, meta.version, staged,
                             kind="file" if meta.single_file else "dir",
                             source_sha256=staged[0].sha256 if meta.single_file else None,
                             origin="import")
    finally:
        import shutil

        for w in work:
            if w.is_dir():
                shutil.rmtree(w, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    w.unlink()
