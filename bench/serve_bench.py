"""``runanywhere serve`` against nginx: one model file, N concurrent clients, MiB/s and peak RSS.

    python -m bench.serve_bench                       # 512 MiB, 8 clients, 3 rounds
    python -m bench.serve_bench --size 2G --clients 16 --rounds 5
    python -m bench.serve_bench --smoke               # 32 MiB, 4 clients, 1 round (seconds)

Run from the repository root (it is a module of the ``bench`` package). What it does:

1. A random (incompressible) payload of ``--size`` bytes in ``$RA_BENCH_DIR/serve/``, reused
   between runs while its size matches; it is sideloaded (verified) into a fresh cache home.
2. nginx on 127.0.0.1 (``bench/nginx.py``: ``sendfile on``, our child process) serves the
   payload; ``runanywhere serve`` (the CLI, a subprocess, access log off) serves the cache's copy
   at ``/blobs/sha256/<hex>``. Both files sit in the page cache after a warm-up round.
3. Each round starts ``--clients`` downloads at once (``curl -o /dev/null``, a C client, so the
   clients cost as little CPU as possible on the shared cores), first against one server then
   the other (the order alternates between rounds). A round's throughput is all the bytes
   received divided by the time from the start to the last client's end; every client must get
   exactly the file's size with status 200, or the round fails.
4. Reported: the median MiB/s of each server, the ratio serve/nginx, and serve's peak RSS
   (``VmHWM`` of its process, read from ``/proc`` at the end). ``--json FILE`` also writes all
   the measurements.

Loopback, one machine: the clients, the server and the kernel share the same cores, so this
measures how much CPU each server spends per byte more than any network. No timing fails a run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .origin import Origin, Served

MIB = 2**20
_UNITS = {"k": 2**10, "m": 2**20, "g": 2**30}


def parse_size(text: str) -> int:
    t = text.strip().lower().removesuffix("ib").removesuffix("b")
    if t and t[-1] in _UNITS:
        return int(float(t[:-1]) * _UNITS[t[-1]])
    return int(t)


def bench_dir() -> Path:
    return Path(os.environ.get("RA_BENCH_DIR") or "/tmp/ra-bench") / "serve"


def payload(size: int) -> Served:
    """A random file of ``size`` bytes (kept between runs), with its sha256."""
    folder = bench_dir()
    folder.mkdir(parents=True, exist_ok=True)
    name = f"serve-{size}.bin"
    path, meta = folder / name, folder / f"{name}.sha256"
    if path.is_file() and path.stat().st_size == size and meta.is_file():
        return Served(name, size, meta.read_text().strip())
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            block = os.urandom(min(left, 16 * MIB))
            h.update(block)
            f.write(block)
            left -= len(block)
    meta.write_text(h.hexdigest())
    return Served(name, size, h.hexdigest())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_serve(home: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "RUNANYWHERE_HOME": str(home)}
    proc = subprocess.Popen([sys.executable, "-m", "runanywhere", "serve", "--port", str(port),
                             "--no-access-log"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("runanywhere serve exited: "
                               + (proc.stderr.read().decode() if proc.stderr else ""))
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2):
                return proc, url
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("runanywhere serve did not become healthy")


def peak_rss(pid: int) -> int:
    """``VmHWM`` (peak resident set) of a live process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def one_client(url: str) -> tuple[int, int]:
    """(status, bytes) of one download; curl when present, else a Python read loop."""
    if shutil.which("curl"):
        out = subprocess.run(["curl", "-s", "-o", "/dev/null", "--noproxy", "*", "-w",
                              "%{http_code} %{size_download}", url],
                             capture_output=True, text=True, check=False, timeout=600)
        code, got = out.stdout.split()
        return int(code), int(float(got))
    buf = bytearray(MIB)
    got = 0
    with urllib.request.urlopen(url, timeout=600) as r:
        status = r.status
        while n := r.readinto(buf):
            got += n
    return status, got


def round_mibs(url: str, size: int, clients: int) -> float:
    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(lambda _: one_client(url), range(clients)))
    wall = time.perf_counter() - t0
    bad = [r for r in results if r != (200, size)]
    if bad:
        raise RuntimeError(f"{url}: {len(bad)} client(s) got {bad[:3]} instead of (200, {size})")
    return clients * size / MIB / wall


def run(size: int, clients: int, rounds: int) -> dict[str, Any]:
    served = payload(size)
    work = Path(tempfile.mkdtemp(prefix="ra-serve-bench-"))
    try:
        home = work / "home"
        os.environ["RUNANYWHERE_DURABLE"] = "0"  # the setup's import; nothing measured
        from runanywhere import ModelRegistry

        reg = ModelRegistry(home=home, include_builtin=False)
        reg.register_model({"id": "bench-model", "name": "bench", "type": "custom",
                            "format": "custom", "provider": "bench", "version": "1",
                            "size": size, "url": f"https://origin.invalid/{served.name}",
                            "hash": f"sha256:{served.sha256}"})
        reg.import_model("bench-model", bench_dir() / served.name)
        reg.cache.close()
        results: dict[str, list[float]] = {"nginx": [], "serve": []}
        with Origin(bench_dir(), [served]) as nginx:
            proc, base = start_serve(home)
            try:
                urls = {"nginx": nginx.url("full", served.name),
                        "serve": f"{base}/blobs/sha256/{served.sha256}"}
                for name in urls:  # warm-up: both files in the page cache, both servers hot
                    round_mibs(urls[name], size, clients)
                for i in range(rounds):
                    order = ["nginx", "serve"] if i % 2 == 0 else ["serve", "nginx"]
                    for name in order:
                        mibs = round_mibs(urls[name], size, clients)
                        results[name].append(mibs)
                        print(f"  round {i + 1}/{rounds} {name:<5} {mibs:8.1f} MiB/s",
                              file=sys.stderr)
                rss = peak_rss(proc.pid)
            finally:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        med = {k: statistics.median(v) for k, v in results.items()}
        return {"size": size, "clients": clients, "rounds": rounds,
                "client": "curl" if shutil.which("curl") else "python",
                "mibs": results, "median_mibs": med, "ratio": med["serve"] / med["nginx"],
                "serve_peak_rss": rss, "cores": os.cpu_count(),
                "python": sys.version.split()[0]}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.serve_bench", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="512M", help="model size (binary units; default 512M)")
    p.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    p.add_argument("--rounds", type=int, default=3, help="measured rounds per server")
    p.add_argument("--smoke", action="store_true", help="32M, 4 clients, 1 round: seconds")
    p.add_argument("--json", type=Path, help="also write the measurements here")
    args = p.parse_args(argv)
    size, clients, rounds = parse_size(args.size), args.clients, args.rounds
    if args.smoke:
        size, clients, rounds = 32 * MIB, 4, 1
    print(f"serve vs nginx: {size / MIB:.0f} MiB to {clients} concurrent clients,"
          f" {rounds} round(s)", file=sys.stderr)
    r = run(size, clients, rounds)
    med = r["median_mibs"]
    print(f"{'server':<22}{'MiB/s (median)':>16}")
    print(f"{'nginx (sendfile)':<22}{med['nginx']:>16.1f}")
    print(f"{'runanywhere serve':<22}{med['serve']:>16.1f}")
    print(f"ratio serve/nginx: {r['ratio']:.2f}   serve peak RSS:"
          f" {r['serve_peak_rss'] / MIB:.1f} MiB")
    if args.json:
        args.json.write_text(json.dumps(r, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
