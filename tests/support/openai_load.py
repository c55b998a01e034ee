"""Load on ``serve``'s OpenAI chat route: 8 clients stream chat completions from one model at
once, round after round, on the tiny chain GGUF (its answer is known: "€ the caté." per 8
tokens), each on its own raw socket. ``tests/test_serve_openai_load.py`` runs 3 rounds;
``python -m bench.openai_load`` (in ``make bench``) keeps the clients going for 30 s.

Checked, per stream (:func:`check_stream`): server-sent ``data:`` events ending
``data: [DONE]``, one completion id throughout (its own, never seen in another stream), the role
first, exactly the text and usage its own ``max_tokens`` asks for (a multiple of 8, from 8 to
32 tokens, so a token of another stream in it would show), ``finish_reason`` "length". In
every round one client of the 8 leaves after the first token of a 4000-token answer: its
generation must end "cancelled" (the adapter's ``GenerationDone``: an event, not a timing)
before it counts the round, and the others of the round are served on the model's one slot.

Memory: the server's resident set (the caller's process: the server runs on its own loop in a
thread, the clients are threads that keep nothing of a stream once checked) is sampled after
each stream, the first sample once a warm-up round has loaded the model and its context and
filled the allocator's pools. The bound, ``RSS_SLACK`` (24 MiB) over the first sample, is
several times the growth measured over 30 s (+2.9 MiB, 336 streams): it catches what scales
with requests in whole objects (a model or context loaded per request, a generation thread or
its queue kept after its client left, a stream's events kept: a 30-s run streams ~3 MiB of
them only if they pile up model-side). It cannot see a leak of a few bytes per request; nor
can 30 s. Loopback only.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runanywhere.adapters.llm import GenerationDone

from .openai_world import CHAIN, chain_model, registry
from .serving import InProcessServer

EURO = "€ the caté."
CLIENTS = 8
LEAVER_TOKENS = 4000
#: The resident set may grow this much over the first sample after the warm-up.
RSS_SLACK = 24 * 2**20
#: A timed run's bound on rounds, so it ends however fast the machine is.
MAX_ROUNDS = 10_000


def rss() -> int:
    """This process's resident set in bytes (``VmRSS``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def open_stream(url: str, max_tokens: int) -> socket.socket:
    """A streamed chat request on a new connection (the response is read by the caller)."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=300)
    body = json.dumps({"model": CHAIN, "messages": [{"role": "user", "content": "the"}],
                       "max_tokens": max_tokens, "temperature": 0, "stream": True,
                       "stream_options": {"include_usage": True}}).encode()
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 b"Connection: close\r\nContent-Type: application/json\r\n"
                 b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    return sock


def read_all(sock: socket.socket) -> bytes:
    data = bytearray()
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    return bytes(data)


def unchunk(body: bytes) -> bytes:
    """The body of a ``Transfer-Encoding: chunked`` response."""
    out = bytearray()
    while True:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return bytes(out)
        out += body[:size]
        assert body[size:size + 2] == b"\r\n", "a chunk not followed by CRLF"
        body = body[size + 2:]


def check_stream(raw: bytes, max_tokens: int) -> str:
    """Check one whole streamed answer (the raw HTTP response); its completion id."""
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    assert status_line.startswith("HTTP/1.1 200"), status_line
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    assert headers["content-type"].startswith("text/event-stream")
    if headers.get("transfer-encoding") == "chunked":
        body = unchunk(body)
    text = body.decode()
    assert text.endswith("\n\ndata: [DONE]\n\n"), text[-120:]
    blocks = text[:-2].split("\n\n")
    assert all(b.startswith("data: ") and "\n" not in b for b in blocks), blocks[:3]
    chunks: list[dict[str, Any]] = [json.loads(b[len("data: "):]) for b in blocks[:-1]]
    ids = {c["id"] for c in chunks}
    assert len(ids) == 1, f"one stream, several ids: {ids}"
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    said = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert said == EURO * (max_tokens // 8), f"{max_tokens} tokens: {said!r}"
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == max_tokens
    return str(ids.pop())


@dataclass
class Load:
    """What the clients saw, shared between their threads (under ``lock``)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    ids: set[str] = field(default_factory=set)
    rounds: int = 0
    streams: int = 0
    tokens: int = 0
    cancelled: list[GenerationDone] = field(default_factory=list)
    rss: list[int] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def growth(self) -> int:
        return max(self.rss) - self.rss[0]

    def summary(self) -> str:
        return (f"{CLIENTS} clients, {self.seconds:.1f} s, {self.rounds} rounds,"
                f" {self.streams} streams ({self.tokens} tokens,"
                f" {self.tokens / self.seconds:.0f} tok/s), {len(self.cancelled)} left"
                f" mid-stream; RSS {self.rss[0] / 2**20:.1f} MiB after the warm-up, at most"
                f" +{self.growth / 2**20:.1f} MiB over {len(self.rss)} samples")


