"""TensorFlow Lite / LiteRT models (extra ``tflite``).

Uses ``ai_edge_litert.interpreter.Interpreter`` (the current LiteRT package), falling back to the
older ``tflite_runtime``. The interpreter is returned with its tensors allocated, ready for
``set_tensor`` / ``invoke`` / ``get_tensor``. Options: ``num_threads``, ``file`` (which
``.tflite`` in a folder), ``experimental_delegates`` (passed through).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._base import BuiltinRuntime, pop_options, resolve_model_file

if TYPE_CHECKING:
    from ..catalog.model import ModelMetadata

_OPTIONS = {"num_threads", "file", "experimental_delegates"}


class TFLiteRuntime(BuiltinRuntime):
    name: str = "tflite"
    extra: str = "tflite"
    requires = (("ai_edge_litert", "tflite_runtime"),)
    suffixes = (".tflite", ".lite")

    def load(self, path: Path, meta: ModelMetadata | None = None, **options: Any) -> Any:
        pop_options(options, _OPTIONS, self.name)
        module = self.import_first("ai_edge_litert.interpreter", "tflite_runtime.interpreter")
        target = resolve_model_file(path, self.suffixes, options.get("file"), self.name)
        kwargs: dict[str, Any] = {"model_path": str(target)}
        if options.get("num_threads") is not None:
            kwargs["num_threads"] = int(options["num_threads"])
        if options.get("experimental_delegates") is not None:
            kwargs["experimental_delegates"] = options["experimental_delegates"]
        interpreter = module.Interpreter(**kwargs)
        interpreter.allocate_tensors()
        return interpreter
