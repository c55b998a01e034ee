"""Cache performance figures of ``runanywhere.store.ModelCache`` (a benchmark, not a test).

* memory-tier hit: ``cache.get(id)`` of a model already in memory, median of 5,000 (target < 10 µs)
* disk hit of a 244 MiB model: ``cache.get(id, promote=False)`` in a freshly opened cache, until
  the mmap'd buffer's first and last bytes are read: index row + lstat + mmap, no copy, no
  re-hash (target < 1 ms); first hit and median of 200
* listing 10,000 cached models: ``cache.entries()`` in a freshly opened cache (target < 50 ms);
  the rows are inserted in one transaction for setup (publishing 10,000 files is not the figure)

Usage: ``python bench/cache_figures.py [--json] [--big-mib 244] [--models 10000] [--dir DIR]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runanywhere.store import ModelCache, StagedFile
from runanywhere.store.index import dump_manifest, make_manifest


def _timed(fn: Callable[[], Any], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def _big_file(path: Path, mib: int) -> str:
    """Write ``mib`` MiB of incompressible bytes; return their sha256."""
    h = hashlib.sha256()
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        for i in range(mib):
            chunk = i.to_bytes(8, "little") + block[8:]
            h.update(chunk)
            f.write(chunk)
    return h.hexdigest()


def memory_hit(home: Path) -> dict[str, float]:
    src = home.parent / "small.bin"
    data = os.urandom(64 << 10)
    src.write_bytes(data)
    with ModelCache(directory=home, durable=False) as cache:
        sha = hashlib.sha256(data).hexdigest()
        cache.publish("small", "1", [StagedFile("small.bin", src, sha, len(data))], kind="file",
                      source_sha256=sha)
        assert cache.get("small") is not None  # promote
        hit = cache.get("small")
        assert hit is not None and hit.tier == "memory"
        times = _timed(lambda: cache.get("small"), 5000)
    return {"memory_hit_median_s": statistics.median(times), "memory_hit_p99_s":
            sorted(times)[int(len(times) * 0.99)]}


def disk_hit(home: Path, mib: int) -> dict[str, float]:
    src = home.parent / "big.bin"
    sha = _big_file(src, mib)
    with ModelCache(directory=home, durable=False) as cache:
        cache.publish("big", "1", [StagedFile("big.bin", src, sha, mib << 20)], kind="file",
                      source_sha256=sha)
    cache = ModelCache(directory=home, memory_limit=2**30)

    def hit() -> None:
        h = cache.get("big", promote=False)
        assert h is not None and h.tier == "disk"
        _ = h.buffer[0] + h.buffer[len(h.buffer) - 1]  # usable: first and last page mapped

    first = _timed(hit, 1)[0]
    times = _timed(hit, 200)
    promoted = cache.get("big")
    tier = cache.get("big")
    cache.close()
    assert promoted is not None and tier is not None and tier.tier == "memory"
    return {"disk_hit_first_s": first, "disk_hit_median_s": statistics.median(times),
            "disk_hit_size_bytes": mib << 20}


def listing(home: Path, count: int) -> dict[str, float]:
    with ModelCache(directory=home, durable=False) as cache:
        _bulk_rows(cache, count)
    cache = ModelCache(directory=home)
    t = time.perf_counter()
    entries = cache.entries()
    first = time.perf_counter() - t
    again = _timed(cache.entries, 5)
    cache.close()
    assert len(entries) == count
    return {"list_first_s": first, "list_median_s": statistics.median(again),
            "list_count": count}


def _bulk_rows(cache: ModelCache, count: int) -> None:
    """Index rows for ``count`` tiny models in one transaction (setup only, no files)."""
    now = time.time()
    models, files, blobs = [], [], []
    for i in range(count):
        mid, sha = f"tiny-{i:05d}", hashlib.sha256(str(i).encode()).hexdigest()
        entry = f"models/{mid}/1/m.bin"
        doc = make_manifest(mid, "1", "file", entry, 10, sha, now, "import",
                            [{"path": "m.bin", "sha256": sha, "size": 10}])
        models.append((mid, "1", "file", entry, 10, sha, now, now - i, 0, 0, "import",
                       dump_manifest(doc)))
        files.append((mid, "m.bin", sha, 10, 0))
        blobs.append((sha, 10, 0, now))
    with cache.disk.index.transaction() as db:
        db.executemany("INSERT INTO blobs(sha256, size, mtime_ns, created) VALUES (?,?,?,?)",
                       blobs)
        db.executemany("INSERT INTO models(id, version, kind, entry, size, source_sha256,"
                       " created, last_access, hits, pinned, origin, manifest)"
                       " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", models)
        db.executemany("INSERT INTO model_files(model_id, path, sha256, size, mtime_ns)"
                       " VALUES (?,?,?,?,?)", files)


def run(work: Path, big_mib: int, models: int) -> dict[str, float]:
    figures: dict[str, float] = {}
    for name, fn in (("mem", lambda d: memory_hit(d)), ("disk", lambda d: disk_hit(d, big_mib)),
                     ("list", lambda d: listing(d, models))):
        home = work / name / "home"
        home.mkdir(parents=True)
        figures.update(fn(home))
    return figures


def report(f: dict[str, float]) -> None:
    us, ms = 1e6, 1e3
    print(f"memory-tier hit (get)           median {f['memory_hit_median_s'] * us:7.2f} µs"
          f"   p99 {f['memory_hit_p99_s'] * us:7.2f} µs   (target < 10 µs)")
    print(f"disk hit, {f['disk_hit_size_bytes'] / 2**20:.0f} MiB model        median"
          f" {f['disk_hit_median_s'] * ms:7.3f} ms   first {f['disk_hit_first_s'] * ms:7.3f} ms"
          "   (target < 1 ms; mmap, no copy, no re-hash)")
    print(f"entries() of {f['list_count']:,.0f} models       first  {f['list_first_s'] * ms:7.1f}"
          f" ms   again {f['list_median_s'] * ms:7.1f} ms   (target < 50 ms)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--big-mib", type=int, default=244)
    ap.add_argument("--models", type=int, default=10_000)
    ap.add_argument("--dir", type=Path, help="work folder (default: a temporary one)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ra-cache-figures-", dir=a.dir) as tmp:
        figures = run(Path(tmp), a.big_mib, a.models)
    if a.json:
        print(json.dumps(figures))
    else:
        report(figures)


if __name__ == "__main__":
    main()
