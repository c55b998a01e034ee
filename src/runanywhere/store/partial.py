"""A partial download on disk: the data file plus a journal of the byte ranges it holds.

Layout, inside the cache's ``partials/`` folder, for a key (the expected sha256, or a hash of the
URL when the catalog gives none):

* ``<key>.<owner>.part``  - the data, written in place at its offsets (sparse until complete)
* ``<key>.<owner>.json``  - who the bytes came from (URL, size, ETag / Last-Modified)
* ``<key>.<owner>.log``   - append-only 16-byte records ``(start, end)``: ranges fully written

A record is appended only after its bytes were ``pwrite``-n, so after a ``kill -9`` the journal
never claims bytes the file lacks (the page cache survives the process). After a power loss it
might; that is why resumed bytes are always re-hashed and a mismatch discards the partial.

``owner`` is unique per writer. A writer only ever touches files carrying its own owner name;
taking over an abandoned partial is an atomic ``rename`` to a new owner name, so two processes can
never write the same file even where ``flock`` silently grants everyone.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .fsutil import random_hex
from .ranges import RangeSet

_REC = struct.Struct("<QQ")
#: A partial whose journal has not moved for this long belongs to nobody alive.
STALE_AFTER = 30.0


@dataclass
class PartialMeta:
    url: str
    size: int
    sha256: str | None
    etag: str | None = None
    last_modified: str | None = None
    host: str = ""
    pid: int = 0


def _host() -> str:
    import socket

    return socket.gethostname()


def new_owner() -> str:
    return f"{os.getpid()}-{random_hex(8)}"


def partial_key(url: str, size: int, sha256: str | None) -> str:
    """The name a file's partials go by: its expected sha256, else a hash of where it comes from
    (so an unverified source never resumes into another's bytes)."""
    if sha256:
        return sha256
    import hashlib  # on use (as socket and shutil here): a cached read opens no partial

    return "url-" + hashlib.sha256(f"{url}|{size}".encode()).hexdigest()[:40]


class Partial:
    """One writer's partial file. Not thread-safe for ``record``; callers hold a lock."""

    def __init__(self, folder: Path, key: str, owner: str) -> None:
        self.folder = folder
        self.key = key
        self.owner = owner
        base = folder / f"{key}.{owner}"
        self.data_path = base.with_name(base.name + ".part")
        self.meta_path = base.with_name(base.name + ".json")
        self.log_path = base.with_name(base.name + ".log")
        self.ranges = RangeSet()
        self.meta: PartialMeta | None = None
        self.fd = -1
        self._log_fd = -1

    # -- lifecycle ---------------------------------------------------------------------------
    def open(self, meta: PartialMeta) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        meta.host, meta.pid = _host(), os.getpid()
        self.meta = meta
        _ACTIVE.add(self.owner)
        # Never through a link planted in a partial's place: that would write elsewhere.
        self.fd = os.open(self.data_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        if os.fstat(self.fd).st_size < meta.size:
            os.ftruncate(self.fd, meta.size)  # sparse: allocates nothing
        self._log_fd = os.open(self.log_path,
                               os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o644)
        self.save_meta()

    def save_meta(self) -> None:
        assert self.meta is not None
        tmp = self.meta_path.with_name(self.meta_path.name + ".tmp")
        tmp.write_text(json.dumps(asdict(self.meta)))
        os.replace(tmp, self.meta_path)

    def record(self, start: int, end: int) -> None:
        """Note that ``[start, end)`` is written (call after the pwrite)."""
        self.ranges.add(start, end)
        os.write(self._log_fd, _REC.pack(start, end))

    def reset(self) -> None:
        """Forget every byte (the source changed or the bytes were bad)."""
        self.ranges = RangeSet()
        os.ftruncate(self._log_fd, 0)
        if self.fd >= 0:
            os.ftruncate(self.fd, 0)
            if self.meta:
                os.ftruncate(self.fd, self.meta.size)

    def close(self) -> None:
        for fd in (self.fd, self._log_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.fd = self._log_fd = -1
        _ACTIVE.discard(self.owner)

    def discard(self) -> None:
        self.close()
        for p in (self.data_path, self.meta_path, self.log_path):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()

    def drop_sidecars(self) -> None:
        """After the data file was renamed into the store."""
        for p in (self.meta_path, self.log_path):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()


def _read_journal(path: Path) -> RangeSet:
    rs = RangeSet()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return rs
    usable = len(data) - len(data) % _REC.size  # a torn last record is ignored
    for start, end in _REC.iter_unpack(data[:usable]):
        if end > start:
            rs.add(start, end)
    return rs


def last_activity(folder: Path, key: str, owner: str) -> float:
    """Newest mtime among a partial's files (its heartbeat)."""
    newest = 0.0
    for suffix in (".part", ".log", ".json"):
        with contextlib.suppress(FileNotFoundError):
            newest = max(newest, (folder / f"{key}.{owner}{suffix}").stat().st_mtime)
    return newest


#: Owners whose partial is open for writing in this process.
_ACTIVE: set[str] = set()


def _is_live(meta: dict[str, object], idle: float, stale_after: float) -> bool:
    """Is some writer still working on this partial?"""
    if meta.get("host") != _host():
        return idle < stale_after  # another machine: only the heartbeat tells
    pid = meta.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return idle < stale_after
    if pid == os.getpid():
        return str(meta.get("owner")) in _ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def adopt(folder: Path, key: str, expected: PartialMeta, owner: str,
          *, stale_after: float = STALE_AFTER) -> Partial:
    """Take over the best abandoned partial for ``key`` (if any) under our ``owner`` name.

    A partial is abandoned when its writer's process is gone, or (other hosts) its files have not
    changed for ``stale_after`` seconds. Partials for other sources or sizes are discarded.
    """
    mine = Partial(folder, key, owner)
    best: tuple[int, str] | None = None
    for meta_file in folder.glob(f"{key}.*.json"):
        other = meta_file.name[len(key) + 1 : -len(".json")]
        if other == owner:
            continue
        if any((folder / f"{key}.{other}{s}").is_symlink() for s in (".part", ".log", ".json")):
            Partial(folder, key, other).discard()  # planted links: removed, never followed
            continue
        try:
            meta = json.loads(meta_file.read_text())
        except (OSError, ValueError):
            meta = {}
        idle = time.time() - last_activity(folder, key, other)
        meta.setdefault("owner", other)
        if _is_live(meta, idle, stale_after):
            continue  # someone alive is writing it
        if (meta.get("size") != expected.size or meta.get("sha256") != expected.sha256
                or not (folder / f"{key}.{other}.part").exists()):
            # Another source, or only sidecars are left (the data was published or lost).
            Partial(folder, key, other).discard()
            continue
        have = _read_journal(folder / f"{key}.{other}.log").covered()
        if best is None or have > best[0]:
            best = (have, other)
    if best is not None:
        other = best[1]
        src = Partial(folder, key, other)
        try:
            # The data file first: whoever renames it owns it; the sidecars follow.
            os.rename(src.data_path, mine.data_path)
        except FileNotFoundError:
            return mine  # somebody else adopted it a moment ago
        with contextlib.suppress(FileNotFoundError):
            os.rename(src.log_path, mine.log_path)
        with contextlib.suppress(FileNotFoundError):
            meta = json.loads(src.meta_path.read_text())
            expected.etag = meta.get("etag")
            expected.last_modified = meta.get("last_modified")
        with contextlib.suppress(FileNotFoundError):
            src.meta_path.unlink()
        mine.ranges = _read_journal(mine.log_path)
        # Never trust ranges beyond the file's real length.
        size = mine.data_path.stat().st_size
        if size < expected.size:
            mine.ranges = RangeSet((s, min(e, size)) for s, e in mine.ranges if s < size)
    return mine


#: Partials named ``reuse-<sha256>.<owner>.part`` are hard links to stored blobs, staged for a
#: publish (no download needed): this process's, so ``prune`` leaves them alone while it lives.
REUSE_PREFIX = "reuse-"


def link_for_publish(folder: Path, blob: Path, sha256: str, size: int) -> Path:
    """Stage a hard link to ``blob`` (a copy where links are impossible) as a partial of this
    process, so a concurrent ``prune`` sees a live writer; ``OSError`` if the blob went away."""
    part = Partial(folder, f"{REUSE_PREFIX}{sha256}", new_owner())
    part.meta = PartialMeta(url=f"blob:{sha256}", size=size, sha256=sha256,
                            host=_host(), pid=os.getpid())
    _ACTIVE.add(part.owner)
    try:
        part.save_meta()
        try:
            os.link(blob, part.data_path)
        except FileNotFoundError:
            raise
        except OSError:  # no hard links here: a copy is still cheaper than the network
            import shutil

            shutil.copyfile(blob, part.data_path)
    except BaseException:
        release_link(part.data_path)
        raise
    return part.data_path


def is_reuse_link(path: Path) -> bool:
    return path.name.startswith(REUSE_PREFIX) and path.name.endswith(".part")


def release_link(path: Path) -> None:
    """Drop a staged reuse link (unless publishing consumed it) and its sidecar."""
    stem = path.name[: -len(".part")]
    owner = stem.partition(".")[2]
    for p in (path, path.with_name(stem + ".json")):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
    _ACTIVE.discard(owner)


def partial_group(path: Path) -> tuple[str, str]:
    """``(key, owner)`` of a file in ``partials/`` (``("", "")`` if it is not a partial's)."""
    name = path.name
    for suffix in (".part", ".json", ".log", ".tmp"):
        if name.endswith(suffix):
            stem = name[: -len(suffix)]
            break
    else:
        return "", ""
    if suffix == ".tmp":
        stem = stem[: -len(".json")] if stem.endswith(".json") else stem
    key, _, owner = stem.partition(".")
    return (key, owner) if owner else ("", "")


def is_abandoned(path: Path, older_than: float) -> bool:
    """Is this file in ``partials/`` left by a writer that is gone, and idle long enough?"""
    key, owner = partial_group(path)
    if not owner:
        return False
    folder = path.parent
    idle = time.time() - last_activity(folder, key, owner)
    if idle < older_than:
        return False
    try:
        meta = json.loads((folder / f"{key}.{owner}.json").read_text())
    except (OSError, ValueError):
        meta = {}
    meta.setdefault("owner", owner)
    return not _is_live(meta, idle, max(older_than, STALE_AFTER))
