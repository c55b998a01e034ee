"""Cache figures: what a hit costs, in the tiers of ``runanywhere.store.ModelCache``.

* memory-tier hit: ``cache.get(id)`` on a model already promoted to memory (median of 2,000).
* disk hit of a 244 MiB model: a fresh process opens the cache and calls ``get(id)`` once
  (index row + stat + mmap; the bytes are not read or re-hashed).
* second ``pull`` in a new process: ``runanywhere pull`` of a model already in the cache, whole
  process wall time (interpreter start, imports, catalog, lookup).
* ``import runanywhere``: the import alone, in a fresh interpreter (peers' imports for context).
* listing 10,000 cached models: ``ModelCache(directory).entries()`` in a fresh process, and the CLI
  ``cache ls --json``.

Every figure runs in its own subprocess (``python -m bench.cache_bench child NAME ARGS``, from the
repository root) and is guarded:
until an API exists the figure reads ``unavailable: <error>``. The store API used:
``ModelCache(directory=..., memory_limit=...)``, ``cache.get(id)`` -> entry or None (``.tier``),
``cache.import_path(meta, path)`` with ``meta = runanywhere.catalog.parse_model(dict)`` (or, while
that is missing, the registry's sideload ``ModelRegistry.import_model`` on the same folder),
``cache.entries()``.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import peers

if TYPE_CHECKING:  # the children import only what they measure with
    from harness.nginx import Served

    from .origin import Origin

RESULT_TAG = peers.RESULT_TAG
#: The children run as ``-m bench.cache_bench`` from here, whatever the caller's directory.
REPO_ROOT = Path(__file__).resolve().parent.parent


def _meta_dict(model_id: str, size: int, sha256: str, url: str) -> dict[str, Any]:
    return {"id": model_id, "name": model_id, "type": "custom", "format": "custom",
            "provider": "bench", "version": "1", "size": size, "url": url,
            "hash": "sha256:" + sha256}


def _ra_env() -> dict[str, str]:
    env = peers.base_env()
    env.update(peers.ra_pythonpath())
    return env


def _run(argv: list[str], env: dict[str, str], timeout: float = 600,
         cwd: Path | None = None) -> tuple[float, dict[str, Any]]:
    """Run a subprocess; return (wall seconds, its @@RESULT dict). Raise RuntimeError on failure."""
    t = time.perf_counter()
    try:
        r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout,
                           cwd=cwd)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"timed out after {timeout:.0f} s") from None
    wall = time.perf_counter() - t
    if r.returncode < 0:
        raise RuntimeError(f"killed by signal {-r.returncode}")
    if r.returncode != 0:
        lines = [ln for ln in (r.stderr or r.stdout).strip().splitlines() if ln.strip()]
        raise RuntimeError(lines[-1][-300:] if lines else f"exit {r.returncode}")
    result: dict[str, Any] = {}
    for line in r.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            result = json.loads(line[len(RESULT_TAG):])
    result.setdefault("_stdout", r.stdout)
    return wall, result


def _child(name: str, args: dict[str, Any], timeout: float = 600) -> tuple[float, dict[str, Any]]:
    return _run([sys.executable, "-m", "bench.cache_bench", "child", name, json.dumps(args)],
                _ra_env(), timeout, cwd=REPO_ROOT)


class Figures:
    """Ordered figure rows: ``{"name", "value", "unit", "note"}`` or ``{"name", "unavailable"}``."""

    def __init__(self, log=print) -> None:
        self.rows: list[dict[str, Any]] = []
        self.log = log

    def add(self, name: str, value: float, unit: str, note: str = "") -> None:
        self.rows.append({"name": name, "value": value, "unit": unit, "note": note})
        self.log(f"  {name}: {fmt_value(value, unit)} {note}".rstrip())

    def unavailable(self, name: str, err: object) -> None:
        msg = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        self.rows.append({"name": name, "unavailable": msg[:300]})
        self.log(f"  {name}: unavailable: {msg[:300]}")


def fmt_value(value: float, unit: str) -> str:
    if unit == "s":
        if value < 1e-3:
            return f"{value * 1e6:.1f} µs"
        if value < 1:
            return f"{value * 1e3:.1f} ms"
        return f"{value:.2f} s"
    if unit == "MiB/s":
        return f"{value:.0f} MiB/s"
    return f"{value:g} {unit}"


# ---------------------------------------------------------------------------------------------
# parent side
# ---------------------------------------------------------------------------------------------
def import_times(figs: Figures, reps: int) -> None:
    base = peers.base_env()
    walls = []
    for _ in range(reps):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], env=base, check=True)
        walls.append(time.perf_counter() - t)
    figs.add("python startup (`python -c pass`)", statistics.median(walls), "s",
             "whole process; context for every Python row")
    for module, attr in (("runanywhere", ""), ("runanywhere", "ModelRegistry"),
                         ("huggingface_hub", ""), ("huggingface_hub", "hf_hub_download"),
                         ("pooch", ""), ("requests", "")):
        name = f"`from {module} import {attr}`" if attr else f"`import {module}`"
        try:
            vals = [_import_seconds(module, attr) for _ in range(reps)]
            figs.add(name, statistics.median(vals), "s", "fresh interpreter, median")
        except Exception as e:  # a figure is skipped, never fatal
            figs.unavailable(name, e)


def _import_seconds(module: str, attr: str) -> float:
    """The import alone, in a bare interpreter (nothing of ours imported first)."""
    code = ("import time, importlib; t = time.perf_counter(); "
            f"m = importlib.import_module({module!r}); "
            + (f"getattr(m, {attr!r}); " if attr else "")
            + "print(time.perf_counter() - t)")
    r = subprocess.run([sys.executable, "-c", code], env=_ra_env(), capture_output=True,
                       text=True, timeout=120)
    if r.returncode != 0:
        lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
        raise RuntimeError(lines[-1] if lines else f"exit {r.returncode}")
    return float(r.stdout.strip().splitlines()[-1])


def run_cache_bench(srv: Origin, payload: Served, payload_dir: Path, work: Path, *,
                    reps: int = 3, list_count: int = 10_000, log=print) -> list[dict[str, Any]]:
    figs = Figures(log)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    import_times(figs, max(reps, 5))

    # -- memory and disk hits on an imported model ------------------------------------------------
    hits_dir = work / "hits"
    model_id = f"bench-hit-{payload.name.split('-')[1].split('.')[0]}"
    meta = _meta_dict(model_id, payload.size, payload.sha256, srv.url("full", payload.name))
    size_txt = f"{payload.size / 2**20:.0f} MiB"
    try:
        src = work / "import-src.bin"
        shutil.copyfile(payload_dir / payload.name, src)
        wall, res = _child("import", {"dir": str(hits_dir), "meta": meta, "path": str(src)})
        figs.add(f"import (sideload) of a {size_txt} file", res["seconds"], "s",
                 f"{res.get('via', '?')}: copy + sha256 + fsync + publish")
        opens, disks, mems = [], [], []
        for _ in range(reps):
            _, res = _child("hits", {"dir": str(hits_dir), "id": model_id})
            opens.append(res["open"])
            disks.append(res["disk_hit"])
            mems.append(res["memory_hit"])
        figs.add("open ModelCache (fresh process)", statistics.median(opens), "s")
        figs.add(f"disk hit, {size_txt} model (`get`, fresh process)", statistics.median(disks),
                 "s", f"tier={res.get('disk_tier')}")
        figs.add("memory-tier hit (`get`)", statistics.median(mems), "s",
                 f"median of {res.get('n')}, tier={res.get('memory_tier')}")
    except Exception as e:
        figs.unavailable(f"memory / disk hit ({size_txt})", e)

    # -- first and second pull through the CLI, each a new process --------------------------------
    try:
        home = work / "pull-home"
        catalog = work / "pull-catalog.json"
        catalog.write_text(json.dumps({"format_version": 1, "models": [
            _meta_dict(model_id, payload.size, payload.sha256, srv.url("full", payload.name))]}))
        cli = [*peers.runanywhere_cli_argv(), "--home", str(home), "--catalog", str(catalog)]
        env = _ra_env()
        limit = 120 + payload.size / (10 * 2**20)  # as for the downloads: a hang is a failure
        wall, _ = _run([*cli, "pull", model_id, "--quiet"], env, limit)
        figs.add(f"first `pull` of {size_txt} (CLI, loopback)", wall, "s", "new process")
        walls = [_run([*cli, "pull", model_id, "--quiet"], env, limit)[0] for _ in range(reps)]
        figs.add(f"second `pull` of {size_txt} (CLI, new process)", statistics.median(walls), "s",
                 "already cached: whole process")
    except Exception as e:
        figs.unavailable("first / second `pull` (CLI)", e)

    # -- listing many cached models ---------------------------------------------------------------
    list_dir = work / "list"
    try:
        _, res = _child("populate", {"dir": str(list_dir), "count": list_count,
                                     "src": str(work / "list-src"), "budget": 300.0},
                        timeout=900)
        n = res["count"]
        figs.add(f"populate {n:,} tiny models", res["seconds"], "s",
                 f"{res.get('via', '?')}, non-durable, one process")
        walls = []
        for _ in range(reps):
            _, r = _child("list", {"dir": str(list_dir)})
            walls.append(r["seconds"])
        figs.add(f"list {r['count']:,} cached models (`entries()`, fresh process)",
                 statistics.median(walls), "s", "the call alone")
        try:
            cli = [*peers.runanywhere_cli_argv(), "--home", str(list_dir)]
            outs = [_run([*cli, "cache", "ls", "--json"], _ra_env()) for _ in range(reps)]
            listed = _count_json(outs[-1][1].get("_stdout", ""))
            figs.add(f"`runanywhere cache ls --json` with {n:,} models",
                     statistics.median(w for w, _ in outs), "s",
                     f"whole process; {listed} entries printed")
        except Exception as e:
            figs.unavailable(f"`runanywhere cache ls --json` with {n:,} models", e)
    except Exception as e:
        figs.unavailable(f"list {list_count:,} cached models", e)
    shutil.rmtree(work, ignore_errors=True)
    return figs.rows


def _count_json(text: str) -> str:
    try:
        doc = json.loads(text)
    except ValueError:
        return "?"
    if isinstance(doc, list):
        return f"{len(doc):,}"
    if isinstance(doc, dict):
        for key in ("models", "entries", "items"):
            if isinstance(doc.get(key), list):
                return f"{len(doc[key]):,}"
    return "?"


# ---------------------------------------------------------------------------------------------
# children
# ---------------------------------------------------------------------------------------------
def _report(**kw: Any) -> None:
    print(RESULT_TAG + json.dumps(kw), flush=True)


def _importer(directory: str, durable: bool = True) -> tuple[Any, Any, str]:
    """(cache, import(meta_dict, path), how): ``ModelCache.import_path`` when it exists, else the
    registry's sideload (``ModelRegistry.import_model``, what ``runanywhere import`` runs)
    on a cache in the same folder (the registry's cache folder is its home)."""
    from runanywhere.catalog import parse_model
    from runanywhere.store import ModelCache

    if hasattr(ModelCache, "import_path"):
        cache = ModelCache(directory=directory, memory_limit=2**30, durable=durable)
        return cache, lambda d, p: cache.import_path(parse_model(d), p), "ModelCache.import_path"
    from dataclasses import replace

    from runanywhere import ModelRegistry
    from runanywhere.settings import Settings

    settings = replace(Settings.from_env(), home=Path(directory), durable=durable,
                       memory_limit=2**30, catalogs=())
    reg = ModelRegistry(settings=settings, include_builtin=False)

    def imp(d: dict[str, Any], p: Path) -> Any:
        reg.register_model(d)
        return reg.import_model(d["id"], p)

    return reg.cache, imp, "ModelRegistry.import_model"


def child_import(a: dict[str, Any]) -> None:
    _cache, imp, how = _importer(a["dir"])
    t = time.perf_counter()
    imp(a["meta"], Path(a["path"]))
    _report(seconds=time.perf_counter() - t, via=how)


def child_hits(a: dict[str, Any]) -> None:
    t0 = time.perf_counter()
    from runanywhere.store import ModelCache

    t1 = time.perf_counter()
    cache = ModelCache(directory=a["dir"], memory_limit=2**30)
    t2 = time.perf_counter()
    hit = cache.get(a["id"])
    t3 = time.perf_counter()
    if hit is None:
        sys.exit(f"disk hit expected for {a['id']}, got None")
    n, times = 2000, []
    last = None
    for _ in range(n):
        s = time.perf_counter()
        last = cache.get(a["id"])
        times.append(time.perf_counter() - s)
    times.sort()
    _report(import_s=t1 - t0, open=t2 - t1, disk_hit=t3 - t2, memory_hit=times[n // 2], n=n,
            disk_tier=getattr(hit, "tier", "?"), memory_tier=getattr(last, "tier", "?"))


def child_populate(a: dict[str, Any]) -> None:
    import hashlib

    src = Path(a["src"])
    src.mkdir(parents=True, exist_ok=True)
    cache, imp, how = _importer(a["dir"], durable=False)
    t = time.perf_counter()
    count = 0
    for i in range(int(a["count"])):
        body = f"tiny model {i}\n".encode()
        p = src / f"m{i:05d}.bin"
        p.write_bytes(body)
        imp(_meta_dict(f"tiny-{i:05d}", len(body), hashlib.sha256(body).hexdigest(),
                       f"http://127.0.0.1:9/tiny-{i:05d}.bin"), p)
        count += 1
        if time.perf_counter() - t > float(a["budget"]):
            break
    if hasattr(cache, "close"):
        cache.close()
    _report(seconds=time.perf_counter() - t, count=count, via=how)


def child_list(a: dict[str, Any]) -> None:
    from runanywhere.store import ModelCache

    cache = ModelCache(directory=a["dir"], memory_limit=2**20)
    t = time.perf_counter()
    entries = cache.entries()
    _report(seconds=time.perf_counter() - t, count=len(entries))


CHILDREN = {"import": child_import, "hits": child_hits,
            "populate": child_populate, "list": child_list}

if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "child":
    CHILDREN[sys.argv[2]](json.loads(sys.argv[3]))
