"""Reference parity: our decoders against implementations no one here wrote, on the same weights
and the same input.

- SpeechT5: Transformers.js (npm ``@huggingface/transformers``, run by Node, offline) loads the
  synthetic SpeechT5 folder (tests/support/speecht5_synth.py) our adapter loads; same token ids,
  same number of decoder steps, samples within ``SPEECHT5_TOLERANCE``.
- Whisper: sherpa-onnx's ``OfflineRecognizer.from_whisper`` on a tiny random-weight Whisper of the
  sherpa-onnx export's shape (tests/support/whisper_synth.py); same tokens, same text, same
  detected language. The log-mel front end is checked against kaldi-native-fbank's Whisper
  features, which sherpa-onnx uses.
- Silero VAD: silero-vad's own ``get_speech_timestamps`` (torch, in a subprocess) with its ONNX
  and TorchScript models; same segments as ``SileroVADAdapter.detect`` on espeak-ng speech.

A reference that is not installed skips its test with the reason; ``make setup-test`` installs
all of them and ``make test`` sets ``RUNANYWHERE_REQUIRE_REFERENCES=1``, which turns those skips
into failures (so CI cannot pass by skipping).
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from runanywhere.adapters.audio import read_audio, resample
from runanywhere_stt_whisper.onnx_whisper import (
    WhisperSTTAdapter,
    decode_tokens,
    load_tokens,
    log_mel_spectrogram,
    whisper_features,
)
from runanywhere_tts_speecht5 import SpeechT5TTSAdapter, StopCriteria, load_speaker
from runanywhere_vad_silero import SileroVADAdapter
from support.silero_wheel import silero_data_dir
from support.speecht5_synth import build_speecht5
from support.whisper_synth import build_whisper

TESTS = Path(__file__).parent
JS = TESTS / "js"
SR = 16000
#: Largest |difference| accepted between our SpeechT5 samples and Transformers.js's (both run
#: the graphs on onnxruntime's CPU kernels: onnxruntime 1.3x in Python, onnxruntime-node in JS).
SPEECHT5_TOLERANCE = 1e-4


def missing(reason: str) -> None:
    """Skip, or fail when the references are required (``make test``, CI)."""
    if os.environ.get("RUNANYWHERE_REQUIRE_REFERENCES") == "1":
        pytest.fail(f"reference not installed: {reason} (run make setup-test)")
    pytest.skip(reason)


def espeak_speech(tmp: Path, text: str, seconds: float = 3.0, lead: float = 0.3) -> np.ndarray:
    """espeak-ng saying ``text`` at 16 kHz, ``lead`` s of silence before, padded to ``seconds``."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        pytest.fail("espeak-ng is not installed (Debian package espeak-ng)")
    wav = tmp / f"speech-{abs(hash(text))}.wav"
    subprocess.run([espeak, "-w", str(wav), text], check=True, timeout=60)
    audio, _ = read_audio(wav)
    head = np.zeros(int(lead * SR), np.float32)
    tail = np.zeros(max(0, int(seconds * SR) - head.size - audio.size), np.float32)
    return np.concatenate([head, audio, tail])


# -- SpeechT5 vs Transformers.js -------------------------------------------------------------------


@pytest.fixture(scope="module")
def speecht5(tmp_path_factory: pytest.TempPathFactory) -> Any:
    pytest.importorskip("onnx")
    pytest.importorskip("sentencepiece")
    return build_speecht5(tmp_path_factory.mktemp("speecht5"))


