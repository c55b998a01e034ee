"""The ``ctranslate2`` runtime: found through its entry point, loads a real Whisper folder,
refuses what is not one with a clear error."""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path

import pytest

from runanywhere import ModelRegistry
from runanywhere.errors import ModelError, ModelLoadError
from runanywhere.runtimes import available_runtimes, default_runtime_for, get_runtime
from runanywhere_stt_whisper.ct2_runtime import CTranslate2Runtime


def _cannot_load(folder: Path) -> str:
    return re.escape(f"could not load the Whisper model in {folder}")


def _copy_folder(src: Path, dest: Path, skip: str = "") -> Path:
    dest.mkdir()
    for f in src.iterdir():
        if f.name != skip:
            os.link(f, dest / f.name)
    return dest


def test_the_runtime_plugs_in_through_its_entry_point() -> None:
    assert "ctranslate2" in available_runtimes(installed_only=True)
    assert isinstance(get_runtime("ctranslate2"), CTranslate2Runtime)
    assert default_runtime_for("ctranslate2") == "ctranslate2"


def test_loads_a_whisper_folder_as_a_faster_whisper_model(tiny_dir: Path) -> None:
    from faster_whisper import WhisperModel

    model = get_runtime("ctranslate2").load(tiny_dir, None, cpu_threads=1)
    assert isinstance(model, WhisperModel)
    assert model.model.is_multilingual is False
    assert model.supported_languages == ["en"]
    # a path to model.bin means its folder
    assert get_runtime("ctranslate2").load(tiny_dir / "model.bin").model.is_multilingual is False


def test_a_folder_without_tokenizer_is_refused_before_faster_whisper_goes_online(
        tiny_dir: Path, tmp_path: Path) -> None:
    folder = _copy_folder(tiny_dir, tmp_path / "m", skip="tokenizer.json")
    with pytest.raises(ModelError, match=r"lacks tokenizer\.json"):
        CTranslate2Runtime().load(folder)


def test_a_folder_that_is_not_whisper_is_refused(tiny_dir: Path, tmp_path: Path) -> None:
    folder = _copy_folder(tiny_dir, tmp_path / "m", skip="config.json")
    (folder / "config.json").write_text(json.dumps({"bos_token": "<s>"}))
    with pytest.raises(ModelError, match="not a CTranslate2 Whisper model"):
        CTranslate2Runtime().load(folder)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ModelError, match="not a CTranslate2 config"):
        CTranslate2Runtime().load(folder)
    with pytest.raises(ModelError, match="is a folder"):
        CTranslate2Runtime().load(tmp_path / "nowhere")


def test_unknown_options_are_refused(tiny_dir: Path) -> None:
    with pytest.raises(ModelError, match=r"unknown option.*cpu_thread"):
        CTranslate2Runtime().load(tiny_dir, None, cpu_thread=2)


def test_the_registry_loads_a_ctranslate2_model_by_its_format(registry: ModelRegistry) -> None:
    """No runtime named: the format says ctranslate2; the session is kept and reused."""
    first = asyncio.run(registry.load_model("faster-whisper-tiny.en")).unwrap()
    again = asyncio.run(registry.load_model("faster-whisper-tiny.en")).unwrap()
    assert again is first
    assert first.model.is_multilingual is False


def test_damaged_weights_give_a_load_error_naming_the_folder(tiny_dir: Path,
                                                            tmp_path: Path) -> None:
    """CTranslate2's own failure on bad bytes (a cut model.bin, a damaged header) comes back as
    ModelLoadError naming the folder, never as a crash."""
    from support.tamper import xor_range

    folder = _copy_folder(tiny_dir, tmp_path / "cut", skip="model.bin")
    (folder / "model.bin").write_bytes((tiny_dir / "model.bin").read_bytes()[:1 << 20])
    with pytest.raises(ModelLoadError, match=_cannot_load(folder)):
        CTranslate2Runtime().load(folder)

    folder = _copy_folder(tiny_dir, tmp_path / "damaged", skip="model.bin")
    (folder / "model.bin").write_bytes((tiny_dir / "model.bin").read_bytes())
    xor_range(folder / "model.bin", 0, 8)
    with pytest.raises(ModelLoadError, match=_cannot_load(folder)):
        CTranslate2Runtime().load(folder)
