"""The store's decision code, one table each: what eviction takes, what an error while opening
the index means, which degraded mode a cache takes, whether a cached entry is the catalog's
model, and the order in which a publish makes a model visible. Plus the renamed read verbs."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from runanywhere.catalog import parse_model
from runanywhere.errors import CacheBusy, CacheError
from runanywhere.store import CacheEntry, ModelCache, StagedFile
from runanywhere.store import installer as installer_mod
from runanywhere.store.installer import PUBLISH_STEPS
from runanywhere.store.matching import matches
from runanywhere.store.modes import choose_mode, judge_open_error
from runanywhere.store.prune import plan_eviction
from support.catalogs import model_entry

SHA = {c: c * 64 for c in "abcdef"}


def entry(mid: str, last_access: float, files: list[tuple[str, int]], *, kind: str = "dir",
          source: str | None = None, pinned: bool = False) -> CacheEntry:
    """A cache entry with files ``(sha256, size)`` (paths f0, f1, ...)."""
    doc = {"id": mid, "version": "1", "kind": kind,
           "entry": f"models/{mid}/1" + ("/f0" if kind == "file" else ""),
           "size": sum(s for _, s in files), "source_sha256": source, "created": 0.0,
           "origin": "download",
           "files": [{"path": f"f{i}", "sha256": sha, "size": size}
                     for i, (sha, size) in enumerate(files)]}
    return CacheEntry("/cache", mid, json.dumps(doc), last_access, 0, int(pinned))


# -- eviction ------------------------------------------------------------------------------------
A, B, C = SHA["a"], SHA["b"], SHA["c"]
EVICTION: list[tuple[str, list[CacheEntry], int, int | None, set[str], list[str], list[str],
                     list[str], int]] = [
    # name, entries, total, max_size, held -> evict, kept, spared, freed
    ("no-limit", [entry("x", 1, [(A, 10)])], 10, None, set(), [], [], [], 0),
    ("under-the-limit", [entry("x", 1, [(A, 10)])], 10, 10, set(), [], [], [], 0),
    ("least-recently-used-first",
     [entry("c", 3, [(C, 1000)]), entry("a", 1, [(A, 1000)]), entry("b", 2, [(B, 1000)])],
     3000, 1500, set(), ["a", "b"], [], [], 2000),
    ("ties-by-id", [entry("y", 1, [(B, 1000)]), entry("x", 1, [(A, 1000)])],
     2000, 1000, set(), ["x"], [], [], 1000),
    ("held-is-kept",
     [entry("a", 1, [(A, 1000)]), entry("b", 2, [(B, 1000)]), entry("c", 3, [(C, 1000)])],
     3000, 1500, {"a"}, ["b", "c"], ["a"], [], 2000),
    ("bytes-of-a-held-model-are-spared",
     [entry("a", 2, [(A, 1000)]), entry("b", 1, [(A, 1000)]), entry("c", 3, [(C, 1000)])],
     2000, 1000, {"a"}, ["c"], ["a"], ["b"], 1000),
    ("a-shared-blob-frees-with-its-last-user",
     [entry("a", 1, [(A, 1000)]), entry("b", 2, [(A, 1000)]), entry("c", 3, [(C, 1000)])],
     2000, 1000, set(), ["a", "b"], [], [], 1000),
    ("everything-held", [entry("a", 1, [(A, 10)]), entry("b", 2, [(B, 10)])],
     20, 0, {"a", "b"}, [], ["a", "b"], [], 0),
]


@pytest.mark.parametrize(("entries", "total", "max_size", "held", "evict", "kept", "spared",
                          "freed"), [c[1:] for c in EVICTION], ids=[c[0] for c in EVICTION])
def test_eviction_plan(entries: list[CacheEntry], total: int, max_size: int | None,
                       held: set[str], evict: list[str], kept: list[str], spared: list[str],
                       freed: int) -> None:
    ev = plan_eviction(entries, total, max_size, held)
    assert [e.model_id for e in ev.evict] == evict
    assert (list(ev.kept), list(ev.spared), ev.freed) == (kept, spared, freed)


# -- opening the index ----------------------------------------------------------------------------
OPEN_ERRORS: list[tuple[str, BaseException, bool, str]] = [
    ("busy-for-too-long", CacheBusy("held for 10s"), True, "degrade"),
    ("newer-schema", CacheError("written by a newer runanywhere"), True, "raise"),
    ("locked-at-once", sqlite3.OperationalError("database is locked"), True, "retry"),
    ("locked-past-the-deadline", sqlite3.OperationalError("database is locked"), False,
     "degrade"),
    ("io-error", sqlite3.OperationalError("disk I/O error"), True, "degrade"),
    ("not-a-database", sqlite3.DatabaseError("file is not a database"), True, "degrade"),
    ("permission", PermissionError(errno.EACCES, "denied"), True, "degrade"),
    ("ctrl-c", KeyboardInterrupt(), True, "raise"),
    ("a-bug", ValueError("bug"), True, "raise"),
]


@pytest.mark.parametrize(("error", "before_deadline", "action"), [c[1:] for c in OPEN_ERRORS],
                         ids=[c[0] for c in OPEN_ERRORS])
def test_what_an_error_while_opening_means(error: BaseException, before_deadline: bool,
                                           action: str) -> None:
    assert judge_open_error(error, before_deadline) == action


@pytest.mark.parametrize(("index_exists", "scratch", "view", "then"), [
    (True, False, True, "nothing can be added"),
    (True, True, True, "temporary folder"),
    (False, False, False, "nothing can be added"),
    (False, True, False, "temporary folder"),
])
def test_the_degraded_mode(index_exists: bool, scratch: bool, view: bool, then: str) -> None:
    mode = choose_mode(index_exists, scratch)
    assert (mode.readonly_view, mode.scratch) == (view, scratch)
    assert then in mode.describe("not writable", "x")


# -- is the cached entry the catalog's model? ------------------------------------------------------
def meta(**over: Any) -> Any:
    d = model_entry("m", "http://127.0.0.1:9/m.bin", 100, A)
    d.update(over)
    return parse_model({k: v for k, v in d.items() if v is not None})


def single(sha: str = A, size: int = 100, name: str = "m.bin") -> CacheEntry:
    e = entry("m", 1, [(sha, size)], kind="file", source=sha)
    doc = json.loads(e._manifest)  # the catalog's file name, as a download publishes it
    doc["files"][0]["path"] = name
    doc["entry"] = f"models/m/1/{name}"
    return CacheEntry("/cache", "m", json.dumps(doc), 1, 0, 0)


GIT = "1" * 40
MATCHES: list[tuple[str, CacheEntry, Any, str | None, bool]] = [
    # name, cached entry, catalog entry, recorded first-use sha256, matches?
    ("same-bytes", single(), meta(), None, True),
    ("other-bytes", single(B), meta(), None, False),
    ("other-size", single(size=99), meta(), None, False),
    ("other-file", single(name="n.bin"), meta(), None, False),
    ("first-use-record-matches", single(B), meta(hash=None), B, True),
    ("first-use-record-differs", single(B), meta(hash=None), A, False),
    ("no-hash-anywhere", single(B), meta(hash=None), None, True),
    ("git-blob-id-without-a-record", single(), meta(hash=None, url=None, files=[
        {"path": "m.bin", "url": "http://127.0.0.1:9/m.bin", "size": 100, "git_sha1": GIT}]),
     None, False),
    ("archive-by-its-own-hash", CacheEntry("/cache", "m", json.dumps(
        {**json.loads(entry("m", 1, [(B, 5)], source=A)._manifest)}), 1, 0, 0),
     meta(archive="tar.gz"), None, True),
    ("archive-with-another-hash", CacheEntry("/cache", "m", json.dumps(
        {**json.loads(entry("m", 1, [(B, 5)], source=C)._manifest)}), 1, 0, 0),
     meta(archive="tar.gz"), None, False),
]


@pytest.mark.parametrize(("cached", "catalog", "recorded", "expected"),
                         [c[1:] for c in MATCHES], ids=[c[0] for c in MATCHES])
def test_whether_the_cached_entry_is_the_catalogs_model(cached: CacheEntry, catalog: Any,
                                                        recorded: str | None,
                                                        expected: bool) -> None:
    def want(model_id: str, f: Any) -> str | None:
        return f.sha256 or recorded

    assert matches(cached, catalog, want) is expected


# -- the publish order ----------------------------------------------------------------------------
#: What is on disk and in the index at each step: blob, temporary folder, model folder,
#: manifest, index row. Only the last step makes the model visible.
STATE_AT = {
    "publish:blobs": (True, False, False, False, False),
    "publish:tmp-folder": (True, True, False, False, False),
    "publish:folder": (True, False, True, False, False),
    "publish:manifest": (True, False, True, True, False),
    "publish:committed": (True, False, True, True, True),
}


def test_a_publish_takes_its_steps_in_order(home: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    data = os.urandom(1000)
    sha = hashlib.sha256(data).hexdigest()
    seen: list[tuple[str, tuple[bool, ...]]] = []

    def record(step: str) -> None:
        if step not in STATE_AT:
            return
        folder = home / "models" / "m"
        tmp = any(p.name.startswith(".tmp-") for p in folder.iterdir()) if folder.exists() \
            else False
        con = sqlite3.connect(f"file:{home / 'index.db'}?mode=ro", uri=True)
        try:
            row = con.execute("SELECT 1 FROM models WHERE id='m'").fetchone() is not None
        finally:
            con.close()
        seen.append((step, ((home / "blobs" / "sha256" / sha).exists(), tmp,
                            (folder / "1" / "m.bin").exists(),
                            (home / "manifests" / "m.json").exists(), row)))

    monkeypatch.setattr(installer_mod, "crash_point", record)
    src = tmp_path / "staged"
    src.write_bytes(data)
    with ModelCache(directory=home, durable=False) as cache:
        cache.publish("m", "1", [StagedFile("m.bin", src, sha, len(data))], kind="file",
                      source_sha256=sha)
    assert [s for s, _ in seen] == list(PUBLISH_STEPS)
    assert dict(seen) == STATE_AT


def test_a_publish_that_loses_the_rename_race_without_flock_keeps_the_winners_folder(
        home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where flock grants every lock (some network filesystems), two processes can both find no
    folder and rename at once: the loser's rename meets ENOTEMPTY. The winner's folder holds
    the same blobs, so the loser publishes onto it (it failed with a 'disk error' before)."""
    import contextlib

    from runanywhere.store.locks import Locks

    monkeypatch.setattr(Locks, "model", lambda self, model_id: contextlib.nullcontext())
    data = os.urandom(4096)
    sha = hashlib.sha256(data).hexdigest()

    def staged(name: str) -> StagedFile:
        src = tmp_path / name
        src.write_bytes(data)
        return StagedFile("m.bin", src, sha, len(data))

    real_replace = os.replace
    raced: list[bool] = []

    def other_process_wins(src: Path, dst: Path) -> None:
        if not raced and Path(src).name.startswith(".tmp-"):  # after our check, before our
            raced.append(True)                                 # rename: the other publishes
            with ModelCache(directory=home, durable=False) as other:
                other.publish("m", "1", [staged("theirs")], kind="file", source_sha256=sha)
        real_replace(src, dst)

    monkeypatch.setattr(installer_mod.os, "replace", other_process_wins)
    with ModelCache(directory=home, durable=False) as cache:
        got = cache.publish("m", "1", [staged("ours")], kind="file", source_sha256=sha)
        assert raced and got.path.read_bytes() == data
        assert cache.entry("m") is not None
    leftovers = [p.name for p in (home / "models" / "m").iterdir() if p.name != "1"]
    assert leftovers == []  # no .tmp- or .old- folder stays behind


