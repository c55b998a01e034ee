"""Whisper STT pieces: the log-mel front end, tokens.txt, and the greedy decode loop.

The decode loop runs on onnxruntime against a TINY encoder/decoder pair built here with the
``onnx`` helper: same input/output names, shapes and metadata as sherpa-onnx's Whisper export, with
scripted logits. The fake decoder checks the protocol itself: it emits a "mismatch" token unless
the self-attention caches it gets back count exactly ``offset`` tokens (so caches must be threaded
and offsets advanced correctly), and the script it follows depends on the encoder's output (so
cross_k/cross_v must be wired). Real Whisper weights are not available here: real transcription
is untested.
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from runanywhere.adapters import AdapterError, ModelLoaded, ModelLoading, Transcript
from runanywhere.errors import ModelError
from runanywhere.runtimes import get_runtime
from runanywhere_stt_whisper.onnx_whisper import (
    N_FRAMES,
    WhisperModel,
    WhisperSTTAdapter,
    decode_tokens,
    find_whisper_files,
    hz_to_mel,
    load_tokens,
    log_mel_spectrogram,
    mel_filters,
    mel_frequencies,
    mel_to_hz,
    whisper_features,
)
from support.folder_registry import FolderRegistry
from support.isolation import _isolated_env

SR = 16000


def tone(freq: float, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


# -- mel front end ---------------------------------------------------------------------------------


def test_slaney_mel_scale() -> None:
    assert np.allclose(hz_to_mel([0.0, 500.0, 1000.0, 6400.0]), [0.0, 7.5, 15.0, 42.0])
    f = np.array([0.0, 123.0, 999.0, 1000.0, 3000.0, 8000.0])
    assert np.allclose(mel_to_hz(hz_to_mel(f)), f)
    centers = mel_frequencies(82)
    assert centers[0] == 0.0 and np.isclose(centers[-1], 8000.0)
    assert np.all(np.diff(centers) > 0)


def test_mel_filterbank_shape_and_slaney_normalisation() -> None:
    for n_mels in (80, 128):
        fb = mel_filters(n_mels)
        assert fb.shape == (n_mels, 201) and fb.dtype == np.float32
        assert (fb >= 0).all() and (fb.sum(axis=1) > 0).all()
        # Slaney norm: each triangle has unit area in Hz (40 Hz per FFT bin); only the wide
        # upper filters span enough bins for the sampled sum to show it.
        areas = fb.sum(axis=1) * (SR / 400)
        assert np.allclose(areas[n_mels // 2:], 1.0, atol=0.1), areas
        assert abs(areas[n_mels // 2:].mean() - 1.0) < 0.01
        # Each filter peaks at the FFT bin nearest its centre frequency.
        centers = mel_frequencies(n_mels + 2)[1:-1]
        peaks = np.argmax(fb, axis=1) * (SR / 400)
        assert np.all(np.abs(peaks - centers)[n_mels // 4:] <= SR / 400)


def test_log_mel_shape_and_value_range() -> None:
    audio = np.random.default_rng(0).standard_normal(5 * SR).astype(np.float32) * 0.1
    mel = log_mel_spectrogram(audio)
    assert mel.shape == (80, 500) and mel.dtype == np.float32  # one frame per 10 ms
    feats = whisper_features(audio)
    assert feats.shape == (1, 80, N_FRAMES) and feats.dtype == np.float32
    # log10 floored at max - 8, then (x + 4) / 4: the whole range spans at most 2.
    assert feats.max() - feats.min() <= 2.0 + 1e-6
    assert feats.min() > -1.6 and feats.max() < 2.5
    # The padding (silence after 5 s) sits on the floor.
    assert np.allclose(feats[0, :, 600:], feats.min())
    assert whisper_features(tone(440, 40)).shape == (1, 80, N_FRAMES)  # trimmed to 30 s
    assert whisper_features(tone(440, 1), n_mels=128).shape == (1, 128, N_FRAMES)
    silent = whisper_features(np.zeros(SR, np.float32))
    assert np.allclose(silent, -1.5)  # log10(1e-10) = -10 -> (-10 + 4) / 4


@pytest.mark.parametrize("freq", [250.0, 1000.0, 3000.0, 6000.0])
def test_pure_tone_lands_in_the_right_mel_bin(freq: float) -> None:
    # 1 s of silence, 1 s of tone, 1 s of silence.
    audio = np.concatenate([np.zeros(SR, np.float32), tone(freq, 1.0), np.zeros(SR, np.float32)])
    mel = log_mel_spectrogram(audio)
    centers = mel_frequencies(82)[1:-1]
    expected = int(np.argmin(np.abs(centers - freq)))
    during = mel[:, 110:190].mean(axis=1)
    assert abs(int(np.argmax(during)) - expected) <= 1, (np.argmax(during), expected)
    # Energy appears only while the tone plays (frames are 10 ms, centred).
    band = mel[expected]
    assert band[110:190].min() > band[:90].max() + 0.5
    assert band[110:190].min() > band[210:290].max() + 0.5


# -- tokens ----------------------------------------------------------------------------------------

VOCAB: dict[int, bytes] = {
    0: b"hel", 1: b"lo", 2: b" w", 3: b"\xc3", 4: b"\xb6", 5: b"rld",  # "hello wörld"
    6: b" bye", 7: b"?!", 8: b" ", 9: b"x",
}
EOT, SOT, EN, DE, TRANSLATE, TRANSCRIBE, SOT_PREV, NO_SPEECH, NO_TS, TS0 = range(10, 20)
N_VOCAB = 20


def write_tokens(path: Path) -> Path:
    path.write_text("".join(f"{base64.b64encode(b).decode()} {i}\n" for i, b in VOCAB.items()))
    return path


def test_tokens_file_decoding(tmp_path: Path) -> None:
    table = load_tokens(write_tokens(tmp_path / "t-tokens.txt"))
    assert table == VOCAB
    # Byte-level tokens join before UTF-8 decoding ("ö" is split over two tokens);
    # special ids (absent from the file) are skipped.
    assert decode_tokens([SOT, 0, 1, 2, 3, 4, 5, EOT], table) == "hello wörld"
    assert decode_tokens([3], table) == "\ufffd"  # a lone half character does not crash
    (tmp_path / "bad.txt").write_text("aGVs 0\nnot-base64!! 1\n")
    with pytest.raises(ModelError, match=r"bad\.txt:2"):
        load_tokens(tmp_path / "bad.txt")
    (tmp_path / "bad2.txt").write_text("aGVs\n")
    with pytest.raises(ModelError, match="expected '<base64> <id>'"):
        load_tokens(tmp_path / "bad2.txt")


# -- a tiny sherpa-onnx-shaped encoder/decoder pair ------------------------------------------------

N_LAYER, N_CTX, N_STATE, N_AUDIO_CTX = 2, 16, 4, 3


def script_table(first: int, script: list[int], noise: dict[int, float] | None = None
                 ) -> np.ndarray:
    """Logits per position: from position ``first`` on, ``script[i]`` wins at ``first + i``."""
    table = np.zeros((N_CTX, N_VOCAB), np.float32)
    for i, token in enumerate(script):
        table[first + i, token] = 10.0
    for token, value in (noise or {}).items():
        table[first, token] = value
    return table


def build_encoder(path: Path, meta: dict[str, str]) -> None:
    import onnx
    from onnx import TensorProto, helper

    shape = helper.make_tensor("shape", TensorProto.INT64, [4], [N_LAYER, 1, N_AUDIO_CTX, N_STATE])
    nodes = [
        helper.make_node("ReduceMean", ["mel"], ["m"], keepdims=0),
        helper.make_node("Expand", ["m", "shape"], ["n_layer_cross_k"]),
        helper.make_node("Expand", ["m", "shape"], ["n_layer_cross_v"]),
    ]
    graph = helper.make_graph(
        nodes, "fake-whisper-encoder",
        [helper.make_tensor_value_info("mel", TensorProto.FLOAT, [1, int(meta["n_mels"]), 3000])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [N_LAYER, 1, N_AUDIO_CTX, N_STATE])
         for n in ("n_layer_cross_k", "n_layer_cross_v")],
        [shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    helper.set_model_props(model, meta)
    onnx.save(model, str(path))


def build_decoder(path: Path, speech: np.ndarray, silence: np.ndarray) -> None:
    """logits[pos] from ``speech`` or ``silence`` (by the encoder output), pos = offset + n - 1;
    a mismatch row (token 7) unless the caches count exactly ``offset`` earlier tokens."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    mismatch = np.zeros((1, N_VOCAB), np.float32)
    mismatch[0, 7] = 50.0
    inits = [
        numpy_helper.from_array(speech, "speech_table"),
        numpy_helper.from_array(silence, "silence_table"),
        numpy_helper.from_array(mismatch, "mismatch_row"),
        numpy_helper.from_array(np.array([1], np.int64), "one_idx"),
        numpy_helper.from_array(np.array([1], np.int64), "one"),
        numpy_helper.from_array(np.array([1], np.int64), "batch"),
        numpy_helper.from_array(np.array([N_VOCAB], np.int64), "vocab"),
        numpy_helper.from_array(np.array(-2.9, np.float32), "speech_level"),
    ]
    nodes = [
        helper.make_node("Shape", ["tokens"], ["tok_shape"]),
        helper.make_node("Gather", ["tok_shape", "one_idx"], ["n"], axis=0),  # [1]
        helper.make_node("Add", ["offset", "n"], ["end"]),
        helper.make_node("Sub", ["end", "one"], ["pos"]),  # [1]
        # caches count the tokens seen so far: out = in + n
        helper.make_node("Cast", ["n"], ["n_f"], to=TensorProto.FLOAT),
        helper.make_node("Add", ["in_n_layer_self_k_cache", "n_f"], ["out_n_layer_self_k_cache"]),
        helper.make_node("Add", ["in_n_layer_self_v_cache", "n_f"], ["out_n_layer_self_v_cache"]),
        helper.make_node("ReduceMax", ["in_n_layer_self_k_cache"], ["kmax"], keepdims=0),
        helper.make_node("ReduceMin", ["in_n_layer_self_v_cache"], ["vmin"], keepdims=0),
        helper.make_node("Cast", ["kmax"], ["kcount"], to=TensorProto.INT64),
        helper.make_node("Cast", ["vmin"], ["vcount"], to=TensorProto.INT64),
        helper.make_node("Equal", ["kcount", "offset"], ["k_ok"]),
        helper.make_node("Equal", ["vcount", "offset"], ["v_ok"]),
        helper.make_node("And", ["k_ok", "v_ok"], ["ok"]),
        # the audio decides which script plays
        helper.make_node("ReduceMean", ["n_layer_cross_k"], ["mk"], keepdims=0),
        helper.make_node("ReduceMean", ["n_layer_cross_v"], ["mv"], keepdims=0),
        helper.make_node("Add", ["mk", "mv"], ["level"]),
        helper.make_node("Greater", ["level", "speech_level"], ["is_speech"]),
        helper.make_node("Gather", ["speech_table", "pos"], ["row_speech"], axis=0),  # [1, V]
        helper.make_node("Gather", ["silence_table", "pos"], ["row_silence"], axis=0),
        helper.make_node("Where", ["is_speech", "row_speech", "row_silence"], ["row"]),
        helper.make_node("Where", ["ok", "row", "mismatch_row"], ["row_checked"]),
        helper.make_node("Unsqueeze", ["row_checked", "one_idx"], ["row3"]),  # [1, 1, V]
        helper.make_node("Concat", ["batch", "n", "vocab"], ["logits_shape"], axis=0),
        helper.make_node("Expand", ["row3", "logits_shape"], ["logits"]),
    ]
    cache = [N_LAYER, 1, N_CTX, N_STATE]
    cross = [N_LAYER, 1, N_AUDIO_CTX, N_STATE]
    graph = helper.make_graph(
        nodes, "fake-whisper-decoder",
        [helper.make_tensor_value_info("tokens", TensorProto.INT64, [1, "n_tokens"]),
         helper.make_tensor_value_info("in_n_layer_self_k_cache", TensorProto.FLOAT, cache),
         helper.make_tensor_value_info("in_n_layer_self_v_cache", TensorProto.FLOAT, cache),
         helper.make_tensor_value_info("n_layer_cross_k", TensorProto.FLOAT, cross),
         helper.make_tensor_value_info("n_layer_cross_v", TensorProto.FLOAT, cross),
         helper.make_tensor_value_info("offset", TensorProto.INT64, [1])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, "n_tokens", N_VOCAB]),
         helper.make_tensor_value_info("out_n_layer_self_k_cache", TensorProto.FLOAT, cache),
         helper.make_tensor_value_info("out_n_layer_self_v_cache", TensorProto.FLOAT, cache)],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def metadata(**overrides: str) -> dict[str, str]:
    meta = {
        "model_type": "whisper-fake", "n_mels": "80", "n_audio_ctx": str(N_AUDIO_CTX),
        "n_vocab": str(N_VOCAB), "n_text_ctx": str(N_CTX), "n_text_state": str(N_STATE),
        "n_text_layer": str(N_LAYER), "sot_sequence": f"{SOT},{EN},{TRANSCRIBE}",
        "all_language_tokens": f"{EN},{DE}", "all_language_codes": "en,de",
        "sot": str(SOT), "sot_index": "0", "eot": str(EOT), "blank_id": "8",
        "is_multilingual": "1", "no_speech": str(NO_SPEECH), "non_speech_tokens": "",
        "transcribe": str(TRANSCRIBE), "translate": str(TRANSLATE), "sot_prev": str(SOT_PREV),
        "sot_lm": str(SOT_PREV), "no_timestamps": str(NO_TS),
    }
    meta.update(overrides)
    return meta


