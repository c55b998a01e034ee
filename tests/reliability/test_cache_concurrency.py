"""Many processes on one cache at once: writers of different and the same models, readers that
check every byte they are served, a pruner removing orphans and a process evicting by size.

All start together (each says "ready", then waits for "go" on stdin) and must finish without an
error; afterwards ``check_cache`` holds, each model is there once and shared bytes are stored once.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

from runanywhere.store import ModelCache
from support.invariants import check_cache

CHILD = textwrap.dedent("""
    import hashlib, json, os, sys
    from pathlib import Path
    from runanywhere.store import ModelCache, StagedFile

    home, role, n, rounds = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    cache = ModelCache(directory=home, durable=False, memory_limit=64 << 10)
    staging = home.parent / f"staging-{os.getpid()}"
    staging.mkdir()

    def content(seed, size=20000):
        block = hashlib.sha256(seed.encode()).digest()
        return (block * (size // 32 + 1))[:size]

    def publish(mid, data):
        src = staging / f"{mid}-{os.urandom(4).hex()}"
        src.write_bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        cache.publish(mid, "1", [StagedFile(f"{mid}.bin", src, sha, len(data))],
                      kind="file", source_sha256=sha)

    def check_hit(mid):
        hit = cache.get(mid)
        if hit is not None:
            got = hashlib.sha256(hit.buffer).hexdigest()
            assert got == hit.entry.sha256, f"{mid}: served wrong bytes"
            return 1
        return 0

    print("ready", flush=True)
    sys.stdin.readline()
    served = 0
    if role == "reader":  # read while the writers write, until plenty was served
        rounds = 5000
    for r in range(rounds):
        if role == "reader" and served >= 50:
            break
        if role == "writer":
            publish(f"own-{n}-{r}", content(f"own-{n}-{r}"))
            publish(f"same-{r % 3}", content(f"same-{r % 3}"))  # every writer, same bytes
            publish(f"alias-{n}", content("shared-bytes"))       # other ids, same bytes
            publish("race", content(f"race-{n}-{r}"))           # same id, other bytes
            cache.hold(f"same-{r % 3}")
            served += check_hit(f"same-{r % 3}")
            cache.release(f"same-{r % 3}")
        elif role == "reader":
            for mid in ("same-0", "same-1", "race", f"own-0-{r % 12}", "alias-0"):
                served += check_hit(mid)
            cache.entries()
        elif role == "pruner":
            cache.prune(orphan_age=0)
        elif role == "evictor":
            publish(f"evictable-{r}", content(f"evictable-{r}", 5000))
            cache.prune(10**9, orphan_age=0)
    cache.close()
    print(json.dumps({"served": served}), flush=True)
""")

WRITERS, ROUNDS = 4, 12


def _run_all(home: Path, roles: list[str]) -> list[dict[str, int]]:
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, str(home), role, str(i),
                               str(ROUNDS)], text=True, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for i, role in enumerate(roles)]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    for p in procs:  # start together
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    results = []
    for p, role in zip(procs, roles, strict=True):
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, f"{role} failed:\n{err}"
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def _content(seed: str, size: int = 20000) -> bytes:
    block = hashlib.sha256(seed.encode()).digest()
    return (block * (size // 32 + 1))[:size]


def test_many_processes_one_cache(home: Path) -> None:
    ModelCache(directory=home).close()  # the index exists before the crowd arrives
    roles = ["writer"] * WRITERS + ["reader", "reader", "pruner", "evictor"]
    results = _run_all(home, roles)
    assert sum(r["served"] for r in results[WRITERS:WRITERS + 2]) > 0  # readers saw models

    expected = {f"own-{n}-{r}": _content(f"own-{n}-{r}") for n in range(WRITERS)
                for r in range(ROUNDS)}
    expected |= {f"same-{k}": _content(f"same-{k}") for k in range(3)}
    expected |= {f"alias-{n}": _content("shared-bytes") for n in range(WRITERS)}
    shas = {m: hashlib.sha256(d).hexdigest() for m, d in expected.items()}
    visible = check_cache(home, {m: {f"{m}.bin": s} for m, s in shas.items()})
    assert set(expected) <= set(visible)
    assert {v for v in visible if v not in expected} <= {"race"} | {
        f"evictable-{r}" for r in range(ROUNDS)}

    with ModelCache(directory=home, durable=False) as cache:
        race = cache.get("race")
        assert race is not None
        winners = {hashlib.sha256(_content(f"race-{n}-{r}")).hexdigest()
                   for n in range(WRITERS) for r in range(ROUNDS)}
        assert race.entry.sha256 in winners  # one writer's complete bytes, never a mix
        entries = cache.entries()
        blobs = {f.sha256 for e in entries for f in e.files}
        assert len(blobs) == len(entries) - (WRITERS - 1) - 0  # the aliases share one blob
        assert cache.size() == sum(e.size for e in entries) - (WRITERS - 1) * 20000
        assert sorted(p.name for p in (home / "blobs" / "sha256").iterdir()) == sorted(blobs)
        assert all(r.ok for r in cache.verify())
        cache.prune(orphan_age=0)
        assert list((home / "partials").iterdir()) == []
        assert not [p for p in (home / "models").rglob(".*")]


def test_same_model_published_by_many_processes_at_once(home: Path) -> None:
    """Every process publishes the same models at the same moment: one copy, no error."""
    _run_all(home, ["writer"] * 6)
    with ModelCache(directory=home, durable=False) as cache:
        for k in range(3):
            hit = cache.get(f"same-{k}")
            assert hit is not None and hit.buffer[:] == _content(f"same-{k}")
            assert hit.path.stat().st_nlink == 2  # the blob and this model's link, no stray copy
    check_cache(home)
