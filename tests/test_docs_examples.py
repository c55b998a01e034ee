"""Every code example of the documentation runs, or is checked, here.

The pages (``docs/``, the README, ``ARCHITECTURE.md``) are read by ``support.doc_blocks``:

* Python blocks run, page by page, in one fresh interpreter and namespace per page, in a
  world like a user's: a fresh cache home, the built-in catalog's real models (Silero VAD,
  Whisper tiny.en in CTranslate2 format, the Piper joe voice, from their PyPI wheels) served by
  nginx on 127.0.0.1 under their built-in ids (``RUNANYWHERE_CATALOG`` moves only their URLs),
  espeak-ng speech as ``speech.wav`` and ``meeting.flac`` in the working folder; SmolLM2 too
  where the built-in catalog has it. A page marked ``<!-- requires: DIST -->`` is skipped where
  that package is not installed. What a block
  prints is held to the ``text`` block marked ``<!-- output -->`` after it.
* Console blocks run command by command in bash in the same world (the venv's ``runanywhere``
  first on the PATH); the lines shown after a command must be its stdout (progress, on stderr,
  is not shown) or, where the page shows messages or errors, its stdout followed by its stderr
  (``...`` matches anything); it must exit 0 unless what is shown is an error.
* Shell blocks run as one ``set -eu`` script; lines that install or build are checked instead
  (the extra, the distribution, the make target exists).
* Blocks marked ``<!-- no-run: why -->`` are still checked: Python compiles, the script parses
  (``bash -n``), and every ``runanywhere`` command in any shell or console block, run or not,
  parses with the real argument parser (unless the page shows its usage error). They are
  counted (``NO_RUN``), so adding one is a visible change.
"""

from __future__ import annotations

import ast
import contextlib
import doctest
import importlib.metadata
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import soundfile as sf
import tomllib

from harness.nginx import Nginx
from runanywhere.cli.main import build_parser
from support import ct2_models
from support.doc_blocks import (
    ROOT,
    Block,
    blocks,
    console_commands,
    install_line_problem,
    is_install_line,
    pages,
    requirements,
    runanywhere_argvs,
    script_lines,
)
from support.speech import espeak_available, espeak_wav
from support.wheels import PIPER_JOE, SMOLLM2, real_file, wheel_dir

#: Blocks marked no-run, page by page (each says why on the page). Change it with the pages.
NO_RUN: dict[str, int] = {
    "README.md": 3,              # serve, which runs until Ctrl-C (docs/serve.md runs one); the
                                 # chat after make demo (its .venv; the run example above runs);
                                 # activating .venv (tests/test_readme_quickstart.py runs it)
    "docs/catalogs.md": 2,       # example.org and the Hub (tests/test_sources.py: a stand-in)
    "docs/getting-started.md": 1,  # the chat after make demo (its .venv and cache)
    "docs/guides/stt.md": 1,     # ONNX Whisper: no real weights reachable here
    "docs/guides/tts.md": 1,     # SpeechT5: its real weights come from the Hub
    "docs/openai.md": 1,         # llama.cpp's llama-server, ollama, a cloud account
    "docs/serve.md": 4,          # servers that run until Ctrl-C, two machines, the Hub
    "docs/shared-tier.md": 1,    # an S3 bucket (tests/test_shared_s3.py: SeaweedFS)
}

#: The built-in models the examples pull, served by nginx under their built-in ids.
SERVED = [ct2_models.VAD, ct2_models.TINY_EN, "piper-en-us-joe-medium"]
#: Served too where the built-in catalog has it (the LLM package's branch adds it).
LLM = "smollm2-135m-instruct"
SAID = "Please send the report to Maria before Friday."
RUNNER = Path(__file__).parent / "support" / "doc_runner.py"
CHECKER = doctest.OutputChecker()
LOOSE = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

ALL = {str(p.relative_to(ROOT)): blocks(p) for p in pages()}
NEEDS = {str(p.relative_to(ROOT)): requirements(p) for p in pages()}


def _installed(dist: str | None) -> bool:
    if dist is None:
        return True
    try:
        importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _skip_unless_installed(page: str) -> None:
    for dist in NEEDS[page]:
        if not _installed(dist):
            pytest.skip(f"{page} needs {dist}, which is not installed here")


def _runnable(b: Block) -> bool:
    """Not marked no-run, and its package (if it names one) is installed."""
    return not b.no_run and _installed(b.requires)


def _pages_with(*langs: str, runnable: bool = False) -> list[str]:
    return [page for page, bs in ALL.items()
            if any(b.lang in langs and not (runnable and not _runnable(b)) for b in bs)]


# -- checked without running -------------------------------------------------------------------

def test_no_run_blocks_are_few_and_counted() -> None:
    found = {page: n for page, bs in ALL.items() if (n := sum(1 for b in bs if b.no_run))}
    assert found == NO_RUN


