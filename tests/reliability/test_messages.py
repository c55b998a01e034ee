"""Messages speak the command line's language on the command line: a cache that cannot be
written names the options and variables of the CLI (no Python API hint), the disk-space refusal
states its margin, a trust-on-first-use mismatch says how to reset it.

Real parts: the CLI as a process, the tests' HTTP server, a real cache folder.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runanywhere import ModelRegistry
from runanywhere.errors import InsufficientStorageError
from runanywhere.progress import display
from runanywhere.store import ModelCache
from support.catalogs import model_entry
from support.fault_server import FaultServer
from support.invariants import check_cache
from support.tamper import flipped
from support.terminal import Terminal, cli_argv

pytestmark = pytest.mark.timeout(120, method="thread")
Catalog = Callable[[list[dict[str, Any]]], Path]
PYTHON_HINT = re.compile(r"\w+\([a-z_]+=")  # ModelCache(scratch_fallback=True) and the like


def cli(*args: str, home: Path, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli_argv(*args), capture_output=True, text=True, timeout=60,
                          env={**os.environ, "RUNANYWHERE_HOME": str(home), **(env or {})})


def test_an_unwritable_cache_names_the_cli_way_out(fault_server: FaultServer,
                                                   write_catalog: Catalog,
                                                   tmp_path: Path) -> None:
    data = os.urandom(3000)
    url = fault_server.add("msg/ro.bin", data)
    cat = write_catalog([model_entry("msg-ro", url, len(data),
                                     hashlib.sha256(data).hexdigest())])
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    home = blocker / "home"  # cannot be created, even by root
    r = cli("--catalog", str(cat), "pull", "msg-ro", home=home)
    assert r.returncode != 0 and "nothing can be added" in r.stderr
    assert not PYTHON_HINT.search(r.stderr), r.stderr
    assert "RUNANYWHERE_SCRATCH_FALLBACK=1" in r.stderr and "--home" in r.stderr
    # The way out it names works.
    ok = cli("--catalog", str(cat), "pull", "msg-ro", "-q", home=home,
             env={"RUNANYWHERE_SCRATCH_FALLBACK": "1"})
    assert ok.returncode == 0, ok.stderr


def test_the_disk_space_refusal_states_its_margin(home: Path) -> None:
    with ModelCache(directory=home) as cache:
        free = shutil.disk_usage(home).free
        # Fits in the free space, not with the margin on top.
        with pytest.raises(InsufficientStorageError) as e:
            cache.check_space([("msg-margin", max(free - 2**20, 1))])
    assert "MiB are kept free as a margin" in str(e.value)


def test_a_first_use_mismatch_says_how_to_reset_it(fault_server: FaultServer,
                                                   home: Path) -> None:
    data = os.urandom(4000)
    url = fault_server.add("msg/tofu.bin", data)
    first = cli("pull", url, "--trust-first-use", "--id", "tofu", home=home)
    assert first.returncode == 0, first.stderr
    assert cli("cache", "rm", "tofu", home=home).returncode == 0  # the hash record stays
    fault_server.add("msg/tofu.bin", flipped(data))  # the origin's bytes change
    again = cli("pull", url, "--trust-first-use", "--id", "tofu", home=home)
    assert again.returncode != 0 and "sha256 mismatch" in again.stderr
    assert "`runanywhere cache forget tofu`" in again.stderr, again.stderr
    assert cli("cache", "forget", "tofu", home=home).returncode == 0
    reset = cli("pull", url, "--trust-first-use", "--id", "tofu", "-q", home=home)
    assert reset.returncode == 0, reset.stderr
    assert Path(reset.stdout.strip()).read_bytes() == flipped(data)
    assert check_cache(home) == ["tofu"]


def test_cache_ls_shared_without_boto3_names_the_extra(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    # boto3 cannot be uninstalled from the test environment: the child makes its import fail,
    # as it fails where the s3 extra is not installed.
    child = ("import sys; sys.modules['boto3'] = None; from runanywhere.cli.main import main;"
             " sys.exit(main(['cache', 'ls', '--shared']))")
    r = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                       timeout=60, env={**os.environ, "RUNANYWHERE_HOME": str(home),
                                        "RUNANYWHERE_SHARED_CACHE": "s3://bucket/prefix"})
    assert r.returncode != 0, r.stderr
    assert "boto3" in r.stderr and "runanywhere[s3]" in r.stderr, r.stderr
    assert "no shared cache configured" not in r.stderr and "Traceback" not in r.stderr


def test_progress_display_works_as_the_registrys_on_progress(fault_server: FaultServer,
                                                             write_catalog: Catalog,
                                                             home: Path) -> None:
    data = os.urandom(200_000)
    url = fault_server.add("msg/display.bin", data)
    cat = write_catalog([model_entry("msg-display", url, len(data),
                                     hashlib.sha256(data).hexdigest())])
    shown = io.StringIO()
    reg = ModelRegistry(home=home, catalogs=[cat], include_builtin=False)
    r = asyncio.run(reg.download_model("msg-display", display(file=shown, bars=False)))
    assert r.unwrap().read_bytes() == data
    assert "msg-display: done 100.0%" in shown.getvalue(), shown.getvalue()


# (command, catalog fields, modules made unimportable, what the error must name)
NEEDS = {
    "transcribe": ({"type": "stt", "format": "ctranslate2", "adapter": "faster-whisper"},
                   ["faster_whisper", "ctranslate2"], "pip install runanywhere-stt-whisper"),
    "run": ({"type": "llm", "format": "gguf", "adapter": "llama"}, ["xllamacpp"],
            "pip install runanywhere-llm-llamacpp"),
    "speak": ({"type": "tts", "format": "onnx", "adapter": "piper"}, ["onnxruntime"],
              "pip install runanywhere-tts-piper"),
    "load": ({"type": "custom", "format": "onnx"}, ["onnxruntime"],
             "pip install 'runanywhere[onnx]'"),
}


@pytest.mark.parametrize("command", sorted(NEEDS))
def test_a_missing_adapter_library_fails_before_any_download(
        command: str, fault_server: FaultServer, write_catalog: Catalog, tmp_path: Path) -> None:
    fields, blocked, install = NEEDS[command]
    data = os.urandom(2 * 2**20)
    name = f"msg-needs-{command}"
    url = fault_server.add(name, data)
    cat = write_catalog([{**model_entry(name, url, len(data), hashlib.sha256(data).hexdigest()),
                          **fields}])
    audio = tmp_path / "a.wav"
    with wave.open(str(audio), "wb") as w:  # a tenth of a second of silence
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\0\0" * 1600)
    argv = {"transcribe": [name, str(audio)], "run": [name, "hi"],
            "speak": [name, "hi", "-o", str(tmp_path / "out.wav")], "load": [name]}[command]
    # These libraries are installed here: the child makes their import fail, as it fails where
    # they are not installed.
    child = (f"import sys; sys.modules.update(dict.fromkeys({blocked!r}));"
             " from runanywhere.cli.main import main; sys.exit(main(sys.argv[1:]))")
    r = subprocess.run([sys.executable, "-c", child, command, *argv], capture_output=True,
                       text=True, timeout=60,
                       env={**os.environ, "RUNANYWHERE_HOME": str(tmp_path / "home"),
                            "RUNANYWHERE_CATALOG": str(cat)})
    assert r.returncode != 0 and install in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert fault_server.bytes_served(name) == 0  # nothing was downloaded for it


def test_a_url_is_named_once_in_its_error(fault_server: FaultServer, home: Path) -> None:
    url = fault_server.url("msg/never-there.bin")  # 404
    r = cli("pull", url, "--trust-first-use", home=home)
    assert r.returncode != 0
    (line,) = [ln for ln in r.stderr.splitlines() if ln.startswith("runanywhere: error:")]
    assert line.count(url) == 1, line


VIEW = """
import sys
from runanywhere.cli.progress_view import PullProgress
from runanywhere.progress import DownloadProgress, Stage
MiB, KiB = 2**20, 2**10
with PullProgress([("resumed-a", 10 * MiB), ("resumed-b", 10 * MiB)]) as view:
    assert not view.plain, "not at a terminal"
    for mid in ("resumed-a", "resumed-b"):  # 5 MiB kept from an earlier run, then 100 KiB/s
        view.update(DownloadProgress(mid, 50.0, 5 * MiB, 10 * MiB, 0.0, None,
                                     Stage.DOWNLOADING, "", 5 * MiB))
        view.update(DownloadProgress(mid, 51.0, 5 * MiB + 100 * KiB, 10 * MiB, 100 * KiB,
                                     50.2, Stage.DOWNLOADING, "", 5 * MiB))
"""


def test_the_speed_of_a_pull_of_several_models_leaves_out_resumed_bytes(home: Path) -> None:
    # The real view at a real terminal, fed the events of two resumed downloads.
    term = Terminal([sys.executable, "-c", VIEW], {**os.environ, "COLUMNS": "150"})
    assert term.wait() == 0, term.output
    final = term.output.split("\x1b[2K")[-3:]  # the last frame: two models and the total
    text = "".join(final)
    assert text.count("100.0 KiB/s") == 2 and "200.0 KiB/s" in text, text
    assert "MiB/s" not in text, text  # 5 MiB kept in an instant is not a speed