# -- the read verbs -------------------------------------------------------------------------------
@pytest.mark.parametrize(("old", "new", "by_meta"), [
    ("lookup", "entry", False), ("info", "entry", False),
    ("find", "entry_matching", True), ("find_nowait", "entry_matching_nowait", True)])
def test_renamed_reads_still_answer_with_a_deprecation_warning(
        home: Path, tmp_path: Path, old: str, new: str, by_meta: bool) -> None:
    data = os.urandom(100)
    sha = hashlib.sha256(data).hexdigest()
    src = tmp_path / "staged"
    src.write_bytes(data)
    with ModelCache(directory=home, durable=False) as cache:
        cache.publish("m", "1", [StagedFile("m.bin", src, sha, 100)], kind="file",
                      source_sha256=sha)
        arg = meta(hash=f"sha256:{sha}") if by_meta else "m"
        with pytest.warns(DeprecationWarning, match=f"ModelCache.{old} .*ModelCache.{new}"):
            got = getattr(cache, old)(arg)
        assert got == getattr(cache, new)(arg) and got is not None


# -- what the cache folder may say (read back, before a path is built) ----------------------------
def manifest_doc(**over: Any) -> dict[str, Any]:
    doc = json.loads(entry("m", 1, [(A, 10)], kind="file", source=A)._manifest)
    doc.update(over)
    return doc


