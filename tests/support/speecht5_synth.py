"""A synthetic SpeechT5 text-to-speech model of the Transformers.js export's exact shape.

``build_speecht5(root)`` writes two folders, random weights from a fixed seed:

``root/tts``      what our adapter and Transformers.js's ``SpeechT5ForTextToSpeech`` load:
                  ``onnx/encoder_model.onnx``, ``onnx/decoder_model_merged.onnx``,
                  ``onnx/decoder_postnet_and_vocoder.onnx``, ``spm_char.model`` (a character
                  SentencePiece model trained here), ``speaker_embeddings.bin`` (512 float32),
                  ``config.json``, ``tokenizer.json`` + ``tokenizer_config.json`` (the layout
                  of Xenova/speecht5_tts's, built from the same vocabulary) and
                  ``preprocessor_config.json``
``root/vocoder``  ``config.json`` + ``onnx/model.onnx`` (the postnet+vocoder graph again), what
                  Transformers.js's ``SpeechT5HifiGan`` loads

The graphs have the input/output names, dtypes and symbolic dimensions of Optimum's SpeechT5
export and compute small real networks, so that every part of the decoding protocol changes the
samples:

- encoder: token embedding + sinusoidal positions + one self-attention layer -> ``encoder_outputs``
  [1, n, H]; ``encoder_attention_mask`` = ones [1, n] int64;
- merged decoder: prenet on the last frame of ``output_sequence`` (with its length as a position)
  and the L2-normalised speaker embedding; per layer causal self-attention over the
  ``past_key_values.{i}.decoder.*`` cache (new key/value appended -> ``present.{i}.decoder.*``) and
  cross-attention over keys/values that an ``If`` on ``use_cache_branch`` takes from
  ``past_key_values.{i}.encoder.*`` (cache branch) or computes from ``encoder_hidden_states``
  (first step), masked by ``encoder_attention_mask``; the cache branch's
  ``present.{i}.encoder.*`` are dummy zeros [1, NH, 1, HD], as in Optimum's merged export;
  ``spectrum`` [r, mel] and ``prob`` [r] = sigmoid(logit + (steps - 1.5 * n)) so speech stops
  after about 1.5 steps per token, and
  ``output_sequence_out`` = ``output_sequence`` + the spectrum's last frame;
- postnet+vocoder: ``spectrogram`` [frames, mel] -> residual 5-tap convolution over time ->
  ``waveform`` [frames * HOP] (tanh, so samples stay in [-1, 1]).

Nothing here is trained: the output is noise-like audio, deterministic for given weights.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

H, NH, LAYERS, MEL, R, SPK, HOP = 16, 2, 2, 80, 2, 512, 32
HD = H // NH
#: Characters the synthetic tokenizer knows (the real spm_char.model's, minus a few).
CHARS = ("etaonihsrdlucmfwgy,pb.vk\"I'TASH;xW-B?CM!qjENPODLGRFYzJ:KUV)(QZ][X/")
STOP_PER_TOKEN = 1.5


@dataclass(frozen=True)
class SynthSpeechT5:
    root: Path
    tts: Path
    vocoder: Path
    vocab: dict[str, int]


class _Graph:
    """Collects nodes and initializers with unique names."""

    def __init__(self) -> None:
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.n = 0

    def name(self, base: str) -> str:
        self.n += 1
        return f"{base}_{self.n}"

    def const(self, value: Any, base: str = "c", dtype: Any = np.float32) -> str:
        name = self.name(base)
        self.inits.append(self.numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, inputs: list[str], out: str | None = None, **attrs: Any) -> str:
        out = out or self.name(op_type.lower())
        self.nodes.append(self.helper.make_node(op_type, inputs, [out], **attrs))
        return out

    def matmul(self, x: str, w: np.ndarray) -> str:
        return self.op("MatMul", [x, self.const(w, "w")])

    def shape_const(self, dims: list[int]) -> str:
        return self.const(dims, "shape", np.int64)

    def heads(self, x: str) -> str:
        """[1, n, H] -> [1, NH, n, HD]."""
        r = self.op("Reshape", [x, self.shape_const([1, -1, NH, HD])])
        return self.op("Transpose", [r], perm=[0, 2, 1, 3])

    def merge_heads(self, x: str) -> str:
        """[1, NH, n, HD] -> [1, n, H]."""
        t = self.op("Transpose", [x], perm=[0, 2, 1, 3])
        return self.op("Reshape", [t, self.shape_const([1, -1, H])])

    def attend(self, q: str, k: str, v: str, bias: str | None = None) -> str:
        kt = self.op("Transpose", [k], perm=[0, 1, 3, 2])
        scores = self.op("Mul", [self.op("MatMul", [q, kt]), self.const(1 / math.sqrt(HD))])
        if bias is not None:
            scores = self.op("Add", [scores, bias])
        return self.op("MatMul", [self.op("Softmax", [scores], axis=-1), v])

    def sinusoid(self, positions: str) -> str:
        """sin(positions[..., None] * freqs): positions float [n] -> [n, H]."""
        freqs = np.exp(-np.arange(H) * math.log(100.0) / H).astype(np.float32)
        col = self.op("Unsqueeze", [positions, self.const([-1], "ax", np.int64)])
        return self.op("Sin", [self.op("Mul", [col, self.const(freqs[None, :])])])


def _weights(rng: np.random.Generator, *shape: int, scale: float = 1.0) -> np.ndarray:
    return (rng.standard_normal(shape) * scale / math.sqrt(shape[0])).astype(np.float32)


def _save(g: _Graph, name: str, inputs: list[Any], outputs: list[Any], path: Path) -> None:
    import onnx

    graph = g.helper.make_graph(g.nodes, name, inputs, outputs, g.inits)
    model = g.helper.make_model(graph, opset_imports=[g.helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


def _encoder(path: Path, vocab_size: int, rng: np.random.Generator) -> None:
    from onnx import TensorProto, helper

    g = _Graph()
    ids = "input_ids"
    emb = g.op("Gather", [g.const(_weights(rng, vocab_size, H, scale=3.0), "embed"), ids],
               axis=0)  # [1, n, H]
    n = g.op("Gather", [g.op("Shape", [ids]), g.const(1, "one", np.int64)], axis=0)
    pos = g.op("Range", [g.const(0.0, "zero"), g.op("Cast", [n], to=TensorProto.FLOAT),
                         g.const(1.0, "step")])
    x = g.op("Add", [emb, g.op("Mul", [g.sinusoid(pos), g.const(0.5)])])
    q, k, v = (g.matmul(x, _weights(rng, H, H)) for _ in range(3))
    attn = g.attend(g.heads(q), g.heads(k), g.heads(v))
    g.op("Tanh", [g.op("Add", [x, g.matmul(g.merge_heads(attn), _weights(rng, H, H))])],
         "encoder_outputs")
    g.op("ConstantOfShape", [g.op("Shape", [ids])], "encoder_attention_mask",
         value=helper.make_tensor("one", TensorProto.INT64, [1], [1]))
    _save(g, "synthetic-speecht5-encoder",
          [helper.make_tensor_value_info(ids, TensorProto.INT64, [1, "encoder_sequence_length"])],
          [helper.make_tensor_value_info("encoder_outputs", TensorProto.FLOAT,
                                         [1, "encoder_sequence_length", H]),
           helper.make_tensor_value_info("encoder_attention_mask", TensorProto.INT64,
                                         [1, "encoder_sequence_length"])],
          path)


def _decoder(path: Path, rng: np.random.Generator) -> None:
    from onnx import TensorProto, helper

    g = _Graph()
    f = TensorProto.FLOAT
    seq, spk, enc, mask = ("output_sequence", "speaker_embeddings", "encoder_hidden_states",
                           "encoder_attention_mask")
    # prenet: the last frame, its position (the sequence length) and the speaker
    last = g.op("Slice", [seq, g.const([-1], "s", np.int64), g.const([2**31], "e", np.int64),
                          g.const([1], "a", np.int64)])  # [1, 1, MEL]
    h = g.op("Relu", [g.op("Add", [g.matmul(last, _weights(rng, MEL, H, scale=2.0)),
                                   g.const(rng.standard_normal(H).astype(np.float32) * 0.1)])])
    t = g.op("Cast", [g.op("Gather", [g.op("Shape", [seq]), g.const([1], "i", np.int64)],
                           axis=0)], to=f)  # [1]: steps so far (initial zero frame included)
    h = g.op("Add", [h, g.sinusoid(t)])
    spk_n = g.op("Unsqueeze", [g.op("LpNormalization", [spk], axis=-1, p=2),
                               g.const([1], "ax", np.int64)])  # [1, 1, SPK]
    x = g.op("Relu", [g.matmul(g.op("Concat", [h, spk_n], axis=-1),
                               _weights(rng, H + SPK, H, scale=2.0))])
    # Cross-attention keys/values: from the cache (later steps) or the encoder (first step).
    # As in Optimum's merged export, the cache branch's present.*.encoder outputs are dummies:
    # a caller must keep the first step's values (Transformers.js does).
    then_nodes, then_outs, else_outs = [], [], []
    else_graph = _Graph()
    else_graph.n = 10_000  # names distinct from the outer graph's
    dummy = np.zeros((1, NH, 1, HD), np.float32)
    for i in range(LAYERS):
        for kind in ("key", "value"):
            past, out = f"past_key_values.{i}.encoder.{kind}", f"enc_{i}_{kind}"
            then_nodes.append(helper.make_node("Identity", [past], [out + "_t"]))
            then_nodes.append(helper.make_node(
                "Constant", [], [out + "_pt"],
                value=g.numpy_helper.from_array(dummy, out + "_dummy")))
            then_outs += [helper.make_tensor_value_info(out + "_t", f, None),
                          helper.make_tensor_value_info(out + "_pt", f, None)]
            proj = else_graph.heads(else_graph.matmul(enc, _weights(rng, H, H)))
            else_graph.op("Identity", [proj], out + "_e")
            else_graph.op("Identity", [proj], out + "_pe")
            else_outs += [helper.make_tensor_value_info(out + "_e", f, None),
                          helper.make_tensor_value_info(out + "_pe", f, None)]
    cross = [name for i in range(LAYERS) for kind in ("key", "value")
             for name in (f"enc_{i}_{kind}", f"present.{i}.encoder.{kind}")]
    g.nodes.append(helper.make_node(
        "If", ["use_cache_branch"], cross,
        then_branch=helper.make_graph(then_nodes, "use_cache", [], then_outs),
        else_branch=helper.make_graph(else_graph.nodes, "no_cache", [], else_outs,
                                      else_graph.inits)))
    bias = g.op("Reshape", [g.op("Mul", [g.op("Sub", [g.const(1.0), g.op("Cast", [mask], to=f)]),
                                         g.const(-1e4)]),
                            g.shape_const([1, 1, 1, -1])])
    outputs = []
    for i in range(LAYERS):
        q, k, v = (g.heads(g.matmul(x, _weights(rng, H, H))) for _ in range(3))
        for kind, new in (("key", k), ("value", v)):
            g.op("Concat", [f"past_key_values.{i}.decoder.{kind}", new],
                 f"present.{i}.decoder.{kind}", axis=2)
        self_attn = g.attend(q, f"present.{i}.decoder.key", f"present.{i}.decoder.value")
        x = g.op("Add", [x, g.matmul(g.merge_heads(self_attn), _weights(rng, H, H))])
        q2 = g.heads(g.matmul(x, _weights(rng, H, H)))
        cross_attn = g.attend(q2, f"enc_{i}_key", f"enc_{i}_value", bias)
        x = g.op("Tanh", [g.op("Add", [x, g.matmul(g.merge_heads(cross_attn),
                                                    _weights(rng, H, H))])])
        for dest in ("decoder", "encoder"):
            for kind in ("key", "value"):
                dims: list[Any] = ["batch_size", NH, "past_decoder_sequence_length + 1"
                                   if dest == "decoder" else "encoder_sequence_length_out", HD]
                outputs.append(helper.make_tensor_value_info(f"present.{i}.{dest}.{kind}", f,
                                                             dims))
    spectrum = g.op("Reshape", [g.matmul(x, _weights(rng, H, R * MEL, scale=2.0)),
                                g.shape_const([R, MEL])], "spectrum")
    tail = g.op("Reshape", [g.op("Gather", [spectrum, g.const(R - 1, "last", np.int64)], axis=0),
                            g.shape_const([1, 1, MEL])])
    g.op("Concat", [seq, tail], "output_sequence_out", axis=1)
    n_enc = g.op("Cast", [g.op("Gather", [g.op("Shape", [enc]), g.const([1], "i", np.int64)],
                               axis=0)], to=f)
    drift = g.op("Sub", [t, g.op("Mul", [n_enc, g.const(STOP_PER_TOKEN)])])
    logit = g.op("Add", [g.op("Reshape", [g.matmul(x, _weights(rng, H, R, scale=0.5)),
                                          g.shape_const([R])]), drift])
    g.op("Sigmoid", [logit], "prob")
    past_inputs = []
    for i in range(LAYERS):
        for dest, length in (("decoder", "past_decoder_sequence_length"),
                             ("encoder", "encoder_sequence_length_out")):
            for kind in ("key", "value"):
                past_inputs.append(helper.make_tensor_value_info(
                    f"past_key_values.{i}.{dest}.{kind}", f, ["batch_size", NH, length, HD]))
    _save(g, "synthetic-speecht5-decoder-merged",
          [helper.make_tensor_value_info("encoder_attention_mask", TensorProto.INT64,
                                         [1, "encoder_sequence_length"]),
           helper.make_tensor_value_info(enc, f, [1, "encoder_sequence_length", H]),
           helper.make_tensor_value_info(spk, f, [1, SPK]),
           helper.make_tensor_value_info(seq, f, [1, "decoder_sequence_length", MEL]),
           *past_inputs,
           helper.make_tensor_value_info("use_cache_branch", TensorProto.BOOL, [1])],
          [helper.make_tensor_value_info("output_sequence_out", f,
                                         [1, "decoder_sequence_length + 1", MEL]),
           helper.make_tensor_value_info("spectrum", f, [R, MEL]),
           helper.make_tensor_value_info("prob", f, [R]),
           *outputs],
          path)


def _vocoder(path: Path, rng: np.random.Generator) -> None:
    from onnx import TensorProto, helper

    g = _Graph()
    s = "spectrogram"
    channels = g.op("Unsqueeze", [g.op("Transpose", [s], perm=[1, 0]),
                                  g.const([0], "ax", np.int64)])  # [1, MEL, frames]
    conv = g.op("Conv", [channels, g.const(
        (rng.standard_normal((MEL, MEL, 5)) / math.sqrt(MEL * 5)).astype(np.float32), "k")],
        pads=[2, 2], kernel_shape=[5])
    post = g.op("Transpose", [g.op("Squeeze", [g.op("Tanh", [conv]),
                                               g.const([0], "ax", np.int64)])], perm=[1, 0])
    s2 = g.op("Add", [s, post])
    frames = g.op("Tanh", [g.matmul(s2, _weights(rng, MEL, HOP, scale=0.3))])
    g.op("Reshape", [frames, g.shape_const([-1])], "waveform")
    _save(g, "synthetic-speecht5-postnet-vocoder",
          [helper.make_tensor_value_info(s, TensorProto.FLOAT,
                                         ["n_spectrums x reduction_factor", MEL])],
          [helper.make_tensor_value_info("waveform", TensorProto.FLOAT, ["n_samples"])], path)


def _spm_model(path: Path) -> dict[str, int]:
    import sentencepiece as spm

    lines = ["The quick brown fox jumps over the lazy dog.", "Hello, world! How are you?",
             CHARS, " ".join(CHARS)] * 10
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=buf, model_type="char", vocab_size=200,
        hard_vocab_limit=False, bos_id=0, pad_id=1, eos_id=2, unk_id=3, character_coverage=1.0,
        minloglevel=2)
    path.write_bytes(buf.getvalue())
    sp = spm.SentencePieceProcessor(model_file=str(path))
    return {sp.id_to_piece(i): i for i in range(sp.get_piece_size())}


def _tokenizer_files(folder: Path, vocab: dict[str, int]) -> None:
    """tokenizer.json / tokenizer_config.json in the layout of Xenova/speecht5_tts's."""
    special = {"<s>", "<pad>", "</s>", "<unk>"}
    added = [{"id": i, "content": p, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True}
             for p, i in sorted(vocab.items(), key=lambda kv: kv[1]) if p in special]
    template = [{"Sequence": {"id": "A", "type_id": 0}},
                {"SpecialToken": {"id": "</s>", "type_id": 0}}]
    tokenizer = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": {"type": "Precompiled", "precompiled_charsmap": None},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "WhitespaceSplit"},
            {"type": "Metaspace", "replacement": "\u2581", "add_prefix_space": True},
            {"type": "Split", "pattern": {"Regex": ""}, "behavior": "Isolated",
             "invert": False}]},
        "post_processor": {"type": "TemplateProcessing", "single": template,
                           "pair": template + template[:1] + template[1:],
                           "special_tokens": {"</s>": {"id": "</s>", "ids": [vocab["</s>"]],
                                                       "tokens": ["</s>"]}}},
        "decoder": {"type": "Metaspace", "replacement": "\u2581", "add_prefix_space": True},
        "model": {"unk_id": vocab["</s>"], "vocab": vocab},
    }
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer, indent=1))
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>",
        "clean_up_tokenization_spaces": True, "model_max_length": 600, "normalize": False,
        "processor_class": "SpeechT5Processor", "sp_model_kwargs": {},
        "tokenizer_class": "SpeechT5Tokenizer"}, indent=1))


