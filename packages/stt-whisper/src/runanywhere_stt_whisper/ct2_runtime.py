"""The ``ctranslate2`` runtime: a Whisper model folder in CTranslate2 format, ready to decode.

A CTranslate2 Whisper model is a folder: ``model.bin`` (the weights), ``config.json`` (special
token ids, alignment heads), ``tokenizer.json`` and ``vocabulary.txt``; ``preprocessor_config.json``
is optional (large-v3's 128 mel bins). ``load`` returns a ``faster_whisper.WhisperModel`` on that
folder: CTranslate2's ``models.Whisper`` (at ``.model``) together with the tokenizer and the log-mel
front end that make it usable. Nothing is fetched: a folder without ``tokenizer.json`` is refused
here, where faster-whisper would quietly download one from the Hugging Face Hub.

Options (``registry.load_model(id, runtime="ctranslate2", **options)``):

- ``device``: ``"cpu"`` (default), ``"cuda"`` or ``"auto"``; ``device_index``;
- ``compute_type``: ``"default"`` (the type the weights were saved in, converted by CTranslate2
  when the device cannot run it: float16 becomes float32 on most CPUs), ``"int8"``, ``"float32"``,
  ... (CTranslate2's quantization names);
- ``cpu_threads``: threads per decode (0: CTranslate2's default, 4, or ``OMP_NUM_THREADS``);
- ``num_workers``: decodes that may run at once when several threads transcribe.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runanywhere.errors import ModelError, ModelLoadError
from runanywhere.runtimes import BuiltinRuntime, pop_options

if TYPE_CHECKING:
    from runanywhere.catalog import ModelMetadata

log = logging.getLogger("runanywhere.runtimes.ctranslate2")

_OPTIONS = {"device", "device_index", "compute_type", "cpu_threads", "num_workers"}
#: The files faster-whisper needs in the folder (``vocabulary.txt`` is CTranslate2's own copy of
#: the vocabulary; it is not read when ``tokenizer.json`` is there).
REQUIRED_FILES = ("model.bin", "config.json", "tokenizer.json")


def model_folder(path: Path) -> Path:
    """The folder holding ``model.bin``: ``path`` itself, or the folder of a ``model.bin`` path."""
    path = Path(path)
    folder = path.parent if path.is_file() else path
    if not folder.is_dir():
        raise ModelError(f"a CTranslate2 model is a folder (model.bin, config.json, ...); "
                         f"got {path}")
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise ModelError(f"the CTranslate2 Whisper folder {folder} lacks {', '.join(missing)}")
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelError(f"{folder / 'config.json'}: not a CTranslate2 config ({e})") from e
    if not isinstance(config, dict) or "suppress_ids" not in config:
        raise ModelError(f"{folder} is not a CTranslate2 Whisper model (its config.json has no "
                         "'suppress_ids')")
    return folder


class CTranslate2Runtime(BuiltinRuntime):
    """Loads CTranslate2 Whisper folders as ``faster_whisper.WhisperModel``."""

    name: str = "ctranslate2"
    extra: str = "stt"
    requires = (("ctranslate2",), ("faster_whisper",))
    suffixes = (".bin",)

    def load(self, path: Path, meta: ModelMetadata | None = None, **options: Any) -> Any:
        pop_options(options, _OPTIONS, self.name)
        folder = model_folder(path)
        ct2 = self.import_first("ctranslate2")
        fw = self.import_first("faster_whisper")
        device = options.get("device", "cpu")
        # CTranslate2 warns on stderr when it converts the saved weight type for this device
        # (float16 -> float32 on most CPUs): expected here, and noise in a terminal.
        previous = ct2.get_log_level()
        ct2.set_log_level(logging.ERROR)
        try:
            model = fw.WhisperModel(
                str(folder), device=device, device_index=options.get("device_index", 0),
                compute_type=options.get("compute_type", "default"),
                cpu_threads=int(options.get("cpu_threads", 0)),
                num_workers=int(options.get("num_workers", 1)), local_files_only=True)
        except (RuntimeError, ValueError, OSError) as e:  # CTranslate2's own: bad bytes, device
            raise ModelLoadError(f"CTranslate2 could not load the Whisper model in {folder}: "
                                 f"{e}") from e
        finally:
            ct2.set_log_level(previous)
        log.debug("loaded %s on %s (%s)", folder, device,
                  "multilingual" if model.model.is_multilingual else "English-only")
        return model


__all__ = ["REQUIRED_FILES", "CTranslate2Runtime", "model_folder"]
