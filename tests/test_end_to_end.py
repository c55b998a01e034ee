"""Registry -> cache -> loader -> runtime, with the real Silero model served by real nginx."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runanywhere import ModelRegistry
from runanywhere.errors import ModelLoadError, RuntimeUnavailableError
from support.catalogs import model_entry
from support.invariants import check_cache
from support.silero import silero_onnx_bytes


@pytest.fixture
def vad_catalog(nginx: Any, origin_root: Path, write_catalog: Callable[..., Path]) -> Path:
    data = silero_onnx_bytes()
    (origin_root / "e2e-vad.onnx").write_bytes(data)
    entry = model_entry("vad", f"{nginx.url}/e2e-vad.onnx", len(data),
                        hashlib.sha256(data).hexdigest())
    entry.update(type="vad", format="onnx")
    broken = model_entry("not-onnx", f"{nginx.url}/e2e-junk.onnx", 4096, None)
    broken.update(format="onnx")
    (origin_root / "e2e-junk.onnx").write_bytes(b"\x01" * 4096)
    return write_catalog([entry, broken])


def test_download_then_load_into_onnxruntime(vad_catalog: Path, home: Path) -> None:
    async def go() -> None:
        reg = ModelRegistry(home=home, catalogs=[vad_catalog])
        await reg.initialize()
        seen: list[float] = []
        path = (await reg.download_model("vad", lambda pct, msg: seen.append(pct))).unwrap()
        assert path.read_bytes() == silero_onnx_bytes()
        assert seen and seen[-1] == 100.0
        session = (await reg.load_model("vad", runtime="onnx")).unwrap()
        assert {i.name for i in session.get_inputs()} >= {"input", "state", "sr"}
        # The same model, runtime and options: the very same session, no reload.
        assert (await reg.load_model("vad", runtime="onnx")).unwrap() is session
        assert reg.unload("vad") == 1
        assert (await reg.load_model("vad", runtime="onnx")).unwrap() is not session
        cached = await reg.get_cached_models()
        assert [e.model_id for e in cached] == ["vad"]
        assert await reg.get_cache_size() == len(silero_onnx_bytes())
        assert await reg.clear_cache("vad") == len(silero_onnx_bytes())
        assert await reg.get_cached_models() == []

    asyncio.run(go())
    assert check_cache(home) == []


def test_concurrent_loads_share_one_session_and_one_hold(vad_catalog: Path, home: Path) -> None:
    async def go() -> None:
        reg = ModelRegistry(home=home, catalogs=[vad_catalog])
        a, b = await asyncio.gather(reg.load_model("vad", runtime="onnx"),
                                    reg.load_model("vad", runtime="onnx"))
        assert a.unwrap() is b.unwrap()
        assert reg.cache.held("vad")
        assert reg.unload("vad") == 1
        assert not reg.cache.held("vad")  # no hold leaked by the call that lost the race

    asyncio.run(go())
    assert check_cache(home) == ["vad"]


def test_a_second_process_loads_from_disk_offline(vad_catalog: Path, home: Path,
                                                  nginx: Any) -> None:
    asyncio.run(ModelRegistry(home=home, catalogs=[vad_catalog]).download_model("vad"))
    before = len(nginx.requests())
    reg = ModelRegistry(home=home, catalogs=[vad_catalog], offline=True)
    session = asyncio.run(reg.load_model("vad")).unwrap()  # default runtime for format onnx
    assert session.get_inputs()
    assert len(nginx.requests()) == before  # offline: not one request
    assert check_cache(home) == ["vad"]


def test_load_errors_are_typed(vad_catalog: Path, home: Path) -> None:
    reg = ModelRegistry(home=home, catalogs=[vad_catalog])
    r = asyncio.run(reg.load_model("not-onnx", runtime="onnx"))
    assert isinstance(r.error, ModelLoadError)
    r = asyncio.run(reg.load_model("vad", runtime="torchscript"))
    assert isinstance(r.error, RuntimeUnavailableError)
    assert "runanywhere[torch]" in str(r.error)
