"""How this process uses a cache folder: normally, or degraded (one warning each, never a crash).

* normal: the folder's own disk tier, read and written;
* read-only: the folder cannot be written, or its index cannot be used (locked for too long,
  unreadable): what it holds is still served through a read-only view of its index, and
  anything that would add to it raises ``CacheError`` (:meth:`CacheModes.require_writable`);
* scratch (``scratch_fallback=True``): as read-only, but new models go to a temporary folder for
  this process (deleted when it ends);
* volatile: a publish that meets an index locked too long stays visible to this process and is
  committed later (:meth:`CacheModes.retry_volatile`, from ``flush``).

A corrupt index found while running is rebuilt once (:meth:`CacheModes.guarded`); a busy one
answers with a default and a warning. Lookups go through the tiers in order: the writable tier,
the volatile publishes, the read-only view.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

from ..errors import CacheBusy, CacheError
from ..logs import warn_once
from . import permissions
from .disk import DiskTier
from .entry import CacheEntry, Prepared
from .fsutil import is_writable_dir
from .index import dump_manifest, is_busy
from .layout import Layout

if TYPE_CHECKING:
    import tempfile

T = TypeVar("T")
Action = Literal["retry", "degrade", "raise"]


def judge_open_error(e: BaseException, before_deadline: bool) -> Action:
    """What an error while opening the folder's index means: ``"retry"`` (another process is
    switching it to WAL or migrating it: "locked" at once, without SQLite's busy wait),
    ``"degrade"`` (locked for too long, unreadable, an I/O error: serve it read-only) or
    ``"raise"`` (an index from a newer runanywhere: refuse, never touch it; or a bug)."""
    if isinstance(e, CacheBusy):
        return "degrade"
    if isinstance(e, CacheError):
        return "raise"
    if isinstance(e, sqlite3.OperationalError) and is_busy(e) and before_deadline:
        return "retry"
    if isinstance(e, (OSError, sqlite3.Error)):
        return "degrade"
    return "raise"


@dataclass(frozen=True)
class Mode:
    """What a degraded cache serves and where additions go."""

    #: Serve what the folder holds through a read-only view of its index.
    readonly_view: bool
    #: Additions go to a scratch folder for this process (else they are refused).
    scratch: bool

    def describe(self, reason: str, served: str) -> str:
        then = ("new downloads go to a temporary folder for this run (nothing new will persist)"
                if self.scratch else "nothing can be added to it")
        return f"{reason}; serving {served}; {then}"


def choose_mode(index_exists: bool, scratch_fallback: bool) -> Mode:
    """The degraded mode: a view of the folder's index when there is one to read; a scratch
    folder for additions only when asked for."""
    return Mode(readonly_view=index_exists, scratch=scratch_fallback)


class CacheModes:
    """The tiers of one cache folder for this process (see the module doc)."""

    def __init__(self, directory: Path, *, durable: bool, lock_timeout: float,
                 scratch_fallback: bool) -> None:
        self.directory = directory
        self.durable = durable
        self.lock_timeout = lock_timeout
        self.scratch_fallback = scratch_fallback
        #: Why the folder is not used normally (None when it is).
        self.degraded: str | None = None
        #: A read-only view of the folder, when degraded and it has an index.
        self.readonly: DiskTier | None = None
        self._scratch: tempfile.TemporaryDirectory[str] | None = None
        self._volatile: dict[str, tuple[Prepared, CacheEntry]] = {}
        self._recovered = False
        #: The writable tier: the folder's, or (degraded) a scratch folder's.
        self.disk = self._open()

    # -- opening -----------------------------------------------------------------------------------
    def _open(self) -> DiskTier:
        unsafe = permissions.problems(self.directory)
        if unsafe:
            raise CacheError(f"refusing the cache folder {self.directory}: {unsafe[0]}"
                             + (f" (and {len(unsafe) - 1} more: runanywhere doctor)"
                                if len(unsafe) > 1 else ""))
        if not is_writable_dir(self.directory):
            return self._degrade(f"cache folder {self.directory} is not writable")
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                return DiskTier(self.directory, durable=self.durable,
                                busy_timeout=self.lock_timeout)
            except BaseException as e:
                action = judge_open_error(e, time.monotonic() < deadline)
                if action == "raise":
                    raise
                if action == "retry":
                    time.sleep(0.05)
                    continue
                return self._degrade(f"cache index in {self.directory} is busy ({e})"
                                     if isinstance(e, CacheBusy) else
                                     f"cannot use the cache index in {self.directory} ({e})")

    def _degrade(self, reason: str) -> DiskTier:
        self.degraded = reason
        mode = choose_mode(Layout(self.directory).index_path.exists(), self.scratch_fallback)
        served = "nothing (it has no index)"
        if mode.readonly_view:
            try:
                self.readonly = DiskTier(self.directory, readonly=True,
                                         busy_timeout=self.lock_timeout)
                served = "what it holds, read-only"
            except (OSError, sqlite3.Error, CacheError) as e:
                served = f"nothing from it (its index cannot be read either: {e})"
        self.warn("degraded", mode.describe(reason, served))
        # The writable tier is a scratch folder either way; require_writable() refuses every
        # addition unless scratch_fallback asked for one.
        import tempfile  # only when degraded to a scratch folder

        self._scratch = tempfile.TemporaryDirectory(prefix="runanywhere-scratch-")
        return DiskTier(Path(self._scratch.name), durable=False, busy_timeout=self.lock_timeout)

    def require_writable(self) -> None:
        """Raise ``CacheError`` (saying why) if nothing can be added to this cache."""
        if self.degraded is not None and not self.scratch_fallback:
            raise CacheError(f"{self.degraded}: nothing can be added to it (choose another"
                             " cache folder with --home or RUNANYWHERE_HOME, or set"
                             " RUNANYWHERE_SCRATCH_FALLBACK=1 to download into a temporary"
                             " folder)")

    def refuse_readonly(self, model_id: str) -> None:
        """Raise ``CacheError`` if the model lives in the read-only view (it cannot change)."""
        if self.readonly is not None and self.readonly.verifier.check(model_id)[0] is not None:
            raise CacheError(f"{model_id} is in a cache this process cannot change"
                             f" ({self.degraded})")

    def warn(self, key: str, message: str) -> None:
        warn_once(f"cache:{key}:{self.directory}:{id(self)}", "%s", message)

    def close(self) -> None:
        self.disk.close()
        if self.readonly is not None:
            self.readonly.close()
        if self._scratch is not None:
            self._scratch.cleanup()

    # -- reading through the tiers ----------------------------------------------------------------
    def guarded(self, call: Callable[[], T], default: T, what: str,
                tier: DiskTier | None = None) -> T:
        """Run an index read of ``tier`` (default: the writable one). A busy index answers
        ``default``; a corrupt writable one is rebuilt once, a corrupt read-only one ignored."""
        tier = tier or self.disk
        try:
            return call()
        except sqlite3.OperationalError as e:
            if not is_busy(e):
                raise
            self.warn("busy-read", f"cache index busy ({e}); {what} answered without it")
            return default
        except sqlite3.DatabaseError as e:
            if tier.readonly:
                self.warn("ro-corrupt", f"the read-only cache index is damaged ({e})")
                return default
            if self._recovered:
                raise
            self._recovered = True
            tier.recover(e)
            return call()

    def lookup(self, model_id: str, *, rehash: bool) -> tuple[CacheEntry | None, bool]:
        """``(entry or None, True if a re-hash is due and rehash was False)``: the writable
        tier, then the volatile publishes, then the read-only view."""
        entry, pending = self._checked(self.disk, model_id, rehash)
        if pending:
            return None, True
        if entry is None and model_id in self._volatile:
            entry = self._volatile[model_id][1]
        if entry is None and self.readonly is not None:
            entry, pending = self._checked(self.readonly, model_id, rehash)
        return entry, pending

    def _checked(self, tier: DiskTier, model_id: str, rehash: bool
                 ) -> tuple[CacheEntry | None, bool]:
        """The tier's entry after its cheap check, re-hashed if its mtimes moved; ``(None,
        True)`` when that is due and not allowed here."""
        none: tuple[CacheEntry | None, bool] = (None, False)
        entry, stale = self.guarded(lambda: tier.verifier.check(model_id), none,
                                    f"lookup of {model_id}", tier)
        if not stale:
            return entry, False
        if not rehash:
            return None, True
        try:
            return self.guarded(lambda: tier.verifier.recheck(model_id), None,
                                f"re-check of {model_id}", tier), False
        except CacheBusy as e:
            self.warn("busy-recheck", f"{model_id} could not be re-checked now ({e})")
            return None, False

    @contextlib.contextmanager
    def unless_busy(self) -> Iterator[bool]:
        """True while this thread holds the writable index, False at once if another does."""
        with self.disk.index.unless_busy() as free:
            yield free

    def entries(self) -> list[CacheEntry]:
        """Every visible model of every tier, sorted by id."""
        none: list[CacheEntry] = []
        out = self.guarded(self.disk.entries, none, "listing")
        seen = {e.model_id for e in out}
        extra = [e for _, e in self._volatile.values() if e.model_id not in seen]
        if self.readonly is not None:
            extra += [e for e in self.guarded(self.readonly.entries, none, "listing",
                                              self.readonly)
                      if e.model_id not in seen and e.model_id not in self._volatile]
        return sorted(out + extra, key=lambda e: e.model_id) if extra else out

    def size(self) -> int:
        """Bytes stored in every tier, each blob counted once per tier."""
        total = self.guarded(self.disk.size, 0, "size")
        blobs = {f.sha256: f.size for _, e in self._volatile.values() for f in e.files}
        total += sum(blobs.values())
        if self.readonly is not None:
            total += self.guarded(self.readonly.size, 0, "size", self.readonly)
        return total

    # -- publishes the index did not accept yet ---------------------------------------------------
    def keep_volatile(self, p: Prepared, why: str) -> CacheEntry:
        self.warn("busy-write", f"{why}; {p.doc['id']} is usable by this process now and will"
                  " be recorded once the index is free")
        entry = CacheEntry(str(self.disk.root), p.doc["id"], dump_manifest(p.doc), time.time(),
                           0, bool(p.pinned))
        self._volatile[p.doc["id"]] = (p, entry)
        return entry

    def is_volatile(self, model_id: str) -> bool:
        return model_id in self._volatile

    def forget(self, model_ids: list[str] | None = None) -> None:
        """Drop volatile publishes (of these models, or all): they were removed."""
        for mid in list(self._volatile) if model_ids is None else model_ids:
            self._volatile.pop(mid, None)

    def retry_volatile(self) -> None:
        """Commit the publishes that met a locked index (those that still cannot wait)."""
        for p, _ in list(self._volatile.values()):
            with contextlib.suppress(CacheError, OSError, sqlite3.Error):
                self.disk.installer.retry_commit(p)
                self._volatile.pop(p.doc["id"], None)
