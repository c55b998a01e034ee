"""A tampered cache stays inside its folder (SECURITY.md, "What the cache folder may say").

Someone who can write a shared cache plants, one at a time: a blob row named ``../../../x``, a
model row whose entry points outside, a manifest whose file path climbs out (with the index
gone, so the next command rebuilds from it), trust rows with ids ``../x`` and
``../../outside/x``, ``models/<id>`` replaced by a link to a folder outside, a blob replaced by a
link to a file outside, and an abandoned partial that is a link to a file outside. Then a user
runs a routine command (``cache prune``, ``rm``, ``clear``, ``verify``, ``ls``, ``pull``,
``load``). Files outside the cache (a sentinel folder beside it) must be byte-identical after
every one, nothing may be written beside ``trusted/``, a pull must answer with verified bytes
inside the cache, and ``runanywhere doctor`` reports each planted thing as a problem on one line.

Each case runs the real command line on a model pulled from nginx on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from runanywhere.cli.main import main
from support.catalogs import model_entry
from support.invariants import check_cache

Payload = Callable[[str, int], tuple[str, str, int]]
Catalog = Callable[[list[dict[str, Any]]], Path]
#: A pid no process has (above the kernel's largest pid_max default).
DEAD_PID = 2**22 + 1


@dataclass(frozen=True)
class Cached:
    """The model ``tamper``, pulled: its catalog, file name, sha256 and size."""

    catalog: Path
    name: str
    sha: str
    size: int


def _run(home: Path, catalog: Path, capsys: pytest.CaptureFixture[str], *argv: str
         ) -> tuple[int, str, str]:
    code = main(["--home", str(home), "--catalog", str(catalog), "--no-durable", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def cached(nginx: Any, payload: Payload, write_catalog: Catalog, home: Path,
           capsys: pytest.CaptureFixture[str]) -> Cached:
    name, sha, size = payload(f"tamper-{os.urandom(3).hex()}.bin", 200_000)
    catalog = write_catalog([model_entry("tamper", f"{nginx.url}/{name}", size, sha,
                                         format="onnx")])
    code, _, err = _run(home, catalog, capsys, "pull", "tamper", "--quiet")
    assert code == 0, err
    return Cached(catalog, name, sha, size)


@pytest.fixture
def outside(tmp_path: Path, cached: Cached) -> Path:
    """A folder beside the cache, the target of every attack; files the size of the model."""
    root = tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    (root / "victim.bin").write_bytes(os.urandom(cached.size))
    (root / "x.json").write_bytes(b'{"mine": true}')
    (root / "sub" / cached.name).write_bytes(os.urandom(cached.size))
    return root


def snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every name under ``root`` with its mode and bytes (a link: its target)."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        data = (os.readlink(p).encode() if p.is_symlink() else
                p.read_bytes() if p.is_file() else b"")
        out[str(p.relative_to(root))] = (st.st_mode, data)
    return out


# -- the attacks (each plants one thing, as another user of a shared cache could) ---------------
@contextlib.contextmanager
def _db(home: Path) -> Iterator[sqlite3.Connection]:
    """The index, written as another user of the cache could (closed after: no WAL left)."""
    db = sqlite3.connect(home / "index.db", isolation_level=None)
    try:
        yield db
    finally:
        db.close()


def blob_row(home: Path, c: Cached, outside: Path) -> str:
    """A blob row nobody uses, named to climb out of ``blobs/sha256/``: gc unlinks it."""
    st = (outside / "victim.bin").stat()
    with _db(home) as db:
        db.execute("INSERT INTO blobs(sha256, size, mtime_ns, created) VALUES (?,?,?,?)",
                   ("../../../outside/victim.bin", st.st_size, st.st_mtime_ns, time.time()))
    return "../../../outside/victim.bin"


def model_row(home: Path, c: Cached, outside: Path) -> str:
    """The model's row says its file lives outside (with that file's size and mtime)."""
    target = outside / "sub" / c.name
    entry = f"../outside/sub/{c.name}"
    with _db(home) as db:
        (manifest,) = db.execute("SELECT manifest FROM models WHERE id='tamper'").fetchone()
        doc = {**json.loads(manifest), "entry": entry}
        db.execute("UPDATE models SET manifest=?, entry=? WHERE id='tamper'",
                   (json.dumps(doc), entry))
        db.execute("UPDATE model_files SET mtime_ns=? WHERE model_id='tamper'",
                   (target.stat().st_mtime_ns,))
    return entry


def manifest_file(home: Path, c: Cached, outside: Path) -> str:
    """The manifest's file path climbs out of the model folder, and the index is gone: the next
    command rebuilds the index from the manifests."""
    mf = home / "manifests" / "tamper.json"
    doc = json.loads(mf.read_text())
    doc["kind"] = "dir"
    doc["entry"] = "models/tamper/1"
    path = f"../../../../outside/sub/{c.name}"
    doc["files"] = [{"path": path, "sha256": c.sha, "size": c.size}]
    mf.write_text(json.dumps(doc))
    for suffix in ("", "-wal", "-shm"):
        Path(f"{home / 'index.db'}{suffix}").unlink(missing_ok=True)
    return path


def trust_rows(home: Path, c: Cached, outside: Path) -> str:
    """First-use records whose model ids climb out of ``trusted/`` (each open of the cache
    writes ``trusted/<id>.json`` for records that lack one)."""
    with _db(home) as db:
        for mid in ("../x", "../../outside/x"):
            db.execute("INSERT INTO trusted(model_id, path, url, sha256, size, recorded)"
                       " VALUES (?,?,?,?,?,?)", (mid, "f.bin", "http://127.0.0.1:9/f.bin",
                                                 "ab" * 32, 10, time.time()))
    return "../../outside/x"


def model_link(home: Path, c: Cached, outside: Path) -> str:
    """``models/tamper`` is a link to the folder outside."""
    folder = home / "models" / "tamper"
    shutil.rmtree(folder)
    folder.symlink_to(outside, target_is_directory=True)
    return "models/tamper"


def blob_link(home: Path, c: Cached, outside: Path) -> str:
    """The model's blob is a link to a file outside."""
    blob = home / "blobs" / "sha256" / c.sha
    blob.unlink()
    blob.symlink_to(outside / "victim.bin")
    return c.sha[:16]


