"""``runanywhere run`` and ``info`` from the user's side, with the chain model: pipes (stdout
carries only the answer), stdin, ``--json``, a chat in a real pseudo-terminal."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from llm_support import *  # noqa: F403 (its fixtures: there is no conftest.py here)
from llm_support import foreground, llm_entry, registry_with, write_catalog
from tiny_gguf import EURO_TEXT

from support.terminal import Terminal, cli_argv


@pytest.fixture(scope="module")
def world(chain_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Global options for a home holding the chain model as ``chain``."""
    tmp = tmp_path_factory.mktemp("cli")
    registry_with(tmp / "home", {"chain": chain_gguf})
    vad = {"id": "a-vad", "name": "v", "type": "vad", "format": "onnx", "provider": "t",
           "version": "1", "size": 10, "url": "http://127.0.0.1:9/v.onnx"}
    catalog = write_catalog(tmp / "catalog.json", [llm_entry("chain", chain_gguf), vad])
    return ["--home", str(tmp / "home"), "--catalog", str(catalog)]


def run(world: list[str], *args: str, stdin: str | None = None
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli_argv(*world, "run", *args), input=stdin, capture_output=True,
                          text=True, timeout=120)


def test_the_answer_alone_on_stdout(world: list[str]) -> None:
    r = run(world, "chain", "hello", "--max-tokens", "16", "--temperature", "0")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""  # no llama.cpp logs, no progress for a cached model
    text = r.stdout.removesuffix("\n")
    assert r.stdout.endswith("\n") and "€" in text and text in EURO_TEXT * 4
    again = run(world, "chain", "hello", "--max-tokens", "16", "--temperature", "0")
    assert again.stdout == r.stdout  # temperature 0: the same answer


def test_the_prompt_from_stdin_when_piped(world: list[str]) -> None:
    piped = run(world, "chain", "--max-tokens", "16", "--temperature", "0", stdin="hello\n")
    given = run(world, "chain", "hello\n", "--max-tokens", "16", "--temperature", "0")
    assert piped.returncode == 0 and piped.stdout == given.stdout != ""


def test_an_empty_stdin_is_a_usage_error(world: list[str]) -> None:
    r = run(world, "chain", stdin="  \n")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == "runanywhere: error: no prompt: give one as an argument or on stdin\n"


def test_json_is_one_document_with_usage_and_timings(world: list[str]) -> None:
    r = run(world, "chain", "hello", "--max-tokens", "8", "--seed", "3", "--system", "be terse",
            "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert set(doc) == {"model", "text", "finish_reason", "usage", "timings"}
    assert doc["model"] == "chain" and doc["finish_reason"] == "length"
    assert doc["text"] in EURO_TEXT * 3 and doc["text"]
    assert doc["usage"]["completion_tokens"] == 8 and doc["usage"]["prompt_tokens"] > 8
    assert set(doc["timings"]) == {"load_s", "first_token_s", "tokens_per_s"}
    assert all(v > 0 for v in doc["timings"].values())


@pytest.mark.parametrize(("args", "says"), [
    (("a-vad", "hi"), "a-vad is a vad model; run needs an llm model"),
    (("chain", "hi", "--max-tokens", "0"), "max_tokens must be a positive integer"),
    (("chain", "hi", "--temperature", "-2"), "temperature must be a number from 0 to 100"),
    (("chian", "hi"), "unknown model 'chian' (did you mean: chain?)"),
])
def test_bad_requests_are_one_line(world: list[str], args: tuple[str, ...], says: str) -> None:
    r = run(world, *args)
    assert r.returncode != 0 and r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"runanywhere: error: {says}")


def test_a_prompt_longer_than_the_context_is_one_line(world: list[str]) -> None:
    r = run(world, "chain", stdin="the cat sat on the mat. " * 400)
    assert r.returncode == 1 and r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert re.fullmatch(r"runanywhere: error: the prompt is \d+ tokens, more than the"
                        r" 4096-token context chain was opened with", lines[0])


def test_bad_requests_with_json_are_one_error_document(world: list[str]) -> None:
    r = run(world, "chain", "hi", "--max-tokens", "0", "--json")
    assert r.returncode == 2
    assert json.loads(r.stdout)["error"]["type"] == "InvalidOptionError"


def test_verbose_says_what_each_answer_cost(world: list[str]) -> None:
    r = run(world, "chain", "hello", "--max-tokens", "5", "-v")
    assert r.returncode == 0
    assert "runanywhere: info: chain: " in r.stderr and "5 generated (length)" in r.stderr


