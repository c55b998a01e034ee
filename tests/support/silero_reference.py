"""silero-vad's own ``get_speech_timestamps`` as a separate program (it needs torch).

    python silero_reference.py CASES.json

Each case is ``{"audio": "x.npy", "kwargs": {...}}`` (float32 samples, and keyword arguments of
``get_speech_timestamps``, ``sampling_rate`` included). Prints ``{"onnx": [...], "jit": [...]}``:
per case the ``[start, end]`` sample pairs, computed with the package's ONNX model (its
``OnnxWrapper`` on onnxruntime) and with its TorchScript model.

It runs in a subprocess whose ``PYTHONPATH`` adds a torch installed with ``pip --target`` (see
scripts/reference-deps.sh), so the test process itself never imports torch.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import torch
from silero_vad import get_speech_timestamps, load_silero_vad


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as f:
        cases = json.load(f)
    torch.set_num_threads(1)
    out = {}
    for backend in ("onnx", "jit"):
        model = load_silero_vad(onnx=backend == "onnx")
        out[backend] = []
        for case in cases:
            audio = torch.from_numpy(np.load(case["audio"]).astype(np.float32))
            found = get_speech_timestamps(audio, model, **case["kwargs"])
            out[backend].append([[int(d["start"]), int(d["end"])] for d in found])
    print(json.dumps(out))


if __name__ == "__main__":
    main()
