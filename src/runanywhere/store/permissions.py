"""Who may write the cache folder: checked every time a cache is opened.

Whoever can write the cache folder decides what runanywhere serves: a hit is checked cheaply
(size and mtime, never re-hashed), and both can be forged by anyone who can write the files.
So the cache trusts exactly the users who can write it, and refuses to open when that is more
than the caller (and root):

* the folder, its subfolders or the index writable by every user (mode ``o+w``): refused;
* any of them owned by another user than the caller or root: refused;
* writable by the group: allowed (a team may share a cache on purpose), reported by ``doctor``.

Only the cache folder and what runanywhere creates in it are checked, not its parents (a cache
under ``/tmp`` is fine when the folder itself is the caller's). Folders are created ``0o755``
(the umask may take more away), so a umask of ``000`` does not make a cache that is refused.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

#: What runanywhere creates inside a cache folder (relative paths), checked besides the folder.
CHECKED = ("blobs", "blobs/sha256", "models", "manifests", "partials", "locks", "trusted",
           "quarantine", "index.db", "index.db-wal", "index.db-shm")
#: Mode of the folders runanywhere creates.
FOLDER_MODE = 0o755


@dataclass(frozen=True, slots=True)
class Finding:
    path: Path
    #: "problem" (the cache refuses to open) or "warning" (reported by ``doctor``).
    severity: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def findings(home: Path) -> list[Finding]:
    """Ownership and mode of the cache folder and what is in it (one ``lstat`` each)."""
    me = os.geteuid()
    out: list[Finding] = []
    for rel in ("", *CHECKED):
        path = home / rel if rel else home
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if rel and stat.S_ISLNK(st.st_mode):
            out.append(Finding(path, "problem", "is a symbolic link (runanywhere never makes"
                               " one here): remove it"))
            continue
        if st.st_uid not in (me, 0):
            out.append(Finding(path, "problem", f"is owned by uid {st.st_uid}, not by you (uid"
                               f" {me}) or root: that user decides what this cache serves"
                               f" (chown -R {me} {home})"))
        if st.st_mode & stat.S_IWOTH:
            out.append(Finding(path, "problem", "is writable by every user, who could then"
                               f" change what this cache serves (chmod o-w {path})"))
        elif st.st_mode & stat.S_IWGRP:
            out.append(Finding(path, "warning", f"is writable by group {st.st_gid}: every"
                               " member can change what this cache serves"))
    return out


def problems(home: Path) -> list[Finding]:
    return [f for f in findings(home) if f.severity == "problem"]
