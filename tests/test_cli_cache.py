"""``runanywhere cache ...`` and ``runanywhere import``: tables, ``--json``, exit codes, errors."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runanywhere.cli.main import main
from support.catalogs import model_entry
from support.invariants import check_cache
from support.tamper import flip_byte

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Local model files to import: id -> (path, sha256)."""
    out = {}
    for mid, size in (("small", 1000), ("medium", 3000), ("large", 6000)):
        data = os.urandom(size)
        p = tmp_path / f"{mid}.onnx"
        p.write_bytes(data)
        out[mid] = (p, hashlib.sha256(data).hexdigest())
    return out


@pytest.fixture
def run(home: Path, write_catalog: Callable[..., Path], files: dict[str, tuple[Path, str]],
        capsys: pytest.CaptureFixture[str]) -> Run:
    catalog = write_catalog([model_entry(mid, f"http://127.0.0.1/{mid}.onnx",
                                         p.stat().st_size, sha)
                             for mid, (p, sha) in files.items()])

    def cli(*argv: str) -> tuple[int, str, str]:
        code = main(["--home", str(home), "--catalog", str(catalog), "--no-durable", *argv])
        out, err = capsys.readouterr()
        return code, out, err

    return cli


def _json(out: str) -> Any:
    return json.loads(out)


def _import_all(run: Run, files: dict[str, tuple[Path, str]]) -> None:
    for mid, (p, _) in files.items():
        code, out, _ = run("import", mid, str(p))
        assert code == 0 and f"imported {mid}" in out and "verified" in out


def test_import_right_and_wrong_files(run: Run, files: dict[str, tuple[Path, str]],
                                      tmp_path: Path, home: Path) -> None:
    wrong = tmp_path / "wrong.onnx"
    wrong.write_bytes(os.urandom(1000))
    code, out, err = run("import", "small", str(wrong))
    assert code != 0 and out == ""
    assert err.startswith("runanywhere: error:") and "does not match" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    code, _, err = run("import", "small", str(tmp_path / "missing.onnx"))
    assert code != 0 and "does not exist" in err
    code, _, err = run("import", "no-such-model", str(wrong))
    assert code != 0 and "unknown model" in err
    assert check_cache(home) == []
    code, out, _ = run("import", "small", str(files["small"][0]), "--json")
    assert code == 0
    doc = _json(out)
    assert doc["id"] == "small" and doc["sha256"] == files["small"][1] and doc["origin"] == "import"
    assert check_cache(home, {"small": {"small.onnx": files["small"][1]}}) == ["small"]


def test_ls_and_size_tables_and_json(run: Run, files: dict[str, tuple[Path, str]]) -> None:
    code, out, _ = run("cache", "ls", "--json")
    assert code == 0 and _json(out)["models"] == [] and _json(out)["total_size"] == 0
    _import_all(run, files)
    code, out, err = run("cache", "ls")
    assert code == 0
    # In a pipe: one row per line, tab-separated, never folded; the summary is on stderr.
    header, *lines = out.splitlines()
    columns = header.split("\t")
    for name in ("ID", "SIZE", "TIER", "ORIGIN", "LAST USED", "HITS", "PINNED", "SHA256"):
        assert name in columns
    table = {r[0]: dict(zip(columns, r, strict=True)) for r in (ln.split("\t") for ln in lines)}
    assert table["small"]["SHA256"] == files["small"][1][:12]
    assert table["small"]["ORIGIN"] == "import" and table["small"]["SIZE"] == "1000 B"
    assert "total 9.8 KiB" in err and "total" not in out
    code, out, _ = run("cache", "ls", "--json")
    doc = _json(out)
    assert [m["id"] for m in doc["models"]] == ["large", "medium", "small"]
    m = doc["models"][2]
    assert {"size", "sha256", "tier", "last_access", "hits", "pinned", "path"} <= set(m)
    assert m["size"] == 1000 and m["sha256"] == files["small"][1] and m["pinned"] is False
    assert m["origin"] == "import"
    assert doc["total_size"] == 10000
    code, out, _ = run("cache", "size", "--json")
    doc = _json(out)
    assert doc == {"size": 10000, "models": 3, "directory": doc["directory"], "disk": doc["disk"]}
    assert doc["disk"]["models"] >= 10000 and doc["disk"]["total"] >= doc["disk"]["models"]
    code, out, _ = run("cache", "size")
    assert "(10000 bytes)" in out


