"""The command line's habits, as scripts and people meet them: streams, ``--json`` and ``--quiet``,
``--version``, options before or after the command, allowed values, tables in a pipe, an unusable
home. Every case runs the real CLI in a subprocess (a pipe) unless it needs a terminal.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.nginx import Nginx
from runanywhere import __version__
from support.catalogs import model_entry
from support.invariants import check_cache
from support.terminal import Terminal, cli_argv

Catalog = Callable[[list[dict[str, Any]]], Path]
Payload = Callable[[str, int], tuple[str, str, int]]


def cli(*args: str, home: Path | None = None, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    base = {**os.environ, **(env or {})}
    if home is not None:
        base["RUNANYWHERE_HOME"] = str(home)
    return subprocess.run(cli_argv(*args), capture_output=True, text=True, env=base, timeout=120)


@pytest.fixture
def two_models(nginx: Nginx, payload: Payload, write_catalog: Catalog) -> Path:
    entries = []
    for name, size in (("conv-a.bin", 3000), ("conv-b.bin", 5000)):
        _, sha, _ = payload(name, size)
        entries.append(model_entry(name.removesuffix(".bin"), f"{nginx.url}/{name}", size, sha))
    return write_catalog(entries)


def test_version() -> None:
    r = cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"runanywhere {__version__}"


def test_quiet_pull_prints_one_path_per_model_in_argument_order(two_models: Path,
                                                               home: Path) -> None:
    r = cli("--catalog", str(two_models), "pull", "conv-b", "conv-a", "--quiet", home=home)
    assert r.returncode == 0, r.stderr
    paths = r.stdout.splitlines()
    assert [Path(p).name for p in paths] == ["conv-b.bin", "conv-a.bin"]
    assert all(Path(p).is_file() for p in paths)
    assert r.stderr == ""  # nothing else at all
    again = cli("--catalog", str(two_models), "pull", "conv-a", "-q", home=home)  # cache hit
    assert again.stdout.splitlines() == [paths[1]] and again.stderr == ""


def test_global_options_after_the_command(two_models: Path, home: Path) -> None:
    cli("--catalog", str(two_models), "pull", "conv-a", "-q", home=home)
    r = cli("pull", "conv-a", "--offline", "--catalog", str(two_models), "--quiet",
            "--home", str(home))
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()).name == "conv-a.bin"
    missing = cli("pull", "conv-b", "--offline", "--catalog", str(two_models), "--home", str(home))
    assert missing.returncode != 0 and "offline" in missing.stderr
    both = cli("--catalog", str(two_models), "list", "--quiet", "--catalog", str(two_models),
               "-v", home=home)
    assert both.returncode == 0 and "conv-a" in both.stdout.splitlines()


@pytest.mark.parametrize("args", [
    ("info", "nope"),
    ("pull", "nope"),
    ("cache", "rm", "nope"),
    ("load", "silero-vad", "--runtime", "nope"),
    ("list", "--type", "foo"),
    ("cache", "prune", "--max-size", "1e400"),
])
def test_json_prints_one_document_on_failure(args: tuple[str, ...], home: Path) -> None:
    r = cli(*args, "--json", home=home)
    assert r.returncode != 0
    doc = json.loads(r.stdout)  # exactly one document, nothing else
    error = doc["error"] if "error" in doc else doc["models"][0]["error"]
    assert error["type"] and error["message"] and error["exit_code"] == r.returncode
    assert "Traceback" not in r.stderr and r.stderr.strip()


def test_unknown_type_lists_the_valid_ones() -> None:
    r = cli("list", "--type", "foo")
    assert r.returncode == 2
    assert "invalid choice: 'foo'" in r.stderr and "stt" in r.stderr and "vad" in r.stderr
    assert r.stdout == ""


def test_every_option_has_help_text() -> None:
    from runanywhere.cli.main import build_parser

    def walk(parser: Any) -> list[str]:
        missing = []
        for action in parser._actions:
            if action.help is None and action.option_strings:
                missing.append(f"{parser.prog} {action.option_strings[0]}")
            if action.choices and isinstance(action.choices, dict):  # subcommands
                for sub in action.choices.values():
                    missing += walk(sub)
        return missing

    assert walk(build_parser()) == []


def test_tables_never_fold_in_a_pipe(nginx: Nginx, payload: Payload, write_catalog: Catalog,
                                     home: Path) -> None:
    long_id = "a-model-with-a-rather-long-identifier-that-a-terminal-would-fold." + "x" * 40
    _, sha, _ = payload("long.bin", 1234)
    cat = write_catalog([model_entry(long_id, f"{nginx.url}/long.bin", 1234, sha)])
    assert cli("--catalog", str(cat), "pull", long_id, "-q", home=home).returncode == 0
    env = {**os.environ, "RUNANYWHERE_HOME": str(home), "RUNANYWHERE_CATALOG": str(cat),
           "COLUMNS": "40"}
    r = subprocess.run(f"{' '.join(cli_argv('cache', 'ls'))} | grep long-identifier",
                       shell=True, capture_output=True, text=True, timeout=60, env=env)
    (row,) = r.stdout.splitlines()  # grep found the whole row on one line
    header = subprocess.run(cli_argv("cache", "ls"), capture_output=True, text=True, timeout=60,
                            env=env).stdout.splitlines()[0].split("\t")
    fields = dict(zip(header, row.split("\t"), strict=True))
    assert fields["ID"] == long_id and fields["SIZE"] == "1.2 KiB"
    assert fields["SHA256"] == sha[:12] and fields["SOURCE"] == str(cat)
    listing = cli("--catalog", str(cat), "list", home=home, env={"COLUMNS": "40"}).stdout
    assert any(line.startswith(long_id + "\t") for line in listing.splitlines())


def test_an_unwritable_home_fails_with_one_line(two_models: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    home = blocker / "home"  # cannot be created, even by root
    r = cli("--catalog", str(two_models), "pull", "conv-a", home=home)
    assert r.returncode != 0
    assert r.stdout == ""  # no path printed: none would exist
    lines = r.stderr.strip().splitlines()
    assert any("is not writable" in ln and "nothing can be added" in ln for ln in lines)
    assert "Traceback" not in r.stderr
    r = cli("--catalog", str(two_models), "cache", "clear", home=home)
    assert r.returncode != 0 and "nothing can be added" in r.stderr
    assert cli("--catalog", str(two_models), "list", "-q", home=home).returncode == 0


def test_a_failed_pull_reports_why_on_stderr_and_others_still_pull(
        nginx: Nginx, payload: Payload, write_catalog: Catalog, home: Path) -> None:
    _, sha, _ = payload("good.bin", 2000)
    cat = write_catalog([model_entry("good", f"{nginx.url}/good.bin", 2000, sha),
                         model_entry("gone", f"{nginx.url}/gone.bin", 10, "0" * 64)])
    r = cli("--catalog", str(cat), "pull", "gone", "nope", "good", home=home)
    assert r.returncode == 1
    assert r.stdout.startswith("good: ") and r.stdout.count("\n") == 1
    assert "gone: " in r.stderr and "404" in r.stderr and "unknown model 'nope'" in r.stderr
    assert check_cache(home) == ["good"]


def test_a_failed_bar_shows_why(nginx: Nginx, write_catalog: Catalog, home: Path) -> None:
    cat = write_catalog([model_entry("gone", f"{nginx.url}/gone.bin", 10, "0" * 64)])
    term = Terminal(cli_argv("pull", "gone"), {**os.environ, "RUNANYWHERE_HOME": str(home),
                                               "RUNANYWHERE_CATALOG": str(cat)})
    assert term.wait() == 1
    assert "failed: " in term.output and "404" in term.output


def test_demo_after_a_plain_install_says_what_to_add(tmp_path: Path) -> None:
    # A sitecustomize that hides onnxruntime, as a plain ``pip install runanywhere`` would.
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\nsys.modules['onnxruntime'] = None\n")
    r = cli("demo", env={"PYTHONPATH": str(tmp_path)})
    assert r.returncode != 0
    (line,) = r.stderr.strip().splitlines()
    assert "onnxruntime" in line and "pip install 'runanywhere[onnx,audio]'" in line


def test_sha_of_what_pull_printed(two_models: Path, home: Path) -> None:
    """A path the CLI prints exists after it exits, with the bytes the catalog names."""
    catalog = json.loads(two_models.read_text())["models"]
    r = cli("--catalog", str(two_models), "pull", "conv-a", "conv-b", "--json", home=home)
    doc = json.loads(r.stdout)
    for entry, model in zip(catalog, doc["models"], strict=True):
        digest = hashlib.sha256(Path(model["path"]).read_bytes()).hexdigest()
        assert entry["hash"] == f"sha256:{digest}"
