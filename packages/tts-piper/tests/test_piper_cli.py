"""``runanywhere speak`` with the Piper voice: the first run pulls it (the pull's progress on
stderr), later runs find it cached; ``--deterministic`` gives the same file every time, sample
for sample what the adapter makes; the voice's options and their errors; a terminal."""

from __future__ import annotations

import json
import os
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

# Fixtures (see piper_fixtures.py): imported, so pytest finds them in this module.
from piper_fixtures import (
    builtin_voice_entry,
    isolated_env,
    joe_dir,
    joe_onnx,
    registry,
    voice_catalog,
    voice_origin,
)

from runanywhere_tts_piper.adapter import PiperTTSAdapter
from support.terminal import Terminal, cli_argv

pytestmark = pytest.mark.timeout(180, method="thread")
VOICE_ID = PiperTTSAdapter.default_model_id
TEXT = "The quick brown fox jumps over the lazy dog. Then it sleeps."


def cli(*args: str, home: Path, catalog: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RUNANYWHERE_HOME": str(home)}
    return subprocess.run(cli_argv("--catalog", str(catalog), *args), capture_output=True,
                          text=True, env=env, timeout=170)


def pcm(path: Path) -> tuple[np.ndarray, int]:  # type: ignore[type-arg]
    with wave.open(str(path), "rb") as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2"), w.getframerate()


def test_first_run_pulls_then_speaks_the_same_every_time(tmp_path: Path, voice_catalog: Path,
                                                         joe_onnx: Path) -> None:
    home = tmp_path / "home"
    first, second = tmp_path / "a.wav", tmp_path / "b.wav"
    r = cli("speak", VOICE_ID, TEXT, "-o", str(first), "--deterministic", home=home,
            catalog=voice_catalog)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"{first}\n"
    assert f"{VOICE_ID}: downloading" in r.stderr or f"{VOICE_ID}: done" in r.stderr
    again = cli("speak", VOICE_ID, TEXT, "-o", str(second), "--deterministic", home=home,
                catalog=voice_catalog)
    assert again.returncode == 0 and "downloading" not in again.stderr
    assert first.read_bytes() == second.read_bytes()
    samples, rate = pcm(first)
    expected, sr = PiperTTSAdapter.from_files(joe_onnx, deterministic=True).synthesize(TEXT)
    assert rate == sr == 22050
    # piper-tts's int16 rounding: scale by 32767, clip, truncate
    assert np.array_equal(samples, np.clip(expected * 32767, -32767, 32767).astype("<i2"))
    noisy = cli("speak", VOICE_ID, TEXT, "-o", str(second), home=home, catalog=voice_catalog)
    assert noisy.returncode == 0 and first.read_bytes() != second.read_bytes()


def test_voice_options_and_their_errors(tmp_path: Path, voice_catalog: Path) -> None:
    home = tmp_path / "home"
    base, slow = tmp_path / "base.wav", tmp_path / "slow.wav"
    for out, extra in ((base, ()), (slow, ("--length-scale", "1.5"))):
        r = cli("speak", VOICE_ID, "Timing test sentence.", "-o", str(out), "--deterministic",
                *extra, home=home, catalog=voice_catalog)
        assert r.returncode == 0, r.stderr
    assert 1.3 < pcm(slow)[0].size / pcm(base)[0].size < 1.7
    for extra, words in ((("--speaker", "bob"), "one speaker"),
                         (("--length-scale", "0"), "length_scale"),
                         (("--deterministic", "--noise-scale", "0.5"), "deterministic")):
        out = tmp_path / "never.wav"
        r = cli("speak", VOICE_ID, "Hi.", "-o", str(out), *extra, home=home,
                catalog=voice_catalog)
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and words in r.stderr, r.stderr
        j = cli("speak", VOICE_ID, "Hi.", "-o", str(out), "--json", *extra, home=home,
                catalog=voice_catalog)
        assert j.returncode == 2 and json.loads(j.stdout)["error"]["exit_code"] == 2
        assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".part") == []


def test_at_a_terminal_the_pull_draws_its_bar(tmp_path: Path, voice_catalog: Path) -> None:
    out = tmp_path / "tty.wav"
    env = {**os.environ, "RUNANYWHERE_HOME": str(tmp_path / "home")}
    term = Terminal(cli_argv("--catalog", str(voice_catalog), "speak", VOICE_ID, TEXT, "-o",
                             str(out)), env)
    assert term.wait() == 0, term.output
    assert VOICE_ID in term.output and "MiB" in term.output  # the pull's progress bar
    assert str(out) in term.output and "Traceback" not in term.output
    assert pcm(out)[0].size > 22050
