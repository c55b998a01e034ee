"""Sideload a model from a local file or folder (air-gapped machines), verified first.

The user's files are copied (never moved) into the cache's ``partials/`` folder while hashing,
checked against the catalog's size and sha256 (or the trusted-on-first-use hash), and only then
published exactly like a download. The copies are partials of this process (owner = pid), so a
concurrent ``cache prune`` leaves them alone and a killed import leaves orphans it removes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import IntegrityError, ModelError

if TYPE_CHECKING:
    from .catalog import ModelFile, ModelMetadata
    from .registry import ModelRegistry
    from .store import CacheEntry, ModelCache, StagedFile
    from .transfer.partial import Partial


def import_model(registry: ModelRegistry, model_id: str, path: Path | str) -> CacheEntry:
    """``runanywhere import ID PATH``: the catalog entry of ``model_id`` says what to expect."""
    return import_into(registry.cache, registry.require_model(model_id), Path(path))


def import_into(cache: ModelCache, meta: ModelMetadata, path: Path) -> CacheEntry:
    sources = _sources(meta, path)
    staged: list[StagedFile] = []
    partials: list[Partial] = []
    try:
        for f in meta.files:
            staged.append(_stage(cache, meta, f, sources[f.path], partials))
        if meta.archive:
            return _publish_archive(cache, meta, staged[0])
        return cache.publish(meta.id, meta.version, staged,
                             kind="file" if meta.single_file else "dir",
                             source_sha256=staged[0].sha256 if meta.single_file else None,
                             origin="import")
    finally:
        for p in partials:
            p.discard()  # whatever was not moved into the store


def _sources(meta: ModelMetadata, path: Path) -> dict[str, Path]:
    """Which local file stands for each file of the model."""
    if not path.exists():
        raise ModelError(f"{path} does not exist")
    if meta.single_file:
        if not path.is_file():
            raise ModelError(f"{meta.id} is a single-file model: give a file, not {path}")
        return {meta.files[0].path: path}
    if not path.is_dir():
        raise ModelError(f"{meta.id} has {len(meta.files)} files: give the folder that holds them")
    sources = {f.path: path / f.path for f in meta.files}
    missing = [p for p, s in sources.items() if not s.is_file()]
    if missing:
        raise ModelError(f"{path} lacks {', '.join(missing)}")
    return sources


def _stage(cache: ModelCache, meta: ModelMetadata, f: ModelFile, src: Path,
           partials: list[Partial]) -> StagedFile:
    """Copy one file into ``partials/`` while hashing it; raise unless it is the right bytes."""
    from .store import StagedFile
    from .transfer.partial import Partial, PartialMeta, new_owner

    actual_size = src.stat().st_size
    if actual_size != f.size:
        raise IntegrityError(f"{src}: {actual_size} bytes, the catalog says {f.size}",
                             expected=str(f.size), actual=str(actual_size))
    index = cache.disk.index
    trusted = index.trusted(meta.id, f.path)
    want = f.sha256 or (trusted[0] if trusted else None)
    part = Partial(cache.disk.partial_dir, f"import-{uuid.uuid4().hex[:16]}", new_owner())
    partials.append(part)
    part.open(PartialMeta(url=f"file://{src}", size=f.size, sha256=want))
    digest = _copy_hashing(src, part.fd, cache.durable)
    part.close()
    if want is not None and digest != want:
        raise IntegrityError(f"{src}: sha256 {digest} does not match the expected {want}",
                             expected=want, actual=digest)
    if want is None:  # trust on first use: every later download or import must match
        index.set_trusted(meta.id, f.path, f"file://{src}", digest, f.size)
    return StagedFile(f.path, part.data_path, digest, f.size)


def _copy_hashing(src: Path, fd: int, durable: bool) -> str:
    h = hashlib.sha256()
    buf = bytearray(4 << 20)
    view = memoryview(buf)
    with open(src, "rb", buffering=0) as fi:
        while n := fi.readinto(buf):
            h.update(view[:n])
            written = 0
            while written < n:
                written += os.write(fd, view[written:n])
    if durable:
        os.fsync(fd)
    return h.hexdigest()


def _publish_archive(cache: ModelCache, meta: ModelMetadata, archive: StagedFile) -> CacheEntry:
    from .store import StagedFile
    from .transfer.archive import extract

    unpack = cache.disk.partial_dir / f"unpack-import-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        members = extract(archive.src, meta.archive or "", unpack)
        if not members:
            raise IntegrityError(f"the archive of {meta.id} holds no files")
        files = [StagedFile(m.path, m.file, m.sha256, m.size) for m in members]
        return cache.publish(meta.id, meta.version, files, kind="dir",
                             source_sha256=archive.sha256, origin="import")
    finally:
        shutil.rmtree(unpack, ignore_errors=True)
