"""Hostile catalogs and a tampered cache, end to end through the command line.

The parser's own rules are unit-tested in ``tests/test_catalog.py`` and the store's repairs in
``tests/test_cache.py``; here each case goes the way a user meets it (``runanywhere pull``
against nginx on 127.0.0.1), and after each the one checker runs.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runanywhere.cli.main import main
from support.catalogs import model_entry
from support.invariants import check_cache
from support.tamper import flip_byte

Payload = Callable[[str, int], tuple[str, str, int]]
Catalog = Callable[[list[dict[str, Any]]], Path]

GOOD_HASH = "ab" * 32

HOSTILE: list[tuple[str, dict[str, Any], str]] = [
    ("dot-dot", {"id": "../x"}, "id"),
    ("parent-only", {"id": ".."}, "id"),
    ("absolute", {"id": "/etc/passwd"}, "id"),
    ("backslash", {"id": "..\\x"}, "id"),
    ("nul", {"id": "a\x00b"}, "id"),
    ("very-long", {"id": "x" * 4096}, "id"),
    ("cyrillic-i", {"id": "wh\u0456sper-tiny"}, "id"),
    ("fullwidth-slash", {"id": "a\uff0fb"}, "id"),
    ("negative-size", {"size": -1}, "size"),
    ("zero-size", {"size": 0}, "size"),
    ("absurd-size", {"size": 2**62}, "size"),
    ("float-size", {"size": 1.5}, "size"),
    ("short-hash", {"hash": "sha256:abcd"}, "hash"),
    ("non-hex-hash", {"hash": "sha256:" + "zz" * 32}, "hash"),
    ("md5", {"hash": "md5:" + "ab" * 16}, "hash"),
    ("file-url", {"url": "file:///etc/passwd"}, "url"),
    ("escaping-file", {"url": None, "files": [
        {"path": "../../outside.onnx", "url": "http://127.0.0.1:9/x", "size": 10}]}, "path"),
    ("absolute-file", {"url": None, "files": [
        {"path": "/tmp/outside.onnx", "url": "http://127.0.0.1:9/x", "size": 10}]}, "path"),
]


def _run(home: Path, catalog: Path, capsys: pytest.CaptureFixture[str], *argv: str
         ) -> tuple[int, str, str]:
    code = main(["--home", str(home), "--catalog", str(catalog), "--no-durable", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(("over", "field"), [(o, f) for _, o, f in HOSTILE],
                         ids=[name for name, _, _ in HOSTILE])
def test_hostile_catalog_entry_is_refused_before_any_byte_moves(
        tmp_path: Path, home: Path, write_catalog: Catalog, capsys: pytest.CaptureFixture[str],
        over: dict[str, Any], field: str) -> None:
    entry = model_entry("m", "http://127.0.0.1:9/m.onnx", 10, GOOD_HASH)
    entry.update(over)
    entry = {k: v for k, v in entry.items() if v is not None}
    catalog = write_catalog([entry])
    before = set(tmp_path.rglob("*"))
    code, out, err = _run(home, catalog, capsys, "pull", str(entry["id"]))
    assert code != 0 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    assert catalog.name in lines[0] and field in lines[0]
    # Nothing was written anywhere: not outside the cache, not even inside it.
    created = set(tmp_path.rglob("*")) - before
    assert all(p == home or home in p.parents for p in created), created
    assert check_cache(home) == []


@pytest.fixture
def pulled(nginx: Any, origin_root: Path, payload: Payload, write_catalog: Catalog, home: Path,
           capsys: pytest.CaptureFixture[str]) -> tuple[Path, str, bytes]:
    """A model pulled from nginx: (catalog, its sha256, its bytes)."""
    name, sha, size = payload(f"tamper-{os.urandom(3).hex()}.bin", 300_000)
    catalog = write_catalog([model_entry("tamper", f"{nginx.url}/{name}", size, sha)])
    code, _, err = _run(home, catalog, capsys, "pull", "tamper", "--quiet")
    assert code == 0, err
    return catalog, sha, (origin_root / name).read_bytes()


def _model_file(home: Path) -> Path:
    (p,) = [p for p in (home / "models" / "tamper").rglob("*") if p.is_file() or p.is_symlink()]
    return p


def _blob(home: Path, sha: str) -> Path:
    (p,) = [p for p in (home / "blobs").rglob(sha) if p.name == sha]
    return p


def _truncate(path: Path) -> None:
    os.chmod(path, 0o644)
    os.truncate(path, 1000)


def _delete_both(path: Path, blob: Path) -> None:
    path.unlink()
    blob.unlink(missing_ok=True)


def _symlink_to_wrong_file(path: Path, outside: Path) -> None:
    outside.write_bytes(b"x" * path.stat().st_size)
    path.unlink()
    path.symlink_to(outside)


def _tamper(how: str, home: Path, sha: str, tmp_path: Path) -> None:
    model, blob = _model_file(home), _blob(home, sha)
    if how == "flipped-bit":
        # bit rot keeps the mtime; the model file and the blob share an inode (hard link)
        flip_byte(model, mask=0x10, keep_mtime=True)
    elif how == "truncated":
        _truncate(model)
    elif how == "deleted":
        _delete_both(model, blob)
    elif how == "symlink-planted":
        _symlink_to_wrong_file(model, tmp_path / "outside.bin")
    else:  # an abandoned partial with garbage, as a crashed older version might leave
        (home / "partials").mkdir(exist_ok=True)
        (home / "partials" / f"{sha}.deadbeef.part").write_bytes(os.urandom(5000))


def _pull_heals(home: Path, catalog: Path, sha: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(home, catalog, capsys, "pull", "tamper", "--quiet")
    assert code == 0, err
    model = _model_file(home)
    assert not model.is_symlink()
    assert hashlib.sha256(model.read_bytes()).hexdigest() == sha
    assert check_cache(home, {"tamper": {model.name: sha}}) == ["tamper"]


#: What ``cache verify`` says about each kind of damage: exit code and the word it prints.
VERIFY_SAYS = {"flipped-bit": (1, "CORRUPT (quarantined)"), "truncated": (1, "truncated"),
               "deleted": (1, "missing"), "symlink-planted": (0, "symbolic link"),
               "orphan-partial": (0, "tamper: ok")}


@pytest.mark.parametrize("how", list(VERIFY_SAYS))
def test_verify_finds_the_damage_and_the_next_pull_heals_it(
        pulled: tuple[Path, str, bytes], home: Path, tmp_path: Path, how: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    catalog, sha, data = pulled
    _tamper(how, home, sha, tmp_path)
    code, out, _ = _run(home, catalog, capsys, "cache", "verify", "tamper")
    want_code, want_word = VERIFY_SAYS[how]
    assert code == want_code and want_word in out, out
    check_cache(home)
    _pull_heals(home, catalog, sha, capsys)  # fetched again, or kept after the repair
    if how == "symlink-planted":
        assert (tmp_path / "outside.bin").read_bytes() == b"x" * len(data)  # target untouched


@pytest.mark.parametrize("how", ["truncated", "deleted", "symlink-planted"])
def test_a_plain_pull_notices_cheap_damage_without_verify(
        pulled: tuple[Path, str, bytes], home: Path, tmp_path: Path, how: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A size change, a missing file or a link is caught by the hit's cheap checks (no re-hash)."""
    catalog, sha, _ = pulled
    _tamper(how, home, sha, tmp_path)
    _pull_heals(home, catalog, sha, capsys)