def test_info_shows_the_gguf_header(world: list[str]) -> None:
    r = subprocess.run(cli_argv(*world, "info", "chain"), capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0
    for key, value in (("architecture", "llama"), ("quantization", "F32"),
                       ("context length", "4096 tokens"), ("chat template", "yes"),
                       ("parameters", r"467\.6K \(467,568\)")):
        assert re.search(rf"^{key} +{value}$", r.stdout, re.M), (key, r.stdout)
    doc = json.loads(subprocess.run(cli_argv(*world, "info", "chain", "--json"),
                                    capture_output=True, text=True, timeout=60).stdout)
    assert doc["details"]["architecture"] == "llama"


def _env() -> dict[str, str]:
    return {**os.environ, "TERM": "xterm", "PYTHONUNBUFFERED": "1"}


def test_a_chat_at_a_terminal_until_bye(world: list[str]) -> None:
    t = Terminal(cli_argv(*world, "run", "chain", "--max-tokens", "8", "--temperature", "0",
                          "-v"), _env())
    t.wait_for_output(lambda o: o.count(">>> ") == 1)
    os.write(t.fd, b"hello\r")
    t.wait_for_output(lambda o: o.count(">>> ") == 2)
    os.write(t.fd, b"and again\r")
    t.wait_for_output(lambda o: o.count(">>> ") == 3)
    os.write(t.fd, b"/bye\r")
    assert t.wait() == 0
    out = t.output
    assert "/bye or Ctrl-D to leave" in out and out.count("€ the") >= 2
    # the second turn's prompt holds the first turn too: the history is kept
    counts = [int(n) for n in re.findall(r"(\d+) prompt tokens", out)]
    assert len(counts) == 2 and counts[1] > counts[0] + 8


def test_ctrl_d_leaves_the_chat_and_json_needs_a_prompt(world: list[str]) -> None:
    t = Terminal(cli_argv(*world, "run", "chain"), _env())
    t.wait_for_output(lambda o: ">>> " in o)
    os.write(t.fd, b"\x04")
    assert t.wait() == 0
    t = Terminal(cli_argv(*world, "run", "chain", "--json"), _env())
    assert t.wait() == 2
    assert "--json needs a prompt" in t.output


def test_stdout_to_a_file_at_a_terminal_gets_only_the_answer(world: list[str],
                                                             tmp_path: Path) -> None:
    out = tmp_path / "answer.txt"
    t = Terminal(cli_argv(*world, "run", "chain", "hello", "--max-tokens", "8"), _env(),
                 stdout_to=out)
    assert t.wait() == 0
    assert out.read_text().rstrip("\n") in EURO_TEXT * 3 and out.read_text().strip()
    assert "€" not in t.output  # nothing of the answer went to the terminal's stderr


def test_the_api_import_stays_light() -> None:
    code = ("import sys, runanywhere, runanywhere.adapters; "
            "print(sorted(m for m in ('xllamacpp', 'gguf', 'numpy', 'asyncio') "
            "if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "[]"


def _writing(pid: int) -> bool:
    """Whether a thread of ``pid`` is blocked in write(2) (syscall 1 on x86-64, 64 on arm64)."""
    write = {"x86_64": "1", "aarch64": "64"}[os.uname().machine]
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            if (task / "syscall").read_text().split()[0] == write:
                return True
    return False


def test_ctrl_c_while_the_chat_is_busy_at_its_prompt_still_leaves(world: list[str]) -> None:
    """The race of a Ctrl-C that comes while readline is showing the prompt (or echoing a key),
    before it waits for input, made to happen every time: output stopped with Ctrl-S, a key
    typed (its echo then blocks the thread reading the line), then Ctrl-C. A SIGINT that lands
    outside readline's select() was seen by nobody until the next key: the chat hung."""
    t = Terminal(foreground(cli_argv(*world, "run", "chain")), _env())
    t.wait_for_output(lambda o: ">>> " in o)
    os.write(t.fd, b"\x13")  # Ctrl-S: the terminal's output stops
    os.write(t.fd, b"x")  # readline echoes it: that write blocks
    deadline = time.monotonic() + 30
    while not _writing(t.pid):
        assert time.monotonic() < deadline, "the chat never blocked writing the echo"
        time.sleep(0.01)
    t.ctrl_c()  # SIGINT to the process, and the output restarts
    t.wait_for_output(lambda o: "runanywhere: interrupted" in o)
    lflag = termios.tcgetattr(t.fd)[3]  # the terminal as readline found it: echo, lines
    assert lflag & termios.ECHO and lflag & termios.ICANON
    assert t.wait(timeout=30) == 130
