"""``serve``'s OpenAI routes byte by byte, on the tiny chain GGUF (its answer is known at any
temperature, "€ the caté." over and over): the server-sent events and their end, CORS on a
stream, every refusal in OpenAI's error shape, the fair bounded line (429 + Retry-After), a
client that leaves mid-stream giving its slot back, keep-alive, the loaded-model budget and
pull-through."""

from __future__ import annotations

import http.client
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from runanywhere import ModelRegistry
from runanywhere.adapters.llm import GenerationDone
from runanywhere.serve.devserver import Origin
from support.openai_world import CHAIN, chain_model, registry
from support.serving import InProcessServer

EURO = "€ the caté."
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    return chain_model(tmp_path_factory.mktemp("chain"))


def chain_registry(home: Path, chain: tuple[Path, dict[str, Any]], **settings: Any
                   ) -> ModelRegistry:
    path, entry = chain
    reg = registry(home, **settings)
    reg.register_model(entry)
    reg.import_model(CHAIN, path)
    return reg


@pytest.fixture
def served(tmp_path: Path, chain: tuple[Path, dict[str, Any]]) -> Iterator[InProcessServer]:
    with InProcessServer(chain_registry(tmp_path / "home", chain),
                         cors=("http://app.test",)) as s:
        yield s


def post(url: str, path: str, body: Any, headers: dict[str, str] | None = None
         ) -> tuple[int, dict[str, str], bytes]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=120)
    try:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        conn.request("POST", path, body=data, headers={**JSON, **(headers or {})})
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def chat(max_tokens: int, **extra: Any) -> dict[str, Any]:
    return {"model": CHAIN, "messages": [{"role": "user", "content": "the"}],
            "max_tokens": max_tokens, "temperature": 0, **extra}


