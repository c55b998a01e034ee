"""Small ONNX graphs with a Piper voice's interface, for what the one real voice cannot show
(several speakers, a text-phoneme voice, audio made at no cost): ``input`` [1, n] int64,
``input_lengths`` [1], ``scales`` [3] float32 and optionally ``sid`` [1] -> ``output``
[1, 1, samples] float32.

The waveform is a ramp 1..L with L = n * hop * (sid + 1) (hop 8 unless asked): after the
adapter's peak normalization its length still says how many ids went in and which speaker was
asked for.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import onnx
from onnx import TensorProto, helper

HOP = 8


def write_voice(folder: Path, name: str = "synth", *, speakers: dict[str, int] | None = None,
                num_speakers: int | None = None, phoneme_type: str = "espeak",
                id_map: dict[str, list[int]] | None = None, hop: int = HOP,
                **config: Any) -> Path:
    """``<name>.onnx`` and ``<name>.onnx.json`` in ``folder``; returns the .onnx. ``hop``:
    samples per id (and speaker)."""
    n_speakers = num_speakers if num_speakers is not None else max(1, len(speakers or {}))
    with_sid = n_speakers > 1
    inputs = [helper.make_tensor_value_info("input", TensorProto.INT64, [1, "n"]),
              helper.make_tensor_value_info("input_lengths", TensorProto.INT64, [1]),
              helper.make_tensor_value_info("scales", TensorProto.FLOAT, [3])]
    consts = [helper.make_tensor("hop", TensorProto.INT64, [1], [hop]),
              helper.make_tensor("one", TensorProto.INT64, [1], [1]),
              helper.make_tensor("zero_i", TensorProto.INT64, [], [0]),
              helper.make_tensor("step_i", TensorProto.INT64, [], [1]),
              helper.make_tensor("one_f", TensorProto.FLOAT, [], [1.0]),
              helper.make_tensor("shape", TensorProto.INT64, [3], [1, 1, -1]),
              helper.make_tensor("axes", TensorProto.INT64, [1], [0])]
    nodes = [helper.make_node("Mul", ["input_lengths", "hop"], ["base"])]
    if with_sid:
        inputs.append(helper.make_tensor_value_info("sid", TensorProto.INT64, [1]))
        nodes += [helper.make_node("Add", ["sid", "one"], ["sid1"]),
                  helper.make_node("Mul", ["base", "sid1"], ["len1"])]
    else:
        nodes.append(helper.make_node("Identity", ["base"], ["len1"]))
    nodes += [helper.make_node("Squeeze", ["len1", "axes"], ["len"]),
              helper.make_node("Range", ["zero_i", "len", "step_i"], ["r"]),
              helper.make_node("Cast", ["r"], ["rf"], to=TensorProto.FLOAT),
              helper.make_node("Add", ["rf", "one_f"], ["ramp"]),
              helper.make_node("Reshape", ["ramp", "shape"], ["output"])]
    graph = helper.make_graph(nodes, "synthetic-piper", inputs,
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT,
                                                             [1, 1, "samples"])],
                              initializer=consts)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.onnx"
    onnx.save(model, str(path))
    if id_map is None:
        id_map = {"_": [0], "^": [1], "$": [2], " ": [3]}
        for i, c in enumerate("abcdefghijklmnopqrstuvwxyz.,?!:;ˈˌːəɪʊɛæɑɔʌɹðθʃʒŋɚɜ", start=4):
            id_map[c] = [i]
    cfg: dict[str, Any] = {
        "audio": {"sample_rate": 16000}, "espeak": {"voice": "en-us"},
        "phoneme_type": phoneme_type, "num_symbols": 256, "num_speakers": n_speakers,
        "speaker_id_map": speakers or {}, "phoneme_id_map": id_map,
        "inference": {"noise_scale": 0.667, "length_scale": 1, "noise_w": 0.8}}
    cfg.update(config)
    (folder / f"{name}.onnx.json").write_text(json.dumps(cfg, ensure_ascii=False))
    return path
