"""The spoken round trip through a real registry: a voice -> Silero VAD -> Whisper if cached.

The first part runs without the real voice and recognizer: the registry is offline; its cache
gets the real Silero VAD (from the silero-vad wheel) and, in one case, the tiny synthetic Whisper
(tests/support/whisper_synth.py) by ``import``; the system voice (espeak-ng) speaks. The
synthetic Whisper's words are noise: those tests check the pipeline, not accuracy.

The second part is the round trip on real voices, through OUR adapters end to end: the Piper
voice joe and Whisper tiny.en (CTranslate2) from their PyPI wheels, served by nginx on 127.0.0.1
and pulled through their built-in catalog entries (exact sizes and sha256). Word error rates are
measured with OpenAI's English normalizer (``support.whisper_text``). The check that a 30-second
file with sentences at known times gives segments at those times through our VAD then STT is
``test_vad_then_stt_puts_segments_where_the_speech_was`` in
``packages/stt-whisper/tests/test_faster_whisper_quality.py`` (not repeated here).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.nginx import Nginx
from runanywhere import ModelRegistry
from runanywhere.adapters import get_adapter
from runanywhere.adapters.audio import read_audio
from runanywhere.adapters.roundtrip import SENTENCE, run_spoken_round_trip, spoken_round_trip
from runanywhere.adapters.wer import word_error_rate
from runanywhere.adapters.wer import word_errors as demo_word_errors
from support import ct2_models, whisper_text
from support.silero_wheel import silero_data_dir
from support.speech import SENTENCES, espeak_available


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
    assert report.voice_model is None  # no real voice cached: the system voice spoke
    assert not transcribe.ok and transcribe.line().split()[1] == "skip"
    assert "no Whisper model in the cache" in transcribe.detail
    assert "runanywhere pull faster-whisper-tiny.en" in transcribe.detail
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


# -- the round trip on real voices -----------------------------------------------------------------

REAL = [ct2_models.PIPER, ct2_models.TINY_EN, ct2_models.VAD]
#: The bar of issue 23: Piper's speech into Whisper tiny.en, after Whisper's English normalization.
MAX_WER = 0.05


@pytest.fixture(scope="module")
def real_catalog(nginx: Nginx, origin_root: Path, tmp_path_factory: pytest.TempPathFactory
                 ) -> Path:
    """The built-in entries of the voice, tiny.en and silero-vad with their URLs on the session
    nginx, and a synthetic ONNX whisper-tiny (smaller than tiny.en: the round trip must still
    prefer the real recognizer)."""
    pytest.importorskip("onnx")
    if not espeak_available():  # Piper's phonemes come from espeak-ng
        pytest.fail("espeak-ng is not installed (Debian package espeak-ng)")
    from support.whisper_synth import build_whisper

    for model_id in REAL:
        ct2_models.stage(origin_root, model_id)
    tiny = build_whisper(tmp_path_factory.mktemp("synthetic-whisper"), multilingual=False)
    files = [_file(p, p.name) for p in (tiny.encoder, tiny.decoder, tiny.tokens)]
    synthetic = {"id": "whisper-tiny", "name": "synthetic whisper", "provider": "tests",
                 "version": "1", "type": "stt", "format": "onnx", "files": files,
                 "size": sum(f["size"] for f in files)}
    path = tmp_path_factory.mktemp("real-voices") / "catalog.json"
    path.write_text(json.dumps({"format_version": 1, "models": [
        *ct2_models.catalog_entries(nginx.url, REAL), synthetic]}))
    (path.parent / "whisper-tiny").symlink_to(tiny.folder)
    return path


@pytest.fixture(scope="module")
def real_home(real_catalog: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home holding the three real models, pulled from nginx, and the synthetic Whisper."""
    home = tmp_path_factory.mktemp("real-home")
    registry = ModelRegistry(home=home, catalogs=[real_catalog], include_builtin=False)

    async def pull_all() -> None:
        for model_id in REAL:
            (await registry.download_model(model_id)).unwrap()

    asyncio.run(pull_all())
    registry.import_model("whisper-tiny", real_catalog.parent / "whisper-tiny")
    return home


@pytest.fixture
def real_registry(real_home: Path, real_catalog: Path) -> ModelRegistry:
    """Offline: the round trip uses what is cached and downloads nothing."""
    return ModelRegistry(home=real_home, catalogs=[real_catalog], include_builtin=False,
                         offline=True)


def test_a_cached_piper_voice_speaks_and_faster_whisper_writes_it_down(
        real_registry: ModelRegistry, tmp_path: Path) -> None:
    report = asyncio.run(spoken_round_trip(real_registry, tmp_path / "out"))
    assert all(s.ok for s in report.steps), report.lines()
    assert report.engine == "piper" and report.voice_model == ct2_models.PIPER
    assert report.whisper_model == ct2_models.TINY_EN  # not the smaller synthetic one
    assert report.step("speak").detail.startswith(f"{ct2_models.PIPER} said 12 words")
    # What was saved is what the VAD and the recognizer heard: 16 kHz, the report's length.
    assert report.audio_path is not None and report.spoken is not None
    audio, sr = read_audio(report.audio_path)
    assert sr == 16000 and abs(audio.size / sr - report.audio_seconds) < 1e-3
    said_from, said_to = report.spoken
    assert said_from - 0.2 <= report.segments[0].start <= said_from + 0.3
    assert said_to - 0.4 <= report.segments[-1].end <= said_to + 0.2
    # The word error rate the demo prints, by its small normalizer, is the yardstick's count.
    assert report.transcript and report.word_errors is not None
    assert report.word_errors == whisper_text.word_errors(SENTENCE, report.transcript)
    errors, words = report.word_errors
    assert words == 12 and report.word_error_rate == errors / words <= MAX_WER, report.transcript
    assert f"word error rate {report.word_error_rate:.0%}: {errors} of 12 words" in \
        report.step("transcribe").line()


