"""Download benchmark: runanywhere against curl, aria2c, urllib, requests, hf_hub_download,
pooch and hf_transfer, all fetching from a private nginx on 127.0.0.1, in one run.

From the repository root:

    python -m bench.run                      # 64M,512M,2G; 3 reps; report in bench/results/
    python -m bench.run --smoke              # 64 MiB, 1 rep, a few peers (CI)
    python -m bench.run --sizes 64M,512M --reps 5 --peers ra-api,curl,aria2c

Order of work: check which peers can run (a runanywhere that does not import yet is listed as
"unavailable: <error>", not an error) -> generate payloads in $RA_BENCH_DIR (default
/tmp/ra-bench; never in the repository) -> context figures (dd with fdatasync, bare sha256) ->
start nginx -> for each repetition, size and route, every peer once, in an order rotated per
repetition -> cache figures -> stop nginx -> results.json, report.md, chart.png and the table.

Exit status: 0 when the harness ran. ``--smoke`` (or ``--strict``) also exits 1 if any peer that
could run failed a download (wrong bytes, error), because that means the harness or a peer broke;
timings never decide the exit status.
"""

from __future__ import annotations

import argparse
import compileall
import datetime as dt
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import traceback
from importlib import metadata
from pathlib import Path

from harness.nginx import nginx_binary

from . import cache_bench, report
from . import peers as peers_mod
from .origin import HF_REPO, SLOW_RATE, Origin
from .payloads import bench_dir, ensure_payloads, human, label, parse_size

HERE = Path(__file__).resolve().parent
DEFAULT_PEERS = list(peers_mod.PEERS)
SMOKE_PEERS = ["ra-api", "ra-cli", "curl", "urllib", "hf_hub", "aria2c"]
CACHE_MODEL_SIZE = 244 * 2**20


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true",
                   help="64 MiB, 1 repetition, a few peers, small cache figures (CI)")
    p.add_argument("--sizes", default=None, help="payload sizes, e.g. 64M,512M,2G")
    p.add_argument("--reps", type=int, default=None, help="repetitions per peer (default 3)")
    p.add_argument("--peers", default=None,
                   help=f"comma-separated subset of: {','.join(peers_mod.PEERS)}")
    p.add_argument("--routes", default="full,slow", help="full,slow (default both)")
    p.add_argument("--slow-max", default="512M",
                   help="largest size also run on the slow route (default 512M)")
    p.add_argument("--no-cache", action="store_true", help="skip the cache figures")
    p.add_argument("--list-count", type=int, default=None,
                   help="cached models for the listing figure (default 10000; smoke 200)")
    p.add_argument("--out", default=None,
                   help="report folder (default bench/results; smoke: $RA_BENCH_DIR/results-smoke)")
    p.add_argument("--live-src", action="store_true",
                   help="import runanywhere from src/ as it is edited, not from a copy taken "
                        "at the start")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 if any runnable peer failed a download (implied by --smoke)")
    a = p.parse_args(argv)
    if a.smoke:
        a.sizes = a.sizes or "64M"
        a.reps = a.reps or 1
        a.peers = a.peers or ",".join(SMOKE_PEERS)
        a.list_count = a.list_count or 200
        a.strict = True
    a.sizes = [parse_size(s) for s in (a.sizes or "64M,512M,2G").split(",") if s.strip()]
    a.reps = a.reps or 3
    a.peers = [s.strip() for s in (a.peers or ",".join(DEFAULT_PEERS)).split(",") if s.strip()]
    unknown = [x for x in a.peers if x not in peers_mod.PEERS]
    if unknown:
        p.error(f"unknown peer(s) {unknown}; choose from {list(peers_mod.PEERS)}")
    a.routes = [r.strip() for r in a.routes.split(",") if r.strip()]
    if not set(a.routes) <= {"full", "slow"}:
        p.error("--routes takes full and/or slow")
    a.slow_max = parse_size(a.slow_max)
    a.list_count = a.list_count or 10_000
    return a


def log(msg: str = "") -> None:
    print(msg, flush=True)


# ---------------------------------------------------------------------------------------------
# context figures
# ---------------------------------------------------------------------------------------------
def disk_write_speed(directory: Path, mib: int) -> dict[str, object]:
    target = directory / "dd-test.bin"
    t = time.perf_counter()
    r = subprocess.run(["dd", "if=/dev/zero", f"of={target}", "bs=1M", f"count={mib}",
                        "conv=fdatasync"], capture_output=True, text=True)
    wall = time.perf_counter() - t
    target.unlink(missing_ok=True)
    name = f"disk durable write (`dd bs=1M count={mib} conv=fdatasync` in {directory})"
    if r.returncode != 0:
        return {"name": name, "value": None, "text": "failed: " + r.stderr.strip()[-200:]}
    dd_line = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ""
    speed = mib / wall
    return {"name": name, "value": speed, "unit": "MiB/s",
            "text": f"{speed:.0f} MiB/s", "dd": dd_line}


