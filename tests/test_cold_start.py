"""A cached answer starts fast: what ``pull`` (model in the cache) and ``list`` import.

Not a timing test (times swing with the machine's load; ``bench/coldstart.py`` measures them):
the modules a command loads are what make its start slow, and those are exact. A cached ``pull``
needs the catalog, the settings and the cache's index; HTTP, TLS, the fetch, the S3 tier and
the plugins' entry points are for a download, and load only when one starts."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from support.catalogs import model_entry

#: Modules a cached answer never needs: each costs milliseconds to import.
DOWNLOAD_ONLY = ("http.client", "urllib.request", "runanywhere.transfer.http",
                 "runanywhere.transfer.fetch", "runanywhere.transfer.pipeline",
                 "runanywhere.transfer.probe", "runanywhere.shared",
                 "numpy", "onnxruntime", "boto3")
#: What a cached answer needs no more either: an event loop (asyncio brings ssl, subprocess,
#: concurrent.futures...) and the plugins' entry points (importlib.metadata: email, zipfile...).
NO_LOOP_NO_PLUGINS = ("asyncio", "importlib.metadata", "ssl")
#: Nor the other commands, the runtimes, or the cache's writing and upkeep: a cached answer reads.
NOT_FOR_A_READ = ("runanywhere.cli.speak", "runanywhere.cli.transcribe", "runanywhere.cli.run",
                  "runanywhere.runtimes", "runanywhere.plugins", "runanywhere.adapters",
                  "runanywhere.store.prune", "runanywhere.store.archive",
                  "runanywhere.store.sideload", "tarfile", "zipfile", "hashlib", "platformdirs")

_SCRIPT = """
import json, sys
from runanywhere.cli.main import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def _modules_after(*args: str) -> set[str]:
    """The modules a fresh process holds after running the command line ``args``."""
    r = subprocess.run([sys.executable, "-c", _SCRIPT, *args], capture_output=True, text=True,
                       timeout=120, env={**os.environ, "RUNANYWHERE_SHARED_CACHE": ""})
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout.strip().splitlines()[-1])
    assert doc["code"] == 0, r.stdout
    return set(doc["modules"])


def test_a_cached_pull_and_list_load_no_download_machinery(
        nginx: Any, origin_root: Path, write_catalog: Callable[..., Path], home: Path) -> None:
    data = os.urandom(100_000)
    (origin_root / "cold.bin").write_bytes(data)
    cat = write_catalog([model_entry("cold", f"{nginx.url}/cold.bin", len(data),
                                     hashlib.sha256(data).hexdigest())])
    common = ("--home", str(home), "--catalog", str(cat))
    first = _modules_after(*common, "pull", "cold", "--quiet")
    assert "runanywhere.transfer.fetch" in first  # the guard can fail: a download loads it
    assert "asyncio" in first  # and runs an event loop
    # No shared tier configured: a download never imports the S3 tier's package (nor boto3).
    assert sorted(m for m in first if m.split(".")[:2] == ["runanywhere", "shared"]
                  or m.split(".")[0] == "boto3") == []
    for command in (("pull", "cold", "--quiet"), ("list",)):
        loaded = _modules_after(*common, *command)
        assert "runanywhere.store.cache" in loaded  # the command did look at the cache
        assert sorted(loaded.intersection(DOWNLOAD_ONLY)) == [], command
        assert sorted(loaded.intersection(NO_LOOP_NO_PLUGINS)) == [], command
        assert sorted(loaded.intersection(NOT_FOR_A_READ)) == [], command  # --home: no lookup


def test_the_hashing_module_loads_without_the_rest_of_the_store() -> None:
    """The shared tier's uploads need ``store.hashing``: not the cache, the doctor, the prune."""
    r = subprocess.run([sys.executable, "-c", "import json, sys, runanywhere.store.hashing;"
                        " print(json.dumps(sorted(sys.modules)))"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    store = [m for m in json.loads(r.stdout) if m.startswith("runanywhere.store")]
    assert store == ["runanywhere.store", "runanywhere.store.hashing"]


def test_the_registry_imports_no_event_loop_and_no_plugin_table() -> None:
    """``from runanywhere import ModelRegistry``: asyncio loads when a coroutine runs, the
    plugins' entry points when a runtime or an adapter is asked for."""
    r = subprocess.run([sys.executable, "-c", "import json, sys; from runanywhere import"
                        " ModelRegistry; print(json.dumps(sorted(sys.modules)))"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    loaded = set(json.loads(r.stdout))
    assert "runanywhere.registry" in loaded
    assert sorted(loaded.intersection(NO_LOOP_NO_PLUGINS + DOWNLOAD_ONLY)) == []