def test_a_voice_that_cannot_load_leaves_the_system_voice_to_speak(real_catalog: Path,
                                                                   tmp_path: Path) -> None:
    """Offline, with the voice named but not cached: the system voice speaks, saying why."""
    registry = ModelRegistry(home=tmp_path / "home", catalogs=[real_catalog],
                             include_builtin=False, offline=True)
    registry.import_model("silero-vad", silero_data_dir() / "silero_vad.onnx")
    report = run_spoken_round_trip(registry, tmp_path / "out", voice_model=ct2_models.PIPER)
    speak = report.step("speak")
    assert speak is not None and speak.ok and report.ok
    assert report.engine == "espeak-ng" and report.voice_model is None
    assert f"({ct2_models.PIPER}: " in speak.detail and "offline" in speak.detail.lower()
    assert "\n" not in speak.detail
    assert report.step("transcribe").line().split()[1] == "skip"  # type: ignore[union-attr]


def test_piper_into_whisper_tiny_en_on_the_sentence_set(real_registry: ModelRegistry) -> None:
    """Numbers, names and a 20-word sentence, each spoken by the joe voice (deterministic) and
    transcribed by tiny.en, both through our adapters and the registry: word error rate at most
    5% after OpenAI's English normalization."""
    assert any(len(s.rstrip(".").split()) == 20 for s in SENTENCES)
    tts = get_adapter("piper")(real_registry, deterministic=True)
    stt = get_adapter("faster-whisper")(real_registry, language="en")
    assert asyncio.run(tts.load_model(ct2_models.PIPER)).success
    assert asyncio.run(stt.load_model(ct2_models.TINY_EN)).success
    pairs = []
    for sentence in SENTENCES:
        speech, sr = tts.synthesize(sentence)
        assert sr == 22050 and speech.size > sr
        pad = np.zeros(sr // 2, dtype=np.float32)  # Whisper mishears a word at sample 0
        pairs.append((sentence, stt.transcribe_full(np.concatenate([pad, speech, pad]), sr).text))
    wer = whisper_text.word_error_rate(pairs)
    heard = "\n".join(f"{whisper_text.word_errors(r, h)[0]} errors: {h!r}" for r, h in pairs)
    assert wer <= MAX_WER, f"word error rate {wer:.1%}\n{heard}"
    # The demo's small normalizer on the same real transcripts: the same count where the text
    # has no numbers, and never fewer errors than the yardstick (its figure never flatters).
    for ref, hyp in pairs:
        ours, theirs = demo_word_errors(ref, hyp), whisper_text.word_errors(ref, hyp)
        assert ours[0] >= theirs[0], (ref, hyp)
        if not any(c.isdigit() for c in ref):
            assert ours == theirs, (ref, hyp)


def test_speak_then_transcribe_in_a_shell_pipeline(real_catalog: Path, nginx: Nginx,
                                                   tmp_path: Path) -> None:
    """``printf TEXT | runanywhere speak VOICE - -o x.wav | (read path; runanywhere transcribe
    WHISPER "$path" --json)``: each command pulls its model into a fresh home (progress on
    stderr), speak prints only the path, transcribe one JSON document."""
    said = SENTENCES[0]
    wav = tmp_path / "said.wav"
    cli = f"{sys.executable} -m runanywhere"
    script = (f'set -o pipefail; printf "%s" "$SAID" | {cli} speak {ct2_models.PIPER} - -o "$WAV"'
              f' --deterministic | {{ read -r path; [ -z "$(cat)" ] &&'
              f' {cli} transcribe {ct2_models.TINY_EN} "$path" --json; }}')
    since = nginx.log_size()
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "SAID": said, "WAV": str(wav), "NO_COLOR": "1",
                               "RUNANYWHERE_HOME": str(tmp_path / "home"),
                               "RUNANYWHERE_CATALOG": str(real_catalog)})
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert set(doc) == {"text", "language", "duration", "segments"}
    import soundfile as sf

    written = sf.info(str(wav))
    assert written.samplerate == 22050 and doc["language"] == "en"  # the voice's own rate
    assert doc["duration"] == pytest.approx(written.duration, abs=0.01)
    assert doc["segments"] and all(0 <= s["start"] < s["end"] <= doc["duration"] + 0.01
                                   for s in doc["segments"])
    assert whisper_text.word_errors(said, doc["text"])[0] <= 1, doc["text"]
    pulled = {r.path.split("/")[1] for r in nginx.records(since) if r.status in (200, 206)}
    assert {ct2_models.PIPER, ct2_models.TINY_EN} <= pulled, pulled
    assert "Traceback" not in done.stderr
