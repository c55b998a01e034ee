"""OpenAI's chat API: ``runanywhere serve`` against llama.cpp's own server, same model, same
request.

    python -m bench.openai_bench              # SmolLM2 Q4_1, 8 rounds of 128 tokens (~2 min)
    python -m bench.openai_bench --smoke      # the tiny chain GGUF, 2 rounds of 16 tokens (CI)
    python -m bench.openai_bench --json FILE  # also write every measurement

Run from the repository root. Two servers, each a process of its own on 127.0.0.1, each with
the model loaded once and kept (a warm-up request each first, not counted):

1. **serve**: ``runanywhere serve --keep-alive -1`` over a fresh cache home where the model
   was sideloaded (verified); its ``/v1/chat/completions`` runs the ``llama`` adapter (fair
   slots, worker thread, aiohttp, our SSE);
2. **llama.cpp**: the HTTP server inside ``xllamacpp`` (the one the llm-openai package's tests
   start), on the same file with the settings ``serve``'s ``llama`` runtime uses: a 4096-token
   context, one sequence, no prompt cache beyond the KV cache, no warm-up run, llama.cpp's
   default threads.

The same streamed request goes to both (a system and a user message that starts differently
each round, temperature 0, ``--tokens`` tokens at most, ``stream_options.include_usage``),
alternated within a round (ABBA over rounds), from this process over a fresh connection.
Measured from the client's side: time to first token (request sent to the first text) and the
decode rate ((tokens - 1) / (last text - first text), tokens from the answer's usage).
Reported: medians and the ratios serve / llama.cpp (target: tokens per second >= 0.9x), and
whether both wrote the same text. Nothing here fails on a number; the run fails if a server
answers wrongly.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
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

from support.openai_world import CHAIN, SMOL, chain_model, registry, smollm2_file  # noqa: E402
from support.serving import cli_server  # noqa: E402

SYSTEM = "You are a helpful assistant."
PROMPT = "Write a short story about a robot who learns to paint."
N_CTX = 4096  # what serve's llama runtime gives both models (min(trained, 4096))

LLAMA_SERVER = textwrap.dedent("""
    import sys, xllamacpp as xlc
    p = xlc.CommonParams(); p.model.path = sys.argv[1]; p.n_ctx = int(sys.argv[2])
    p.n_parallel = 1; p.warmup = False; p.cache_ram_mib = 0; p.verbosity = -1
    p.port = 0; p.hostnames = ["127.0.0.1"]
    s = xlc.Server(p)
    a = s.listening_address
    print(a if a.startswith("http") else "http://" + a, flush=True)
    sys.stdin.read()  # until the benchmark closes our stdin
