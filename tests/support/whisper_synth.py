"""A tiny random-weight Whisper in the sherpa-onnx export's shape, for reference parity.

``build_whisper(folder)`` writes ``tiny-encoder.onnx``, ``tiny-decoder.onnx`` and
``tiny-tokens.txt`` with the input/output names, dtypes and encoder metadata that sherpa-onnx's
``OfflineRecognizer.from_whisper`` reads (``sherpa-onnx/csrc/offline-whisper-model.cc``) and our
``WhisperSTTAdapter`` reads:

- encoder: ``mel`` [1, n_mels, T] with T free (sherpa-onnx feeds min(frames + 1000, 3000)
  frames, zero-padded after normalisation; we feed whisper's 3000, padded before it) ->
  ``n_layer_cross_k`` / ``n_layer_cross_v`` [L, 1, A, S]. It looks at the first 2 s only
  (frames 0-199, mean-pooled in 20 blocks of 100 ms), so the two paddings do not matter for
  audio of 2 s or more;
- decoder: ``tokens`` [1, n], ``in_n_layer_self_{k,v}_cache`` [L, 1, CTX, S],
  ``n_layer_cross_{k,v}``, ``offset`` [1] -> ``logits`` [1, n, V] and the caches with the new
  keys/values written at rows ``offset .. offset + n - 1``. Per layer: causal self-attention over
  cache rows ``0 .. offset + i``, cross-attention over the encoder output; tied embeddings.

So the tokens depend on the audio, on the caches being threaded back, on the offsets and on the
prompt. The logits carry fixed biases that keep the special tokens (and the blank, and the
"non-speech" tokens) below the text tokens, and push ``eot`` up from position ``EOT_FROM`` on:
sherpa-onnx applies no suppression rules while we apply whisper's, and this keeps both within the
cases where those rules do not fire (they are tested on their own in test_whisper_processing.py).
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

N_MELS, S, L, CTX = 80, 16, 2, 32
POOL, BLOCKS = 20, 10  # the encoder reads frames [0, POOL * BLOCKS)
A = BLOCKS
#: Text tokens (byte strings, as whisper's BPE pieces); " ö" is split over two tokens.
TEXT = [b" hello", b" world", b" the", b" cat", b" sat", b" on", b" mat", b".", b",", b" a",
        b" is", b" it", b" \xc3", b"\xb6", b"r", b"k", b" dog", b" run", b"s", b" yes",
        b" no", b" one", b" two", b"!", b" "]
BLANK = TEXT.index(b" ")
NON_SPEECH = [TEXT.index(b"!")]
EOT = len(TEXT)
SOT, EN, DE, FR, TRANSLATE, TRANSCRIBE, SOT_LM, SOT_PREV, NO_SPEECH, NO_TS = range(EOT + 1,
                                                                                  EOT + 11)
TS_BEGIN = NO_TS + 1
VOCAB = TS_BEGIN + 4  # four timestamp tokens
EOT_FROM = 9  # eot's bias grows from this position on


@dataclass(frozen=True)
class TinyWhisper:
    folder: Path
    encoder: Path
    decoder: Path
    tokens: Path
    multilingual: bool


def _w(rng: np.random.Generator, *shape: int, scale: float = 1.0) -> np.ndarray:
    return (rng.standard_normal(shape) * scale / math.sqrt(shape[-2] if len(shape) > 1
                                                            else shape[0])).astype(np.float32)


def metadata(multilingual: bool) -> dict[str, str]:
    langs = [EN, DE, FR] if multilingual else []
    return {
        "model_type": "whisper-tiny-synthetic", "n_mels": str(N_MELS), "n_audio_ctx": str(A),
        "n_vocab": str(VOCAB), "n_text_ctx": str(CTX), "n_text_state": str(S),
        "n_text_layer": str(L), "n_text_head": "1",
        "sot_sequence": f"{SOT},{EN},{TRANSCRIBE}" if multilingual else str(SOT),
        "all_language_tokens": ",".join(map(str, langs)),
        "all_language_codes": "en,de,fr" if multilingual else "",
        "sot": str(SOT), "sot_index": "0", "eot": str(EOT), "blank_id": str(BLANK),
        "is_multilingual": "1" if multilingual else "0", "no_speech": str(NO_SPEECH),
        "non_speech_tokens": ",".join(map(str, NON_SPEECH)), "transcribe": str(TRANSCRIBE),
        "translate": str(TRANSLATE), "sot_prev": str(SOT_PREV), "sot_lm": str(SOT_LM),
        "no_timestamps": str(NO_TS),
    }


def _encoder(path: Path, rng: np.random.Generator, meta: dict[str, str]) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def const(name: str, value: np.ndarray) -> onnx.TensorProto:
        return numpy_helper.from_array(value, name)

    inits = [const("start", np.array([0], np.int64)), const("end", np.array([POOL * BLOCKS],
                                                                            np.int64)),
             const("axis", np.array([2], np.int64)),
             const("blocks", np.array([1, N_MELS, BLOCKS, POOL], np.int64)),
             const("w_in", _w(rng, N_MELS, S, scale=3.0)), const("b_in", _w(rng, S))]
    nodes = [
        helper.make_node("Slice", ["mel", "start", "end", "axis"], ["window"]),
        helper.make_node("Reshape", ["window", "blocks"], ["blocked"]),
        helper.make_node("ReduceMean", ["blocked"], ["pooled"], axes=[3], keepdims=0),
        helper.make_node("Transpose", ["pooled"], ["frames"], perm=[0, 2, 1]),  # [1, A, mels]
        helper.make_node("MatMul", ["frames", "w_in"], ["h0"]),
        helper.make_node("Add", ["h0", "b_in"], ["h1"]),
        helper.make_node("Tanh", ["h1"], ["h"]),  # [1, A, S]
    ]
    for kind in ("k", "v"):
        parts = []
        for layer in range(L):
            w = f"w_{kind}{layer}"
            inits.append(const(w, _w(rng, S, S, scale=2.0)))
            nodes += [helper.make_node("MatMul", ["h", w], [f"{kind}{layer}_a"]),
                      helper.make_node("Tanh", [f"{kind}{layer}_a"], [f"{kind}{layer}"])]
            parts.append(f"{kind}{layer}")
        inits.append(const(f"ax0_{kind}", np.array([0], np.int64)))
        nodes += [helper.make_node("Concat", parts, [f"{kind}_stack"], axis=0),  # [L, A, S]
                  helper.make_node("Unsqueeze", [f"{kind}_stack", f"ax0_{kind}"],
                                   [f"{kind}_u"]),
                  helper.make_node("Transpose", [f"{kind}_u"], [f"n_layer_cross_{kind}"],
                                   perm=[1, 0, 2, 3])]  # [L, 1, A, S]
    graph = helper.make_graph(
        nodes, "tiny-whisper-encoder",
        [helper.make_tensor_value_info("mel", TensorProto.FLOAT, [1, N_MELS, "T"])],
        [helper.make_tensor_value_info(f"n_layer_cross_{k}", TensorProto.FLOAT, [L, 1, A, S])
         for k in ("k", "v")], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, meta)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _decoder(path: Path, rng: np.random.Generator, multilingual: bool) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(value, name))
        return name

    def node(op: str, ins: list[str], out: str, **attrs: object) -> str:
        nodes.append(helper.make_node(op, ins, [out], **attrs))
        return out

    embed = _w(rng, VOCAB, S, scale=4.0)
    bias = np.zeros(VOCAB, np.float32)
    bias[EOT + 1:] = -30.0  # special tokens stay below text tokens
    if multilingual:
        bias[[EN, DE, FR]] = -20.0  # ... languages too (detection compares only these)
    bias[BLANK] = bias[NON_SPEECH] = -30.0
    bias[EOT] = -8.0
    eot_ramp = np.zeros(VOCAB, np.float32)
    eot_ramp[EOT] = 4.0
    const("embed", embed)
    const("embed_t", embed.T.copy())
    const("pos_table", _w(rng, CTX, S, scale=2.0))
    const("bias", bias)
    const("eot_ramp", eot_ramp)
    const("eot_from", np.array(float(EOT_FROM), np.float32))
    const("one", np.array([1], np.int64))
    const("zero", np.array([0], np.int64))
    const("ctx", np.array([CTX], np.int64))
    const("one_s", np.array(1, np.int64))
    const("zero_s", np.array(0, np.int64))
    const("ctx_s", np.array(CTX, np.int64))
    const("axis1", np.array([1], np.int64))
    const("axis0", np.array([0], np.int64))
    const("neg", np.array(-1e9, np.float32))
    const("zero_f", np.array(0.0, np.float32))
    const("scale", np.array(1 / math.sqrt(S), np.float32))

    node("Shape", ["tokens"], "tok_shape")
    node("Gather", ["tok_shape", "one"], "n", axis=0)  # [1]
    node("Add", ["offset", "n"], "end")  # [1]
    node("Squeeze", ["offset", "axis0"], "offset_s")
    node("Squeeze", ["end", "axis0"], "end_s")
    node("Range", ["offset_s", "end_s", "one_s"], "positions")  # [n]
    node("Gather", ["embed", "tokens"], "tok_emb", axis=0)  # [1, n, S]
    node("Gather", ["pos_table", "positions"], "pos_emb", axis=0)  # [n, S]
    node("Add", ["tok_emb", "pos_emb"], "x0")
    # causal mask over the cache rows: row j visible to query i when j <= offset + i
    node("Range", ["zero_s", "ctx_s", "one_s"], "rows")  # [CTX]
    node("Unsqueeze", ["positions", "axis1"], "pos_col")  # [n, 1]
    node("LessOrEqual", ["rows", "pos_col"], "visible")  # [n, CTX]
    node("Where", ["visible", "zero_f", "neg"], "mask")
    x = "x0"
    outs: dict[str, list[str]] = {"k": [], "v": []}
    for layer in range(L):
        lid = const(f"l{layer}", np.array(layer, np.int64))
        new = {}
        for kind in ("k", "v"):
            w = const(f"w{kind}{layer}", _w(rng, S, S, scale=2.0))
            new[kind] = node("MatMul", [x, w], f"{kind}_new{layer}")  # [1, n, S]
            cache = node("Gather", [f"in_n_layer_self_{kind}_cache", lid], f"{kind}_c{layer}",
                         axis=0)  # [1, CTX, S]
            before = node("Slice", [cache, "zero", "offset", "axis1"], f"{kind}_pre{layer}")
            after = node("Slice", [cache, "end", "ctx", "axis1"], f"{kind}_post{layer}")
            written = node("Concat", [before, new[kind], after], f"{kind}_w{layer}", axis=1)
            outs[kind].append(node("Unsqueeze", [written, "axis0"], f"{kind}_out{layer}"))
        q = node("MatMul", [x, const(f"wq{layer}", _w(rng, S, S, scale=2.0))], f"q{layer}")
        kt = node("Transpose", [f"k_w{layer}"], f"kt{layer}", perm=[0, 2, 1])
        sc = node("Mul", [node("MatMul", [q, kt], f"qk{layer}"), "scale"], f"sc{layer}")
        att = node("Softmax", [node("Add", [sc, "mask"], f"scm{layer}")], f"att{layer}",
                   axis=-1)
        ctx_v = node("MatMul", [att, f"v_w{layer}"], f"ctxv{layer}")
        wo = const(f"wo{layer}", _w(rng, S, S, scale=2.0))
        x = node("Add", [x, node("MatMul", [ctx_v, wo], f"so{layer}")], f"xs{layer}")
        ck = node("Gather", ["n_layer_cross_k", lid], f"ck{layer}", axis=0)  # [1, A, S]
        cv = node("Gather", ["n_layer_cross_v", lid], f"cv{layer}", axis=0)
        q2 = node("MatMul", [x, const(f"wq2{layer}", _w(rng, S, S, scale=2.0))], f"q2{layer}")
        ckt = node("Transpose", [ck], f"ckt{layer}", perm=[0, 2, 1])
        att2 = node("Softmax", [node("Mul", [node("MatMul", [q2, ckt], f"qk2{layer}"),
                                             "scale"], f"sc2{layer}")], f"att2{layer}", axis=-1)
        wc = const(f"wc{layer}", _w(rng, S, S, scale=3.0))
        cross = node("MatMul", [node("MatMul", [att2, cv], f"cx{layer}"), wc], f"co{layer}")
        x = node("Tanh", [node("Add", [x, cross], f"xc{layer}")], f"x{layer + 1}")
    node("Concat", outs["k"], "out_n_layer_self_k_cache", axis=0)
    node("Concat", outs["v"], "out_n_layer_self_v_cache", axis=0)
    # tied embeddings, fixed biases, eot rising from EOT_FROM on
    node("MatMul", [x, "embed_t"], "raw")  # [1, n, V]
    node("Cast", ["positions"], "pos_f", to=TensorProto.FLOAT)
    node("Relu", [node("Sub", ["pos_f", "eot_from"], "past_from")], "ramp")
    node("Unsqueeze", ["ramp", "axis1"], "ramp_col")  # [n, 1]
    node("Mul", ["ramp_col", "eot_ramp"], "eot_bias")  # [n, V]
    node("Add", [node("Add", ["raw", "bias"], "biased"), "eot_bias"], "logits")

    cache = [L, 1, CTX, S]
    graph = helper.make_graph(
        nodes, "tiny-whisper-decoder",
        [helper.make_tensor_value_info("tokens", TensorProto.INT64, [1, "n_tokens"]),
         helper.make_tensor_value_info("in_n_layer_self_k_cache", TensorProto.FLOAT, cache),
         helper.make_tensor_value_info("in_n_layer_self_v_cache", TensorProto.FLOAT, cache),
         helper.make_tensor_value_info("n_layer_cross_k", TensorProto.FLOAT, [L, 1, A, S]),
         helper.make_tensor_value_info("n_layer_cross_v", TensorProto.FLOAT, [L, 1, A, S]),
         helper.make_tensor_value_info("offset", TensorProto.INT64, [1])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, "n_tokens", VOCAB]),
         helper.make_tensor_value_info("out_n_layer_self_k_cache", TensorProto.FLOAT, cache),
         helper.make_tensor_value_info("out_n_layer_self_v_cache", TensorProto.FLOAT, cache)],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def build_whisper(folder: Path, *, multilingual: bool = True, seed: int = 3) -> TinyWhisper:
    """Write the tiny model (encoder, decoder, tokens.txt) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    files = TinyWhisper(folder, folder / "tiny-encoder.onnx", folder / "tiny-decoder.onnx",
                        folder / "tiny-tokens.txt", multilingual)
    _encoder(files.encoder, rng, metadata(multilingual))
    _decoder(files.decoder, rng, multilingual)
    files.tokens.write_text("".join(f"{base64.b64encode(t).decode()} {i}\n"
                                    for i, t in enumerate(TEXT)))
    return files
