"""Loaded models stay inside their memory budget: the least recently used session that no adapter
holds is unloaded to make room; ``unload_model``; what is loaded shows in ``cache ls --json``.

Real sessions: the Silero VAD ONNX file (from the silero-vad wheel) sideloaded under several ids
whose catalog entries declare what each needs at run time."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import hashlib
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from runanywhere import ModelRegistry, Settings
from runanywhere.cli import commands
from runanywhere.cli.main import parse_args
from runanywhere_vad_silero import SileroVADAdapter
from support.silero import silero_onnx_bytes
from support.silero_wheel import silero_data_dir

MiB = 2**20


def registry(home: Path, n: int, memory: int, budget: int) -> ModelRegistry:
    data = silero_onnx_bytes()
    settings = dataclasses.replace(Settings.from_env(), home=home, max_loaded_memory=budget)
    reg = ModelRegistry(settings=settings, include_builtin=False)
    for i in range(n):
        reg.register_model({"id": f"vad-{i}", "name": "vad", "type": "vad", "format": "onnx",
                            "provider": "tests", "version": "1", "size": len(data),
                            "url": "https://origin.invalid/silero_vad.onnx",
                            "hash": f"sha256:{hashlib.sha256(data).hexdigest()}",
                            "requirements": {"memory": memory, "compute": "cpu"}})
        reg.import_model(f"vad-{i}", silero_data_dir() / "silero_vad.onnx")
    return reg


def load(reg: ModelRegistry, model_id: str) -> Any:
    return asyncio.run(reg.load_model(model_id, "onnx")).unwrap()


def loaded(reg: ModelRegistry) -> list[str]:
    return [x.model_id for x in reg.loaded_models()]


def test_the_least_recently_used_session_is_unloaded_for_room(home: Path) -> None:
    reg = registry(home, 5, memory=MiB, budget=3 * MiB)
    for i in range(3):
        load(reg, f"vad-{i}")
    first = load(reg, "vad-0")  # used again: now the most recent
    assert loaded(reg) == ["vad-1", "vad-2", "vad-0"]
    load(reg, "vad-3")
    load(reg, "vad-4")
    assert loaded(reg) == ["vad-0", "vad-3", "vad-4"]  # vad-1 and vad-2 went, LRU first
    assert reg.loaded_budget == (3 * MiB, 3 * MiB)
    assert load(reg, "vad-0") is first  # still the same session
    # An unloaded model's files are no longer held: another process could evict them now.
    assert not reg.cache.held("vad-1") and reg.cache.held("vad-0")


def test_an_adapter_keeps_its_session_loaded(home: Path) -> None:
    reg = registry(home, 3, memory=MiB, budget=2 * MiB)
    vad = SileroVADAdapter(registry=reg)
    assert asyncio.run(vad.load_model("vad-0")).success
    load(reg, "vad-1")
    load(reg, "vad-2")  # must make room, but not by unloading what the adapter runs on
    assert loaded(reg) == ["vad-0", "vad-2"]
    del vad
    gc.collect()
    load(reg, "vad-1")  # the adapter is gone: vad-0 may go now
    assert loaded(reg) == ["vad-2", "vad-1"]


def test_unload_model(home: Path) -> None:
    reg = registry(home, 2, memory=MiB, budget=8 * MiB)
    load(reg, "vad-0")
    load(reg, "vad-1")
    assert reg.unload_model("vad-0") == 1 and loaded(reg) == ["vad-1"]
    assert reg.unload_model("vad-0") == 0
    assert reg.cache.entry("vad-0") is not None  # unloading is not deleting


def test_a_model_bigger_than_the_budget_still_loads_alone(home: Path,
                                                          caplog: pytest.LogCaptureFixture
                                                          ) -> None:
    reg = registry(home, 2, memory=4 * MiB, budget=3 * MiB)
    load(reg, "vad-0")
    load(reg, "vad-1")
    assert loaded(reg) == ["vad-1"]
    assert any("budget" in r.getMessage() for r in caplog.records)


def test_cache_ls_shows_what_is_loaded(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``cache ls`` of a process that holds sessions (``serve``, an app): the LOADED column and,
    with --json, the budget."""
    reg = registry(home, 2, memory=MiB, budget=8 * MiB)
    load(reg, "vad-1")
    assert commands.cmd_cache(parse_args(["--home", str(home), "cache", "ls", "--json"]),
                              reg) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {m["id"]: m["loaded"] for m in doc["models"]} == {"vad-0": False, "vad-1": True}
    assert doc["loaded_memory"]["budget"] == 8 * MiB and doc["loaded_memory"]["used"] == MiB
    assert [m["id"] for m in doc["loaded_memory"]["models"]] == ["vad-1"]
    assert commands.cmd_cache(parse_args(["--home", str(home), "cache", "ls"]), reg) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    table = {r.split("\t")[0]: dict(zip(header.split("\t"), r.split("\t"), strict=True))
             for r in rows}
    assert table["vad-1"]["LOADED"] == "yes" and table["vad-0"]["LOADED"] == ""


def test_a_model_with_several_sessions_costs_once() -> None:
    from runanywhere.runtimes.loaded import LoadedSessions

    released: list[str] = []
    loaded = LoadedSessions(3 * MiB, released.append)
    enc, dec = object(), object()
    loaded.add(("whisper", "onnx", "file=encoder"), enc, 2 * MiB)
    assert loaded.add(("whisper", "onnx", "file=decoder"), dec, 2 * MiB) is dec
    assert loaded.used == 2 * MiB  # one model, one cost
    loaded.add(("vad", "onnx", ""), object(), 2 * MiB)  # no room: whisper goes, both sessions
    assert [m.model_id for m in loaded.listing()] == ["vad"]
    assert released == ["whisper", "whisper"]  # one cache hold per session, each given back


def test_a_load_cancelled_while_taking_its_hold_leaves_no_hold(home: Path) -> None:
    """The hold is taken in a worker thread; a caller cancelled meanwhile must not leave it
    behind when it lands, or the model could never be evicted in this process's lifetime."""
    reg = registry(home, 1, memory=MiB, budget=8 * MiB)
    cache = reg.cache
    evicting = cache.disk.locks.try_evict("vad-0")  # as if another process were evicting it
    assert evicting is not None
    asked = threading.Event()

    class Watched(ThreadPoolExecutor):
        def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
            called = (fn, *args, *getattr(fn, "args", ()))  # to_thread wraps it in a partial
            if any(getattr(f, "__name__", "") == "hold" for f in called):
                asked.set()
            return super().submit(fn, *args, **kwargs)

    async def scenario() -> None:
        pool = Watched(max_workers=2)
        asyncio.get_running_loop().set_default_executor(pool)
        task = asyncio.create_task(reg.load_model("vad-0", "onnx"))
        while not asked.is_set():  # the hold is on its way, and waits for the "eviction"
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        os.close(evicting)  # the eviction ends: the hold lands in its thread
        await asyncio.get_running_loop().run_in_executor(None, lambda: None)
        pool.shutdown(wait=True)
        for _ in range(100):  # the undo runs on this loop once the hold's future is done
            if not cache.held("vad-0"):
                break
            await asyncio.sleep(0.01)

    asyncio.run(scenario())
    assert not cache.held("vad-0")
    assert reg.loaded_models() == []