def test_the_pages_have_examples() -> None:
    kinds = {b.lang for bs in ALL.values() for b in bs if not b.no_run}
    assert {"python", "console", "shell"} <= kinds
    assert len(ALL) >= 20


@pytest.mark.parametrize("page", _pages_with("python"))
def test_python_examples_compile(page: str) -> None:
    for b in ALL[page]:
        if b.lang == "python":
            compile(b.code, b.where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


@pytest.mark.parametrize("page", _pages_with("json", "toml"))
def test_data_examples_parse(page: str) -> None:
    for b in ALL[page]:
        if b.lang == "json":
            json.loads(b.code)
        elif b.lang == "toml":
            tomllib.loads(b.code)


def _shell_lines(b: Block) -> list[str]:
    if b.lang == "console":
        return [c.line for c in console_commands(b.code)]
    return script_lines(b.code)


def _parse_error(argv: list[str]) -> str | None:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            build_parser().parse_args(argv)
        except SystemExit as e:
            if e.code not in (0, None):
                return err.getvalue().strip().splitlines()[-1]
    return None


@pytest.mark.parametrize("page", _pages_with("console", "shell"))
def test_every_command_shown_parses(page: str) -> None:
    _skip_unless_installed(page)
    problems = []
    for b in ALL[page]:
        if b.lang not in ("console", "shell") or not _installed(b.requires):
            continue
        if b.lang == "shell":
            done = subprocess.run(["bash", "-n"], input=b.code, text=True, capture_output=True)
            if done.returncode:
                problems.append(f"{b.where}: bash -n: {done.stderr.strip()}")
        shows_error = {c.line for c in console_commands(b.code) if "error:" in c.output
                       } if b.lang == "console" else set()
        for line in _shell_lines(b):
            if is_install_line(line):
                if problem := install_line_problem(line):
                    problems.append(f"{b.where}: {line!r}: {problem}")
                continue
            for argv in runanywhere_argvs(line):
                if (error := _parse_error(argv)) and line not in shows_error:
                    problems.append(f"{b.where}: runanywhere {' '.join(argv)}: {error}")
    assert not problems, "\n".join(problems)


def test_the_checks_catch_a_wrong_example() -> None:
    assert _parse_error(["pull", "x", "--sha-256", "00"]) is not None
    assert _parse_error(["list", "--type", "vad"]) is None
    assert runanywhere_argvs('p=$(runanywhere pull x --quiet) && NO_COLOR=1 runanywhere ls'
                             ' | grep a > out.txt') == [["pull", "x", "--quiet"], ["ls"]]
    assert install_line_problem("pip install 'runanywhere[serve]'") is None
    assert install_line_problem("pip install 'runanywhere[sever]'") is not None
    assert install_line_problem("pip install runanywhere-tts-pipr") is not None
    assert install_line_problem("make tset") is not None
    assert install_line_problem("pip install -e '.[onnx,audio]' -e packages/vad-silero") is None
    assert install_line_problem("pip install -e '.[onx]'") is not None
    assert install_line_problem("pip install -e packages/vad-silro") is not None
    assert not CHECKER.check_output("a\n...\nc\n", "a\nb\nd\n", LOOSE)


@pytest.mark.parametrize("code", [
    "from runanywhere import FetchConfig\nFetchConfig(connections=4)",
    "from runanywhere import FetchConfig\nFetchConfig().timeout",
    "from runanywhere import ModelCache\nModelCache(directory='home').lookup('x')",
])
def test_an_example_with_a_deprecated_name_fails(code: str, tmp_path: Path) -> None:
    (tmp_path / "blocks.json").write_text(json.dumps([{"where": "page.md:1", "code": code}]))
    done = subprocess.run([sys.executable, str(RUNNER), str(tmp_path / "blocks.json"),
                           str(tmp_path / "results.json")], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 1
    assert "page.md:1" in done.stderr and "DeprecationWarning" in done.stderr


# -- run ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def world(nginx: Nginx, origin_root: Path, tmp_path_factory: pytest.TempPathFactory
          ) -> dict[str, Any]:
    """The served models, a catalog moving the built-in ones there, and the speech files."""
    if not espeak_available():
        pytest.fail("the examples need espeak-ng: apt-get install espeak-ng")
    for model_id in (ct2_models.VAD, ct2_models.TINY_EN):
        ct2_models.stage(origin_root, model_id)
    voice = origin_root / "piper-en-us-joe-medium"
    voice.mkdir(exist_ok=True)
    for f in PIPER_JOE.files:
        dest = voice / f.path.rsplit("/", 1)[-1]
        if not dest.exists():
            shutil.copyfile(wheel_dir(PIPER_JOE) / f.path, dest)
    served = list(SERVED)
    try:
        name = ct2_models.builtin_entry(LLM)["url"].rsplit("/", 1)[-1]
    except KeyError:
        name = None
    if name is not None:
        (origin_root / LLM).mkdir(exist_ok=True)
        gguf = origin_root / LLM / name
        if not gguf.exists():
            try:
                os.link(real_file(SMOLLM2, "SmolLM2-135M-Instruct.Q4_1.gguf"), gguf)
            except OSError:  # another file system
                shutil.copyfile(real_file(SMOLLM2, "SmolLM2-135M-Instruct.Q4_1.gguf"), gguf)
        served.append(LLM)
    here = tmp_path_factory.mktemp("docs-world")
    catalog = ct2_models.write_catalog(here / "served.json", nginx.url, served)
    wav = here / "speech.wav"
    wav.write_bytes(espeak_wav(SAID))
    audio, sr = sf.read(wav, dtype="float32")
    sf.write(here / "meeting.flac", audio, sr)
    return {"catalog": catalog, "files": [wav, here / "meeting.flac"]}


def _env(world: dict[str, Any], tmp: Path) -> tuple[dict[str, str], Path]:
    work = tmp / "work"
    work.mkdir()
    for f in world["files"]:
        shutil.copyfile(f, work / f.name)
    env = {**os.environ, "RUNANYWHERE_HOME": str(tmp / "home"),
           "RUNANYWHERE_CATALOG": str(world["catalog"]), "NO_COLOR": "1", "COLUMNS": "100",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONUNBUFFERED": "1"}
    return env, work


def _mismatch(where: str, shown: str, got: str) -> str:
    return f"{where}: the page shows\n{shown}but it printed\n{got}"


@pytest.mark.parametrize("page", _pages_with("python", runnable=True))
def test_python_examples_run(page: str, world: dict[str, Any], tmp_path: Path) -> None:
    _skip_unless_installed(page)
    todo = [b for b in ALL[page] if b.lang == "python" and _runnable(b)]
    env, work = _env(world, tmp_path)
    (tmp_path / "blocks.json").write_text(json.dumps(
        [{"where": b.where, "code": b.code} for b in todo]))
    done = subprocess.run([sys.executable, str(RUNNER), str(tmp_path / "blocks.json"),
                           str(tmp_path / "results.json")], cwd=work, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-6000:]
    printed = {r["where"]: r["stdout"] for r in json.loads((tmp_path / "results.json").read_text())}
    wrong = [_mismatch(b.where, b.output, printed[b.where]) for b in todo
             if b.output is not None
             and not CHECKER.check_output(b.output, printed[b.where], LOOSE)]
    assert not wrong, "\n".join(wrong)


def _run_console(b: Block, env: dict[str, str], work: Path) -> list[str]:
    wrong = []
    for c in console_commands(b.code):
        done = subprocess.run(["bash", "-c", c.line], cwd=work, env=env, capture_output=True,
                              text=True, timeout=600, stdin=subprocess.DEVNULL)
        got = done.stdout + done.stderr
        if not (CHECKER.check_output(c.output, done.stdout, LOOSE)
                or CHECKER.check_output(c.output, got, LOOSE)):
            wrong.append(_mismatch(f"{b.where} $ {c.line}", c.output, got))
        elif done.returncode != 0 and "error" not in c.output:
            wrong.append(f"{b.where} $ {c.line}: exit {done.returncode}\n{got}")
    return wrong


def _run_script(b: Block, env: dict[str, str], work: Path) -> list[str]:
    lines = [line for line in script_lines(b.code) if not is_install_line(line)]
    done = subprocess.run(["bash", "-c", "set -eu\n" + "\n".join(lines)], cwd=work, env=env,
                          capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    if done.returncode:
        return [f"{b.where}: exit {done.returncode}\n{done.stdout}{done.stderr}"]
    return []


@pytest.mark.parametrize("page", _pages_with("console", "shell", runnable=True))
def test_shell_examples_run(page: str, world: dict[str, Any], tmp_path: Path) -> None:
    _skip_unless_installed(page)
    env, work = _env(world, tmp_path)
    wrong: list[str] = []
    for b in ALL[page]:
        if not _runnable(b) or b.lang not in ("console", "shell"):
            continue
        wrong += _run_console(b, env, work) if b.lang == "console" else _run_script(b, env, work)
    assert not wrong, "\n\n".join(wrong)


@pytest.mark.parametrize("where", [b.where for bs in ALL.values() for b in bs if b.requires])
def test_blocks_for_a_package_of_another_branch_run_where_it_is_installed(where: str) -> None:
    """Says which examples were left out here because their package is missing (the run tests
    above run them where it is installed)."""
    block = next(b for bs in ALL.values() for b in bs if b.where == where)
    if not _installed(block.requires):
        pytest.skip(f"{where} needs {block.requires}, which is not installed here")
    assert block.lang in ("python", "console", "shell")