UNSAFE: list[tuple[str, Any, str]] = [
    # name, the value (a manifest for "manifest"), which check -> must raise UnsafeCacheError
    ("id-dot-dot", "../x", "id"), ("id-parent", "..", "id"), ("id-slash", "a/b", "id"),
    ("id-upper", "Model", "id"), ("id-nul", "a\x00b", "id"), ("id-long", "a" * 129, "id"),
    ("id-not-text", 7, "id"),
    ("sha-climbs", "../../../x", "sha256"), ("sha-upper", "AB" * 32, "sha256"),
    ("sha-short", "ab" * 31, "sha256"), ("sha-none", None, "sha256"),
    ("path-absolute", "/etc/passwd", "path"), ("path-climbs", "a/../../x", "path"),
    ("path-dot", "./x", "path"), ("path-empty-part", "a//b", "path"), ("path-empty", "", "path"),
    ("path-backslash", "..\\x", "path"), ("path-nul", "a\x00", "path"),
    ("entry-outside", manifest_doc(entry="../outside/f0"), "manifest"),
    ("entry-other-model", manifest_doc(entry="models/n/1/f0"), "manifest"),
    ("entry-not-its-file", manifest_doc(entry="models/m/1/other"), "manifest"),
    ("entry-version-climbs", manifest_doc(entry="models/m/../f0"), "manifest"),
    ("entry-index", manifest_doc(entry="index.db"), "manifest"),
    ("file-climbs", manifest_doc(kind="dir", entry="models/m/1", files=[
        {"path": "../../../x", "sha256": A, "size": 1}]), "manifest"),
    ("file-sha", manifest_doc(files=[{"path": "f0", "sha256": "x", "size": 1}]), "manifest"),
    ("source-sha", manifest_doc(source_sha256="../x"), "manifest"),
    ("other-id", manifest_doc(id="n"), "manifest"),
    ("not-an-object", ["x"], "manifest"),
]
SAFE: list[tuple[str, Any, str]] = [
    ("id", "whisper-base.en_v2", "id"), ("sha256", A, "sha256"),
    ("path", "encoder/model.onnx", "path"), ("path-dots-in-a-name", "v1..2.bin", "path"),
    ("manifest-file", manifest_doc(), "manifest"),
    ("manifest-dir", manifest_doc(kind="dir", entry="models/m/1..2"), "manifest"),
]


