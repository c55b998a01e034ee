"""Fixtures of the openai adapters' tests: llama.cpp's own HTTP server (the one inside
xllamacpp) on the real SmolLM2, ``runanywhere serve`` on a cache holding SmolLM2, Whisper
tiny.en and the Piper joe voice, the llama adapter on the same file for comparisons, and a
small scripted server for what real servers do rarely (429, 503, a stream cut short).

A module each test file imports (``from openai_fixtures import *``), not a conftest.py: the
core's tests import their own ``conftest`` by name.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from support.openai_world import SMOL, fill_home, registry, smollm2_file
from support.serving import InProcessServer

#: llama.cpp's server answers to this key only (its HTTP port is open on loopback).
LLAMA_KEY = "llama-server-test-key"


@dataclass
class LlamaServer:
    """xllamacpp's embedded llama.cpp server on SmolLM2, its HTTP API on 127.0.0.1."""

    server: Any
    url: str

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def metrics(self) -> dict[str, float]:
        """llama.cpp's Prometheus counters (``tokens_predicted_total``, ...), by short name."""
        import urllib.request

        req = urllib.request.Request(f"{self.url}/metrics",
                                     headers={"Authorization": f"Bearer {LLAMA_KEY}"})
        with urllib.request.urlopen(req, timeout=30) as r:
            lines = r.read().decode().splitlines()
        out = {}
        for line in lines:
            if line.startswith("llamacpp:"):
                name, value = line[len("llamacpp:"):].split()
                out[name] = float(value)
        return out


@pytest.fixture(scope="session")
def llama_server() -> Iterator[LlamaServer]:
    import xllamacpp as xlc

    p = xlc.CommonParams()
    p.model.path = str(smollm2_file())
    p.n_ctx = 2048
    p.warmup = False
    p.verbosity = -1
    p.port = 0
    p.hostnames = ["127.0.0.1"]
    p.api_keys = [LLAMA_KEY]
    p.endpoint_metrics = True  # GET /metrics: tokens predicted, requests in flight
    server = xlc.Server(p)
    address = server.listening_address
    yield LlamaServer(server, address if address.startswith("http") else f"http://{address}")
    server.handle_completions({"prompt": "a", "max_tokens": 1})  # its loop runs: safe to free
    del server


@pytest.fixture(scope="session")
def serve_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("serve-home")
    fill_home(home, tmp_path_factory.mktemp("serve-scratch"))
    return home


@pytest.fixture(scope="session")
def served(serve_home: Path) -> Iterator[InProcessServer]:
    with InProcessServer(registry(serve_home), access_log=False) as s:
        yield s


@pytest.fixture(scope="session")
def local_llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Our llama adapter on the same SmolLM2 file, same context, loaded in this process."""
    from runanywhere_llm_llamacpp import LlamaAdapter

    home = tmp_path_factory.mktemp("local-home")
    reg = registry(home)
    reg.import_model(SMOL, smollm2_file())
    llm = LlamaAdapter(reg)
    llm.load_model_sync(SMOL, n_ctx=2048).unwrap()
    yield llm
    reg.unload_model(SMOL)


# -- a scripted server -----------------------------------------------------------------------------
@dataclass
class Answer:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Scripted:
    """Answers each request with the next of ``answers`` (the last one again after that) and
    records (method, path, headers, body) of every request."""

    answers: list[Answer]
    seen: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next(self) -> Answer:
        with self.lock:
            return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def sse(*docs: Any, done: bool = True) -> bytes:
    out = b"".join(b"data: " + json.dumps(d).encode() + b"\n\n" for d in docs)
    return out + (b"data: [DONE]\n\n" if done else b"")


def chat_chunk(text: str | None = None, finish: str | None = None) -> dict[str, Any]:
    delta = {} if text is None else {"content": text}
    return {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


@pytest.fixture
def scripted() -> Iterator[Callable[..., Scripted]]:
    servers: list[ThreadingHTTPServer] = []

    def make(*answers: Answer) -> Scripted:
        script = Scripted(list(answers))

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                with script.lock:
                    script.seen.append((self.command, self.path, dict(self.headers), body))
                a = script.next()
                self.send_response(a.status)
                for k, v in {"Content-Length": str(len(a.body)), "Connection": "close",
                             **a.headers}.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(a.body)
                self.close_connection = True

            do_GET = do_POST = _answer

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.daemon_threads = True
        servers.append(httpd)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        script.url = f"http://127.0.0.1:{httpd.server_address[1]}"
        return script

    yield make
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


__all__ = ["llama_server", "local_llama", "scripted", "serve_home", "served"]
