"""Cold start of the command line: a cached ``pull`` and ``list``, whole process, as a user waits.

    python -m bench.coldstart                          # this checkout's runanywhere, 10 runs each
    python -m bench.coldstart --vs /other/.venv/bin/runanywhere   # pairs alternated, ratio A/B

The world is a fresh cache folder holding one small model (sideloaded with ``runanywhere import``:
no network) and a catalog naming it; ``--home`` and ``--catalog`` point both programs at it. Each
program's package is compiled to bytecode first (a shell with ``PYTHONDONTWRITEBYTECODE=1``
would otherwise time the compiler). A run's wall time is from the start of the process to its
exit; its CPU is the kernel's user + system seconds of the child. The figures are medians, with
the min and max beside them (a wide spread says the machine was busy). ``python -c pass`` is
timed too: the interpreter's own start, which no change here can remove.

What a cached answer imports (the modules that make it slow) is checked by
``tests/test_cold_start.py``; this script only times.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "coldstart.json"


def _python_of(program: str) -> str:
    """The interpreter a console script runs with (its ``#!`` line)."""
    first = Path(program).read_text(errors="replace").splitlines()[0]
    return first[2:].strip() if first.startswith("#!") else sys.executable


def _compile(python: str) -> None:
    where = subprocess.run([python, "-c", "import os, runanywhere;"
                            " print(os.path.dirname(runanywhere.__file__))"],
                           capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run([python, "-m", "compileall", "-q", where], check=True)


def _one(argv: list[str]) -> tuple[float, float]:
    """(wall seconds, user + system seconds) of one run; its output is thrown away."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited with {proc.returncode}")
    return wall, usage.ru_utime + usage.ru_stime


def _summary(xs: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(xs), 4), "min": round(min(xs), 4),
            "max": round(max(xs), 4)}


def _world(program: str, root: Path) -> list[str]:
    """A cache with one model in it; the global options that name it."""
    data = os.urandom(100_000)
    (root / "cold.bin").write_bytes(data)
    catalog = root / "catalog.json"
    catalog.write_text(json.dumps({"format_version": 1, "models": [{
        "id": "cold", "name": "cold", "type": "custom", "format": "custom",
        "provider": "bench", "version": "1", "size": len(data),
        "url": "http://127.0.0.1:9/cold.bin", "hash": f"sha256:{hashlib.sha256(data).hexdigest()}",
    }]}))
    common = ["--home", str(root / "home"), "--catalog", str(catalog)]
    subprocess.run([program, *common, "import", "cold", str(root / "cold.bin")], check=True,
                   capture_output=True)
    return common


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--program", default=str(Path(sys.executable).with_name("runanywhere")),
                    help="the runanywhere to time (default: this interpreter's)")
    ap.add_argument("--vs", metavar="PROGRAM", help="another runanywhere, timed in turn with it")
    ap.add_argument("-n", "--runs", type=int, default=10, help="runs of each command (10)")
    ap.add_argument("--out", type=Path, default=RESULTS, help=f"the JSON (default {RESULTS})")
    args = ap.parse_args(argv)
    programs = {"A": args.program, **({"B": args.vs} if args.vs else {})}
    for program in programs.values():
        _compile(_python_of(program))
    with tempfile.TemporaryDirectory(prefix="ra-coldstart-") as tmp:
        common = _world(args.program, Path(tmp))
        commands: dict[str, Callable[[str], list[str]]] = {
            "python -c pass": lambda p: [_python_of(p), "-c", "pass"],
            "pull (cached)": lambda p: [p, *common, "pull", "cold"],
            "list": lambda p: [p, *common, "list"]}
        rows: dict[str, dict[str, Any]] = {}
        doc = {"date": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
               "load": os.getloadavg(), "runs": args.runs, "programs": programs,
               "commands": rows}
        for name, make in commands.items():
            for p in programs.values():  # one unmeasured run each: the page cache warm
                _one(make(p))
            times: dict[str, list[tuple[float, float]]] = {k: [] for k in programs}
            for _ in range(args.runs):  # A B A B ...: a drift of the machine hits both
                for key, p in programs.items():
                    times[key].append(_one(make(p)))
            row: dict[str, Any] = {}
            for key, runs in times.items():
                row[key] = {"wall": _summary([w for w, _ in runs]),
                            "cpu": _summary([c for _, c in runs])}
            if "B" in times:
                ratios = [a[0] / b[0] for a, b in zip(times["A"], times["B"], strict=True)]
                row["A/B wall"] = _summary(ratios)
            rows[name] = row
            line = "  ".join(f"{k} {v['wall']['median'] * 1000:6.1f} ms"
                             for k, v in row.items() if k in programs)
            ratio = row.get("A/B wall")
            print(f"{name:<16} {line}" + (f"  A/B {ratio['median']:.2f}" if ratio else ""))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
