"""TorchScript models through ``torch.jit.load`` (extra ``torch``).

The module is loaded onto the CPU (``map_location="cpu"``, override with ``map_location=``) and put
in eval mode. Options: ``map_location``, ``file`` (which ``.pt``/``.jit`` in a folder).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._base import BuiltinRuntime, pop_options, resolve_model_file

if TYPE_CHECKING:
    from ..catalog.model import ModelMetadata

_OPTIONS = {"map_location", "file"}


class TorchScriptRuntime(BuiltinRuntime):
    name: str = "torchscript"
    extra: str = "torch"
    requires = (("torch",),)
    suffixes = (".pt", ".pth", ".jit", ".torchscript")

    def load(self, path: Path, meta: ModelMetadata | None = None, **options: Any) -> Any:
        pop_options(options, _OPTIONS, self.name)
        torch = self.import_first("torch")
        target = resolve_model_file(path, self.suffixes, options.get("file"), self.name)
        module = torch.jit.load(str(target), map_location=options.get("map_location", "cpu"))
        module.eval()
        return module
