"""The OpenAI chat route under load for a fixed time: 8 clients stream from one model at once
(the tiny chain GGUF), one of them leaving mid-stream each round, every stream checked, the
server's resident set sampled (the checks and the bound: ``tests/support/openai_load.py``;
``make test`` runs 3 rounds of the same in ``tests/test_serve_openai_load.py``).

    python -m bench.openai_load                # 30 s (make bench)
    python -m bench.openai_load --seconds 5

Prints what the clients saw; exits 1 if a check failed or the memory grew past the bound.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.openai_load import RSS_SLACK, chain_server, run_load  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="how long (default 30)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ra-openai-load-") as folder, \
            chain_server(Path(folder)) as served:
        load = run_load(served, seconds=args.seconds)
    print(f"openai load: {load.summary()}")
    if load.growth > RSS_SLACK:
        print(f"openai load: RSS grew past {RSS_SLACK // 2**20} MiB", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
