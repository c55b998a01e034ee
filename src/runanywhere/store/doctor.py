"""``runanywhere doctor``: look at a cache folder and say what is wrong, changing nothing.

It opens nothing for writing (the index is read with ``mode=ro``, no lock file is created) and
reports, each as ``ok``, ``warning`` or ``problem``:

* folder: there, a folder, and writable (a home that is missing, a file, or read-only is a
  problem: nothing could be cached there);
* permissions: who may write the folder (``permissions.py``; a problem here makes every run
  refuse the cache);
* paths: every id, path and hash the folder holds stays inside it, and no link stands where a
  folder or file of ours should be (``audit.py``; the store ignores such things, one line each);
* index: present, readable, its schema, ``PRAGMA integrity_check``; missing while manifests
  exist (the next run rebuilds it);
* models: every indexed file present with its recorded size (mtime moved: re-hashed on next
  use; missing or resized: fetched again on next use);
* orphans: blobs no model uses, abandoned partials, stray and old version folders
  (``cache prune --orphan-age 0`` removes them) and downloads in progress;
* quarantine: what failed verification, kept for inspection;
* free space on the cache's filesystem;
* recorded hashes: the first-use sha256 records, in the index and in ``trusted/``.

A problem means the cache cannot keep its promises as it is (the CLI exits non-zero); a warning
is worth a look. The report is a value: ``lines()`` for people, ``to_dict()`` for ``--json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UnsafeCacheError
from ..units import human_size
from . import permissions
from .audit import unsafe_things
from .fsutil import file_bytes, planted_link
from .index import SCHEMA_VERSION, peek_user_version
from .layout import Layout, check_manifest, is_model_id
from .partial import is_abandoned, partial_group

OK, WARNING, PROBLEM = "ok", "warning", "problem"
#: Below this much free space downloads are refused (the store's margin).
LOW_SPACE = 64 * 2**20
#: Below this much, worth a warning.
LITTLE_SPACE = 2**30


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    summary: str
    details: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "status": self.status, "summary": self.summary,
                "details": list(self.details)}


@dataclass(frozen=True)
class DoctorReport:
    home: Path
    checks: tuple[Check, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        """No problem found (warnings allowed)."""
        return all(c.status != PROBLEM for c in self.checks)

    @property
    def problems(self) -> list[Check]:
        return [c for c in self.checks if c.status == PROBLEM]

    def to_dict(self) -> dict[str, object]:
        return {"home": str(self.home), "ok": self.ok,
                "checks": [c.to_dict() for c in self.checks]}

    def lines(self) -> list[str]:
        out = [f"cache folder {self.home}"]
        width = max((len(c.name) for c in self.checks), default=0)
        for c in self.checks:
            out.append(f"  {c.status.upper():<8} {c.name:<{width}}  {c.summary}")
            out += [f"  {'':<8} {'':<{width}}    {d}" for d in c.details]
        verdict = ("no problem found" if self.ok else
                   f"{len(self.problems)} problem(s): {', '.join(c.name for c in self.problems)}")
        out.append(verdict)
        return out


def diagnose(home: Path) -> DoctorReport:
    """Look at ``home`` (read-only) and report (see the module doc)."""
    home = Path(home)
    folder = _folder(home)
    if folder.status == PROBLEM and not home.is_dir():
        return DoctorReport(home, (folder,))
    checks = [folder, _permissions(home)]
    index_check, db = _index(home)
    checks.append(index_check)
    try:
        checks.append(_paths(home, db))
        rows = _rows(db) if db is not None else None
        checks.append(_models(home, rows))
        checks.append(_orphans(home, rows))
        checks.append(_quarantine(home))
        checks.append(_space(home))
        checks.append(_recorded(home, db))
    finally:
        if db is not None:
            db.close()
    return DoctorReport(home, tuple(checks))


# -- the checks -----------------------------------------------------------------------------------
def _folder(home: Path) -> Check:
    try:
        st = os.stat(home)
    except FileNotFoundError:
        return Check("folder", PROBLEM, "does not exist: nothing is cached here (runanywhere"
                     " creates it on the first pull; check --home or RUNANYWHERE_HOME)")
    except OSError as e:
        return Check("folder", PROBLEM, f"cannot be looked at ({e.strerror or e})")
    if not stat.S_ISDIR(st.st_mode):
        return Check("folder", PROBLEM, "is a file, not a folder: give another --home (or"
                     " RUNANYWHERE_HOME)")
    if not os.access(home, os.W_OK | os.X_OK) or os.statvfs(home).f_flag & os.ST_RDONLY:
        return Check("folder", PROBLEM, "cannot be written (read-only): what it holds is"
                     " served, nothing new can be cached (give another --home)")
    return Check("folder", OK, "a folder you can write")


def _paths(home: Path, db: sqlite3.Connection | None) -> Check:
    found = unsafe_things(home, db)
    if not found:
        return Check("paths", OK, "every id, path and hash stays inside the folder; no planted"
                     " link")
    return Check("paths", PROBLEM, f"{len(found)} thing(s) would lead outside the folder:"
                 " runanywhere ignores them and never follows a link", tuple(found))


def _permissions(home: Path) -> Check:
    found = permissions.findings(home)
    if not found:
        return Check("permissions", OK, f"only you (uid {os.geteuid()}) and root can write it")
    status = PROBLEM if any(f.severity == "problem" for f in found) else WARNING
    summary = ("runanywhere refuses to use it" if status == PROBLEM else
               "others can write it")
    return Check("permissions", status, summary, tuple(str(f) for f in found))


def _index(home: Path) -> tuple[Check, sqlite3.Connection | None]:
    layout = Layout(home)
    path = layout.index_path
    manifests = list(layout.manifest_dir.glob("*.json"))
    if not path.exists() or path.stat().st_size == 0:
        what = "missing" if not path.exists() else "empty (0 bytes)"
        if manifests:
            return Check("index", PROBLEM, f"{what}: the next run rebuilds it from"
                         f" {len(manifests)} manifest(s)"), None
        return Check("index", OK, f"{what}, and no model was ever cached"), None
    version = peek_user_version(path)
    if version is not None and version > SCHEMA_VERSION:
        return Check("index", PROBLEM, f"written by a newer runanywhere (schema {version}, this"
                     f" one knows {SCHEMA_VERSION}): upgrade runanywhere"), None
    # Read-only: without a write-ahead log present, as an immutable file (a read-only WAL
    # connection would otherwise create -wal and -shm files); with one, normally (a writer may
    # be at work, and the log holds its latest commits).
    wal = Path(f"{path}-wal").exists()
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro{'' if wal else '&immutable=1'}", uri=True,
                             timeout=2.0)
    except sqlite3.Error as e:
        return Check("index", PROBLEM, f"cannot be opened ({e}): the next run sets it aside"
                     " and rebuilds it"), None
    try:
        result = [r[0] for r in db.execute("PRAGMA integrity_check").fetchall()]
        version = db.execute("PRAGMA user_version").fetchone()[0]
        models = db.execute("SELECT count(*) FROM models").fetchone()[0]
        blobs = db.execute("SELECT count(*) FROM blobs").fetchone()[0]
    except sqlite3.OperationalError as e:
        db.close()
        if "locked" in str(e) or "busy" in str(e):
            return Check("index", WARNING, f"busy ({e}): another process holds it; try again"), None
        return Check("index", PROBLEM, f"cannot be read ({e}): the next run rebuilds it"), None
    except sqlite3.DatabaseError as e:
        db.close()
        return Check("index", PROBLEM, f"damaged ({e}): the next run sets it aside and"
                     " rebuilds it from the manifests"), None
    if result != ["ok"]:
        db.close()
        return Check("index", PROBLEM, "damaged: the next run sets it aside and rebuilds it",
                     tuple(result[:5])), None
    aside = sorted(p.name for p in home.glob("index.db.corrupt-*"))
    note = f"; {len(aside)} damaged copy(ies) kept aside" if aside else ""
    if version < SCHEMA_VERSION:
        return Check("index", OK, f"schema {version}: the next run migrates it to"
                     f" {SCHEMA_VERSION}{note}"), db
    return Check("index", OK, f"integrity ok, schema {version}, {models} model(s), {blobs}"
                 f" blob(s){note}", tuple(aside)), db


def _rows(db: sqlite3.Connection) -> list[tuple[str, str, str, int, int | None, str]] | None:
    """(model id, manifest entry, file path, size, mtime_ns, sha256) of every indexed file."""
    try:
        return db.execute("SELECT m.id, m.manifest, f.path, f.size, f.mtime_ns, f.sha256 FROM"
                          " models m JOIN model_files f ON f.model_id = m.id").fetchall()
    except sqlite3.Error:
        return None


def _models(home: Path, rows: list[tuple[str, str, str, int, int | None, str]] | None) -> Check:
    if rows is None:
        return Check("models", WARNING, "not checked (the index cannot be read)")
    damaged: dict[str, str] = {}
    touched: set[str] = set()
    ids = set()
    layout = Layout(home)
    for mid, manifest, path, size, mtime, _sha in rows:
        base = _base(layout, mid, manifest)
        if base is None:
            continue  # the paths check reports it
        ids.add(mid)
        if planted_link(home, base / path) is not None:
            damaged.setdefault(mid, f"{mid}: {path} is behind a planted link (see paths)")
            continue
        try:
            st = os.lstat(base / path)
        except OSError:
            damaged.setdefault(mid, f"{mid}: {path} is missing")
            continue
        if not os.path.isfile(base / path) or os.path.islink(base / path):
            damaged.setdefault(mid, f"{mid}: {path} is not a plain file")
        elif st.st_size != size:
            damaged.setdefault(mid, f"{mid}: {path} has {st.st_size} bytes, not {size}")
        elif mtime is not None and st.st_mtime_ns != mtime:
            touched.add(mid)
    details = sorted(damaged.values()) + [f"{m}: a file's mtime moved (re-hashed on next use)"
                                          for m in sorted(touched - set(damaged))]
    if damaged:
        return Check("models", WARNING, f"{len(damaged)} of {len(ids)} model(s) damaged: not"
                     " served; the next pull fetches them again", tuple(details))
    if touched:
        return Check("models", WARNING, f"{len(ids)} model(s); {len(touched)} re-hashed on next"
                     " use", tuple(details))
    return Check("models", OK, f"{len(ids)} model(s), every file present with its recorded"
                 " size and mtime")


def _orphans(home: Path, rows: list[tuple[str, str, str, int, int | None, str]] | None
             ) -> Check:
    if rows is None:
        return Check("orphans", WARNING, "not checked (the index cannot be read)")
    used = {r[5] for r in rows}
    shown: dict[str, Path] = {}
    layout = Layout(home)
    for mid, manifest, *_ in rows:
        base = _base(layout, mid, manifest)
        if base is not None:
            shown[mid] = base
    details: list[str] = []
    size = 0
    for p in _children(layout.blob_dir):
        if p.name not in used:
            size += _bytes(p)
            details.append(f"orphan blob {p.name[:16]}")
    live = 0
    for p in _children(layout.partial_dir):
        if p.is_dir():
            details.append(f"unpack folder {p.name}")
            size += _bytes(p)
        elif is_abandoned(p, 0):
            details.append(f"abandoned partial {p.name}")
            size += _bytes(p)
        elif partial_group(p)[1] and p.name.endswith(".part"):
            live += 1
    for mdir in _children(layout.model_dir):
        if mdir.is_symlink():
            continue  # planted: the paths check reports it, nothing is listed through it
        if mdir.name not in shown:
            details.append(f"model folder without an index row: models/{mdir.name}")
            size += _bytes(mdir)
            continue
        for c in _children(mdir):
            if c != shown[mdir.name] and not shown[mdir.name].is_relative_to(c):
                details.append(f"old version or leftover: models/{mdir.name}/{c.name}")
                size += _bytes(c)
    for mf in _children(layout.manifest_dir):
        if mf.suffix == ".json" and mf.stem not in shown:
            details.append(f"manifest without an index row: {mf.name}")
    moving = f"; {live} download(s) in progress" if live else ""
    if not details:
        return Check("orphans", OK, f"none{moving}")
    return Check("orphans", WARNING, f"{len(details)} item(s), {human_size(size)}: `runanywhere"
                 f" cache prune --orphan-age 0` removes them{moving}", tuple(details))


def _quarantine(home: Path) -> Check:
    items = _children(Layout(home).quarantine_dir)
    if not items:
        return Check("quarantine", OK, "empty")
    size = sum(_bytes(p) for p in items)
    newest = max(p.lstat().st_ctime for p in items)
    return Check("quarantine", WARNING, f"{len(items)} item(s), {human_size(size)} that failed"
                 f" verification (newest {time.strftime('%Y-%m-%d %H:%M', time.localtime(newest))}"
                 "): inspect them, then `cache prune --orphan-age 0`",
                 tuple(p.name for p in items))


def _space(home: Path) -> Check:
    usage = shutil.disk_usage(home)
    summary = f"{human_size(usage.free)} free of {human_size(usage.total)}"
    if usage.free < LOW_SPACE:
        return Check("free space", PROBLEM, f"{summary}: downloads are refused below"
                     f" {human_size(LOW_SPACE)}")
    if usage.free < LITTLE_SPACE:
        return Check("free space", WARNING, summary)
    return Check("free space", OK, summary)


def _recorded(home: Path, db: sqlite3.Connection | None) -> Check:
    indexed: dict[tuple[str, str], str] = {}
    if db is not None:
        with contextlib.suppress(sqlite3.Error):
            indexed = {(m, p): s for m, p, s in db.execute(
                "SELECT model_id, path, sha256 FROM trusted") if is_model_id(str(m))}
    kept: dict[tuple[str, str], str] = {}
    bad: list[str] = []
    for tf in _children(Layout(home).trusted_dir):
        if tf.is_symlink():
            continue  # planted: the paths check reports it
        try:
            doc = json.loads(tf.read_text())
            if is_model_id(str(doc["id"])):  # else the paths check reports it
                kept.update({(doc["id"], r["path"]): r["sha256"] for r in doc["files"]})
        except (OSError, ValueError, KeyError, TypeError) as e:
            bad.append(f"{tf.name} cannot be read ({e})")
    details = [f"{m} {p}: sha256:{s[:16]}…" for (m, p), s in sorted({**kept, **indexed}.items())]
    differ = [f"{m} {p}: the index says {indexed[(m, p)][:12]}…, trusted/ says {s[:12]}…"
              for (m, p), s in kept.items() if (m, p) in indexed and indexed[(m, p)] != s]
    unsaved = [f"{m} {p}: only in the index (saved to trusted/ on next open)"
               for (m, p) in indexed if (m, p) not in kept]
    if bad or differ:
        return Check("recorded hashes", PROBLEM, "the first-use records disagree or cannot be"
                     " read", tuple(bad + differ + details))
    if not details:
        return Check("recorded hashes", OK, "none (every cached model has a catalog hash)")
    return Check("recorded hashes", WARNING if unsaved else OK,
                 f"{len(details)} first-use sha256 record(s) (`runanywhere cache forget ID`"
                 " drops one)", tuple(unsaved + details))


# -- helpers --------------------------------------------------------------------------------------
def _base(layout: Layout, model_id: str, manifest: str) -> Path | None:
    """A row's model folder, or None if the row is unsafe (the paths check reports it)."""
    try:
        return layout.base(check_manifest(json.loads(manifest), model_id))
    except (ValueError, UnsafeCacheError):
        return None


def _children(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except OSError:
        return []


def _bytes(p: Path) -> int:
    try:
        if p.is_dir() and not p.is_symlink():
            return sum(file_bytes(os.lstat(os.path.join(d, n)))
                       for d, _, names in os.walk(p) for n in names)
        return file_bytes(os.lstat(p))
    except OSError:
        return 0
