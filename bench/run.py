"""Download benchmark: runanywhere against curl, aria2c, urllib, requests, hf_hub_download,
pooch and hf_transfer, all fetching from a private nginx on 127.0.0.1 shaped like the real world
(HTTPS, a Hub that answers 302 to a CDN, per-connection caps), in one run.

From the repository root:

    python -m bench.run                      # the cases below, 3 reps; report in bench/results/
    python -m bench.run --smoke              # every route once at 32 MiB, a few peers (CI)
    python -m bench.run --cases https-75:512M --reps 5 --peers ra-api,hf_transfer

Cases (route:size, each with its peers; ``origin.ROUTES`` says what a route is):
``https:2G`` (HTTPS, Hub 302, CDN at full speed), ``https-75:512M`` and ``https-20:256M`` (the
CDN capped per connection), ``http:2G`` (plain http, direct: what TLS and the redirect cost),
``https-far:256M`` (Hub and CDN 80 ms away: a second nginx behind the far-link proxy).

``--busy`` runs the same under a fixed background load: one CPU hog (a process spinning on one
core, started before the context figures and stopped by its PID at the end), its report in
``results/busy/``. Each case states its ceiling (the slowest of the link as 32 connections see
it, the durable disk write and sha256 on one core, all measured in the same run) and each peer's
speed as a fraction of it.

Order of work: check which peers can run (a runanywhere that does not import yet is listed as
"unavailable: <error>", not an error) -> generate payloads in $RA_BENCH_DIR (default
/tmp/ra-bench; never in the repository) -> context figures (dd with fdatasync, bare sha256, the
page-cache fill cost) -> start nginx -> for each repetition and case, every peer once, in an
order rotated per repetition, each after the memory state settled (``memstate.py``) -> cache
figures -> stop nginx -> the team case (``fleet.py``) -> results.json, report.md, chart.png.

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
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from harness import accesslog
from harness.accesslog import Record
from harness.nginx import nginx_binary

from . import cache_bench, fleet, memstate, report
from . import peers as peers_mod
from .origin import ALIASES, ROUTES, Origin
from .payloads import bench_dir, ensure_payloads, human, label, parse_size

HERE = Path(__file__).resolve().parent
CACHE_MODEL_SIZE = 244 * 2**20
#: route -> (default size, peers). The 2 GiB cases leave pooch out (40 s a run over plain http).
#: The 2 GiB runs each wait ~15 s for the memory to settle, so their lists are short (the whole
#: run stays under 30 min on 2 cores): non-durable and CLI rows only at 512 MiB.
CASES: dict[str, tuple[str, list[str]]] = {
    "https": ("2G", ["ra-api", "curl", "aria2c", "urllib", "requests", "hf_hub", "hf_transfer"]),
    "https-75": ("512M", ["ra-api", "ra-api-nd", "ra-cli", "curl", "aria2c", "urllib",
                          "requests", "hf_hub", "pooch", "hf_transfer"]),
    "https-20": ("256M", ["ra-api", "curl", "aria2c", "urllib", "hf_hub", "hf_transfer"]),
    "http": ("2G", ["ra-api", "curl", "urllib", "requests"]),
    "https-far": ("256M", ["ra-api", "curl", "aria2c", "urllib", "hf_hub", "hf_transfer"]),
}
#: The most connections a download may use (runanywhere's max_connections): what a route's
#: link is worth to one download when each connection is capped.
MAX_CONNECTIONS = 32
SMOKE_SIZE = "32M"
SMOKE_PEERS = ["ra-api", "ra-cli", "curl", "aria2c", "urllib", "hf_hub", "hf_transfer"]


@dataclass(frozen=True)
class Case:
    route: str
    size: int
    peers: tuple[str, ...]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true",
                   help=f"every route once at {SMOKE_SIZE}, a few peers, small cache figures and "
                        "team case, no settling (CI)")
    p.add_argument("--cases", default=None,
                   help="route[:size],... (default: "
                        + ",".join(f"{r}:{sz}" for r, (sz, _) in CASES.items()) + ")")
    p.add_argument("--reps", type=int, default=None, help="repetitions per peer (default 3)")
    p.add_argument("--peers", default=None,
                   help="comma-separated peers for every case (default: each case's own list) "
                        f"from: {','.join(peers_mod.PEERS)}")
    p.add_argument("--no-settle", dest="settle", action="store_false",
                   help="start each run at once, without waiting for the memory state to settle "
                        "(memstate.py: the old protocol; numbers then depend on run order)")
    p.add_argument("--ra-config", default="",
                   help="FetchConfig fields for the runanywhere API peers, e.g. "
                        "connections=4,chunk_size=4M (experiments; the report names them)")
    p.add_argument("--no-cache", action="store_true", help="skip the cache figures")
    p.add_argument("--no-team", action="store_true", help="skip the team case (fleet.py)")
    p.add_argument("--team-size", default=None, help="the team case's model (default 512M)")
    p.add_argument("--list-count", type=int, default=None,
                   help="cached models for the listing figure (default 10000; smoke 200)")
    p.add_argument("--out", default=None,
                   help="report folder (default bench/results; smoke: $RA_BENCH_DIR/results-smoke)")
    p.add_argument("--live-src", action="store_true",
                   help="import runanywhere from src/ as it is edited, not from a copy taken "
                        "at the start")
    p.add_argument("--busy", action="store_true",
                   help="run under a fixed background load: one CPU hog, started and stopped "
                        "by this harness (report in results/busy/)")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 if any runnable peer failed a download (implied by --smoke)")
    a = p.parse_args(argv)
    if a.smoke:
        a.cases = a.cases or ",".join(f"{r}:{SMOKE_SIZE}" for r in CASES)
        a.reps = a.reps or 1
        a.peers = a.peers or ",".join(SMOKE_PEERS)
        a.list_count = a.list_count or 200
        a.team_size = a.team_size or SMOKE_SIZE
        a.settle = False
        a.strict = True
    a.reps = a.reps or 3
    a.ra_fetch = {}
    for item in filter(None, (x.strip() for x in a.ra_config.split(","))):
        key, _, value = item.partition("=")
        a.ra_fetch[key] = (parse_size(value) if re.fullmatch(r"\d+[kmgKMG]", value)
                           else json.loads(value) if value else None)
    a.list_count = a.list_count or 10_000
    a.team_size = parse_size(a.team_size or "512M")
    chosen = None
    if a.peers:
        chosen = [x.strip() for x in a.peers.split(",") if x.strip()]
        unknown = [x for x in chosen if x not in peers_mod.PEERS]
        if unknown:
            p.error(f"unknown peer(s) {unknown}; choose from {list(peers_mod.PEERS)}")
    a.case_list = []
    for item in (a.cases or ",".join(CASES)).split(","):
        route, _, size = item.strip().partition(":")
        route = ALIASES.get(route, route)
        if route not in CASES:
            p.error(f"unknown route {route!r}; choose from {list(CASES)}")
        default_size, default_peers = CASES[route]
        peers = [x for x in (chosen or default_peers)]
        a.case_list.append(Case(route, parse_size(size or default_size), tuple(peers)))
    return a


def log(msg: str = "") -> None:
    print(msg, flush=True)


def start_hog() -> subprocess.Popen[bytes]:
    """The background load of ``--busy``: one process spinning on one core until killed."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"],
                            stdin=subprocess.DEVNULL)