def build_speecht5(root: Path, seed: int = 5) -> SynthSpeechT5:
    """Write the synthetic model under ``root`` (``tts/`` and ``vocoder/``)."""
    rng = np.random.default_rng(seed)
    tts, vocoder = root / "tts", root / "vocoder"
    (tts / "onnx").mkdir(parents=True, exist_ok=True)
    vocab = _spm_model(tts / "spm_char.model")
    _encoder(tts / "onnx" / "encoder_model.onnx", len(vocab), rng)
    _decoder(tts / "onnx" / "decoder_model_merged.onnx", rng)
    _vocoder(tts / "onnx" / "decoder_postnet_and_vocoder.onnx", rng)
    speaker = rng.standard_normal(SPK).astype("<f4")
    (tts / "speaker_embeddings.bin").write_bytes(speaker.tobytes())
    _tokenizer_files(tts, vocab)
    (tts / "config.json").write_text(json.dumps({
        "model_type": "speecht5", "architectures": ["SpeechT5ForTextToSpeech"],
        "is_encoder_decoder": True, "hidden_size": H, "encoder_layers": 1,
        "encoder_attention_heads": NH, "decoder_layers": LAYERS, "decoder_attention_heads": NH,
        "num_mel_bins": MEL, "reduction_factor": R, "speaker_embedding_dim": SPK,
        "vocab_size": len(vocab), "bos_token_id": 0, "pad_token_id": 1, "eos_token_id": 2,
        "decoder_start_token_id": 2, "max_text_positions": 600, "use_cache": True,
        "transformers.js_config": {"dtype": "fp32"}}, indent=1))
    (tts / "preprocessor_config.json").write_text(json.dumps({
        "feature_extractor_type": "SpeechT5FeatureExtractor", "sampling_rate": 16000,
        "num_mel_bins": MEL, "reduction_factor": R, "processor_class": "SpeechT5Processor"}))
    (vocoder / "onnx").mkdir(parents=True, exist_ok=True)
    (vocoder / "onnx" / "model.onnx").write_bytes(
        (tts / "onnx" / "decoder_postnet_and_vocoder.onnx").read_bytes())
    (vocoder / "config.json").write_text(json.dumps({
        "model_type": "hifigan", "architectures": ["SpeechT5HifiGan"], "model_in_dim": MEL,
        "sampling_rate": 16000, "upsample_rates": [HOP], "normalize_before": False,
        "transformers.js_config": {"dtype": "fp32"}}, indent=1))
    return SynthSpeechT5(root, tts, vocoder, vocab)
