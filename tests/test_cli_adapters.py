"""``runanywhere adapters`` and the adapter line of ``info``, from the user's side: in a pipe
(plain tab-separated rows), at a real terminal, and as ``--json``."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from support.catalogs import model_entry
from support.terminal import Terminal, cli_argv

#: The adapters this repository's packages register, with what they declare they handle.
OURS = {
    "silero-vad": ("runanywhere-vad-silero", ["vad"], ["onnx"]),
    "whisper": ("runanywhere-stt-whisper", ["stt"], ["onnx"]),
    "speecht5": ("runanywhere-tts-speecht5", ["tts"], ["onnx"]),
    "system-tts": ("runanywhere-tts-system", ["tts"], []),
}


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli_argv(*args), capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


def hiding(tmp_path: Path, *modules: str) -> dict[str, str]:
    """An environment whose sitecustomize makes ``modules`` unimportable (as if not installed)."""
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in modules))
    return {"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}


def test_json_lists_each_adapter_with_its_package_and_what_it_handles() -> None:
    r = cli("adapters", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    found = {a["name"]: a for a in doc["adapters"]}
    for name, (dist, types, formats) in OURS.items():
        a = found[name]
        assert a["distribution"] == dist
        assert a["version"] == importlib.metadata.version(dist)
        assert a["model_types"] == types and a["formats"] == formats
        assert a["available"] is True and a["missing"] == [] and a["error"] == ""
        assert a["target"].startswith(dist.replace("-", "_") + ".")
    runtimes = {rt["name"]: rt for rt in doc["runtimes"]}
    assert runtimes["onnx"]["distribution"] == "runanywhere"
    assert runtimes["onnx"]["formats"] == ["onnx"] and runtimes["onnx"]["available"] is True
    assert runtimes["tflite"]["formats"] == ["tensorflow", "tflite"]
    assert {n["name"] for n in doc["not_installed"]}.isdisjoint(found)


def test_a_pipe_gets_one_tab_separated_row_per_adapter() -> None:
    r = cli("adapters")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split("\t") == ["ADAPTER", "TYPES", "FORMATS", "PACKAGE", "DEPENDENCIES"]
    rows = {line.split("\t")[0]: line.split("\t") for line in lines[1:]}
    version = importlib.metadata.version("runanywhere-vad-silero")
    assert rows["silero-vad"] == ["silero-vad", "vad", "onnx",
                                  f"runanywhere-vad-silero {version}", "ok"]
    assert rows["system-tts"][1:3] == ["tts", "-"]
    assert "RUNTIME\tFORMATS\tPACKAGE\tDEPENDENCIES" in lines
    assert rows["onnx"][1:] == ["onnx", f"runanywhere {importlib.metadata.version('runanywhere')}",
                                "ok"]
    quiet = cli("adapters", "-q")
    assert set(OURS) <= set(quiet.stdout.split()) and "onnx" not in quiet.stdout.split()


def test_at_a_terminal_the_table_is_drawn() -> None:
    term = Terminal(cli_argv("adapters"), dict(os.environ))
    assert term.wait() == 0
    out = term.output
    for name, (dist, _, _) in OURS.items():
        assert name in out and dist in out
    assert "\t" not in out and "ADAPTER" in out and "RUNTIME" in out


def test_a_missing_dependency_is_reported_without_importing_it(tmp_path: Path) -> None:
    env = hiding(tmp_path, "sentencepiece", "onnxruntime")
    doc = json.loads(cli("adapters", "--json", env=env).stdout)
    found = {a["name"]: a for a in doc["adapters"]}
    assert found["speecht5"]["available"] is False
    assert set(found["speecht5"]["missing"]) == {"sentencepiece", "onnxruntime"}
    assert found["speecht5"]["fix"] == "pip install runanywhere-tts-speecht5"
    assert found["system-tts"]["available"] is True  # needs neither
    onnx = next(rt for rt in doc["runtimes"] if rt["name"] == "onnx")
    assert onnx["missing"] == ["onnxruntime"] and onnx["fix"] == "pip install 'runanywhere[onnx]'"
    text = cli("adapters", env=env).stdout
    row = next(line for line in text.splitlines() if line.startswith("speecht5\t"))
    assert "missing" in row and "sentencepiece" in row


def test_info_names_the_adapter_that_would_run_the_model(
        write_catalog: Callable[[list[dict[str, Any]]], Path]) -> None:
    version = importlib.metadata.version("runanywhere-vad-silero")
    r = cli("info", "silero-vad")
    assert r.returncode == 0, r.stderr
    line = next(x for x in r.stdout.splitlines() if x.startswith("adapter "))
    assert line.split(None, 1)[1] == f"silero-vad (runanywhere-vad-silero {version})"
    doc = json.loads(cli("info", "silero-vad", "--json").stdout)
    assert doc["adapter_name"] == "silero-vad" and doc["adapter_installed"] is True
    assert doc["adapter_install"] is None

    cat = write_catalog([
        model_entry("mine", "http://127.0.0.1:9/x", 10, None, type="vad", format="onnx",
                    adapter="not-installed-anywhere"),
        model_entry("blob", "http://127.0.0.1:9/y", 10, None)])
    env = {"RUNANYWHERE_CATALOG": str(cat)}
    doc = json.loads(cli("info", "mine", "--json", env=env).stdout)
    assert doc["adapter_name"] == "not-installed-anywhere"
    assert doc["adapter_installed"] is False and doc["adapter_install"] is None
    text = cli("info", "mine", env=env).stdout
    assert "adapter" in text and "not-installed-anywhere (not installed)" in text
    text = cli("info", "blob", env=env).stdout  # custom/custom: no adapter by default
    assert "- (none for this type and format)" in text