def warm_up(url: str) -> None:
    """One stream per client at once: the model loads, the allocator's pools fill."""
    errors: list[BaseException] = []

    def one(n: int) -> None:
        try:
            check_stream(read_all(open_stream(url, n)), n)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=one, args=(8 * (i + 1),)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    if errors:
        raise errors[0]


@contextmanager
def chain_server(folder: Path) -> Iterator[InProcessServer]:
    """``serve`` in this process over a cache in ``folder`` holding the chain model (kept
    loaded: keep-alive none)."""
    path, entry = chain_model(folder)
    reg = registry(folder / "home")
    reg.register_model(entry)
    reg.import_model(CHAIN, path)
    with InProcessServer(reg, keep_alive=None) as served:
        yield served


def run_load(served: InProcessServer, rounds: int = 3, seconds: float = 0.0) -> Load:
    """Drive the 8 clients against ``served`` (:func:`chain_server`) for ``rounds`` rounds, or
    for ``seconds`` when given; check every stream and raise the first failure; return what
    they saw."""
    url = served.url
    warm_up(url)
    worker = served.server.context.pool.worker(CHAIN)
    assert worker is not None and worker.turns.slots == 1  # the 8 take turns on one slot
    load = Load(rss=[rss()])
    left = threading.Semaphore(0)

    def on_done(e: GenerationDone) -> None:
        if e.result.finish_reason == "cancelled":
            with load.lock:
                load.cancelled.append(e)
            left.release()

    worker.adapter.on(GenerationDone, on_done)
    deadline = time.monotonic() + seconds
    stop = threading.Event()
    # The barrier's action runs once per round, so the 8 agree on whether time is up.
    everyone = threading.Barrier(CLIENTS, action=lambda: (
        stop.set() if seconds and time.monotonic() > deadline else None))

    def leave_mid_stream() -> None:
        sock = open_stream(url, LEAVER_TOKENS)
        seen = b""
        while b'"content":"."' not in seen:  # the chain's first "." : it is generating
            chunk = sock.recv(65536)
            assert chunk, "the server closed the leaver's stream"
            seen += chunk
        sock.close()
        assert left.acquire(timeout=120), "the generation went on after its client left"
        with load.lock:
            load.rounds += 1

    def client(i: int) -> None:
        try:
            for r in range(MAX_ROUNDS if seconds else rounds):
                everyone.wait(300)  # a round starts for the 8 at once
                if stop.is_set():
                    return
                if i == r % CLIENTS:  # this round's leaver
                    leave_mid_stream()
                    continue
                n = 8 * (1 + (i + r) % 4)  # 8 to 32 tokens
                stream_id = check_stream(read_all(open_stream(url, n)), n)
                sample = rss()
                with load.lock:
                    assert stream_id not in load.ids, f"{stream_id} answered two streams"
                    load.ids.add(stream_id)
                    load.streams += 1
                    load.tokens += n
                    load.rss.append(sample)
        except BaseException as e:  # raised again by run_load's thread
            with load.lock:
                load.errors.append(e)
            everyone.abort()

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,), name=f"load-client-{i}")
               for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 600)
    load.seconds = time.monotonic() - started
    assert not any(t.is_alive() for t in threads), "a client never finished"
    real = [e for e in load.errors if not isinstance(e, threading.BrokenBarrierError)]
    if load.errors:
        raise (real or load.errors)[0]
    assert load.rounds >= (1 if seconds else rounds)
    assert load.streams == load.rounds * (CLIENTS - 1)
    assert len(load.cancelled) == load.rounds
    assert all(e.result.usage.completion_tokens < LEAVER_TOKENS for e in load.cancelled)
    assert worker.turns.busy == 0 and worker.waiting == 0  # no slot lost, nobody in line
    return load
