"""Safetensors weights as numpy arrays (extra ``safetensors``).

``load`` returns ``dict[str, numpy.ndarray]`` (``safetensors.numpy.load_file``). A folder holding
one ``.safetensors`` file loads it; a folder of shards (``model-00001-of-00002.safetensors`` ...)
loads them all into one dict; ``file=`` picks one explicitly.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ModelError
from ._base import BuiltinRuntime, pop_options, resolve_model_file

if TYPE_CHECKING:
    from ..catalog.model import ModelMetadata

_OPTIONS = {"file"}
_SHARD = re.compile(r"-\d+-of-\d+\.safetensors$")


class SafetensorsRuntime(BuiltinRuntime):
    name: str = "safetensors"
    extra: str = "safetensors"
    requires = (("safetensors",), ("numpy",))
    suffixes = (".safetensors",)

    def load(self, path: Path, meta: ModelMetadata | None = None, **options: Any) -> Any:
        pop_options(options, _OPTIONS, self.name)
        st = self.import_first("safetensors.numpy")
        path = Path(path)
        if options.get("file") is None and path.is_dir():
            shards = sorted(p for p in path.rglob("*.safetensors") if _SHARD.search(p.name))
            if len(shards) > 1:
                return self._load_shards(st, shards)
        target = resolve_model_file(path, self.suffixes, options.get("file"), self.name)
        return st.load_file(str(target))

    @staticmethod
    def _load_shards(st: Any, shards: list[Path]) -> dict[str, Any]:
        tensors: dict[str, Any] = {}
        for shard in shards:
            part = st.load_file(str(shard))
            clash = set(part) & set(tensors)
            if clash:
                raise ModelError(f"tensor {sorted(clash)[0]!r} appears in two shards ({shard})")
            tensors.update(part)
        return tensors
