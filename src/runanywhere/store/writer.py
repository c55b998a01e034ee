"""The one write path: everything that adds a model to the cache, downloads and imports alike.

A download (``transfer/pipeline.py``) and an import (sideload.py) both stage verified files in
``partials/``, record a first-use hash where the catalog gives none, and publish through here:
:meth:`ModelWriter.publish` (files) or :meth:`ModelWriter.publish_archive` (an archive,
unpacked safely first). The publish itself is the installer's (installer.py); a publish that
meets an index locked too long stays visible to this process (modes.py).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import CacheBusy, InsufficientStorageError, IntegrityError
from .entry import CacheEntry, Prepared, StagedFile
from .fsutil import disk_error, random_hex
from .modes import CacheModes
from .partial import is_reuse_link, release_link

if TYPE_CHECKING:
    from ..catalog import ModelFile, ModelMetadata

#: Room kept free on the disk besides what a download needs.
SPACE_MARGIN = 64 * 2**20


class ModelWriter:
    def __init__(self, modes: CacheModes, *, after_publish: Callable[[str], object]) -> None:
        """``after_publish(model_id)`` runs after each publish (the cache drops a stale memory
        copy and enforces its disk limit there)."""
        self.modes = modes
        self.after_publish = after_publish

    @property
    def durable(self) -> bool:
        return self.modes.disk.durable

    # -- which bytes are right ---------------------------------------------------------------------
    def expected_sha256(self, model_id: str, f: ModelFile) -> str | None:
        """The catalog's hash of a file, else the one recorded at its first verified download."""
        trust = self.modes.disk.trust
        return self.modes.guarded(lambda: trust.expected(model_id, f), None, "lookup")

    def record_trusted(self, model_id: str, f: ModelFile, source: str, sha256: str,
                       size: int) -> None:
        """Trust on first use: every later download or import of this file must match."""
        self.modes.disk.trust.record_first_use(model_id, f, source, sha256, size)

    # -- staging -----------------------------------------------------------------------------------
    def partial_dir(self) -> Path:
        """``partials/`` (recreated if someone removed it while we ran)."""
        folder = self.modes.disk.layout.partial_dir
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o755)
        except OSError as e:
            raise disk_error(e, f"creating {folder}", self.modes.directory) from e
        return folder

    def stage_stored_blob(self, path: str, sha256: str, size: int | None) -> StagedFile | None:
        """A hard link (in ``partials/``) to a stored blob with these bytes, or None."""
        return self.modes.disk.blobs.stage_link(self.partial_dir(), path, sha256, size)

    def discard_staged(self, files: Iterable[StagedFile]) -> None:
        """Drop the reuse links that publishing did not consume (never a download's partial)."""
        folder = self.modes.disk.layout.partial_dir
        for sf in files:
            if sf.src.parent == folder and is_reuse_link(sf.src):
                release_link(sf.src)

    def check_space(self, todo: list[tuple[str, int]], *, unpacked: int = 0) -> None:
        """Refuse (``InsufficientStorageError``) a download of ``(partial key, size)`` files that
        cannot fit, counting the bytes their partials hold already; ``unpacked``: what an archive
        will unpack to besides itself (the catalog's ``unpacked_size``, else its own size as a
        lower bound; the unpacker enforces the real bound member by member)."""
        if not todo and not unpacked:
            return
        import shutil  # for a download's space and an archive's work: not a cached read

        folder = self.partial_dir()
        need = sum(size for _, size in todo) - self.bytes_in_partials(todo)
        free = shutil.disk_usage(folder).free
        if need + unpacked + SPACE_MARGIN > free:
            also = f" and {unpacked / 2**20:.1f} MiB to unpack" if unpacked else ""
            raise InsufficientStorageError(
                f"not enough disk space in {self.modes.directory}: {need / 2**20:.1f} MiB still"
                f" to download{also}, {free / 2**20:.1f} MiB free, and"
                f" {SPACE_MARGIN / 2**20:.0f} MiB are kept free as a margin",
                needed=need + unpacked, available=free)

    def bytes_in_partials(self, todo: list[tuple[str, int]]) -> int:
        """The bytes already written into the partials of these (key, size) files, by this
        process or another (their allocated blocks, each file counted up to its size)."""
        folder = self.partial_dir()
        have = 0
        for key, size in todo:
            for part in folder.glob(f"{key}.*.part"):
                with contextlib.suppress(OSError):
                    have += min(part.stat().st_blocks * 512, size)
        return have

    # -- publishing --------------------------------------------------------------------------------
    def publish(self, model_id: str, version: str, files: list[StagedFile], *, kind: str,
                source_sha256: str | None, origin: str = "download",
                pinned: bool | None = None) -> CacheEntry:
        """Make verified files visible as a model (the files are moved into the store)."""
        self.modes.require_writable()
        try:
            entry = self.modes.disk.installer.publish(
                model_id, version, files, kind=kind, source_sha256=source_sha256,
                origin=origin, pinned=pinned)
            self.modes.forget([model_id])
        except CacheBusy as e:
            if not isinstance(e.pending, Prepared):
                raise
            entry = self.modes.keep_volatile(e.pending, str(e))
        self.after_publish(model_id)
        return entry

    def publish_archive(self, meta: ModelMetadata, archive: StagedFile, *, origin: str,
                        on_extract: Callable[[], None] | None = None,
                        after_publish: Callable[[Path], object] | None = None) -> CacheEntry:
        """Unpack a verified archive safely and publish its files as the model's folder.

        The archive's blob is kept while it is unpacked (``after_publish`` gets its path, to
        share it) and dropped afterwards unless some model uses the same bytes.
        """
        import shutil

        from .archive import extract, unpack_bound  # tar and zip: for archives only

        self.modes.require_writable()
        blobs = self.modes.disk.blobs
        blob = blobs.store(archive)
        if on_extract is not None:
            on_extract()
        work = self.partial_dir() / f"unpack-{meta.id}-{os.getpid()}-{random_hex(8)}"
        try:
            assert meta.archive is not None
            free = shutil.disk_usage(work.parent).free - SPACE_MARGIN
            members = extract(blob, meta.archive, work,
                              limit=unpack_bound(archive.size, meta.unpacked_size), free=free,
                              declared=meta.unpacked_size is not None)
            if not members:
                raise IntegrityError(f"the archive of {meta.id} holds no files")
            files = [StagedFile(m.path, m.file, m.sha256, m.size) for m in members]
            entry = self.publish(meta.id, meta.version, files, kind="dir",
                                 source_sha256=archive.sha256, origin=origin)
            if after_publish is not None:
                after_publish(blob)
            return entry
        finally:
            shutil.rmtree(work, ignore_errors=True)
            # An archive is not the model (its unpacked files are), and a refused one must
            # not stay.
            blobs.drop_unshared(archive.sha256)

    def publish_model(self, meta: ModelMetadata, files: list[StagedFile], *,
                      origin: str) -> CacheEntry:
        """Publish the staged files of ``meta`` (one per catalog file, in its order) as the
        catalog describes it: a single file, a folder, or an archive to unpack."""
        if meta.archive:
            return self.publish_archive(meta, files[0], origin=origin)
        return self.publish(meta.id, meta.version, files,
                            kind="file" if meta.single_file else "dir",
                            source_sha256=files[0].sha256 if meta.single_file else None,
                            origin=origin)
