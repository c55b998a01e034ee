"""The command line: exit codes, one-line errors, JSON documents, import-time cost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runanywhere.cli.main import main
from support.catalogs import model_entry


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "runanywhere", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=120)


def test_list_json_has_the_five_models(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    ids = {m["id"]: m for m in doc["models"]}
    for mid in ("silero-vad", "whisper-tiny", "whisper-base", "whisper-small", "speecht5-tts"):
        assert ids[mid]["size"] > 0
        assert ids[mid].get("url") or all(f["url"] for f in ids[mid]["files"])


def test_list_table_and_type_filter(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--type", "stt"]) == 0
    out = capsys.readouterr().out
    assert "whisper-base" in out and "silero-vad" not in out and "MiB" in out


def test_unknown_id_suggests(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "whisper-tinny"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "whisper-tiny" in err[0]


@pytest.mark.parametrize(("entry", "needle"), [
    ({"id": "../x"}, "id"),
    ({"size": -1}, "size must be a positive integer"),
    ({"hash": "sha256:nothex"}, "hash"),
])
def test_bad_catalog_fails_cleanly(tmp_path: Path, entry: dict[str, Any], needle: str) -> None:
    e = model_entry("ok", "http://127.0.0.1:9/x", 5, None)
    e.update(entry)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format_version": 1, "models": [e]}))
    r = run_cli("--catalog", str(bad), "list")
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert "bad.json" in r.stderr and needle in r.stderr


def test_pull_and_load_through_a_local_catalog(
        nginx: Any, origin_root: Path, write_catalog: Callable[..., Path], home: Path) -> None:
    from support.silero import silero_onnx_bytes

    data = silero_onnx_bytes()
    (origin_root / "vad.onnx").write_bytes(data)
    import hashlib

    cat = write_catalog([{**model_entry("vad", f"{nginx.url}/vad.onnx", len(data),
                                        hashlib.sha256(data).hexdigest()), "format": "onnx",
                          "type": "vad"}])
    r = run_cli("--home", str(home), "--catalog", str(cat), "pull", "vad", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["ok"] and Path(doc["models"][0]["path"]).read_bytes() == data
    r = run_cli("--home", str(home), "--catalog", str(cat), "--offline", "load", "vad")
    assert r.returncode == 0, r.stderr
    assert "input" in r.stdout and "state" in r.stdout


def test_pull_failure_is_one_line(write_catalog: Callable[..., Path], home: Path) -> None:
    cat = write_catalog([model_entry("gone", "http://127.0.0.1:9/none", 5, "ab" * 32)])
    r = run_cli("--home", str(home), "--catalog", str(cat), "--offline", "pull", "gone")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "offline" in r.stderr


def test_import_runanywhere_is_light() -> None:
    code = ("import sys, time; t=time.perf_counter(); import runanywhere; "
            "dt=time.perf_counter()-t; heavy=[m for m in ('onnxruntime','numpy','httpx','requests',"
            "'urllib.request','http.client','sqlite3','rich','boto3','torch') if m in sys.modules];"
            "print(dt, heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    seconds, heavy = out.stdout.split(" ", 1)
    assert heavy.strip() == "[]", heavy
    # Not a timing test: the module list above is the real guard; this only catches a disaster.
    assert float(seconds) < 1.0