def partial_link(home: Path, c: Cached, outside: Path) -> str:
    """The model is gone, and an abandoned partial of its bytes is a link to a file outside:
    the next pull adopts abandoned partials to resume them."""
    code = main(["--home", str(home), "--catalog", str(c.catalog), "--no-durable", "cache",
                 "rm", "tamper"])
    assert code == 0
    name = f"{c.sha}.{DEAD_PID}-deadbeef"
    (home / "partials" / f"{name}.part").symlink_to(outside / "victim.bin")
    (home / "partials" / f"{name}.json").write_text(json.dumps(
        {"url": "http://127.0.0.1:9/x", "size": c.size, "sha256": c.sha,
         "host": os.uname().nodename, "pid": DEAD_PID}))
    return f"{name}.part"


ATTACKS: dict[str, Callable[[Path, Cached, Path], str]] = {
    "blob-row": blob_row, "model-row": model_row, "manifest": manifest_file,
    "trust-rows": trust_rows, "model-link": model_link, "blob-link": blob_link,
    "partial-link": partial_link,
}

COMMANDS: dict[str, list[str]] = {
    "prune": ["cache", "prune", "--orphan-age", "0"],
    "prune-evict": ["cache", "prune", "--max-size", "0", "--orphan-age", "0"],
    "rm": ["cache", "rm", "tamper"],
    "clear": ["cache", "clear"],
    "verify": ["cache", "verify"],
    "ls": ["cache", "ls"],
    "pull": ["pull", "tamper", "--quiet"],
    "load": ["load", "tamper"],
}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("attack", list(ATTACKS))
def test_a_tampered_cache_never_reaches_outside_its_folder(
        cached: Cached, outside: Path, home: Path, attack: str, command: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    ATTACKS[attack](home, cached, outside)
    capsys.readouterr()  # what planting printed
    before = snapshot(outside)
    code, out, err = _run(home, cached.catalog, capsys, *COMMANDS[command])
    assert "Traceback" not in err, err
    assert snapshot(outside) == before, f"{command} changed files outside the cache"
    assert not (home / "x.json").exists(), "a trust record was written beside trusted/"
    if command == "pull":  # the answer is the verified model, inside the cache
        assert code == 0, err
        path = Path(out.strip())
        assert home.resolve() in path.resolve().parents, path
        assert not any(p.is_symlink() for p in (path, *path.parents))
        assert hashlib.sha256(path.read_bytes()).hexdigest() == cached.sha
        if attack != "blob-link":  # a hit never follows the blob; `cache verify` replaces it
            assert check_cache(home, {"tamper": {cached.name: cached.sha}}) == ["tamper"]
    else:
        assert code in (0, 1), err  # a finding (verify, rm of a model gone) is exit 1


#: What ``doctor`` names in the one line it prints for each planted thing.
DOCTOR_SAYS = {"blob-row": "blob row", "model-row": "tamper", "manifest": "tamper.json",
               "trust-rows": "../../outside/x", "model-link": "models/tamper",
               "blob-link": "blobs/sha256/", "partial-link": "partials/"}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_doctor_reports_each_planted_thing_on_one_line(
        cached: Cached, outside: Path, home: Path, attack: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    what = ATTACKS[attack](home, cached, outside)
    capsys.readouterr()
    gc.collect()  # the caches the in-process commands opened close (their WAL checkpointed)
    before, inside = snapshot(outside), snapshot(home)
    code = main(["--home", str(home), "doctor"])
    out, _ = capsys.readouterr()
    assert code == 1, out
    lines = [line for line in out.splitlines() if what in line and DOCTOR_SAYS[attack] in line]
    assert len(lines) == 1, out
    code = main(["--home", str(home), "doctor", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1 and not doc["ok"]
    problems = [d for c in doc["checks"] if c["status"] == "problem" for d in c["details"]]
    assert any(what in d for d in problems), problems
    assert snapshot(outside) == before, "doctor changed files outside the cache"
    assert snapshot(home) == inside, "doctor changed the cache"


@pytest.mark.parametrize("planted", [
    {"id": "../../outside/x"},
    {"files": [{"path": "../../outside/x", "url": "http://127.0.0.1:9/x", "size": 10,
                "hash": "sha256:" + "ab" * 32}], "url": None, "hash": None},
], ids=["id-climbs", "file-climbs"])
@pytest.mark.parametrize("command", ["ls", "pull"])
def test_a_planted_sources_json_is_refused_with_the_file_named(
        cached: Cached, outside: Path, home: Path, planted: dict[str, Any], command: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    """``sources.json`` (the models pulled by URL) is read as a catalog: the catalog's rule
    refuses what would lead outside, naming the file; nothing is touched."""
    entry = {**model_entry("planted", "http://127.0.0.1:9/x", 10, "ab" * 32), **planted}
    (home / "sources.json").write_text(json.dumps({"format_version": 1, "models": [
        {k: v for k, v in entry.items() if v is not None}]}))
    before = snapshot(outside)
    code, out, err = _run(home, cached.catalog, capsys, *COMMANDS[command])
    assert code == 2 and out == "" and "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert "sources.json" in line and "../../outside/x" in line
    assert snapshot(outside) == before
    assert main(["--home", str(home), "doctor"]) == 1
    report = capsys.readouterr().out
    assert len([x for x in report.splitlines() if "sources.json:" in x]) == 1, report
