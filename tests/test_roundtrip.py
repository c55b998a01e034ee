"""The spoken round trip through a real registry: system voice -> Silero VAD -> Whisper if cached.

The registry is offline; its cache gets the real Silero VAD (from the silero-vad wheel) and, in
one case, the tiny synthetic Whisper (tests/support/whisper_synth.py) by ``import``, so nothing is
downloaded. The synthetic Whisper's words are noise: the test checks the pipeline, not accuracy.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from runanywhere import ModelRegistry
from runanywhere.adapters.audio import read_audio
from runanywhere.adapters.roundtrip import (
    SENTENCE,
    run_spoken_round_trip,
    spoken_round_trip,
    word_error_rate,
)
from support.silero_wheel import silero_data_dir


def _file(path: Path, rel: str) -> dict[str, Any]:
    data = path.read_bytes()
    return {"path": rel, "url": f"http://127.0.0.1:9/{rel}", "size": len(data),
            "hash": "sha256:" + hashlib.sha256(data).hexdigest()}


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    """Offline registry with silero-vad and a (synthetic) whisper-tiny in its catalog."""
    pytest.importorskip("onnx")
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed (Debian package espeak-ng)")
    from support.whisper_synth import build_whisper

    tiny = build_whisper(tmp_path / "whisper", multilingual=False)
    vad = silero_data_dir() / "silero_vad.onnx"
    vad_file = _file(vad, "silero_vad.onnx")
    models = [
        {"id": "silero-vad", "name": "Silero VAD", "provider": "tests", "version": "6",
         "type": "vad", "format": "onnx", "size": vad_file["size"], "url": vad_file["url"],
         "hash": vad_file["hash"]},
        {"id": "whisper-tiny", "name": "synthetic whisper", "provider": "tests", "version": "1",
         "type": "stt", "format": "onnx",
         "files": [_file(p, p.name) for p in (tiny.encoder, tiny.decoder, tiny.tokens)]},
    ]
    models[1]["size"] = sum(f["size"] for f in models[1]["files"])
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps({"format_version": 1, "models": models}))
    reg = ModelRegistry(home=tmp_path / "home", catalogs=[catalog], offline=True)
    reg.whisper_folder = tiny.folder  # type: ignore[attr-defined]
    return reg


def test_voice_then_vad_and_no_whisper_says_why(registry: ModelRegistry, tmp_path: Path) -> None:
    registry.import_model("silero-vad", silero_data_dir() / "silero_vad.onnx")
    report = asyncio.run(spoken_round_trip(registry, tmp_path / "out"))
    assert [s.name for s in report.steps] == ["speak", "detect", "transcribe"]
    speak, detect, transcribe = report.steps
    assert speak.ok and report.engine == "espeak-ng" and report.spoken is not None
    assert report.audio_path == tmp_path / "out" / "round-trip.wav"
    audio, sr = read_audio(report.audio_path)
    assert sr == 16000 and abs(audio.size / sr - report.audio_seconds) < 1e-3
    assert detect.ok and report.ok and report.segments
    # The VAD found the speech where the voice spoke (its padding aside), and nothing in the
    # silence around it.
    said_from, said_to = report.spoken
    assert said_from - 0.2 <= report.segments[0].start <= said_from + 0.3
    assert said_to - 0.4 <= report.segments[-1].end <= said_to + 0.2
    assert not transcribe.ok and transcribe.line().split()[1] == "skip"
    assert "no Whisper model in the cache" in transcribe.detail
    assert report.transcript is None and len(report.lines()) == 3
    assert all("\n" not in line for line in report.lines())


def test_a_cached_whisper_transcribes_the_detected_speech(registry: ModelRegistry,
                                                          tmp_path: Path) -> None:
    registry.import_model("silero-vad", silero_data_dir() / "silero_vad.onnx")
    registry.import_model("whisper-tiny", registry.whisper_folder)  # type: ignore[attr-defined]
    report = run_spoken_round_trip(registry, tmp_path / "out", sentence="Hello world.")
    transcribe = report.step("transcribe")
    assert transcribe is not None and transcribe.ok, report.lines()
    assert report.whisper_model == "whisper-tiny"
    assert report.transcript and report.word_error_rate is not None
    assert report.word_error_rate == word_error_rate("Hello world.", report.transcript)
    assert "whisper-tiny" in transcribe.line()


def test_an_uncached_vad_offline_fails_in_one_line(registry: ModelRegistry,
                                                   tmp_path: Path) -> None:
    report = asyncio.run(spoken_round_trip(registry, tmp_path / "out"))
    detect = report.step("detect")
    assert detect is not None and not detect.ok and not report.ok
    assert detect.detail.startswith("silero-vad: ") and "\n" not in detect.detail
    assert "offline" in detect.detail.lower()
    assert detect.line().split()[1] == "FAIL"


def test_without_a_speech_engine_every_step_says_why(registry: ModelRegistry, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "no-programs"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # no espeak-ng, espeak or say on the PATH
    report = run_spoken_round_trip(registry, tmp_path / "out")
    assert [s.ok for s in report.steps] == [False, False, False]
    assert report.steps[0].detail.startswith("no system voice: ")
    assert "espeak-ng" in report.steps[0].detail
    assert report.steps[1].detail.startswith("skipped") and report.audio_path is None


def test_run_spoken_round_trip_inside_a_running_loop(registry: ModelRegistry,
                                                     tmp_path: Path) -> None:
    registry.import_model("silero-vad", silero_data_dir() / "silero_vad.onnx")

    async def notebook_cell() -> Any:
        return run_spoken_round_trip(registry, tmp_path / "out", sentence="One two three.")

    report = asyncio.run(notebook_cell())
    assert report.ok and report.sentence == "One two three."


def test_word_error_rate() -> None:
    assert word_error_rate("Hello, world!", "hello world") == 0.0
    assert word_error_rate("the cat sat", "the bat sat") == pytest.approx(1 / 3)
    assert word_error_rate("the cat sat", "the cat sat down") == pytest.approx(1 / 3)
    assert word_error_rate("the cat", "") == 1.0
    assert word_error_rate("", "") == 0.0
    assert word_error_rate(SENTENCE, SENTENCE.upper()) == 0.0
    assert word_error_rate("a b c d", "d c b a") == 1.0  # Levenshtein over words: 4 edits
