"""``runanywhere speak`` from the user's side, with the machine's own voice (``system-tts``,
espeak-ng): in a pipe and at a terminal, text from standard input, ``--json`` on success and on
failure, one line per error, the output file appearing whole or not at all, Ctrl-C.

The Piper voice through the same command (pull with progress, speakers, determinism) is tested
in packages/tts-piper/tests/test_piper_cli.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import wave
from pathlib import Path

import pytest

from support.terminal import Terminal, cli_argv

pytestmark = pytest.mark.timeout(120, method="thread")
TEXT = "Good morning. The system voice needs no download! Does it work?"
LONG = " ".join(f"This is sentence number {i} of a long text." for i in range(400))


def cli(*args: str, home: Path, stdin: str | None = None
        ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RUNANYWHERE_HOME": str(home)}
    return subprocess.run(cli_argv(*args), input=stdin, capture_output=True, text=True,
                          env=env, timeout=120)


def wav_seconds(path: Path) -> tuple[float, int]:
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
        return w.getnframes() / w.getframerate(), w.getframerate()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def wait_for(predicate: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "the awaited state never came"
        time.sleep(0.01)


def test_in_a_pipe_stdout_has_only_the_path(tmp_path: Path, home: Path) -> None:
    out = tmp_path / "hello.wav"
    r = cli("speak", "system-tts", TEXT, "-o", str(out), home=home)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"{out}\n"
    seconds, rate = wav_seconds(out)
    assert rate == 22050 and seconds > 2
    assert r.stderr.startswith("system-tts: ") and "s of speech at 22050 Hz" in r.stderr
    assert leftovers(tmp_path) == []
    quiet = cli("speak", "system-tts", TEXT, "-o", str(out), "--quiet", home=home)
    assert quiet.returncode == 0 and quiet.stdout == f"{out}\n" and quiet.stderr == ""


def test_text_from_standard_input(tmp_path: Path, home: Path) -> None:
    out = tmp_path / "stdin.wav"
    r = cli("speak", "system-tts", "-", "-o", str(out), home=home, stdin=TEXT + "\n")
    assert r.returncode == 0, r.stderr
    from_arg = tmp_path / "arg.wav"
    cli("speak", "system-tts", TEXT, "-o", str(from_arg), home=home)
    assert abs(wav_seconds(out)[0] - wav_seconds(from_arg)[0]) < 0.05


def test_json_on_success(tmp_path: Path, home: Path) -> None:
    out = tmp_path / "j.wav"
    r = cli("speak", "system-tts", TEXT, "-o", str(out), "--json", home=home)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert set(doc) == {"path", "sample_rate", "duration"}
    seconds, rate = wav_seconds(out)
    assert doc["path"] == str(out) and doc["sample_rate"] == rate
    assert doc["duration"] == pytest.approx(seconds, abs=0.001)
    assert r.stderr == ""


@pytest.mark.parametrize(("args", "stdin", "code", "words"), [
    (("whisper-tiny", "Hello"), None, 2, "speak needs a tts model"),
    (("no-such-voice", "Hello"), None, 1, "no-such-voice"),
    (("system-tts", "   "), None, 2, "nothing to say"),
    (("system-tts", "-"), "", 2, "standard input is empty"),
    (("system-tts", "Hello", "--length-scale", "1.2"), None, 2, "--length-scale"),
    (("system-tts", "Hello", "--speaker", "xx-no-such-voice"), None, 1, "voice"),
])
def test_failures_are_one_line_and_one_json_document(
        tmp_path: Path, home: Path, args: tuple[str, ...], stdin: str | None, code: int,
        words: str) -> None:
    out = tmp_path / "never.wav"
    r = cli("speak", *args, "-o", str(out), home=home, stdin=stdin)
    assert r.returncode == code, r.stderr
    assert r.stdout == "" and r.stderr.count("\n") == 1
    assert r.stderr.startswith("runanywhere: error: ") and words in r.stderr
    j = cli("speak", *args, "-o", str(out), "--json", home=home, stdin=stdin)
    assert j.returncode == code
    doc = json.loads(j.stdout)
    assert doc["error"]["exit_code"] == code and words in doc["error"]["message"]
    assert not out.exists() and leftovers(tmp_path) == []


def test_bad_output_paths(tmp_path: Path, home: Path) -> None:
    missing = cli("speak", "system-tts", "Hi", "-o", str(tmp_path / "no" / "x.wav"), home=home)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    suffix = cli("speak", "system-tts", "Hi", "-o", str(tmp_path / "x.mp4"), home=home)
    assert suffix.returncode == 2 and ".wav" in suffix.stderr
    assert list(tmp_path.iterdir()) == []


def test_at_a_terminal(tmp_path: Path, home: Path) -> None:
    out = tmp_path / "tty.wav"
    env = {**os.environ, "RUNANYWHERE_HOME": str(home)}
    term = Terminal(cli_argv("speak", "system-tts", TEXT, "-o", str(out)), env)
    assert term.wait() == 0, term.output
    assert str(out) in term.output and "real-time factor" in term.output
    assert "Traceback" not in term.output and wav_seconds(out)[0] > 2


def test_ctrl_c_at_a_terminal_leaves_no_file(tmp_path: Path, home: Path) -> None:
    out = tmp_path / "long.wav"
    env = {**os.environ, "RUNANYWHERE_HOME": str(home)}
    term = Terminal(cli_argv("speak", "system-tts", LONG, "-o", str(out)), env)
    wait_for(lambda: leftovers(tmp_path))  # the first sentences are being written
    term.ctrl_c()
    assert term.wait() == 130, term.output
    assert "interrupted" in term.output and "Traceback" not in term.output
    assert not out.exists() and leftovers(tmp_path) == []


def test_sigint_in_a_pipe_leaves_no_file_and_json_says_so(tmp_path: Path, home: Path) -> None:
    out = tmp_path / "long.wav"
    env = {**os.environ, "RUNANYWHERE_HOME": str(home)}
    proc = subprocess.Popen(cli_argv("speak", "system-tts", LONG, "-o", str(out), "--json"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    wait_for(lambda: leftovers(tmp_path))
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert json.loads(stdout)["error"]["exit_code"] == 130
    assert not out.exists() and leftovers(tmp_path) == []
