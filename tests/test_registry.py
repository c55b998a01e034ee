"""ModelRegistry: catalogs, lookups, singleton, the blocking form."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runanywhere import BlockingRegistry, ModelRegistry
from runanywhere.errors import InvalidCatalogError, ModelNotFoundError, OfflineError
from support.catalogs import model_entry


def test_later_catalogs_replace_earlier_ids(write_catalog: Callable[..., Path], home: Path
                                            ) -> None:
    a = write_catalog([model_entry("silero-vad", "http://127.0.0.1:9/a", 5, None),
                       model_entry("only-a", "http://127.0.0.1:9/x", 5, None)])
    b = write_catalog([model_entry("only-a", "http://127.0.0.1:9/y", 6, None)])
    reg = ModelRegistry(home=home, catalogs=[a, b])
    assert reg.require_model("silero-vad").url == "http://127.0.0.1:9/a"
    assert reg.require_model("only-a").size == 6
    assert "whisper-tiny" in {m.id for m in reg.list_models()}


def test_env_catalogs_joined_with_pathsep(write_catalog: Callable[..., Path], home: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    a = write_catalog([model_entry("one", "http://127.0.0.1:9/a", 5, None)])
    b = write_catalog([model_entry("two", "http://127.0.0.1:9/b", 5, None)])
    monkeypatch.setenv("RUNANYWHERE_CATALOG", os.pathsep.join([str(a), str(b)]))
    reg = ModelRegistry(home=home)
    assert reg.get_model("one") and reg.get_model("two")


def test_filters_and_suggestions(home: Path) -> None:
    reg = ModelRegistry(home=home)
    assert {m.id for m in reg.list_models(type="stt")} == {
        "whisper-tiny", "whisper-base", "whisper-small", "faster-whisper-tiny.en",
        "faster-whisper-base"}
    assert [m.id for m in reg.list_models(search="silero")] == ["silero-vad"]
    assert all(m.format == "onnx" for m in reg.list_models(format="onnx"))
    with pytest.raises(ModelNotFoundError) as ei:
        reg.require_model("whisper-bse")
    assert "whisper-base" in ei.value.suggestions


def test_register_unregister(home: Path) -> None:
    reg = ModelRegistry(home=home, include_builtin=False)
    meta = reg.register_model(model_entry("mine", "http://127.0.0.1:9/m", 3, "ab" * 32))
    assert reg.get_model("mine") == meta
    with pytest.raises(InvalidCatalogError):
        reg.register_model(model_entry("../bad", "http://127.0.0.1:9/m", 3, None))
    assert reg.unregister_model("mine") and reg.get_model("mine") is None


def test_singleton() -> None:
    ModelRegistry.reset_instance()
    assert ModelRegistry.get_instance() is ModelRegistry.get_instance()
    ModelRegistry.reset_instance()


def test_download_of_unknown_model_is_an_error_result(home: Path) -> None:
    reg = ModelRegistry(home=home)
    r = asyncio.run(reg.download_model("nope"))
    assert not r.success and isinstance(r.error, ModelNotFoundError)
    with pytest.raises(ModelNotFoundError):
        r.unwrap()


def test_blocking_registry_works_inside_a_running_loop(
        nginx: Any, payload: Callable[..., tuple[str, str, int]],
        write_catalog: Callable[..., Path], home: Path) -> None:
    name, sha, size = payload("blocking.bin", 300_000)
    cat = write_catalog([model_entry("blk", f"{nginx.url}/{name}", size, sha)])
    blocking = BlockingRegistry(ModelRegistry(home=home, catalogs=[cat]))

    async def notebook_cell() -> Path:
        # Jupyter runs cells inside a loop: asyncio.run() would fail here, ours must not.
        return blocking.download_model("blk").unwrap()  # type: ignore[no-any-return]

    path = asyncio.run(notebook_cell())
    assert path.read_bytes() == (Path(nginx.root) / name).read_bytes()
    assert blocking.get_cache_size() == size
    assert [e.model_id for e in blocking.get_cached_models()] == ["blk"]
    blocking.close()


def test_offline_uncached_is_offline_error(write_catalog: Callable[..., Path], home: Path) -> None:
    cat = write_catalog([model_entry("off", "http://127.0.0.1:9/off", 5, "ab" * 32)])
    r = asyncio.run(ModelRegistry(home=home, catalogs=[cat], offline=True).download_model("off"))
    assert isinstance(r.error, OfflineError)