def transformers_js(root: Path, cases: list[dict[str, Any]], tmp: Path) -> list[dict[str, Any]]:
    node = shutil.which("node")
    if node is None:
        missing("Node.js is not installed (Debian package nodejs)")
    if not (JS / "node_modules" / "@huggingface" / "transformers").is_dir():
        missing("Transformers.js is not installed: npm ci in tests/js")
    (tmp / "cases.json").write_text(json.dumps(cases))
    proc = subprocess.run([str(node), str(JS / "speecht5_reference.mjs"), str(root),
                           str(tmp / "cases.json"), str(tmp / "out.json")],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out: list[dict[str, Any]] = json.loads((tmp / "out.json").read_text())
    return out


def test_speecht5_matches_transformers_js(speecht5: Any, tmp_path: Path) -> None:
    other_voice = tmp_path / "other-voice.bin"
    other_voice.write_bytes(np.random.default_rng(11).standard_normal(512).astype("<f4")
                            .tobytes())
    default_voice = str(speecht5.tts / "speaker_embeddings.bin")
    stop = {"threshold": 0.5, "minlenratio": 0.0, "maxlenratio": 20.0}
    cases = [
        {"text": "Hello world.", **stop, "speaker": default_voice},
        {"text": "The quick brown fox jumps over the lazy dog.", **stop, "speaker": default_voice},
        {"text": "  Spaces   and CAPITALS, punctuation: (yes) [no]; 'quotes'!  ", **stop,
         "speaker": default_voice},
        {"text": "Café über naïve", **stop, "speaker": default_voice},  # <unk> characters
        {"text": "a", **stop, "speaker": default_voice},
        {"text": "Hello world.", **stop, "speaker": str(other_voice)},
        # the stop token fires later, never (maxlenratio decides), or too early (minlenratio)
        {"text": "Hello world.", "threshold": 0.95, "minlenratio": 0.0, "maxlenratio": 20.0,
         "speaker": default_voice},
        {"text": "Hello world.", "threshold": 2.0, "minlenratio": 0.0, "maxlenratio": 1.5,
         "speaker": default_voice},
        {"text": "Hello world.", "threshold": 0.5, "minlenratio": 4.0, "maxlenratio": 20.0,
         "speaker": default_voice},
    ]
    reference = transformers_js(speecht5.root, cases, tmp_path)
    tts = SpeechT5TTSAdapter.from_dir(speecht5.tts)
    model = tts.speecht5
    worst = 0.0
    steps_seen = set()
    for case, ref in zip(cases, reference, strict=True):
        ids = model.tokenizer.encode(case["text"])
        assert ids == ref["input_ids"], case["text"]
        stop_rule = StopCriteria(case["threshold"], case["minlenratio"], case["maxlenratio"])
        spec, steps, _ = model.generate_spectrogram(ids, load_speaker(case["speaker"]), stop_rule)
        assert list(spec.shape) == ref["spectrogram_dims"], case
        ours = model.vocode(spec)
        theirs = np.frombuffer(base64.b64decode(ref["waveform"]), dtype="<f4")
        assert ours.shape == theirs.shape, case
        worst = max(worst, float(np.abs(ours - theirs).max()))
        assert np.abs(ours - theirs).max() <= SPEECHT5_TOLERANCE, case
        steps_seen.add((case["text"], steps))
    print(f"SpeechT5 vs Transformers.js: {len(cases)} cases, max |sample diff| = {worst:.3g}")
    # The cases really differ: lengths follow the text and the stop options.
    hello = {s for t, s in steps_seen if t == "Hello world."}
    assert len(hello) >= 3 and len({s for _, s in steps_seen}) >= 5
    # The adapter's own path (sentence streaming) gives the same samples as the reference.
    ref_audio = np.frombuffer(base64.b64decode(reference[1]["waveform"]), dtype="<f4")
    audio, sr = tts.synthesize(cases[1]["text"])
    assert sr == 16000 and np.abs(audio - ref_audio).max() <= SPEECHT5_TOLERANCE


# -- Whisper vs sherpa-onnx ------------------------------------------------------------------------


def sherpa_decode(files: Any, audio: np.ndarray, language: str) -> Any:
    if importlib.util.find_spec("sherpa_onnx") is None:
        missing("sherpa-onnx is not installed (pip install sherpa-onnx)")
    import sherpa_onnx

    recognizer = sherpa_onnx.OfflineRecognizer.from_whisper(
        encoder=str(files.encoder), decoder=str(files.decoder), tokens=str(files.tokens),
        language=language, task="transcribe", num_threads=1)
    stream = recognizer.create_stream()
    # sherpa-onnx's frames (kaldi-native-fbank, snip_edges=false) are centred 80 samples later
    # than whisper's (torch.stft, center=True): 80 leading zeros line the two up (the front-end
    # test below checks that the features then agree).
    stream.accept_waveform(SR, np.concatenate([np.zeros(80, np.float32), audio]).tolist())
    recognizer.decode_stream(stream)
    return stream.result


@pytest.fixture(scope="module")
def utterances(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    tmp = tmp_path_factory.mktemp("speech")
    rng = np.random.default_rng(0)
    t = np.arange(3 * SR) / SR
    return {
        "hello": espeak_speech(tmp, "Hello world."),
        "cat": espeak_speech(tmp, "The cat sat on the mat."),
        "numbers": espeak_speech(tmp, "Yes or no? One, two."),
        "late": espeak_speech(tmp, "Hello world.", lead=1.0),
        "noise": (rng.standard_normal(3 * SR) * 0.1).astype(np.float32),
        "tone": (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32),
    }


@pytest.mark.parametrize("multilingual", [True, False], ids=["multilingual", "english-only"])
def test_whisper_matches_sherpa_onnx(multilingual: bool, tmp_path: Path,
                                     utterances: dict[str, np.ndarray]) -> None:
    pytest.importorskip("onnx")
    files = build_whisper(tmp_path / "tiny", multilingual=multilingual)
    table = load_tokens(files.tokens)
    assert len(set(table.values())) == len(table)  # token strings identify token ids
    stt = WhisperSTTAdapter.from_dir(files.folder, language=None if multilingual else "en")
    model = stt.whisper
    sequences, languages = set(), set()
    for name, audio in utterances.items():
        ref = sherpa_decode(files, audio, "" if multilingual else "en")
        # Our tokens, straight from the decode loop, then the adapter's text.
        cross_k, cross_v = model.encode(whisper_features(audio, model.config.n_mels))
        lang = model.detect_language(cross_k, cross_v) if multilingual else "en"
        ids = model.greedy_decode(cross_k, cross_v, model.prompt(lang, "transcribe"))
        ours = [table[i].decode("utf-8") for i in ids]
        assert ours == list(ref.tokens), name
        assert 3 <= len(ids) < model.config.n_text_ctx // 2  # ended by eot, not by a limit
        text = stt.transcribe(audio, SR)
        assert text == decode_tokens(ids, table) == ref.text.strip(), name
        if multilingual:
            assert stt.detected_language == lang == ref.lang, name
        sequences.add(tuple(ids))
        languages.add(lang)
    # The model listens: different audio gives different transcripts (and languages).
    assert len(sequences) >= 4
    if multilingual:
        assert len(languages) >= 2


def test_log_mel_matches_kaldi_native_fbank(utterances: dict[str, np.ndarray]) -> None:
    """Our front end against kaldi-native-fbank's Whisper features (what sherpa-onnx feeds)."""
    if importlib.util.find_spec("kaldi_native_fbank") is None:
        missing("kaldi-native-fbank is not installed (pip install kaldi-native-fbank)")
    import kaldi_native_fbank as knf

    for name, audio in utterances.items():
        opts = knf.WhisperFeatureOptions()
        opts.dim = 80
        fbank = knf.OnlineWhisperFbank(opts)
        fbank.accept_waveform(SR, np.concatenate([np.zeros(80, np.float32), audio]).tolist())
        fbank.input_finished()
        frames = np.array([fbank.get_frame(i) for i in range(fbank.num_frames_ready)])
        log = np.log10(np.maximum(frames, 1e-10))
        theirs = (np.maximum(log, log.max() - 8.0) + 4.0) / 4.0  # sherpa-onnx's normalisation
        ours = log_mel_spectrogram(audio).T  # [frames, 80]
        # The first two and last two frames reach past the ends, where the two pad differently
        # (whisper reflects the signal, kaldi mirrors it about the edge sample).
        n = min(len(ours), len(theirs)) - 2
        assert n >= 290
        diff = np.abs(ours[2:n] - theirs[2:n])
        assert diff.max() < 1e-3 and diff.mean() < 1e-5, (name, diff.max(), diff.mean())


# -- Silero VAD vs silero-vad's get_speech_timestamps ---------------------------------------------


def torch_path() -> Path:
    """Where scripts/reference-deps.sh put torch (``pip --target``), outside this process."""
    given = os.environ.get("RUNANYWHERE_TORCH_PATH")
    return Path(given) if given else Path(sys.prefix) / "refs" / "torch"


def silero_reference(cases: list[dict[str, Any]], tmp: Path) -> dict[str, list[list[list[int]]]]:
    if importlib.util.find_spec("silero_vad") is None:
        missing("the silero-vad package is not installed (pip install --no-deps silero-vad)")
    target = torch_path()
    if not (target / "torch").is_dir():
        missing(f"torch for silero-vad's reference is not installed in {target} "
                "(scripts/reference-deps.sh)")
    (tmp / "cases.json").write_text(json.dumps(cases))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(target), *filter(None, [os.environ.get("PYTHONPATH")])]))
    proc = subprocess.run([sys.executable, str(TESTS / "support" / "silero_reference.py"),
                           str(tmp / "cases.json")], capture_output=True, text=True, env=env,
                          timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out: dict[str, list[list[list[int]]]] = json.loads(proc.stdout)
    return out


def test_silero_vad_matches_get_speech_timestamps(tmp_path: Path) -> None:
    speech = espeak_speech(tmp_path, "Hello there. This is a test of voice activity detection, "
                           "with a pause.", seconds=0)
    quiet = np.zeros(SR, np.float32)
    rng = np.random.default_rng(3)
    noisy = speech + (rng.standard_normal(speech.size) * 0.02).astype(np.float32)
    audio16 = np.concatenate([quiet, speech, quiet, quiet, noisy[:20000], quiet])
    audio8 = resample(audio16, SR, 8000)
    np.save(tmp_path / "a16.npy", audio16)
    np.save(tmp_path / "a8.npy", audio8)
    settings: list[tuple[str, dict[str, Any]]] = [
        ("a16", {"sampling_rate": 16000}),
        ("a16", {"sampling_rate": 16000, "threshold": 0.3, "min_silence_duration_ms": 300,
                 "speech_pad_ms": 100}),
        ("a16", {"sampling_rate": 16000, "threshold": 0.7, "min_speech_duration_ms": 500,
                 "min_silence_duration_ms": 50, "speech_pad_ms": 0}),
        ("a8", {"sampling_rate": 8000}),
    ]
    cases = [{"audio": str(tmp_path / f"{name}.npy"), "kwargs": kw} for name, kw in settings]
    reference = silero_reference(cases, tmp_path)
    vad_file = silero_data_dir() / "silero_vad.onnx"
    counts = []
    for (name, kwargs), want_onnx, want_jit in zip(settings, reference["onnx"], reference["jit"],
                                                   strict=True):
        sr = kwargs["sampling_rate"]
        options = {k: v for k, v in kwargs.items() if k != "sampling_rate"}
        vad = SileroVADAdapter.from_file(vad_file, **options)
        audio = audio16 if name == "a16" else audio8
        got = [[round(s.start * sr), round(s.end * sr)] for s in vad.detect(audio, sr)]
        assert got == want_onnx, kwargs
        assert got == want_jit, kwargs  # the TorchScript model agrees on this speech too
        counts.append(len(got))
    assert min(counts) >= 2 and len(set(map(tuple, reference["onnx"][0]))) >= 2
    assert len({tuple(map(tuple, r)) for r in reference["onnx"][:3]}) == 3  # settings matter