# prompt = [sot, lang, task, no_timestamps]: the first generated token comes at position 3.
HELLO = [0, 1, 2, 3, 4, 5, EOT]
#: At the first step eot, blank and a timestamp score higher than "hel": all must be suppressed.
FIRST_STEP_TRAPS = {EOT: 30.0, 8: 29.0, TS0: 28.0, NO_TS: 27.0, 0: 20.0}


def make_model_dir(root: Path, speech: np.ndarray | None = None,
                   silence: np.ndarray | None = None, **meta: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    if speech is None:
        speech = script_table(3, HELLO, FIRST_STEP_TRAPS)
        speech[0, [0, EN, DE]] = [99.0, 1.0, 2.0]  # language detection (pos 0): "de" > "en"
        speech[10, [NO_TS, EOT]] = [50.0, 40.0]  # after "rld": a special token, then eot
    if silence is None:
        silence = script_table(3, [6, EOT])
    build_encoder(root / "fake-encoder.onnx", metadata(**meta))
    build_decoder(root / "fake-decoder.onnx", speech, silence)
    write_tokens(root / "fake-tokens.txt")
    return root


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("onnx")
    return make_model_dir(tmp_path_factory.mktemp("whisper") / "fake")


class SpyDecoder:
    """Wraps the decoder session and records every call's tokens and offset."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.calls: list[tuple[list[int], int]] = []

    def get_inputs(self) -> Any:
        return self.session.get_inputs()

    def get_outputs(self) -> Any:
        return self.session.get_outputs()

    def run(self, names: Any, feeds: dict[str, np.ndarray]) -> Any:
        self.calls.append((feeds["tokens"][0].tolist(), int(feeds["offset"][0])))
        return self.session.run(names, feeds)


def spied(adapter: WhisperSTTAdapter) -> SpyDecoder:
    spy = SpyDecoder(adapter.whisper.decoder)
    adapter.whisper.decoder = spy
    return spy


# -- the decode loop -------------------------------------------------------------------------------


def test_greedy_decode_end_to_end_on_onnxruntime(model_dir: Path) -> None:
    stt = WhisperSTTAdapter.from_dir(model_dir, language="en")
    spy = spied(stt)
    texts: list[str] = []
    stt.on(Transcript, lambda e: texts.append(e.text))
    assert stt.transcribe(tone(1000, 2.0), SR) == "hello wörld"
    assert texts == ["hello wörld"]
    # One prompt call, then one call per generated token, offsets advancing one by one;
    # the last generated token is "rld" (5): eot follows (the special token is suppressed).
    assert spy.calls[0] == ([SOT, EN, TRANSCRIBE, NO_TS], 0)
    assert spy.calls[1:] == [([t], 4 + i) for i, t in enumerate(HELLO[:-1])]


def test_encoder_output_reaches_the_decoder(model_dir: Path) -> None:
    stt = WhisperSTTAdapter.from_dir(model_dir, language="en")
    assert stt.transcribe(np.zeros(SR, np.float32)) == "bye"  # silence -> the other script


def test_language_detection_and_translate_prompt(model_dir: Path) -> None:
    stt = WhisperSTTAdapter.from_dir(model_dir)  # language=None: detect
    spy = spied(stt)
    assert stt.transcribe(tone(1000, 1.0)) == "hello wörld"
    assert stt.detected_language == "de"
    assert spy.calls[0] == ([SOT], 0)  # the detection pass
    assert spy.calls[1] == ([SOT, DE, TRANSCRIBE, NO_TS], 0)

    stt = WhisperSTTAdapter.from_dir(model_dir, language="en", task="translate")
    spy = spied(stt)
    stt.transcribe(tone(1000, 1.0))
    assert spy.calls[0] == ([SOT, EN, TRANSLATE, NO_TS], 0)
    with pytest.raises(ModelError, match="unknown language 'fr'"):
        WhisperSTTAdapter.from_dir(model_dir, language="fr").transcribe(tone(1000, 1.0))


def test_resampling_and_long_audio_windows(model_dir: Path) -> None:
    stt = WhisperSTTAdapter.from_dir(model_dir, language="en")
    assert stt.transcribe(tone(1000, 1.0)[::2], 8000) == "hello wörld"
    # 35 s: two 30 s windows, both with sound.
    assert stt.transcribe(tone(1000, 35.0)) == "hello wörld hello wörld"


def test_token_limits(tmp_path: Path, model_dir: Path) -> None:
    stt = WhisperSTTAdapter.from_dir(model_dir, language="en", max_new_tokens=3)
    assert stt.transcribe(tone(1000, 1.0)) == "hello w"
    # A model that never says eot stops when prompt + text fill the text context (as whisper
    # does: 16 - 4 prompt tokens), never feeding a position past n_text_ctx.
    endless = np.zeros((N_CTX, N_VOCAB), np.float32)
    endless[:, 9] = 10.0
    folder = make_model_dir(tmp_path / "endless", speech=endless, silence=endless)
    stt = WhisperSTTAdapter.from_dir(folder, language="en", max_new_tokens=100)
    spy = spied(stt)
    assert stt.transcribe(tone(1000, 1.0)) == "x" * (N_CTX - 4)
    assert max(offset for _, offset in spy.calls) == N_CTX - 2  # the last token is not fed
    stt = WhisperSTTAdapter.from_dir(folder, language="en")  # default: n_text_ctx // 2
    assert stt.transcribe(tone(1000, 1.0)) == "x" * (N_CTX // 2)


def test_english_only_model(tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    # English-only exports: sot_sequence is just [sot]; the prompt is [sot, no_timestamps].
    speech = script_table(1, [0, 1, EOT])
    folder = make_model_dir(tmp_path / "en", speech=speech, silence=speech,
                            sot_sequence=str(SOT), is_multilingual="0")
    stt = WhisperSTTAdapter.from_dir(folder)
    spy = spied(stt)
    assert stt.transcribe(tone(1000, 1.0)) == "hello"
    assert spy.calls[0] == ([SOT, NO_TS], 0)
    with pytest.raises(ModelError, match="English-only"):
        WhisperSTTAdapter.from_dir(folder, language="de").transcribe(tone(1000, 1.0))


def test_bad_model_folders(tmp_path: Path, model_dir: Path) -> None:
    with pytest.raises(ModelError, match="no Whisper encoder"):
        find_whisper_files(tmp_path)
    with pytest.raises(ModelError, match="is a folder"):
        find_whisper_files(model_dir / "fake-tokens.txt")
    # int8 and float files side by side: int8 by default, float on request.
    folder = tmp_path / "both"
    folder.mkdir()
    for name in ("tiny-encoder.onnx", "tiny-encoder.int8.onnx", "tiny-decoder.onnx",
                 "tiny-decoder.int8.onnx", "tiny-tokens.txt"):
        (folder / name).write_bytes(b"")
    files = find_whisper_files(folder)
    assert (files.encoder.name, files.decoder.name) == ("tiny-encoder.int8.onnx",
                                                       "tiny-decoder.int8.onnx")
    assert find_whisper_files(folder, prefer_int8=False).encoder.name == "tiny-encoder.onnx"
    # An encoder without the sherpa-onnx metadata is refused with a clear message.
    rt = get_runtime("onnx")
    bare = tmp_path / "bare"
    bare.mkdir()
    build_encoder(bare / "x-encoder.onnx", {"n_mels": "80"})
    with pytest.raises(ModelError, match="metadata lacks 'n_text_layer'"):
        WhisperModel(rt.load(bare / "x-encoder.onnx", None),
                     rt.load(model_dir / "fake-decoder.onnx", None), {})


# -- through the registry contract -----------------------------------------------------------------


def test_load_through_registry_contract(model_dir: Path, tmp_path: Path) -> None:
    registry = FolderRegistry(model_dir)
    stt = WhisperSTTAdapter(registry, language="en")
    seen: list[Any] = []
    for ev in (ModelLoading, ModelLoaded, AdapterError):
        stt.on(ev, seen.append)
    result = asyncio.run(stt.load_model("whisper-fake"))
    assert result.success, result.error
    assert [type(e) for e in seen] == [ModelLoading, ModelLoading, ModelLoaded]
    # The folder holds two .onnx files: each is asked for by name.
    assert registry.loads == [{"runtime": "onnx", "file": "fake-encoder.onnx"},
                              {"runtime": "onnx", "file": "fake-decoder.onnx"}]
    assert stt.transcribe(tone(1000, 1.0)) == "hello wörld"

    broken = FolderRegistry(tmp_path)  # an empty folder: no encoder
    stt = WhisperSTTAdapter(broken)
    errors: list[AdapterError] = []
    stt.on(AdapterError, errors.append)
    result = asyncio.run(stt.load_model("whisper-fake"))
    assert not result.success and "no Whisper encoder" in str(result.error)
    assert errors and errors[0].error is result.error