def _check(value: Any, which: str) -> object:
    from runanywhere.store.layout import check_id, check_manifest, check_relpath, check_sha256

    return {"id": check_id, "sha256": check_sha256, "path": check_relpath,
            "manifest": lambda v: check_manifest(v, "m")}[which](value)


@pytest.mark.parametrize(("value", "which"), [c[1:] for c in UNSAFE], ids=[c[0] for c in UNSAFE])
def test_the_rule_refuses_what_would_lead_outside(value: Any, which: str) -> None:
    from runanywhere.errors import UnsafeCacheError

    with pytest.raises(UnsafeCacheError):
        _check(value, which)


@pytest.mark.parametrize(("value", "which"), [c[1:] for c in SAFE], ids=[c[0] for c in SAFE])
def test_the_rule_accepts_what_the_store_writes(value: Any, which: str) -> None:
    assert _check(value, which) == value


#: Unsafe manifests whose paths climb out of the cache folder itself.
CLIMBING = {"entry-outside", "entry-version-climbs", "file-climbs", "source-sha"}


@pytest.mark.parametrize(("name", "doc"), [(n, v) for n, v, w in UNSAFE
                                          if w == "manifest" and isinstance(v, dict)])
def test_an_unsafe_row_is_refused_when_listed_or_parsed(name: str, doc: dict[str, Any]) -> None:
    """The listing's fast check never takes a row that climbs out; every unsafe row, taken or
    not, is refused the moment it is parsed, before a path is built from it."""
    from runanywhere.errors import UnsafeCacheError
    from runanywhere.store.index import dump_manifest
    from runanywhere.store.layout import listable

    text = dump_manifest(doc)
    if name in CLIMBING:
        assert not listable("m", text)
    row = CacheEntry("/cache", "m", text, 1.0, 0, 0)
    assert row.problem() is not None
    with pytest.raises(UnsafeCacheError, match="cache verify"):
        _ = row.path


@pytest.mark.parametrize(("doc", "fast"), [(manifest_doc(), True), (
    manifest_doc(kind="dir", entry="models/m/1..2"), False)], ids=["plain", "dots-in-version"])
def test_a_row_the_store_wrote_is_listed(doc: dict[str, Any], fast: bool) -> None:
    from runanywhere.store.index import dump_manifest
    from runanywhere.store.layout import listable

    text = dump_manifest(doc)
    assert listable("m", text) is fast  # else it is parsed, checked, and listed
    assert CacheEntry("/cache", "m", text, 1.0, 0, 0).problem() is None


@pytest.mark.parametrize("value", [v for _, v, w in UNSAFE + SAFE if w == "id"] + [
    "a" * 128, "a.b", "0", "a-", "._a"])
def test_the_fast_id_check_agrees_with_the_rule(value: Any) -> None:
    from runanywhere.errors import UnsafeCacheError
    from runanywhere.store.layout import check_id, is_model_id

    try:
        check_id(value)
        ok = True
    except UnsafeCacheError:
        ok = False
    assert (isinstance(value, str) and is_model_id(value)) is ok