def sha256_speed(mib: int = 256) -> dict[str, object]:
    buf = os.urandom(64 * 2**20)
    h = hashlib.sha256()
    t = time.perf_counter()
    for _ in range(mib // 64):
        h.update(buf)
    speed = mib / (time.perf_counter() - t)
    return {"name": "bare `hashlib.sha256` (one core, in memory)", "value": speed,
            "unit": "MiB/s", "text": f"{speed:.0f} MiB/s"}


def versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for dist in ("runanywhere", "requests", "huggingface_hub", "pooch", "hf_transfer"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    for exe, args, pat in (("curl", ["--version"], r"curl (\S+)"),
                           ("aria2c", ["--version"], r"aria2 version (\S+)"),
                           (nginx_binary() or "nginx", ["-v"], r"nginx/(\S+)")):
        try:
            r = subprocess.run([exe, *args], capture_output=True, text=True, timeout=10)
            m = re.search(pat, r.stdout + r.stderr)
            out[Path(exe).name] = m.group(1) if m else "?"
        except OSError:
            out[Path(exe).name] = "not found"
    return out


# ---------------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------------
def snapshot_source(root: Path) -> dict[str, str]:
    """Copy ``src/runanywhere`` so the whole run measures one version of the code."""
    src = peers_mod.REPO_SRC / "runanywhere"
    dest = root / "src-snapshot"
    shutil.rmtree(dest, ignore_errors=True)
    if not src.is_dir():
        return {"source": f"{src} (missing)"}
    shutil.copytree(src, dest / "runanywhere",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    # bytecode now, as an installed package has it: children run with PYTHONDONTWRITEBYTECODE=1
    # and would otherwise compile every module in every run
    compileall.compile_dir(dest, quiet=1)
    h = hashlib.sha256()
    for p in sorted((dest / "runanywhere").rglob("*")):
        if p.is_file() and p.suffix != ".pyc":
            h.update(str(p.relative_to(dest)).encode() + b"\0" + p.read_bytes())
    peers_mod.RA_SRC = dest
    info = {"source": f"copy of src/runanywhere taken at start, tree sha256 {h.hexdigest()[:12]}"}
    r = subprocess.run(["git", "-C", str(HERE.parent), "rev-parse", "--short", "HEAD"],
                       capture_output=True, text=True)
    if r.returncode == 0:
        info["source"] += f", repository at {r.stdout.strip()} (plus uncommitted edits, if any)"
    return info


def write_catalog(path: Path, model_id: str, size: int, sha256: str, url: str) -> None:
    path.write_text(json.dumps({"format_version": 1, "models": [{
        "id": model_id, "name": f"bench payload {human(size)}", "type": "custom",
        "format": "custom", "provider": "bench", "version": "1", "size": size, "url": url,
        "hash": "sha256:" + sha256}]}, indent=1))


def plan(args: argparse.Namespace) -> list[tuple[int, str]]:
    cells = []
    for size in args.sizes:
        for route in args.routes:
            if route == "slow" and size > args.slow_max:
                continue
            cells.append((size, route))
    return cells


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    root = bench_dir()
    out_dir = Path(args.out) if args.out else (
        root / "results-smoke" if args.smoke else HERE / "results")
    out_dir = out_dir.resolve()
    root.mkdir(parents=True, exist_ok=True)
    log(f"runanywhere benchmark{' (smoke)' if args.smoke else ''}: sizes "
        f"{', '.join(human(s) for s in args.sizes)}, {args.reps} rep(s), payloads in {root}")

    # 1. which peers can run (runanywhere from a copy: others edit src/ while we measure)
    src_info = {"source": "live src/ (--live-src)"} if args.live_src else snapshot_source(root)
    log(f"runanywhere: {src_info['source']}")
    log("peers:")
    unavailable: dict[str, str] = {}
    runnable = []
    for name in args.peers:
        why = peers_mod.check_available(peers_mod.PEERS[name])
        if why:
            unavailable[name] = why
            log(f"  {name:12s} unavailable: {why}")
        else:
            runnable.append(name)
            log(f"  {name:12s} ok")

    # 2. payloads and context
    log("payloads:")
    sizes = list(args.sizes)
    cache_size = 0 if args.no_cache else (min(args.sizes) if args.smoke else CACHE_MODEL_SIZE)
    want = sorted(set(sizes + ([cache_size] if cache_size else [])))
    served = ensure_payloads(want, root / "payloads", log=log)
    by_size = {f.size: f for f in served}
    log("context:")
    context = [disk_write_speed(root, 256 if args.smoke else 1024), sha256_speed()]
    context.append({"name": "CPU cores", "value": os.cpu_count(),
                    "text": f"{os.cpu_count()} ({platform.processor() or platform.machine()}), "
                            "shared with other work"})
    load_start = os.getloadavg()
    for c in context:
        log(f"  {c['name']}: {c['text']}")

    cells = plan(args)
    results: dict[str, object] = {
        "meta": {
            "date": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
            "machine": f"{platform.system()} {platform.release()}, {os.cpu_count()} cores",
            "python": platform.python_version(), "smoke": args.smoke, "reps": args.reps,
            "sizes": args.sizes, "routes": args.routes,
            "peers": [p for p in peers_mod.PEERS if p in args.peers],  # report order
            "slow_rate": SLOW_RATE, "slow_max": label(args.slow_max),
            "skipped_slow": [human(s) for s in args.sizes
                             if "slow" in args.routes and s > args.slow_max],
            "labels": {n: p.label for n, p in peers_mod.PEERS.items()},
            "notes": {n: p.note for n, p in peers_mod.PEERS.items()},
            "versions": versions(),
            "rss_method": peers_mod.rss_method(),
            "runanywhere_source": src_info["source"],
        },
        "context": context, "unavailable": unavailable, "measurements": [], "cache": [],
    }
    measurements: list[dict[str, object]] = results["measurements"]  # type: ignore[assignment]
    harness_error = None

    # 3. nginx up, everything measured, nginx down
    runs_dir = root / "runs"
    shutil.rmtree(runs_dir, ignore_errors=True)
    runs_dir.mkdir(parents=True)
    srv = Origin(root / "payloads", served)
    try:
        srv.start()
        log(f"nginx: {srv.base} (config and logs in {srv.tmp})")
        catalogs = {}
        for size, route in cells:
            f = by_size[size]
            cat = root / "catalogs" / f"bench-{label(size)}-{route}.json"
            cat.parent.mkdir(exist_ok=True)
            write_catalog(cat, f"bench-{label(size)}", size, f.sha256, srv.url(route, f.name))
            catalogs[(size, route)] = cat
        total = args.reps * len(cells) * len(runnable)
        i = 0
        for rep in range(args.reps):
            k = rep % len(runnable) if runnable else 0
            order = runnable[k:] + runnable[:k]  # rotate: no peer always runs first
            for size, route in cells:
                f = by_size[size]
                for name in order:
                    i += 1
                    job = peers_mod.Job(
                        size=size, sha256=f.sha256, name=f.name, route=route,
                        url=srv.url(route, f.name), hf_endpoint=srv.hf_endpoint(route),
                        hf_repo=HF_REPO, catalog=catalogs[(size, route)],
                        model_id=f"bench-{label(size)}",
                        workdir=runs_dir / f"{label(size)}-{route}-{name}-{rep}")
                    timeout = 120 + size / (10 * 2**20)
                    m = peers_mod.measure(peers_mod.PEERS[name], job, rep, timeout)
                    shutil.rmtree(job.workdir, ignore_errors=True)
                    os.sync()  # untimed: the next peer starts without our dirty pages
                    measurements.append(m.to_dict())
                    head = (f"[{i:3d}/{total}] {label(size):>5s} {route:4s} {name:12s} "
                            f"rep {rep + 1}:")
                    if m.ok:
                        log(f"{head} {m.wall:7.2f} s {size / 2**20 / m.wall:7.0f} MiB/s  "
                            f"cpu {m.cpu:6.2f} s  rss {m.peak_rss_mib:6.0f} MiB")
                    else:
                        log(f"{head} FAIL ({m.wall:.2f} s): {m.error}")
        if cache_size:
            log("cache figures:")
            results["cache"] = cache_bench.run_cache_bench(
                srv, by_size[cache_size], root / "payloads", root / "cache-bench",
                reps=args.reps if not args.smoke else 1, list_count=args.list_count, log=log)
    except KeyboardInterrupt:
        harness_error = "interrupted"
        log("interrupted: writing what was measured so far")
    except Exception as e:  # report what we have, then fail
        harness_error = f"{type(e).__name__}: {e}"
        traceback.print_exc()
    finally:
        srv.stop()
        shutil.rmtree(runs_dir, ignore_errors=True)

    # 4. report
    results["meta"]["elapsed_s"] = time.perf_counter() - started  # type: ignore[index]
    load_end = os.getloadavg()
    context.append({"name": "load average (1 min) at start / end of the run",
                    "value": [load_start[0], load_end[0]],
                    "text": f"{load_start[0]:.1f} / {load_end[0]:.1f} on {os.cpu_count()} cores"
                            + (" (busy machine: expect noise)"
                               if max(load_start[0], load_end[0]) > (os.cpu_count() or 1)
                               else "")})
    if harness_error:
        results["meta"]["harness_error"] = harness_error  # type: ignore[index]
    rows = report.write_all(results, out_dir)  # type: ignore[arg-type]
    has_chart = (out_dir / "chart.png").exists()
    log(report.text_table(results, rows))  # type: ignore[arg-type]
    if unavailable:
        log("\nnot run:")
        for name, why in unavailable.items():
            log(f"  {peers_mod.PEERS[name].label}: unavailable: {why}")
    log(f"\nreport: {out_dir / 'report.md'}")
    if has_chart:
        log(f"chart:  {out_dir / 'chart.png'}")
    log(f"elapsed: {results['meta']['elapsed_s'] / 60:.1f} min")  # type: ignore[index]

    if harness_error:
        log(f"harness error: {harness_error}")
        return 2
    failed = [m for m in measurements if not m["ok"]]
    if failed and args.strict:
        log(f"{len(failed)} download(s) failed (strict mode)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
