"""``runanywhere transcribe`` from the user's side: pipes and a real terminal, real Whisper
tiny.en weights pulled from nginx through the built-in catalog entry, espeak-ng speech."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from harness.nginx import Nginx
from support import ct2_models
from support.speech import SAMPLE_RATE, espeak_available, speak, wav_bytes
from support.terminal import Terminal, cli_argv
from support.whisper_text import word_errors

MODEL = ct2_models.TINY_EN
SAID = "Please send the report to Maria before Friday."

pytestmark = pytest.mark.skipif(not espeak_available(), reason="needs espeak-ng (Debian)")


@pytest.fixture(scope="module")
def served(nginx: Nginx, origin_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A catalog of tiny.en and silero-vad as built in, their URLs on the session nginx."""
    for model_id in (MODEL, ct2_models.VAD):
        ct2_models.stage(origin_root, model_id)
    path = tmp_path_factory.mktemp("transcribe") / "catalog.json"
    return ct2_models.write_catalog(path, nginx.url, [MODEL, ct2_models.VAD])


@pytest.fixture(scope="module")
def slow_catalog(nginx: Nginx, served: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same files through nginx's 2 MiB/s-per-connection route (a pull of seconds)."""
    path = tmp_path_factory.mktemp("transcribe-slow") / "catalog.json"
    return ct2_models.write_catalog(path, f"{nginx.url}/slow", [MODEL])


@pytest.fixture(scope="module")
def pulled(served: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with tiny.en pulled (by the CLI itself)."""
    home = tmp_path_factory.mktemp("transcribe-home")
    done = subprocess.run(cli_argv("--home", str(home), "--catalog", str(served), "pull", MODEL),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return home


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("speech") / "said.wav"
    path.write_bytes(wav_bytes(speak(SAID)))
    return path


def transcribe(home: Path, catalog: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli_argv("--home", str(home), "--catalog", str(catalog), "transcribe",
                                   *args), capture_output=True, text=True, timeout=600,
                          env={**os.environ, "NO_COLOR": "1"})


def heard(text: str, reference: str = SAID, most: int = 1) -> bool:
    return word_errors(reference, text)[0] <= most


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("runanywhere: error:")]


# -- pipes -----------------------------------------------------------------------------------------

def test_pulls_the_model_then_prints_the_text(nginx: Nginx, served: Path, speech_wav: Path,
                                              tmp_path: Path) -> None:
    home = tmp_path / "home"
    since = nginx.log_size()
    first = transcribe(home, served, MODEL, str(speech_wav))
    assert first.returncode == 0, first.stderr
    assert heard(first.stdout), first.stdout
    assert first.stdout.endswith("\n") and first.stdout.count("\n") == 1
    # progress and messages on stderr: the pull (plain lines, not a terminal), then the work
    assert f"{MODEL}: " in first.stderr and "transcribing" in first.stderr
    fetched = {r.path for r in nginx.records(since)}
    assert f"/{MODEL}/model.bin" in fetched and f"/{ct2_models.VAD}/silero_vad.onnx" not in fetched

    since = nginx.log_size()
    again = transcribe(home, served, MODEL, str(speech_wav))
    assert again.returncode == 0 and again.stdout == first.stdout
    assert nginx.records(since) == []  # cached: nothing pulled


def test_json_is_one_document_with_text_language_duration_segments(
        pulled: Path, served: Path, speech_wav: Path) -> None:
    done = transcribe(pulled, served, MODEL, str(speech_wav), "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert list(doc) == ["text", "language", "duration", "segments"]
    assert heard(doc["text"]) and doc["language"] == "en"
    duration = sf.info(str(speech_wav)).duration
    assert doc["duration"] == pytest.approx(duration, abs=1e-3)
    assert doc["segments"] and all(set(s) == {"start", "end", "text"} for s in doc["segments"])
    assert all(0 <= s["start"] <= s["end"] <= doc["duration"] for s in doc["segments"])
    assert "".join(s["text"] for s in doc["segments"]).strip() == doc["text"]
    assert done.stderr == ""  # --json: no messages


def test_any_format_and_rate_soundfile_reads(pulled: Path, served: Path, tmp_path: Path) -> None:
    """FLAC at 44.1 kHz and a WAV at 8 kHz (resampled to 16 kHz) give the words. The sentence
    is one that survives telephone bandwidth: band-limited to 4 kHz, espeak-ng's consonants
    blur (tiny.en hears SAID as "Please, and report, Maria before Friday.")."""
    import soxr

    sentence = "The garden behind the house is full of apple trees."
    audio = speak(sentence)
    flac = tmp_path / "said.flac"
    sf.write(flac, soxr.resample(audio, SAMPLE_RATE, 44100), 44100, format="FLAC")
    low = tmp_path / "said-8k.wav"
    low.write_bytes(wav_bytes(soxr.resample(audio, SAMPLE_RATE, 8000).astype(np.float32), 8000))
    for path in (flac, low):
        done = transcribe(pulled, served, MODEL, str(path))
        assert done.returncode == 0, done.stderr
        assert heard(done.stdout, sentence), (path.name, done.stdout)


def test_vad_pulls_silero_and_keeps_times_in_the_file(pulled: Path, served: Path,
                                                     tmp_path: Path) -> None:
    path = tmp_path / "late.wav"
    path.write_bytes(wav_bytes(np.concatenate([np.zeros(6 * SAMPLE_RATE, np.float32),
                                               speak(SAID)])))
    done = transcribe(pulled, served, MODEL, str(path), "--vad", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert heard(doc["text"]) and doc["segments"][0]["start"] >= 6.0 - 0.5


# -- failures: one line, a JSON error document, no download ------------------------------------

def test_a_model_of_another_type_is_refused_before_any_download(
        nginx: Nginx, served: Path, speech_wav: Path, tmp_path: Path) -> None:
    since = nginx.log_size()
    done = transcribe(tmp_path / "home", served, ct2_models.VAD, str(speech_wav))
    assert done.returncode == 2 and done.stdout == ""
    lines = error_lines(done.stderr)
    assert len(lines) == 1 and "silero-vad is a vad model" in lines[0] and MODEL in lines[0]
    as_json = transcribe(tmp_path / "home", served, ct2_models.VAD, str(speech_wav), "--json")
    doc = json.loads(as_json.stdout)
    assert as_json.returncode == 2 and doc["error"]["exit_code"] == 2
    assert "vad model" in doc["error"]["message"]
    assert nginx.records(since) == []


@pytest.mark.parametrize("kind", ["empty", "not audio", "header only", "missing"])
def test_a_bad_file_is_one_clear_line_and_no_download(
        nginx: Nginx, served: Path, tmp_path: Path, kind: str) -> None:
    path = tmp_path / "input.wav"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "not audio":
        path.write_text("this is a text file, not a recording\n" * 20)
    elif kind == "header only":
        path.write_bytes(wav_bytes(speak("One two three."))[:30])
    since = nginx.log_size()
    for extra in ((), ("--json",)):
        done = transcribe(tmp_path / "home", served, MODEL, str(path), *extra)
        assert done.returncode == 1, done.stderr
        lines = error_lines(done.stderr)
        assert len(lines) == 1 and "input.wav" in lines[0], done.stderr
        assert "Traceback" not in done.stderr
        if extra:
            assert json.loads(done.stdout)["error"]["type"] == "AudioError"
        else:
            assert done.stdout == ""
    assert nginx.records(since) == []


def test_a_truncated_file_gives_the_words_it_still_holds(pulled: Path, served: Path,
                                                         tmp_path: Path) -> None:
    """The WAV header promises more samples than the file has (a copy cut short): the samples
    that are there are transcribed, nothing crashes."""
    full = wav_bytes(speak(SAID))
    path = tmp_path / "cut.wav"
    path.write_bytes(full[: len(full) * 6 // 10])
    done = transcribe(pulled, served, MODEL, str(path))
    assert done.returncode == 0, done.stderr
    words = done.stdout.split()
    assert 2 <= len(words) < len(SAID.split())
    assert [w.lower() for w in words[:2]] == ["please", "send"]


def test_bad_options_fail_with_one_line(pulled: Path, served: Path, speech_wav: Path) -> None:
    french = transcribe(pulled, served, MODEL, str(speech_wav), "--language", "fr", "--json")
    assert french.returncode == 1
    assert "English-only" in json.loads(french.stdout)["error"]["message"]
    assert len(error_lines(french.stderr)) == 1
    beam = transcribe(pulled, served, MODEL, str(speech_wav), "--beam-size", "0")
    assert beam.returncode == 2 and "--beam-size" in error_lines(beam.stderr)[0]
    unknown = transcribe(pulled, served, "whisper-huge-ct2", str(speech_wav))
    assert unknown.returncode == 1 and "whisper-huge-ct2" in error_lines(unknown.stderr)[0]


# -- a real terminal -------------------------------------------------------------------------------

def test_at_a_terminal_the_text_shows_and_messages_go_to_stderr(
        pulled: Path, served: Path, speech_wav: Path, tmp_path: Path) -> None:
    """stdout redirected to a file (``> out.txt``) gets only the text; the terminal shows the
    messages."""
    out = tmp_path / "out.txt"
    term = Terminal(cli_argv("--home", str(pulled), "--catalog", str(served), "transcribe",
                             MODEL, str(speech_wav)), dict(os.environ), stdout_to=out)
    assert term.wait(600) == 0, term.output
    assert heard(out.read_text()) and out.read_text().count("\n") == 1
    assert "transcribing" in term.output and "real time" in term.output
    both = Terminal(cli_argv("--home", str(pulled), "--catalog", str(served), "transcribe",
                             MODEL, str(speech_wav)), dict(os.environ))
    assert both.wait(600) == 0
    assert heard(next(line for line in both.output.splitlines() if "Maria" in line))


def test_ctrl_c_during_the_pull_exits_130_then_the_same_command_finishes(
        slow_catalog: Path, speech_wav: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    term = Terminal(cli_argv("--home", str(home), "--catalog", str(slow_catalog), "transcribe",
                             MODEL, str(speech_wav)), dict(os.environ))
    term.wait_for_output(lambda text: "MiB/s" in text, timeout=120)  # bytes are flowing
    term.ctrl_c()
    assert term.wait(120) == 130, term.output
    assert "interrupted" in term.output
    # run again, the same command pulls what is missing and transcribes
    done = transcribe(home, slow_catalog, MODEL, str(speech_wav), "--json")
    assert done.returncode == 0, done.stderr
    assert heard(json.loads(done.stdout)["text"])


def test_help_lists_the_command() -> None:
    done = subprocess.run([sys.executable, "-m", "runanywhere", "transcribe", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    for option in ("--language", "--beam-size", "--vad", "--json"):
        assert option in done.stdout
