"""Sideload a model from a local file or folder (air-gapped machines), verified first.

The user's files are copied (never moved) into the cache's ``partials/`` folder while hashing,
checked against the catalog's size and sha256 (or the trusted-on-first-use hash), and only then
published through the same write path as a download (writer.py). The copies are partials of
this process (owner = pid), so a concurrent ``cache prune`` leaves them alone and a killed import
leaves orphans it removes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import IntegrityError, ModelError
from .entry import CacheEntry, StagedFile
from .fsutil import random_hex
from .hashing import copy_hashing, git_blob_sha1, write_all
from .partial import Partial, PartialMeta, new_owner
from .writer import ModelWriter

if TYPE_CHECKING:
    from ..catalog import ModelFile, ModelMetadata


def import_into(writer: ModelWriter, meta: ModelMetadata, path: Path) -> CacheEntry:
    """Copy ``path`` (a file, or the folder of a multi-file model) in, verify, publish."""
    writer.modes.require_writable()
    sources = _sources(meta, path)
    staged: list[StagedFile] = []
    partials: list[Partial] = []
    try:
        for f in meta.files:
            staged.append(_stage(writer, meta, f, sources[f.path], partials))
        return writer.publish_model(meta, staged, origin="import")
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


def _stage(writer: ModelWriter, meta: ModelMetadata, f: ModelFile, src: Path,
           partials: list[Partial]) -> StagedFile:
    """Copy one file into ``partials/`` while hashing it; raise unless it is the right bytes."""
    actual_size = src.stat().st_size
    if f.size is not None and actual_size != f.size:
        raise IntegrityError(f"{src}: {actual_size} bytes, the catalog says {f.size}",
                             expected=str(f.size), actual=str(actual_size))
    want = writer.expected_sha256(meta.id, f)
    part = Partial(writer.partial_dir(), f"import-{random_hex(16)}", new_owner())
    partials.append(part)
    part.open(PartialMeta(url=f"file://{src}", size=actual_size, sha256=want))
    with open(src, "rb", buffering=0) as fi:
        digest, _ = copy_hashing(fi, lambda chunk: write_all(part.fd, chunk))
    if writer.durable:
        os.fsync(part.fd)
    blob_id = git_blob_sha1(part.fd, actual_size) if want is None and f.git_sha1 else None
    part.close()
    if blob_id is not None and blob_id != f.git_sha1:
        raise IntegrityError(f"{src}: git blob id {blob_id} does not match the Hub's"
                             f" {f.git_sha1}", expected=f.git_sha1, actual=blob_id)
    if want is not None and digest != want:
        raise IntegrityError(f"{src}: sha256 {digest} does not match the expected {want}",
                             expected=want, actual=digest)
    if want is None:  # trust on first use: every later download or import must match
        writer.record_trusted(meta.id, f, f"file://{src}", digest, actual_size)
    return StagedFile(f.path, part.data_path, digest, actual_size)