def until(cond: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Wait for a condition another thread brings about (checked every 10 ms)."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


class LogEvent(logging.Handler):
    """Sets an event when the server logs a line containing ``text``."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.seen.set()

    def __enter__(self) -> LogEvent:
        log = logging.getLogger("runanywhere.serve")
        self.level = log.level
        log.setLevel(logging.INFO)  # the pool's load and unload lines are INFO
        log.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        log = logging.getLogger("runanywhere.serve")
        log.removeHandler(self)
        log.setLevel(self.level)


def events_of(body: bytes) -> list[str]:
    """The data of each server-sent event (the stream must be made of ``data:`` blocks)."""
    text = body.decode()
    assert text.endswith("\n\n"), text[-80:]
    blocks = text[:-2].split("\n\n")
    assert all(b.startswith("data: ") and "\n" not in b for b in blocks), blocks[:3]
    return [b[len("data: "):] for b in blocks]


# -- the stream ------------------------------------------------------------------------------------
def test_a_chat_stream_is_data_events_ending_with_done(served: InProcessServer) -> None:
    status, headers, body = post(served.url, "/v1/chat/completions",
                                 chat(16, stream=True, stream_options={"include_usage": True}),
                                 {"Origin": "http://app.test"})
    assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
    assert headers["Access-Control-Allow-Origin"] == "http://app.test"
    data = events_of(body)
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == EURO * 2  # 16 tokens: the chain twice
    assert chunks[-2]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None,
                                        "finish_reason": "length"}
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 16
    assert all(c["usage"] is None for c in chunks[:-1])
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}


def test_completions_whole_and_streamed(served: InProcessServer) -> None:
    body = {"model": CHAIN, "prompt": ["the"], "max_tokens": 8, "temperature": 0.7, "seed": 3}
    status, _, raw = post(served.url, "/v1/completions", body)
    doc = json.loads(raw)
    assert status == 200 and doc["object"] == "text_completion"
    assert doc["choices"] == [{"index": 0, "text": EURO, "logprobs": None,
                               "finish_reason": "length"}]
    assert doc["usage"]["completion_tokens"] == 8
    assert doc["usage"]["total_tokens"] == doc["usage"]["prompt_tokens"] + 8
    status, _, raw = post(served.url, "/v1/completions", {**body, "stream": True})
    data = events_of(raw)
    assert data[-1] == "[DONE]" and "usage" not in json.loads(data[0])
    assert "".join(json.loads(d)["choices"][0]["text"] for d in data[:-1]) == EURO


# -- refusals, in OpenAI's shape -------------------------------------------------------------------
@pytest.mark.parametrize(("body", "param", "code"), [
    ({"messages": [{"role": "user", "content": "x"}]}, "model", "missing_required_parameter"),
    ({"model": CHAIN}, "messages", "missing_required_parameter"),
    ({"model": CHAIN, "messages": []}, "messages", "empty_array"),
    ({"model": CHAIN, "messages": "hi"}, "messages", "invalid_type"),
    ({"model": CHAIN, "messages": [{"role": "tool", "content": "x"}]}, "messages[0].role",
     "unsupported_value"),
    ({"model": CHAIN, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:,"}}]}]}, "messages[0].content[0]",
     "unsupported_content"),
    (chat(4, temperature=2.5), "temperature", "invalid_value"),
    (chat(4, top_p=0), "top_p", "invalid_value"),
    (chat(0), "max_tokens", "invalid_value"),
    ({**chat(4), "max_tokens": "4"}, "max_tokens", "invalid_type"),
    (chat(4, stop=["a", "b", "c", "d", "e"]), "stop", "invalid_value"),
    (chat(4, seed=2**40), "seed", "invalid_value"),
    (chat(4, n=2), "n", "unsupported_parameter"),
    (chat(4, tools=[{"type": "function"}]), "tools", "unsupported_parameter"),
    (chat(4, logprobs=True), "logprobs", "unsupported_parameter"),
    (chat(4, presence_penalty=0.5), "presence_penalty", "unsupported_parameter"),
    (chat(4, response_format={"type": "json_object"}), "response_format",
     "unsupported_parameter"),
    (chat(4, stream_options={"include_usage": True}), "stream_options", "invalid_value"),
])
def test_bad_requests_are_400_naming_the_field(served: InProcessServer, body: dict[str, Any],
                                               param: str, code: str) -> None:
    status, headers, raw = post(served.url, "/v1/chat/completions", body)
    err = json.loads(raw)["error"]
    assert status == 400 and headers["Content-Type"].startswith("application/json")
    assert (err["param"], err["code"], err["type"]) == (param, code, "invalid_request_error")
    assert err["message"]


def test_bodies_methods_and_models_refused_in_openais_shape(served: InProcessServer) -> None:
    def error(status: int, raw: bytes) -> dict[str, Any]:
        doc = json.loads(raw)
        assert set(doc) == {"error"} and set(doc["error"]) == {"message", "type", "param",
                                                                 "code"}, doc
        return doc["error"]  # type: ignore[no-any-return]

    s, _, raw = post(served.url, "/v1/chat/completions", b"{not json")
    assert s == 400 and error(s, raw)["code"] == "invalid_json"
    s, _, raw = post(served.url, "/v1/chat/completions", b"model=x",
                     {"Content-Type": "application/x-www-form-urlencoded"})
    assert s == 415 and "application/json" in error(s, raw)["message"]
    s, _, raw = post(served.url, "/v1/chat/completions",
                     {**chat(1), "pad": "x" * (5 * 2**20)})
    assert s == 413 and error(s, raw)["code"] == "request_too_large"
    s, _, raw = post(served.url, "/v1/chat/completions", {**chat(1), "model": "nope"})
    assert s == 404 and error(s, raw)["code"] == "model_not_found"
    s, _, raw = post(served.url, "/v1/audio/speech", {"model": CHAIN, "input": "Hi."})
    assert s == 400 and error(s, raw)["code"] == "model_not_supported"
    conn = http.client.HTTPConnection(served.url.removeprefix("http://"), timeout=30)
    conn.request("GET", "/v1/chat/completions")
    r = conn.getresponse()
    assert r.status == 405 and error(405, r.read())["code"] == "method_not_allowed"
    assert "POST" in (r.getheader("Allow") or "")
    conn.close()
    s, _, raw = post(served.url, "/v1/chat/completions", chat(1), {"Host": "evil.example"})
    assert s == 403 and error(s, raw)["code"] == "forbidden_host"


def test_a_token_guards_the_openai_routes_in_their_shape(
        tmp_path: Path, chain: tuple[Path, dict[str, Any]]) -> None:
    with InProcessServer(chain_registry(tmp_path / "home", chain), token="t0k") as s:
        status, headers, raw = post(s.url, "/v1/chat/completions", chat(1))
        assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
        assert json.loads(raw)["error"]["code"] == "invalid_api_key"
        status, _, raw = post(s.url, "/v1/chat/completions", chat(1),
                              {"Authorization": "Bearer t0k"})
        assert status == 200 and json.loads(raw)["usage"]["completion_tokens"] == 1
        status, _, raw = post(s.url, "/v1/models/none/files/x", {})  # other groups: as before
        assert status == 401 and isinstance(json.loads(raw)["error"], str)


# -- the line, a client that leaves, keep-alive, the budget ----------------------------------------
class Stream:
    """A streamed chat read by hand on a raw socket (so the test can walk away mid-answer)."""

    def __init__(self, url: str, body: dict[str, Any]) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=120)
        data = json.dumps(body).encode()
        self.sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          b"Content-Type: application/json\r\nContent-Length: "
                          + str(len(data)).encode() + b"\r\n\r\n" + data)
        self.seen = b""

    def read_until(self, needle: bytes) -> None:
        while needle not in self.seen:
            chunk = self.sock.recv(65536)
            assert chunk, "the server closed the stream"
            self.seen += chunk

    def leave(self) -> None:
        self.sock.close()


def test_a_client_that_leaves_stops_its_generation_and_frees_its_slot(
        served: InProcessServer) -> None:
    pool = served.server.context.pool
    long = Stream(served.url, chat(3000, stream=True))
    long.read_until(b'"content":"."')  # the chain said its first "." : it is generating
    worker = pool.worker(CHAIN)
    assert worker is not None and worker.turns.busy == 1
    ended: list[GenerationDone] = []
    done = threading.Event()
    worker.adapter.on(GenerationDone, lambda e: (ended.append(e), done.set()))
    long.leave()
    assert done.wait(60), "the generation went on after its client left"
    assert ended[0].result.finish_reason == "cancelled"
    assert ended[0].result.usage.completion_tokens < 3000
    status, _, raw = post(served.url, "/v1/chat/completions", chat(8))  # the slot is free
    assert status == 200 and json.loads(raw)["choices"][0]["message"]["content"] == EURO


def test_the_line_is_bounded_429_with_retry_after(
        tmp_path: Path, chain: tuple[Path, dict[str, Any]]) -> None:
    with InProcessServer(chain_registry(tmp_path / "home", chain), max_queue=1) as s:
        first = Stream(s.url, chat(3000, stream=True))
        first.read_until(b'"content":"."')
        results: list[tuple[int, bytes]] = []
        waiter = threading.Thread(target=lambda: results.append(
            post(s.url, "/v1/chat/completions", chat(8))[::2]))
        waiter.start()
        worker = s.server.context.pool.worker(CHAIN)
        assert worker is not None
        until(lambda: worker.waiting == 1, "the second request to wait its turn")
        status, headers, raw = post(s.url, "/v1/chat/completions", chat(8))
        assert status == 429 and int(headers["Retry-After"]) >= 1
        assert json.loads(raw)["error"]["code"] == "rate_limit_exceeded"
        first.leave()
        waiter.join(120)
        assert results and results[0][0] == 200  # the one in line got its turn


def test_keep_alive_zero_unloads_after_the_last_request(
        tmp_path: Path, chain: tuple[Path, dict[str, Any]]) -> None:
    reg = chain_registry(tmp_path / "home", chain)
    with InProcessServer(reg, keep_alive=0.0) as s, LogEvent("unloaded chain (idle)") as gone:
        assert post(s.url, "/v1/chat/completions", chat(2))[0] == 200
        assert gone.seen.wait(60)
        assert reg.loaded_models() == [] and s.server.context.pool.loaded() == []
        assert post(s.url, "/v1/chat/completions", chat(2))[0] == 200  # loads again


def test_keep_alive_keeps_a_model_for_its_time_then_unloads_it(
        tmp_path: Path, chain: tuple[Path, dict[str, Any]]) -> None:
    reg = chain_registry(tmp_path / "home", chain)
    with InProcessServer(reg, keep_alive=1.5) as s, LogEvent("unloaded chain (idle)") as gone:
        assert post(s.url, "/v1/chat/completions", chat(2))[0] == 200
        answered = time.monotonic()
        assert [m.model_id for m in reg.loaded_models()] == [CHAIN]
        assert gone.seen.wait(60)
        assert time.monotonic() - answered >= 1.4, "unloaded before its keep-alive"
        assert reg.loaded_models() == []


def test_a_model_that_does_not_fit_the_budget_unloads_the_idle_one(
        tmp_path: Path, chain: tuple[Path, dict[str, Any]]) -> None:
    path, entry = chain
    reg = chain_registry(tmp_path / "home", chain, max_loaded_memory=3 * 2**20)
    other = {**entry, "id": "chain2", "requirements": {"memory": 2 * 2**20}}
    reg.register_model(other)
    reg.import_model("chain2", path)
    with InProcessServer(reg, keep_alive=None) as s, \
            LogEvent("unloading chain to make room for chain2") as made_room:
        assert post(s.url, "/v1/chat/completions", chat(2))[0] == 200
        assert s.server.context.pool.loaded() == [CHAIN]
        status, _, raw = post(s.url, "/v1/chat/completions", {**chat(2), "model": "chain2"})
        assert status == 200 and json.loads(raw)["model"] == "chain2"
        assert made_room.seen.is_set()
        assert s.server.context.pool.loaded() == ["chain2"]
        assert [m.model_id for m in reg.loaded_models()] == ["chain2"]


def test_pull_through_pulls_an_uncached_model_before_answering(
        tmp_path: Path, chain: tuple[Path, dict[str, Any]]) -> None:
    path, entry = chain
    origin_dir = tmp_path / "origin"
    origin_dir.mkdir()
    (origin_dir / path.name).write_bytes(path.read_bytes())
    with Origin(origin_dir) as origin:
        reg = registry(tmp_path / "home")
        reg.register_model({**entry, "url": f"{origin.url}/{path.name}"})
        with InProcessServer(reg) as s:
            status, _, raw = post(s.url, "/v1/chat/completions", chat(2))
            assert status == 404 and "--pull-through" in json.loads(raw)["error"]["message"]
        with InProcessServer(reg, pull_through=True) as s:
            status, _, raw = post(s.url, "/v1/chat/completions", chat(8))
            assert status == 200 and json.loads(raw)["choices"][0]["message"]["content"] == EURO
            assert s.server.pulled == [CHAIN] and reg.cache.entry(CHAIN) is not None
