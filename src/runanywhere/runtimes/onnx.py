"""ONNX models through onnxruntime (extra ``onnx``).

``load`` builds an ``onnxruntime.InferenceSession`` straight from the cached file (no copy, so
external-data files next to the model are found too). Options:

- ``providers``: execution providers, default ``["CPUExecutionProvider"]`` (explicit, because a
  GPU build of onnxruntime refuses to guess);
- ``provider_options``: passed through;
- ``session_options``: an ``onnxruntime.SessionOptions``, or a dict of its attributes, e.g.
  ``{"intra_op_num_threads": 1, "graph_optimization_level": "ORT_ENABLE_ALL"}``;
- ``file``: which ``.onnx`` to load when the model is a folder holding several.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ModelError
from ._base import BuiltinRuntime, pop_options, resolve_model_file

if TYPE_CHECKING:
    from ..catalog.model import ModelMetadata

_OPTIONS = {"providers", "provider_options", "session_options", "file"}


class OnnxRuntime(BuiltinRuntime):
    name: str = "onnx"
    extra: str = "onnx"
    requires = (("onnxruntime",), ("numpy",))
    suffixes = (".onnx", ".ort")

    def load(self, path: Path, meta: ModelMetadata | None = None, **options: Any) -> Any:
        pop_options(options, _OPTIONS, self.name)
        ort = self.import_first("onnxruntime")
        target = resolve_model_file(path, self.suffixes, options.get("file"), self.name)
        sess_options = self.session_options(ort, options.get("session_options"))
        providers = options.get("providers") or ["CPUExecutionProvider"]
        kwargs: dict[str, Any] = {"sess_options": sess_options, "providers": list(providers)}
        if options.get("provider_options") is not None:
            kwargs["provider_options"] = options["provider_options"]
        return ort.InferenceSession(str(target), **kwargs)

    @staticmethod
    def session_options(ort: Any, given: Any) -> Any:
        """An ``ort.SessionOptions`` from None, an instance, or a dict of attributes."""
        if given is None or isinstance(given, ort.SessionOptions):
            return given
        if not isinstance(given, dict):
            raise ModelError("session_options must be an onnxruntime.SessionOptions or a dict")
        so = ort.SessionOptions()
        for key, value in given.items():
            if not hasattr(so, key):
                raise ModelError(f"onnxruntime.SessionOptions has no attribute '{key}'")
            if key == "graph_optimization_level" and isinstance(value, str):
                value = getattr(ort.GraphOptimizationLevel, value)
            elif key == "execution_mode" and isinstance(value, str):
                value = getattr(ort.ExecutionMode, value)
            setattr(so, key, value)
        return so
