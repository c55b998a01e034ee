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
from pathlib import Path
from typing import Any

import pytest

from runanywhere import ModelRegistry, Settings
from runanywhere.adapters.silero_vad import SileroVADAdapter
from runanywhere.cli import commands
from runanywhere.cli.main import parse_args
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
    assert reg.cache.lookup("vad-0") is not None  # unloading is not deleting


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
