"""GGUF files before llama.cpp sees them (the header, what ``info`` shows, bad files with a
correct hash), and loaded models in the memory budget (the estimate, eviction, unloading)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from llm_support import *  # noqa: F403 (its fixtures: there is no conftest.py here)
from llm_support import llm_entry, registry_with, write_catalog
from tiny_gguf import write_chain, write_random

from runanywhere.errors import InvalidModelFileError, ModelError, ModelLoadError
from runanywhere_llm_llamacpp import LlamaAdapter, LlamaModel, read_gguf
from runanywhere_llm_llamacpp.runtime import ModelUnloaded

# -- the header ------------------------------------------------------------------------------------


def test_the_header_says_what_info_shows(chain_gguf: Path) -> None:
    info = read_gguf(chain_gguf)
    assert info.architecture == "llama" and info.version == 3
    assert info.context_length == 4096
    assert info.quantization == "F32"
    assert info.chat_template is not None and info.vocab_size == 266
    # every weight's bytes lie in the file, after the header
    assert info.data_offset + info.weight_bytes <= chain_gguf.stat().st_size
    assert info.parameters == sum(t.n_elements for t in info.tensors) > 0
    assert info.describe() == {
        "architecture": "llama", "parameters": f"{info.parameters / 1e3:.1f}K"
        f" ({info.parameters:,})", "context length": "4096 tokens", "quantization": "F32",
        "chat template": "yes"}


def test_the_kv_cache_estimate_follows_the_context(chain_gguf: Path) -> None:
    info = read_gguf(chain_gguf)
    # 1 layer, 4 KV heads of 68 dims for K and for V, f16: 1 * 4 * (68 + 68) * 2 bytes a token
    assert info.kv_cache_bytes(1) == 4 * 136 * 2
    assert info.kv_cache_bytes(4096) == 4096 * info.kv_cache_bytes(1)


def test_a_model_without_a_chat_template_says_so(tmp_path: Path) -> None:
    info = read_gguf(write_random(tmp_path / "r.gguf"))
    assert info.describe()["chat template"] == "no"


# -- bad files, each with a correct hash -----------------------------------------------------------


def _truncated(tmp: Path, chain: Path) -> Path:
    out = tmp / "truncated.gguf"
    data = chain.read_bytes()
    out.write_bytes(data[: len(data) * 2 // 3])
    return out


def _random(tmp: Path, chain: Path) -> Path:
    out = tmp / "random.gguf"
    out.write_bytes(os.urandom(300_000))
    return out


def _clip(tmp: Path, chain: Path) -> Path:
    return write_chain(tmp / "clip.gguf", arch="clip")


def _unknown_arch(tmp: Path, chain: Path) -> Path:
    return write_chain(tmp / "martian.gguf", arch="martian-lm")


def _header_only(tmp: Path, chain: Path) -> Path:
    out = tmp / "header-only.gguf"
    out.write_bytes(chain.read_bytes()[:20])
    return out


BAD = {
    "truncated": (_truncated, "truncated"),
    "random bytes": (_random, "is not a GGUF file"),
    "an architecture that does not generate text": (_clip,
                                                    "architecture 'clip' does not generate"),
    "an unknown architecture": (_unknown_arch, "architecture 'martian-lm' is not one of the"),
    "a header cut short": (_header_only, "is not a GGUF file"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_file_is_a_typed_error_naming_it_and_nothing_stays_loaded(
        case: str, chain_gguf: Path, tmp_path: Path) -> None:
    make, says = BAD[case]
    bad = make(tmp_path, chain_gguf)
    with pytest.raises(InvalidModelFileError) as direct:
        read_gguf(bad).check_generative()
    assert direct.value.path == bad and says in str(direct.value)
    reg = registry_with(tmp_path / "home", {"bad": bad})  # hash matches: the cache takes it
    llm = LlamaAdapter(reg)
    result = llm.load_model_sync("bad")
    assert isinstance(result.error, InvalidModelFileError)
    assert str(reg.cache.entry("bad").path) in str(result.error)  # names the cached file
    assert says in str(result.error)
    assert reg.loaded_models() == [] and not llm.is_loaded
    with pytest.raises(ModelError):
        llm.generate("hi")


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_file_is_one_line_at_the_command_line(case: str, chain_gguf: Path,
                                                    tmp_path: Path) -> None:
    make, says = BAD[case]
    bad = make(tmp_path, chain_gguf)
    catalog = write_catalog(tmp_path / "catalog.json", [llm_entry("bad", bad)])
    base = [sys.executable, "-m", "runanywhere", "--home", str(tmp_path / "home"), "--catalog",
            str(catalog)]
    subprocess.run([*base, "import", "bad", str(bad)], check=True, capture_output=True,
                   timeout=60)
    r = subprocess.run([*base, "run", "bad", "hello"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 1
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("runanywhere: error: ") and says in lines[0]
    # info shows the catalog's facts and what the file says (or the one thing wrong with it)
    r = subprocess.run([*base, "info", "bad", "--json"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0
    details = json.loads(r.stdout)["details"]
    if "architecture" in says:
        assert details["architecture"] in says
    else:
        assert says in details["error"]


def test_weights_llama_cpp_refuses_are_a_typed_error_not_a_crash(tmp_path: Path) -> None:
    # the header is fine, so only llama.cpp can tell: its refusal is a ModelLoadError naming
    # the file, and the process goes on
    broken = write_chain(tmp_path / "no-q.gguf", drop=["blk.0.attn_q.weight"])
    read_gguf(broken).check_generative()
    reg = registry_with(tmp_path / "home", {"broken": broken})
    result = LlamaAdapter(reg).load_model_sync("broken")
    assert isinstance(result.error, ModelLoadError)
    assert "llama.cpp could not load" in str(result.error) and "no-q.gguf" in str(result.error)
    assert reg.loaded_models() == []


# -- the memory budget -----------------------------------------------------------------------------


def test_the_estimate_counts_weights_and_kv_cache_and_unloading_frees_it(
        chain_gguf: Path, tmp_path: Path) -> None:
    reg = registry_with(tmp_path / "home", {"chain": chain_gguf})
    model = reg.blocking().load_model("chain", "llama", n_ctx=1024).unwrap()
    info = read_gguf(chain_gguf)
    assert isinstance(model, LlamaModel) and model.n_ctx == 1024
    assert reg.loaded_budget[1] == info.weight_bytes + info.kv_cache_bytes(1024)
    bigger = reg.blocking().load_model("chain", "llama", n_ctx=2048).unwrap()
    # one model, however many sessions: counted once (the first session's estimate)
    assert reg.loaded_budget[1] == info.weight_bytes + info.kv_cache_bytes(1024)
    assert reg.unload_model("chain") == 2
    assert reg.loaded_budget[1] == 0 and model.server is None and bigger.server is None


def test_a_model_unloaded_as_soon_as_it_is_loaded_closes(chain_gguf: Path,
                                                          tmp_path: Path) -> None:
    # xllamacpp's server starts its loop after its constructor returns; one destroyed before
    # that never stopped (a hung run): close() waits for the loop, every time
    reg = registry_with(tmp_path / "home", {"chain": chain_gguf})
    for _ in range(10):
        model = reg.blocking().load_model("chain", "llama", n_ctx=256).unwrap()
        assert reg.unload_model("chain") == 1 and model.server is None


def test_the_budget_evicts_an_idle_llm_and_closes_it(chain_gguf: Path, tmp_path: Path) -> None:
    second = write_chain(tmp_path / "second.gguf", ["▁dog", "▁sat", "."])
    info = read_gguf(chain_gguf)
    one = info.weight_bytes + info.kv_cache_bytes(1024)
    reg = registry_with(tmp_path / "home", {"a": chain_gguf, "b": second, "c": chain_gguf},
                        max_loaded_memory=one * 3 // 2)  # room for one model, not two
    blocking = reg.blocking()
    idle = blocking.load_model("a", "llama", n_ctx=1024).unwrap()
    held = LlamaAdapter(reg)
    held.load_model_sync("b", n_ctx=1024).unwrap()  # an adapter runs on b: b stays
    assert [m.model_id for m in reg.loaded_models()] == ["b"]
    assert idle.server is None  # a was unloaded for room, and llama.cpp freed it
    blocking.load_model("c", "llama", n_ctx=1024).unwrap()
    assert sorted(m.model_id for m in reg.loaded_models()) == ["b", "c"]  # over budget,
    assert held.generate("x", max_tokens=3).collect().text  # but never the held one
    reg.unload_model("b")  # unloaded on request, held or not: the adapter says so
    with pytest.raises(ModelUnloaded, match="load the model again"):
        held.generate("x", max_tokens=3).collect()
    reg.unload_model("c")
