"""Where the CPU of a verified HTTPS download goes, per GiB: TLS, hashing, copies, the page
cache, the socket, Python. The benchmark's tables say how long; this says why.

    python -m bench.profile                 # 2 GiB over the Hub route; ~2 min
    python -m bench.profile --size 512M --route https-75 --peers ra-api,urllib

Each peer downloads once through the benchmark's own nginx (``bench.origin``, the same front door
as in ``bench.run``) under ``perf record --call-graph dwarf``. Every sample's stack is sorted into
one bucket by what it was doing (the first rule that matches, kernel work by its system call):

* kernel work by what it served: *write into the page cache*, *read back*, *socket receive*,
  *flush to disk*, *page faults*, *futex*, *other*;
* *sha256*: user space under ``_hashlib`` (Python's hashlib) or OpenSSL's ``SHA256_*``;
* *TLS*: user space under ``_ssl`` (decrypting records);
* *copies* (libc ``memcpy``/``memmove`` outside the above), *Python interpreter* (libpython),
  *other*.

perf slows the process it watches and the stacks are sampled, so the shares are the figure to
read, not the seconds; ``CPU s/GiB`` (from ``wait4``, the run under perf) scales them. Writes
``bench/results/profile.md`` and ``profile.json``. Needs ``perf`` (Debian ``linux-perf``) and
permission to use it (root, or ``kernel.perf_event_paranoid`` <= 1).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

from . import memstate
from . import peers as peers_mod
from .payloads import bench_dir, ensure_payloads, human, parse_size

HERE = Path(__file__).resolve().parent
GiB = 2**30

# Kernel work, by what it served (first match wins; names as this kernel's stacks spell them).
_KERNEL = [
    ("kernel: write into the page cache",
     re.compile(r"ksys_p?write|__x64_sys_pwrite|generic_perform_write|_buffered_write")),
    ("kernel: read back from the page cache",
     re.compile(r"ksys_pread|__x64_sys_pread|filemap_read")),
    ("kernel: socket receive",
     re.compile(r"tcp_recvmsg|sock_recvmsg|sock_read_iter|__sys_recvfrom")),
    ("kernel: flush to disk", re.compile(r"fdatasync|vfs_fsync|file_write_and_wait")),
    ("kernel: page faults", re.compile(r"exc_page_fault|handle_mm_fault")),
    ("kernel: futex (threads waiting)", re.compile(r"futex")),
]
BUCKETS = ["sha256", "TLS (decrypt, record layer)", *(k for k, _ in _KERNEL), "kernel: other",
           "copies (libc memcpy/memmove)", "Python interpreter", "other"]


def classify(frames: list[tuple[str, str]]) -> str:
    """One sample's bucket from its stack, leaf first: ``[(symbol, dso), ...]``. Kernel work is
    sorted by what it served (a socket read under TLS counts as the socket's); user-space work
    by the library it ran in."""
    text = " ".join(f"{s} {d}" for s, d in frames)
    leaf_sym, leaf_dso = frames[0] if frames else ("", "")
    if "kernel" in leaf_dso:
        for name, pat in _KERNEL:
            if pat.search(text):
                return name
        return "kernel: other"
    if "_hashlib" in text or "SHA256_" in text:
        return "sha256"
    if "_ssl.cpython" in text or "libssl" in text:
        return "TLS (decrypt, record layer)"
    if "libc" in leaf_dso and re.search(r"mem(cpy|move)", leaf_sym):
        return "copies (libc memcpy/memmove)"
    if "libpython" in leaf_dso or leaf_dso.endswith(("python3", "python3.11")):
        return "Python interpreter"
    return "other"


_FRAME = re.compile(r"^\s*[0-9a-f]+\s+(.*?)\s+\((.*)\)\s*$")


def parse_script(text: str) -> Counter[str]:
    """Buckets of ``perf script -F ip,sym,dso`` output: samples separated by blank lines."""
    out: Counter[str] = Counter()
    for block in text.split("\n\n"):
        frames = [(m.group(1), m.group(2)) for ln in block.splitlines()
                  if (m := _FRAME.match(ln))]
        if frames:
            out[classify(frames)] += 1
    return out


def perf_available() -> str | None:
    """Why perf cannot profile here, or None."""
    if shutil.which("perf") is None:
        return "perf is not installed (Debian: linux-perf)"
    probe = subprocess.run(["perf", "stat", "-e", "task-clock", "--", "true"],
                           capture_output=True, text=True)
    return None if probe.returncode == 0 else f"perf cannot run: {probe.stderr.strip()[:200]}"


def profiled(peer: peers_mod.Peer, data: Path, freq: int) -> peers_mod.Peer:
    """The same peer, its command run under perf record (children and threads included)."""
    def build(job: peers_mod.Job) -> peers_mod.Command:
        cmd = peer.build(job)
        argv = ["perf", "record", "-q", "-F", str(freq), "--call-graph", "dwarf,16384",
                "-o", str(data), "--", *cmd.argv]
        return replace(cmd, argv=argv)

    return replace(peer, build=build)


def profile_peer(name: str, job: peers_mod.Job, data: Path, freq: int) -> dict[str, Any]:
    memstate.settle()
    m = peers_mod.measure(profiled(peers_mod.PEERS[name], data, freq), job, 0,
                          120 + job.size / (10 * 2**20))
    row: dict[str, Any] = {"peer": name, "ok": m.ok, "error": m.error, "wall": m.wall,
                           "cpu": m.cpu, "cpu_gib": m.cpu / (job.size / GiB)}
    if not m.ok:
        return row
    script = subprocess.run(["perf", "script", "-i", str(data), "-F", "ip,sym,dso"],
                            capture_output=True, text=True, errors="replace")
    counts = parse_script(script.stdout)
    total = sum(counts.values())
    row["samples"] = total
    row["shares"] = {b: counts[b] / total for b in BUCKETS if total}
    return row


def markdown(res: dict[str, Any]) -> str:
    rows = [r for r in res["rows"] if r.get("shares")]
    md = ["# Where the CPU of a download goes", "",
          f"{res['date']} · {res['machine']} · {human(res['size'])} over `{res['route']}` · "
          "generated by `python -m bench.profile`", "",
          "Each peer downloaded once under `perf record --call-graph dwarf` (which slows it); "
          "every sampled stack was put in one bucket (see `bench/profile.py`). *share*: of the "
          "process's samples; *s/GiB*: that share of the CPU seconds per GiB of the profiled "
          "run.", ""]
    if not rows:
        why = "; ".join(f"{r['peer']}: {r['error']}" for r in res["rows"])
        return "\n".join([*md, "No profile: " + (why or res.get("skipped", "")), ""])
    head = "| bucket | " + " | ".join(f"{r['peer']} share | s/GiB" for r in rows) + " |"
    md += [head, "|---|" + "---:|---:|" * len(rows)]
    for b in BUCKETS:
        if not any(r["shares"].get(b, 0) >= 0.005 for r in rows):
            continue
        cells = [f"{r['shares'].get(b, 0) * 100:.0f} % | {r['shares'].get(b, 0) * r['cpu_gib']:.2f}"
                 for r in rows]
        md.append(f"| {b} | " + " | ".join(cells) + " |")
    md.append("| **all** (CPU s/GiB under perf) | " + " | ".join(
        f"{r['samples']} samples | **{r['cpu_gib']:.2f}**" for r in rows) + " |")
    return "\n".join([*md, ""])


def main(argv: list[str] | None = None) -> int:
    import os
    import platform

    from .origin import Origin
    from .run import write_catalog

    p = argparse.ArgumentParser(prog="python -m bench.profile",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="2G", help="payload size (default 2G)")
    p.add_argument("--route", default="https", help="a route of bench.origin (default https)")
    p.add_argument("--peers", default="ra-api,urllib,hf_hub",
                   help="comma-separated peers of bench.peers (default ra-api,urllib,hf_hub)")
    p.add_argument("--freq", type=int, default=499, help="samples per second per CPU")
    p.add_argument("--out", type=Path, default=HERE / "results")
    args = p.parse_args(argv)
    size = parse_size(args.size)
    res: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "size": size,
                           "route": args.route, "rows": [],
                           "machine": f"{platform.system()} {platform.release()}, "
                                      f"{os.cpu_count()} cores"}
    why = perf_available()
    if why:
        print(why, file=sys.stderr)
        res["skipped"] = why
    else:
        root = bench_dir()
        (f,) = ensure_payloads([size], root / "payloads")
        work = root / "profile-runs"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        srv = Origin(root / "payloads", [f]).start()
        try:
            catalog = work / "catalog.json"
            write_catalog(catalog, "bench-profile", size, f.sha256,
                          srv.front_door(args.route, f.name))
            for name in args.peers.split(","):
                job = peers_mod.Job(
                    size=size, sha256=f.sha256, name=f.name, route=args.route,
                    url=srv.front_door(args.route, f.name),
                    hf_endpoint=srv.hf_endpoint(args.route), hf_repo=srv.hf_repo(args.route),
                    catalog=catalog, model_id="bench-profile", workdir=work / name,
                    ca_file=srv.ca_file if srv.route(args.route).tls else None)
                row = profile_peer(name, job, work / f"{name}.perf", args.freq)
                res["rows"].append(row)
                print(f"  {name:10s} " + (f"cpu {row['cpu_gib']:.2f} s/GiB, "
                      f"{row['samples']} samples" if row.get("shares") else row["error"]),
                      flush=True)
                shutil.rmtree(job.workdir, ignore_errors=True)
        finally:
            srv.stop()
            shutil.rmtree(work, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "profile.json").write_text(json.dumps(res, indent=1))
    (args.out / "profile.md").write_text(markdown(res))
    print(f"report: {args.out / 'profile.md'}")
    return 0  # no perf here: the report says so, the rest of `make bench` goes on


if __name__ == "__main__":
    sys.exit(main())