def test_verify_reports_and_quarantines(run: Run, files: dict[str, tuple[Path, str]],
                                        home: Path) -> None:
    _import_all(run, files)
    code, out, _ = run("cache", "verify")
    assert code == 0 and out.count(": ok") == 3
    blob = home / "blobs" / "sha256" / files["medium"][1]
    flip_byte(blob, 100)
    code, out, _ = run("cache", "verify", "medium", "--json")
    doc = _json(out)
    assert code == 1 and doc["ok"] is False
    assert doc["results"][0]["id"] == "medium" and "sha256" in doc["results"][0]["problems"][0]
    code, _, err = run("cache", "verify", "medium")
    assert code == 1 and "not in the cache" in err  # quarantined: gone from the cache
    code, out, _ = run("cache", "verify")
    assert code == 0 and "medium" not in out
    assert check_cache(home) == ["large", "small"]


def test_pin_prune_dry_run_and_execute(run: Run, files: dict[str, tuple[Path, str]],
                                       home: Path) -> None:
    _import_all(run, files)  # small, medium, large: small is the least recently used
    code, out, _ = run("cache", "pin", "small")
    assert code == 0 and "pinned small" in out
    code, out, _ = run("cache", "ls", "--json")
    assert [m["id"] for m in _json(out)["models"] if m["pinned"]] == ["small"]

    code, out, _ = run("cache", "prune", "--max-size", "7KB", "--dry-run", "--json")
    plan = _json(out)
    assert code == 0 and plan["dry_run"] is True and plan["freed"] == 0
    assert [e["id"] for e in plan["evict"]] == ["medium"]  # small is pinned
    assert plan["freed_bytes"] == 3000 and plan["size_after"] == 7000
    assert "small" in plan["kept"]
    code, out, _ = run("cache", "prune", "--max-size", "7KB", "--dry-run")
    assert "would remove" in out and "medium" in out and "would free 2.9 KiB" in out
    assert len(check_cache(home)) == 3  # a dry run changes nothing

    code, out, _ = run("cache", "prune", "--max-size", "7KB")
    assert code == 0 and "removed" in out and "freed 2.9 KiB" in out
    assert check_cache(home) == ["large", "small"]
    code, out, _ = run("cache", "pin", "small", "--off")
    assert code == 0 and "unpinned small" in out
    code, out, _ = run("cache", "pin", "large", "--json")
    assert code == 0 and _json(out) == {"id": "large", "pinned": True}
    code, out, _ = run("cache", "pin", "large", "--off", "--json")
    assert code == 0 and _json(out) == {"id": "large", "pinned": False}
    code, out, _ = run("cache", "prune", "--max-size", "0", "--json")
    assert _json(out)["freed"] == 7000 and check_cache(home) == []


def test_rm_clear_and_errors(run: Run, files: dict[str, tuple[Path, str]], home: Path) -> None:
    _import_all(run, files)
    code, out, _ = run("cache", "rm", "medium", "--json")
    assert code == 0 and _json(out) == {"freed": 3000, "removed": ["medium"], "released": []}
    code, _, err = run("cache", "rm", "medium")
    assert code != 0 and "not in the cache" in err
    code, _, err = run("cache", "pin", "nope")
    assert code != 0 and "not in the cache" in err
    code, _, err = run("cache", "prune", "--max-size", "banana")
    assert code == 2 and "not a size" in err
    code, out, _ = run("cache", "clear")
    assert code == 0 and "cleared the cache: freed 6.8 KiB" in out
    assert check_cache(home) == []


def test_prune_removes_orphans(run: Run, home: Path) -> None:
    run("cache", "prune")  # creates the cache (a read-only command would not)
    orphan = home / "blobs" / "sha256" / ("ab" * 32)
    orphan.write_bytes(b"x" * 5000)
    code, out, _ = run("cache", "prune", "--orphan-age", "0", "--dry-run", "--json")
    assert _json(out)["orphan_blobs"] == [str(orphan)] and orphan.exists()
    code, out, _ = run("cache", "prune", "--orphan-age", "0")
    assert code == 0 and f"orphan blob {orphan.name[:12]}" in out and not orphan.exists()
