"""kill -9 during publish, replace, remove, evict and gc leaves a consistent cache.

Two ways to kill: at a named step (``RUNANYWHERE_CRASH_AT`` makes the child report the step on
stdout and hang there, the parent reads that line and SIGKILLs it), and at random moments of a
child that loops publishing, replacing, evicting and pruning. After every kill: ``check_cache``
(``PRAGMA integrity_check`` and every visible entry hashes right), the cache opens and works, and
a prune leaves no orphan behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from runanywhere.store import ModelCache, StagedFile
from support.invariants import check_cache

CHILD = textwrap.dedent("""
    import hashlib, json, os, random, sys
    from pathlib import Path
    from runanywhere.store import ModelCache, StagedFile

    home, op, arg = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    cache = ModelCache(directory=home, durable=op != "loop")
    staging = home.parent / "staging"
    staging.mkdir(exist_ok=True)

    def publish(mid, version, data):
        src = staging / f"{mid}-{os.getpid()}-{random.random()}"
        src.write_bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        cache.publish(mid, version, [StagedFile(f"{mid}.bin", src, sha, len(data))],
                      kind="file", source_sha256=sha)

    if op == "publish":
        publish("m", arg, os.urandom(20000))
    elif op == "remove":
        cache.delete("m")
    elif op == "evict":
        cache.prune(0)
    elif op == "loop":
        rng = random.Random(int(arg))
        shared = os.urandom(5000)
        print("ready", flush=True)
        while True:
            mid = f"m{rng.randrange(6)}"
            r = rng.random()
            if r < 0.5:
                data = shared if rng.random() < 0.3 else os.urandom(rng.randrange(1, 30000))
                publish(mid, str(rng.randrange(3)), data)
            elif r < 0.7:
                cache.delete(mid)
            elif r < 0.85:
                cache.prune(rng.randrange(0, 60000), orphan_age=0)
            else:
                hit = cache.get(mid)
                if hit is not None and hit.buffer is not None:
                    hashlib.sha256(hit.buffer).hexdigest()
    print("done", flush=True)
""")


def _run_until(home: Path, op: str, arg: str, step: str) -> None:
    """Run the child until it reports ``step``; then SIGKILL it there."""
    env = {**os.environ, "RUNANYWHERE_CRASH_AT": step, "RUNANYWHERE_CRASH_MARKER": "/dev/stdout"}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(home), op, arg], env=env,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    line = child.stdout.readline().strip()  # blocks until the child stands at the step
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert line == step, f"child never reached {step} (said {line!r})"


def _assert_clean_after_prune(home: Path) -> None:
    """Everything a crash left behind is an orphan that prune removes."""
    with ModelCache(directory=home, durable=False) as cache:
        cache.prune(orphan_age=0)
        ids = {e.model_id for e in cache.entries()}
        refs = cache.disk.index.blob_refs()
        assert {p.name for p in (home / "blobs" / "sha256").iterdir()} == refs
        assert {p.name for p in (home / "models").iterdir()} == ids
        assert not [p for p in (home / "models").rglob(".*")], "temporary folders left"
        assert {p.stem for p in (home / "manifests").glob("*.json")} == ids
        assert list((home / "partials").iterdir()) == []
        assert all(r.ok for r in cache.verify())
    assert sorted(ids) == check_cache(home)


def _publish_v1(home: Path) -> str:
    data = os.urandom(10000)
    src = home.parent / "v1.bin"
    src.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    with ModelCache(directory=home) as cache:
        cache.publish("m", "1", [StagedFile("m.bin", src, sha, len(data))], kind="file",
                      source_sha256=sha)
    return sha


def _visible_sha(home: Path) -> str | None:
    with ModelCache(directory=home, durable=False) as cache:
        hit = cache.get("m")
        return None if hit is None else hashlib.sha256(hit.buffer).hexdigest()


PUBLISH_STEPS = ["publish:blobs", "publish:tmp-folder", "publish:folder", "publish:manifest",
                 "index:put-uncommitted", "publish:committed"]


@pytest.mark.parametrize("step", PUBLISH_STEPS)
def test_kill_during_first_publish(home: Path, step: str) -> None:
    _run_until(home, "publish", "1", step)
    visible = check_cache(home)
    assert visible == (["m"] if step == "publish:committed" else [])
    _assert_clean_after_prune(home)


@pytest.mark.parametrize("step", PUBLISH_STEPS)
def test_kill_while_publishing_a_new_version(home: Path, step: str) -> None:
    old = _publish_v1(home)
    _run_until(home, "publish", "2", step)
    check_cache(home)
    sha = _visible_sha(home)
    if step == "publish:committed":
        assert sha is not None and sha != old
    else:
        assert sha == old  # the old version stays visible and intact until the commit
    _assert_clean_after_prune(home)


@pytest.mark.parametrize("step", [*PUBLISH_STEPS[:2], "publish:hidden-old", *PUBLISH_STEPS[2:]])
def test_kill_while_replacing_the_same_version_with_other_bytes(home: Path, step: str) -> None:
    old = _publish_v1(home)
    _run_until(home, "publish", "1", step)
    check_cache(home)
    sha = _visible_sha(home)
    if step == "publish:committed":
        assert sha is not None and sha != old
    elif step in PUBLISH_STEPS[:2]:
        assert sha == old
    else:
        assert sha is None  # hidden while its folder is swapped: never the wrong bytes
    _assert_clean_after_prune(home)


@pytest.mark.parametrize("step", ["index:delete-uncommitted", "remove:index", "remove:files",
                                  "gc:unlink"])
def test_kill_during_remove(home: Path, step: str) -> None:
    old = _publish_v1(home)
    _run_until(home, "remove", "", step)
    check_cache(home)
    sha = _visible_sha(home)
    assert sha == (old if step == "index:delete-uncommitted" else None)
    _assert_clean_after_prune(home)


@pytest.mark.parametrize("step", ["evict:locked", "remove:index", "gc:unlink"])
def test_kill_during_eviction(home: Path, step: str) -> None:
    _publish_v1(home)
    _run_until(home, "evict", "", step)
    check_cache(home)
    _assert_clean_after_prune(home)


def test_kill_at_random_moments_of_a_busy_child(home: Path) -> None:
    rng = random.Random(1234)
    for round_ in range(20):
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(home), "loop", str(round_)],
                                 stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        with pytest.raises(subprocess.TimeoutExpired):
            child.wait(timeout=rng.uniform(0.0, 0.4))  # the kill moment (the child never ends)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        visible = check_cache(home)
        with ModelCache(directory=home, durable=False) as cache:  # opens and serves
            assert sorted(e.model_id for e in cache.entries()) == visible
            for mid in visible:
                hit = cache.get(mid)
                assert hit is not None and hit.buffer is not None
                assert hashlib.sha256(hit.buffer).hexdigest() == hit.entry.sha256
    _assert_clean_after_prune(home)
    manifests = [json.loads(p.read_text()) for p in (home / "manifests").glob("*.json")]
    assert all(m["id"] in visible for m in manifests)
