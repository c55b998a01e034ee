"""What the transfer and reliability tests do around a server: build a registry with
test-sized timeouts, pull, read a partial's journal, run a pull in a child process (for kill -9
and multi-process cases) and wait for a condition. The servers themselves live elsewhere: the
fault server in ``support.fault_server``, nginx in ``harness.nginx``."""

from __future__ import annotations

import asyncio
import json
import os
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runanywhere import ModelRegistry, Result
from runanywhere.errors import ModelError
from runanywhere.transfer import FetchConfig, Streams
from runanywhere.transfer.config import replace_flat

MiB = 2**20
_REC = struct.Struct("<QQ")  # one journal record of store/partial.py


def fast_config(**overrides: Any) -> FetchConfig:
    """A FetchConfig that splits small files and gives up on a stall within about a second;
    ``overrides`` by their flat names (``connections=``, ``stall_window=``...)."""
    opts: dict[str, Any] = {"stall_window": 1.0, "min_speed": 10_000,
                            "split_threshold": MiB, "min_part": 256 * 1024}
    opts.update(overrides)
    # A fixed number of streams unless a test asks for growth: counts of connections stay exact.
    opts.setdefault("max_connections", opts.get("connections", Streams().connections))
    return replace_flat(FetchConfig(), **opts)


def make_registry(home: Path, catalog: Path, **loader_options: Any) -> ModelRegistry:
    """A registry on ``home`` reading only ``catalog``, with test-sized retries and timeouts.

    The loader's own options (``chunk_size``, ``timeout``, ...) are folded into its one
    ``fetch_config`` (default ``fast_config()``)."""
    seed = {"retry_delay": 0.01, "timeout": 2.0}
    seed.update({k: loader_options.pop(k) for k in
                 ("chunk_size", "retry_attempts", "retry_delay", "timeout") if k in loader_options})
    config = replace_flat(loader_options.pop("fetch_config", None) or fast_config(), **seed)
    return ModelRegistry(home=home, catalogs=[catalog], include_builtin=False,
                         fetch_config=config, **loader_options)


def pull(registry: ModelRegistry, model_id: str) -> Result[Path, ModelError]:
    """``download_model`` run to completion."""
    return asyncio.run(registry.download_model(model_id))


def journal(log_path: Path) -> list[tuple[int, int]]:
    """The (start, end) records of a partial's journal."""
    data = log_path.read_bytes()
    data = data[: len(data) - len(data) % _REC.size]
    return [(s, e) for s, e in _REC.iter_unpack(data)]


def covered(home: Path, key: str = "*") -> int:
    """Bytes the journals in ``home/partials`` say are on disk."""
    total = 0
    for log in (home / "partials").glob(f"{key}.*.log"):
        pos = 0
        for s, e in sorted(journal(log)):
            if e > pos:
                total += e - max(s, pos)
                pos = e
    return total


def partial_files(home: Path, key: str = "*") -> list[str]:
    return sorted(p.name for p in (home / "partials").glob(f"{key}.*"))


def wait_until(predicate: Callable[[], object], timeout: float = 20.0,
               what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


#: A child process that pulls one model, for kill -9 and multi-process tests. Its one argument is
#: a JSON object: home, catalog, model, and optionally fetch (FetchConfig fields), chunk_size,
#: timeout, no_flock (make fcntl.flock a no-op before runanywhere is imported). It prints one JSON
#: line: {"ok", "error", "path"}.
CHILD = r"""
import asyncio, json, sys
cfg = json.loads(sys.argv[1])
if cfg.get("no_flock"):
    import fcntl
    fcntl.flock = lambda *a, **k: None

from runanywhere import ModelRegistry
from runanywhere.transfer import FetchConfig, Streams
from runanywhere.transfer.config import replace_flat
fetch = {"retry_delay": 0.01, "timeout": cfg.get("timeout", 10.0),
         "chunk_size": cfg.get("chunk_size", 1 << 20), **cfg.get("fetch", {})}
reg = ModelRegistry(home=cfg["home"], catalogs=[cfg["catalog"]], include_builtin=False,
                    fetch_config=FetchConfig(**fetch))
r = asyncio.run(reg.download_model(cfg["model"]))
print(json.dumps({"ok": r.success, "error": repr(r.error) if r.error else None,
                  "path": str(r.value) if r.success else None}))
sys.exit(0 if r.success else 1)
"""


def spawn_pull(cfg: dict[str, Any], crash_at: str | None = None,
               marker: Path | None = None) -> subprocess.Popen[str]:
    """Start a child pulling ``cfg["model"]``. ``crash_at`` names a library crash point
    (``RUNANYWHERE_CRASH_AT``): the child writes ``marker`` there and waits for its SIGKILL."""
    env = dict(os.environ)
    if crash_at:
        env["RUNANYWHERE_CRASH_AT"] = crash_at
        env["RUNANYWHERE_CRASH_MARKER"] = str(marker)
    return subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(cfg)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def child_result(proc: subprocess.Popen[str], timeout: float = 60.0) -> dict[str, Any]:
    out, err = proc.communicate(timeout=timeout)
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    assert lines, f"child printed no result (rc={proc.returncode}): {err[-2000:]}"
    result: dict[str, Any] = json.loads(lines[-1])
    return result
