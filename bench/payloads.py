"""Random payload files outside the repository, with their sha256, reused between runs.

Files live in ``$RA_BENCH_DIR/payloads`` (default ``/tmp/ra-bench/payloads``). A small manifest
records size, mtime and sha256; a file whose size or mtime changed is generated again. Bytes
come from ``os.urandom`` mixed with a counter-free stream (incompressible, so no transport or
filesystem can cheat), written in 16 MiB blocks.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from harness.nginx import Served

_UNITS = {"k": 2**10, "m": 2**20, "g": 2**30}
_BLOCK = 16 * 2**20


def parse_size(text: str) -> int:
    """``"64M"`` -> 64 MiB, ``"2G"`` -> 2 GiB, ``"1000"`` -> 1000 bytes (binary units)."""
    m = re.fullmatch(r"\s*(\d+)\s*([kmg]?)(i?b)?\s*", text.lower())
    if not m:
        raise ValueError(f"not a size: {text!r} (examples: 64M, 512M, 2G)")
    return int(m.group(1)) * _UNITS.get(m.group(2), 1)


def label(size: int) -> str:
    for unit, n in (("g", 2**30), ("m", 2**20), ("k", 2**10)):
        if size % n == 0:
            return f"{size // n}{unit}"
    return str(size)


def human(size: int) -> str:
    for unit, n in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= n:
            v = size / n
            return f"{v:.0f} {unit}" if v == int(v) else f"{v:.1f} {unit}"
    return f"{size} B"


def bench_dir() -> Path:
    return Path(os.environ.get("RA_BENCH_DIR", "/tmp/ra-bench")).expanduser().resolve()


def _generate(path: Path, size: int) -> str:
    h = hashlib.sha256()
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as f:
        left = size
        while left:
            block = os.urandom(min(_BLOCK, left))
            h.update(block)
            f.write(block)
            left -= len(block)
    os.replace(tmp, path)
    return h.hexdigest()


def ensure_payloads(sizes: list[int], directory: Path, log=print) -> list[Served]:
    directory.mkdir(parents=True, exist_ok=True)
    manifest_path = directory / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        manifest = {}
    out = []
    for size in sizes:
        name = f"payload-{label(size)}.bin"
        path = directory / name
        rec = manifest.get(name)
        try:
            st = path.stat()
            fresh = rec and rec["size"] == st.st_size == size and rec["mtime_ns"] == st.st_mtime_ns
        except OSError:
            fresh = False
        if not fresh:
            log(f"  generating {name} ({human(size)}) in {directory}")
            digest = _generate(path, size)
            st = path.stat()
            rec = {"size": size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
            manifest[name] = rec
            manifest_path.write_text(json.dumps(manifest, indent=1))
        out.append(Served(name, size, rec["sha256"]))
    return out