def stop_hog(hog: subprocess.Popen[bytes] | None) -> None:
    if hog is not None and hog.poll() is None:
        hog.kill()  # our own child, by its PID
        hog.wait()


def ceilings(cases: list[Case], context: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    """Per case (``route:size``): the fastest any client could go here, and why: the slowest of
    the link as ``MAX_CONNECTIONS`` connections see it (None: loopback, no limit), the durable
    disk write (dd with fdatasync) and sha256 on one core (every verified byte is hashed once,
    in order), in MiB/s, all measured in this run."""
    by_name = {str(c["name"]): c.get("value") for c in context}
    disk = next((v for k, v in by_name.items() if k.startswith("disk durable")), None)
    sha = next((v for k, v in by_name.items() if k.startswith("bare `hashlib.sha256`")), None)
    out: dict[str, dict[str, object]] = {}
    for c in cases:
        per = ROUTES[c.route].per_connection()
        parts = {"link": per * MAX_CONNECTIONS / 2**20 if per else None, "disk": disk,
                 "hash": sha}
        known = {k: float(v) for k, v in parts.items() if isinstance(v, (int, float))}
        limit = min(known, key=lambda k: known[k]) if known else None
        out[f"{c.route}:{c.size}"] = {**parts, "ceiling": known.get(limit) if limit else None,
                                      "limit": limit}
    return out


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


def count_log(m: peers_mod.Measurement, recs: list[Record]) -> None:
    """What nginx saw of one run: requests, connections, TLS handshakes, redirects, bytes."""
    m.requests = len(recs)
    m.connections = accesslog.connections(recs)
    m.tls_full = accesslog.tls_handshakes(recs)
    m.tls_resumed = accesslog.tls_resumptions(recs)
    m.redirects = sum(1 for r in recs if 300 <= r.status < 400)
    m.served = accesslog.bytes_served(recs)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    root = bench_dir()
    out_dir = Path(args.out) if args.out else (
        root / "results-smoke" if args.smoke else HERE / "results" / ("busy" if args.busy else ""))
    out_dir = out_dir.resolve()
    root.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = args.case_list
    peers_mod.RA_FETCH = args.ra_fetch
    log(f"runanywhere benchmark{' (smoke)' if args.smoke else ''}: "
        + ", ".join(f"{c.route} {human(c.size)}" for c in cases)
        + f"; {args.reps} rep(s), payloads in {root}")

    # 1. which peers can run (runanywhere from a copy: others edit src/ while we measure)
    src_info = {"source": "live src/ (--live-src)"} if args.live_src else snapshot_source(root)
    log(f"runanywhere: {src_info['source']}")
    log("peers:")
    unavailable: dict[str, str] = {}
    wanted = list(dict.fromkeys(p for c in cases for p in c.peers))
    for name in wanted:
        why = peers_mod.check_available(peers_mod.PEERS[name])
        if why:
            unavailable[name] = why
        log(f"  {name:12s} {'unavailable: ' + why if why else 'ok'}")

    hog = start_hog() if args.busy else None
    try:
        return _measure(args, root, out_dir, cases, src_info, unavailable, wanted, started)
    finally:
        stop_hog(hog)


def _measure(args: argparse.Namespace, root: Path, out_dir: Path, cases: list[Case],
             src_info: dict[str, str], unavailable: dict[str, str], wanted: list[str],
             started: float) -> int:
    # 2. payloads and context
    log("payloads:")
    cache_size = 0 if args.no_cache else (min(c.size for c in cases) if args.smoke
                                          else CACHE_MODEL_SIZE)
    team_size = 0 if args.no_team else args.team_size
    want = sorted({c.size for c in cases} | ({cache_size} if cache_size else set())
                  | ({team_size} if team_size else set()))
    served = ensure_payloads(want, root / "payloads", log=log)
    by_size = {f.size: f for f in served}
    log("context:")
    context = [disk_write_speed(root, 256 if args.smoke else 1024), sha256_speed()]
    context.append({"name": "CPU cores", "value": os.cpu_count(),
                    "text": f"{os.cpu_count()} ({platform.processor() or platform.machine()}), "
                            "shared with other work"})
    if memstate.available():
        if not args.smoke:
            context.append(memstate.fill_cost(root))
        context.append({"name": "memory state before each run",
                        "value": "settled" if args.settle else "as left by the previous run",
                        "text": ("settled: free page reporting to the host was quiet for 3 s "
                                 "(memstate.py)") if args.settle else
                                "not settled (--no-settle): depends on the previous run"})
    load_start = os.getloadavg()
    for c in context:
        log(f"  {c['name']}: {c['text']}")

    results: dict[str, object] = {
        "meta": {
            "date": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
            "machine": f"{platform.system()} {platform.release()}, {os.cpu_count()} cores",
            "python": platform.python_version(), "smoke": args.smoke, "reps": args.reps,
            "cases": [{"route": c.route, "size": c.size, "peers": list(c.peers)} for c in cases],
            "routes": {name: {"title": r.title, "tls": r.tls, "redirect": r.redirect,
                              "cap": r.cap} for name, r in ROUTES.items()},
            "peers": [p for p in peers_mod.PEERS if p in wanted],  # report order
            "labels": {n: p.label for n, p in peers_mod.PEERS.items()},
            "notes": {n: p.note for n, p in peers_mod.PEERS.items()},
            "verifies": {n: p.verifies for n, p in peers_mod.PEERS.items()},
            "versions": versions(),
            "rss_method": peers_mod.rss_method(),
            "runanywhere_source": src_info["source"],
            "settle": args.settle and memstate.available(),
            "ra_config": args.ra_fetch,
            "busy": "one CPU hog (a process spinning on one core) ran throughout"
                    if args.busy else None,
            "ceilings": ceilings(cases, context),
        },
        "context": context, "unavailable": unavailable, "measurements": [], "cache": [],
        "team": None,
    }
    measurements: list[dict[str, object]] = results["measurements"]  # type: ignore[assignment]
    harness_error = None

    # 3. nginx up, everything measured, nginx down
    runs_dir = root / "runs"
    shutil.rmtree(runs_dir, ignore_errors=True)
    runs_dir.mkdir(parents=True)
    srv = Origin(root / "payloads", served)
    far_rtt = next((ROUTES[c.route].rtt for c in cases if ROUTES[c.route].rtt), None)
    far = Origin(root / "payloads", served, rtt=far_rtt) if far_rtt else None

    def server(route: str) -> Origin:
        return far if far is not None and ROUTES[route].rtt else srv

    try:
        srv.start()
        if far is not None:
            far.start()
        log(f"nginx: origin {srv.base} and {srv.nginx.base('origin', 'https')}, CDN "
            f"{srv.nginx.base('cdn', 'https')} (config and logs in {srv.tmp})")
        catalogs = {}
        for c in cases:
            f = by_size[c.size]
            cat = root / "catalogs" / f"bench-{label(c.size)}-{c.route}.json"
            cat.parent.mkdir(exist_ok=True)
            write_catalog(cat, f"bench-{label(c.size)}", c.size, f.sha256,
                          server(c.route).front_door(c.route, f.name))
            catalogs[(c.size, c.route)] = cat
        total = args.reps * sum(len([p for p in c.peers if p not in unavailable]) for c in cases)
        i = 0
        for rep in range(args.reps):
            for c in cases:
                runnable = [p for p in c.peers if p not in unavailable]
                if not runnable:
                    continue
                k = rep % len(runnable)
                f = by_size[c.size]
                s = server(c.route)
                for name in runnable[k:] + runnable[:k]:  # rotated: no peer always runs first
                    i += 1
                    job = peers_mod.Job(
                        size=c.size, sha256=f.sha256, name=f.name, route=c.route,
                        url=s.front_door(c.route, f.name), hf_endpoint=s.hf_endpoint(c.route),
                        hf_repo=s.hf_repo(c.route), catalog=catalogs[(c.size, c.route)],
                        model_id=f"bench-{label(c.size)}",
                        workdir=runs_dir / f"{label(c.size)}-{c.route}-{name}-{rep}",
                        ca_file=s.ca_file if s.route(c.route).tls else None)
                    timeout = 120 + c.size / (10 * 2**20)
                    waited, gave_back = memstate.settle() if args.settle else (0.0, 0)
                    mark = s.log_mark()
                    m = peers_mod.measure(peers_mod.PEERS[name], job, rep, timeout)
                    count_log(m, s.records_since(mark))
                    m.settle_s, m.settle_mib = round(waited, 2), gave_back
                    shutil.rmtree(job.workdir, ignore_errors=True)
                    os.sync()  # untimed: the next peer starts without our dirty pages
                    measurements.append(m.to_dict())
                    head = (f"[{i:3d}/{total}] {label(c.size):>5s} {c.route:8s} {name:12s} "
                            f"rep {rep + 1}:")
                    if m.ok:
                        log(f"{head} {m.wall:7.2f} s {c.size / 2**20 / m.wall:6.0f} MiB/s  "
                            f"cpu {m.cpu:6.2f} s  rss {m.peak_rss_mib:5.0f} MiB  "
                            f"conn {m.connections:3d} tls {m.tls_full:3d}  "
                            f"[settled {waited:.0f} s, {gave_back} MiB]")
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
        if far is not None:
            far.stop()
        shutil.rmtree(runs_dir, ignore_errors=True)

    # 4. the team case: its own nginx (the WAN link capped as a whole) and SeaweedFS
    team_missing = fleet.unavailable() if team_size else None
    if team_missing:
        log(f"team case: unavailable: {team_missing}")
        results["team"] = {"unavailable": team_missing}
    elif team_size and not harness_error:
        log("team case:")
        try:
            results["team"] = fleet.team_case(
                by_size[team_size], root, machines=4 if args.smoke else 8,
                wan_rate="100m", log=log)
        except KeyboardInterrupt:
            harness_error = "interrupted"
        except Exception as e:
            harness_error = f"team case: {type(e).__name__}: {e}"
            traceback.print_exc()

    # 5. report
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
    team = results.get("team")
    if team and "unavailable" not in team and not team.get("ok"):  # type: ignore[operator]
        failed.append({"team": "failed"})
    if failed and args.strict:
        log(f"{len(failed)} download(s) failed (strict mode)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
