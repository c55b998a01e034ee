"""Catalog format: validation names file, model and field; the built-in catalog."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runanywhere.catalog import load_builtin, load_catalog_file, normalize_hash, parse_catalog
from runanywhere.errors import InvalidCatalogError
from support.catalogs import model_entry

H = "ab" * 32


def _one(**over: Any) -> dict[str, Any]:
    e = model_entry("m", "https://example.org/m.onnx", 10, H)
    e.update(over)
    return e


def _fail(tmp_path: Path, entry: dict[str, Any]) -> str:
    p = tmp_path / "models.json"
    p.write_text(json.dumps({"format_version": 1, "models": [entry]}))
    with pytest.raises(InvalidCatalogError) as ei:
        load_catalog_file(p)
    msg = str(ei.value)
    assert "models.json" in msg
    return msg


@pytest.mark.parametrize("bad_id", ["../x", "..", "a/b", "a\\b", "a\x00b", "Upper", "a b",
                                    "x" * 129, "", ".hidden", "-dash", "wh\u0456sper",
                                    "/etc/passwd", "a..b"])
def test_hostile_ids_are_rejected(tmp_path: Path, bad_id: str) -> None:
    msg = _fail(tmp_path, _one(id=bad_id))
    assert "id" in msg


def test_error_names_file_model_and_field(tmp_path: Path) -> None:
    msg = _fail(tmp_path, _one(size=-5))
    assert msg == "catalog " + str(tmp_path / "models.json") + \
        ", model 'm': size must be a positive integer"


@pytest.mark.parametrize(("field", "value", "needle"), [
    ("size", 0, "size"), ("size", "10", "size"), ("size", True, "size"), ("size", 2**60, "size"),
    ("hash", "md5:abcd", "hash"), ("hash", "sha256:xyz", "hash"), ("hash", "ab" * 31, "hash"),
    ("url", "file:///etc/passwd", "url"), ("url", "ftp://h/x", "url"), ("url", "", "url"),
    ("type", "video", "type"), ("format", "exe", "format"), ("archive", "rar", "archive"),
    ("requirements", {"memory": -1}, "requirements.memory"),
    ("mirrors", ["javascript:alert(1)"], "mirrors[0]"),
    ("adapter", "../x", "adapter"), ("adapter", "Whisper", "adapter"), ("adapter", 3, "adapter"),
])
def test_bad_fields_are_named(tmp_path: Path, field: str, value: Any, needle: str) -> None:
    assert needle in _fail(tmp_path, _one(**{field: value}))


def test_multi_file_paths_must_stay_inside(tmp_path: Path) -> None:
    for bad in ("../x", "/abs", "a/../../b", "a\\b", "", "./a"):
        entry = _one(files=[{"path": bad, "url": "https://h/x", "size": 10}])
        del entry["url"]
        assert "files[0].path" in _fail(tmp_path, entry)


def test_multi_file_size_must_add_up(tmp_path: Path) -> None:
    entry = _one(size=11, files=[{"path": "a", "url": "https://h/a", "size": 10}])
    del entry["url"]
    assert "sum" in _fail(tmp_path, entry)


def test_not_json_and_wrong_version(tmp_path: Path) -> None:
    p = tmp_path / "models.json"
    p.write_text("{not json")
    with pytest.raises(InvalidCatalogError, match="not valid JSON"):
        load_catalog_file(p)
    with pytest.raises(InvalidCatalogError, match="format_version"):
        parse_catalog({"format_version": 2, "models": []}, "x")


def test_hashes_are_normalised_and_camel_case_accepted() -> None:
    assert normalize_hash(H.upper()) == f"sha256:{H}"
    assert normalize_hash(f"SHA256:{H}") == f"sha256:{H}"
    entry = _one(hash=H.upper(), supportedLanguages=["en", "de"])
    (m,) = parse_catalog({"format_version": 1, "models": [entry]}, "x")
    assert m.hash == f"sha256:{H}" and m.supported_languages == ("en", "de")


def test_duplicate_ids_in_one_file_rejected() -> None:
    with pytest.raises(InvalidCatalogError, match="twice"):
        parse_catalog({"format_version": 1, "models": [_one(), _one()]}, "x")


def test_metadata_is_immutable() -> None:
    (m,) = parse_catalog({"format_version": 1, "models": [_one()]}, "x")
    with pytest.raises(AttributeError):
        m.size = 3  # type: ignore[misc]


def test_builtin_catalog_has_the_seed_models() -> None:
    models = {m.id: m for m in load_builtin()}
    assert {"silero-vad", "whisper-tiny", "whisper-base", "whisper-small",
            "speecht5-tts"} <= set(models)
    vad = models["silero-vad"]
    assert vad.size == 2_327_524
    assert vad.hash == "sha256:1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3"
    for mid in ("whisper-tiny", "whisper-base", "whisper-small"):
        paths = [f.path for f in models[mid].files]
        # An encoder alone cannot transcribe: the decoder and the tokens must be there too.
        assert any("encoder" in p for p in paths) and any("decoder" in p for p in paths)
        assert any("tokens" in p for p in paths)
    tts = [f.path for f in models["speecht5-tts"].files]
    assert any("vocoder" in p or "hifigan" in p for p in tts)
    assert any("speaker" in p for p in tts)
    for m in models.values():
        assert m.requirements is not None and m.requirements.memory > 0
        assert m.size == sum(f.expected_size for f in m.files)
        # Every file has an exact size, or a hash with an estimate (SpeechT5's two large files).
        assert all(f.size is not None or (f.hash and f.size_estimate) for f in m.files)
    estimated = [f.path for f in models["speecht5-tts"].files if f.size is None]
    assert estimated == ["onnx/encoder_model.onnx", "onnx/decoder_model_merged.onnx"]


def test_round_trip_to_dict() -> None:
    for m in load_builtin():
        (again,) = parse_catalog({"format_version": 1, "models": [m.to_dict()]}, "builtin")
        assert again == m


@pytest.mark.parametrize(("mtype", "fmt", "adapter", "expected"), [
    ("vad", "onnx", None, "silero-vad"),
    ("stt", "onnx", None, "whisper"),
    ("stt", "ctranslate2", None, "faster-whisper"),
    ("tts", "onnx", None, "speecht5"),
    ("llm", "gguf", None, "llama"),
    ("tts", "onnx", "piper", "piper"),
    ("custom", "custom", None, None),
])
def test_adapter_comes_from_the_entry_or_type_and_format(
        mtype: str, fmt: str, adapter: str | None, expected: str | None) -> None:
    extra = {"adapter": adapter} if adapter else {}
    (m,) = parse_catalog({"format_version": 1, "models": [_one(type=mtype, format=fmt, **extra)]},
                         "x")
    assert m.adapter == adapter
    assert m.adapter_name == expected
    (again,) = parse_catalog({"format_version": 1, "models": [m.to_dict()]}, "x")
    assert again.adapter == adapter
