"""Remote models in the catalog: an ``endpoint`` (an OpenAI-compatible API) instead of files.

Nothing is downloaded for them: the registry refuses a pull with a typed error naming the
endpoint, the commands that pull first (``run``) skip the pull, and the adapter comes from the
type (``openai``, ``openai-stt``, ``openai-tts``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runanywhere import ModelRegistry
from runanywhere.catalog import load_catalog_file, parse_catalog
from runanywhere.errors import DownloadError, InvalidCatalogError


def _remote(**over: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": "gpt-x", "name": "GPT X", "type": "llm", "provider": "acme",
                             "endpoint": {"url": "http://127.0.0.1:9/v1", "model": "gpt-x-2",
                                          "api_key_env": "ACME_KEY"}}
    entry.update(over)
    return entry


def _fail(tmp_path: Path, entry: dict[str, Any]) -> str:
    p = tmp_path / "models.json"
    p.write_text(json.dumps({"format_version": 1, "models": [entry]}))
    with pytest.raises(InvalidCatalogError) as ei:
        load_catalog_file(p)
    return str(ei.value)


def test_a_remote_entry_needs_no_files_and_round_trips() -> None:
    (m,) = parse_catalog({"format_version": 1, "models": [_remote()]}, "x")
    assert m.is_remote and m.files == () and m.size == 0 and m.format == "custom"
    assert m.endpoint is not None and m.endpoint.model == "gpt-x-2"
    assert m.endpoint.api_key_env == "ACME_KEY" and m.url == "http://127.0.0.1:9/v1"
    assert m.adapter_name == "openai"
    (again,) = parse_catalog({"format_version": 1, "models": [m.to_dict()]}, "x")
    assert again == m


@pytest.mark.parametrize(("mtype", "adapter"), [("llm", "openai"), ("stt", "openai-stt"),
                                                ("tts", "openai-tts"), ("vad", None)])
def test_the_adapter_of_a_remote_model_follows_its_type(mtype: str, adapter: str | None
                                                        ) -> None:
    (m,) = parse_catalog({"format_version": 1, "models": [_remote(type=mtype)]}, "x")
    assert m.adapter_name == adapter


def test_endpoint_model_defaults_to_the_id_and_a_trailing_slash_goes() -> None:
    (m,) = parse_catalog({"format_version": 1, "models": [
        _remote(endpoint={"url": "https://api.example.com/v1/"})]}, "x")
    assert m.endpoint is not None
    assert (m.endpoint.url, m.endpoint.model, m.endpoint.api_key_env) == (
        "https://api.example.com/v1", "gpt-x", None)


@pytest.mark.parametrize(("over", "needle"), [
    ({"endpoint": "http://h/v1"}, "endpoint must be an object"),
    ({"endpoint": {"url": "ftp://h/v1"}}, "endpoint.url"),
    ({"endpoint": {"url": "s3://bucket/v1"}}, "must be an http(s) URL"),
    ({"endpoint": {"url": "http://user:secret@h/v1"}}, "must not carry credentials"),
    ({"endpoint": {"url": "http://h/v1?key=secret"}}, "without ? or #"),
    ({"endpoint": {"url": "http://h/v1", "model": ""}}, "endpoint.model"),
    ({"endpoint": {"url": "http://h/v1", "model": "a\nb"}}, "endpoint.model"),
    ({"endpoint": {"url": "http://h/v1", "api_key_env": "A-B"}}, "api_key_env"),
    ({"endpoint": {"url": "http://h/v1", "api_key": "sk-123"}}, "no field 'api_key'"),
    ({"url": "http://h/m.gguf"}, "drop url"),
    ({"size": 10, "hash": "ab" * 32}, "drop hash, size"),
])
def test_bad_remote_entries_are_named(tmp_path: Path, over: dict[str, Any], needle: str
                                      ) -> None:
    msg = _fail(tmp_path, _remote(**over))
    assert "model 'gpt-x'" in msg and needle in msg


def test_a_remote_model_is_never_downloaded(tmp_path: Path) -> None:
    reg = ModelRegistry(home=tmp_path / "home", include_builtin=False)
    reg.register_model(_remote())
    for result in (reg.blocking().download_model("gpt-x"), reg.blocking().load_model("gpt-x")):
        assert not result.success and isinstance(result.error, DownloadError)
        assert "remote model (http://127.0.0.1:9/v1)" in str(result.error)
        assert "adapter (openai)" in str(result.error)
    assert not (tmp_path / "home").exists() or not any((tmp_path / "home").rglob("*.gguf"))
