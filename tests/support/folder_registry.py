"""A test double of the registry for a multi-file model: its folder is the download, and each
file is loaded by the real runtime. Used where an adapter is tested through the registry
contract without a cache (the Whisper and SpeechT5 adapters)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from runanywhere.errors import ModelError
from runanywhere.result import Result
from runanywhere.runtimes import get_runtime


class FolderRegistry:
    def __init__(self, folder: Path, fail: ModelError | None = None,
                 steps: Sequence[tuple[float, str]] = ((100.0, "cached"),)) -> None:
        """``fail``: what ``download_model`` answers instead of the folder; ``steps``: the
        progress it reports on the way."""
        self.folder = folder
        self.fail = fail
        self.steps = steps
        self.loads: list[dict[str, Any]] = []

    async def download_model(self, model_id: str,
                             on_progress: Callable[[float, str], None] | None = None
                             ) -> Result[Path, ModelError]:
        if self.fail is not None:
            return Result.err(self.fail)
        if on_progress is not None:
            for pct, stage in self.steps:
                on_progress(pct, stage)
        return Result.ok(self.folder)

    async def load_model(self, model_id: str, runtime: str | None = None, **options: Any
                         ) -> Result[Any, ModelError]:
        self.loads.append({"runtime": runtime, **options})
        try:
            return Result.ok(get_runtime(runtime or "onnx").load(self.folder, None, **options))
        except ModelError as e:
            return Result.err(e)