""")


class LlamaCppServer:
    """llama.cpp's HTTP server (xllamacpp's) in a process of its own."""

    def __init__(self, path: Path, script: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, str(script), str(path), str(N_CTX)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http://"):
            raise RuntimeError(f"llama.cpp's server did not start (exit {self.proc.poll()})")

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def messages(i: int) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"Story {i + 1}. {PROMPT}"}]


def rate(tokens: int, first: float | None, last: float | None) -> float | None:
    if first is None or last is None or tokens < 2 or last <= first:
        return None
    return (tokens - 1) / (last - first)


def dechunk(framed: bytes) -> tuple[bytes, bytes]:
    """The whole chunks of a ``Transfer-Encoding: chunked`` body so far, and what is left."""
    out = bytearray()
    while (eol := framed.find(b"\r\n")) >= 0:
        size = int(framed[:eol].split(b";")[0], 16)
        if len(framed) < eol + 2 + size + 2:
            break  # the rest of this chunk has not arrived
        out += framed[eol + 2:eol + 2 + size]
        framed = framed[eol + 2 + size + 2:]
        if size == 0:
            break
    return bytes(out), framed


def one(url: str, model: str, tokens: int, i: int) -> dict[str, Any]:
    """One streamed chat completion on a fresh connection, timed as its events arrive."""
    host, port = url.removeprefix("http://").split(":")
    body = json.dumps({"model": model, "messages": messages(i), "max_tokens": tokens,
                       "temperature": 0, "stream": True,
                       "stream_options": {"include_usage": True}}).encode()
    request = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               b"Connection: close\r\nContent-Type: application/json\r\n"
               b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    first: float | None = None
    last: float | None = None
    text: list[str] = []
    usage: dict[str, Any] = {}
    pending = b""
    with socket.create_connection((host, int(port)), timeout=300) as sock:
        t0 = time.perf_counter()
        sock.sendall(request)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(65536)
            if not chunk:
                raise RuntimeError(f"{url} closed the connection before its headers")
            head += chunk
        head, _, pending = head.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"{url}: {head.splitlines()[0].decode()} {pending[:300]!r}")
        chunked = b"transfer-encoding: chunked" in head.lower()
        framed = pending  # as received (chunk framing included when chunked)
        events = b""  # the event stream itself, line ends as "\n"
        done = False
        while not done:
            if chunked:
                body, framed = dechunk(framed)
            else:
                body, framed = framed, b""
            events += body.replace(b"\r\n", b"\n")
            while not done and b"\n\n" in events:
                event, _, events = events.partition(b"\n\n")
                for line in event.split(b"\n"):
                    if not line.startswith(b"data: "):
                        continue
                    data = line[len(b"data: "):]
                    if data == b"[DONE]":
                        done = True
                        break
                    doc = json.loads(data)
                    usage.update(doc.get("usage") or {})
                    for choice in doc.get("choices") or ():
                        piece = (choice.get("delta") or {}).get("content")
                        if piece:
                            last = time.perf_counter()
                            first = first or last
                            text.append(piece)
            if done:
                break
            chunk = sock.recv(65536)
            if not chunk:
                raise RuntimeError(f"{url}: the stream ended before data: [DONE]")
            framed += chunk
    n = int(usage.get("completion_tokens", 0))
    return {"ttft_s": (first - t0) if first else None, "tokens": n,
            "tokens_per_s": rate(n, first, last), "text": "".join(text)}


def median(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(values) if values else None


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def fmt(x: float | None, unit: str = "", digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}{unit}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true",
                    help="the tiny chain GGUF, 2 rounds of 16 tokens")
    ap.add_argument("--rounds", type=int, help="rounds (default 8; smoke 2)")
    ap.add_argument("--tokens", type=int, help="tokens per answer (default 128; smoke 16)")
    ap.add_argument("--json", type=Path, help="write every measurement to this file")
    args = ap.parse_args(argv)
    rounds = args.rounds or (2 if args.smoke else 8)
    tokens = args.tokens or (16 if args.smoke else 128)

    work = Path(tempfile.mkdtemp(prefix="ra-openai-bench-"))
    home = work / "home"
    catalogs: list[Path] = []
    if args.smoke:
        model, (path, entry) = CHAIN, chain_model(work)
        catalog = work / "catalog.json"
        catalog.write_text(json.dumps({"format_version": 1, "models": [entry]}))
        catalogs.append(catalog)
        registry(home, catalog).import_model(CHAIN, path)
    else:
        model, path = SMOL, smollm2_file()
        registry(home).import_model(SMOL, path)  # the built-in entry's size and sha256
    script = work / "llama_server.py"
    script.write_text(LLAMA_SERVER)
    env = {k: v for k, v in os.environ.items() if k != "RUNANYWHERE_CATALOG"}
    llama = LlamaCppServer(path, script)
    try:
        with cli_server(home, "--keep-alive", "-1", "--no-access-log", env=env,
                        catalogs=catalogs) as (serve_url, _):
            print(f"openai bench: {path.name}, {tokens} tokens, {rounds} rounds; serve at"
                  f" {serve_url}, llama.cpp at {llama.url}", file=sys.stderr)
            t = time.perf_counter()
            one(serve_url, model, 4, -1)  # serve loads the model on its first request
            first_load = time.perf_counter() - t
            one(llama.url, model, 4, -1)
            rows: dict[str, list[dict[str, Any]]] = {"serve": [], "llama.cpp": []}
            urls = {"serve": serve_url, "llama.cpp": llama.url}
            for i in range(rounds):
                order = ["llama.cpp", "serve"] if i % 2 else ["serve", "llama.cpp"]
                for name in order:
                    row = one(urls[name], model, tokens, i)
                    rows[name].append(row)
                    print(f"  round {i + 1} {name:<9} ttft {fmt(row['ttft_s'], 's')}"
                          f"  {fmt(row['tokens_per_s'], ' tok/s', 1)}", file=sys.stderr)
    finally:
        llama.close()
    s, ll = rows["serve"], rows["llama.cpp"]
    same_text = all(a["text"] == b["text"] and a["tokens"] == b["tokens"]
                    for a, b in zip(s, ll, strict=True))
    per_round = [ratio(a["tokens_per_s"], b["tokens_per_s"]) for a, b in zip(s, ll, strict=True)]
    summary = {
        "model": path.name, "tokens": tokens, "rounds": rounds,
        "serve": {"ttft_s": median(s, "ttft_s"), "tokens_per_s": median(s, "tokens_per_s"),
                  "first_request_with_load_s": first_load},
        "llama.cpp": {"ttft_s": median(ll, "ttft_s"),
                      "tokens_per_s": median(ll, "tokens_per_s")},
        "same_text": same_text,
        "serve_over_llamacpp_tokens_per_s_by_round": per_round,
    }
    summary["ratios"] = {
        "serve_over_llamacpp_tokens_per_s": ratio(summary["serve"]["tokens_per_s"],
                                                  summary["llama.cpp"]["tokens_per_s"]),
        "serve_over_llamacpp_ttft": ratio(summary["serve"]["ttft_s"],
                                          summary["llama.cpp"]["ttft_s"]),
    }
    a, b, q = summary["serve"], summary["llama.cpp"], summary["ratios"]
    print(textwrap.dedent(f"""
        server       time to first token   tokens/s   vs llama.cpp (tokens/s, ttft)
        llama.cpp    {fmt(b['ttft_s'], 's'):>19}   {fmt(b['tokens_per_s'], '', 1):>8}
        serve        {fmt(a['ttft_s'], 's'):>19}   {fmt(a['tokens_per_s'], '', 1):>8}   \
{fmt(q['serve_over_llamacpp_tokens_per_s'], 'x')}, {fmt(q['serve_over_llamacpp_ttft'], 'x')}
        per round (tokens/s): {', '.join(fmt(r, '', 2) for r in per_round)}
        serve's first request, loading the model: {fmt(first_load, 's')}
        the same text from both (temperature 0): {same_text}
    """).rstrip())
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "serve": s, "llama.cpp": ll},
                                        indent=2))
    return 0 if all(r["tokens"] for r in s + ll) else 1


if __name__ == "__main__":
    sys.exit(main())
