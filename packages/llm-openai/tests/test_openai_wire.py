"""The openai adapters' wire: retries honouring Retry-After, what a cut stream or an error
event becomes, the server-sent events reader, where the endpoint and key come from, a proxy
with credentials, and a remote model named by a catalog entry and run by ``runanywhere run``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from openai_fixtures import *  # noqa: F403
from openai_fixtures import Answer, Scripted, chat_chunk, sse

from runanywhere.catalog import parse_catalog
from runanywhere.errors import InvalidOptionError
from runanywhere_llm_openai import (
    OpenAILLMAdapter,
    RemoteAPIError,
    RemoteBadRequestError,
    RemoteRateLimitError,
    RemoteUnavailableError,
)
from runanywhere_llm_openai.endpoint import resolve
from runanywhere_llm_openai.sse import events
from support.isolation import _isolated_env
from support.openai_world import CAPITAL, SMOL
from support.proxy import Proxy
from support.serving import InProcessServer

MODELS = Answer(200, b'{"object": "list", "data": []}')
SSE = {"Content-Type": "text/event-stream"}


def adapter(script: Scripted, **kw: Any) -> OpenAILLMAdapter:
    llm = OpenAILLMAdapter(base_url=f"{script.url}/v1", model="m", **kw)
    llm.load_model_sync("m").unwrap()
    return llm


# -- retries ---------------------------------------------------------------------------------------
def test_a_busy_server_is_asked_again_after_its_retry_after(
        scripted: Callable[..., Scripted]) -> None:
    server = scripted(MODELS, Answer(503, b'{"error": {"message": "loading"}}',
                                     {"Retry-After": "1"}),
                      Answer(200, sse(chat_chunk("Hi"), chat_chunk(finish="stop")), SSE))
    llm = adapter(server)
    t0 = time.monotonic()
    result = llm.chat(CAPITAL).collect()
    assert result.text == "Hi" and result.finish_reason == "stop"
    posts = [s for s in server.seen if s[0] == "POST"]
    assert len(posts) == 2 and posts[0][3] == posts[1][3]  # the same request, sent again
    assert time.monotonic() - t0 >= 0.95  # not before the server said it would be ready
    body = json.loads(posts[0][3])
    assert body == {"model": "m", "stream": True, "stream_options": {"include_usage": True},
                    "messages": CAPITAL}
    assert result.usage.completion_tokens == 1  # no usage chunk: the chunks are counted


def test_rate_limits_beyond_the_retries_and_bad_requests_are_typed(
        scripted: Callable[..., Scripted]) -> None:
    limited = scripted(MODELS, Answer(429, b'{"error": {"message": "slow down", "type":'
                                      b' "requests", "code": "rate_limit_exceeded"}}',
                                      {"Retry-After": "0"}))
    with pytest.raises(RemoteRateLimitError) as e:
        adapter(limited, max_retries=2).chat(CAPITAL).collect()
    assert e.value.code == "rate_limit_exceeded" and e.value.retry_after == 0
    assert len([s for s in limited.seen if s[0] == "POST"]) == 3  # once, then 2 retries
    too_long = scripted(MODELS, Answer(429, b"{}", {"Retry-After": "3600"}))
    with pytest.raises(RemoteRateLimitError):  # an hour is an answer, not a wait
        adapter(too_long).chat(CAPITAL).collect()
    assert len([s for s in too_long.seen if s[0] == "POST"]) == 1
    bad = scripted(MODELS, Answer(400, b'{"error": {"message": "no", "param": "messages",'
                                  b' "code": "invalid_value"}}'))
    with pytest.raises(RemoteBadRequestError) as b:
        adapter(bad).chat(CAPITAL).collect()
    assert b.value.status == 400 and "no" in str(b.value)
    assert len([s for s in bad.seen if s[0] == "POST"]) == 1  # a 400 is never retried


def test_a_stream_cut_short_or_failing_is_an_error_not_an_answer(
        scripted: Callable[..., Scripted]) -> None:
    cut = scripted(MODELS, Answer(200, sse(chat_chunk("Hel"), done=False), SSE))
    with pytest.raises(RemoteUnavailableError, match="ended before its end"):
        adapter(cut).chat(CAPITAL).collect()
    failing = scripted(MODELS, Answer(200, sse(chat_chunk("Hel"), {"error": {
        "message": "out of memory", "type": "server_error"}}), SSE))
    stream = adapter(failing).chat(CAPITAL)
    with pytest.raises(RemoteAPIError, match="out of memory"):
        stream.collect()
    assert stream.text == "Hel"  # what came before the error stays


def test_completions_read_text_and_the_usage_chunk(scripted: Callable[..., Scripted]) -> None:
    def chunk(text: str, finish: str | None = None) -> dict[str, Any]:
        return {"choices": [{"index": 0, "text": text, "finish_reason": finish}]}

    server = scripted(MODELS, Answer(200, sse(chunk("a"), chunk("b", "length"), {
        "choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 2}}), SSE))
    result = adapter(server).generate("x", max_tokens=2, stop="z", seed=1).collect()
    assert (result.text, result.finish_reason) == ("ab", "length")
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (4, 2)
    (post,) = [s for s in server.seen if s[0] == "POST"]
    assert post[1] == "/v1/completions"
    assert json.loads(post[3])["stop"] == ["z"] and json.loads(post[3])["prompt"] == "x"


# -- server-sent events ----------------------------------------------------------------------------
@pytest.mark.parametrize(("raw", "want"), [
    ([b"data: a\n", b"\n", b"data: b\n", b"\n"], ["a", "b"]),
    ([b"data: a\r\n", b"\r\n"], ["a"]),
    ([b": keep-alive\n", b"\n", b"event: x\n", b"data:a\n", b"data: b\n", b"\n"], ["a\nb"]),
    ([b"id: 1\n", b"retry: 10\n", b"data: [DONE]\n"], ["[DONE]"]),
    ([b"\n", b"\n", b"data: \xc3\xa9\n", b"\n"], ["\u00e9"]),
])
def test_the_event_reader(raw: list[bytes], want: list[str]) -> None:
    assert list(events(raw)) == want


# -- the endpoint ----------------------------------------------------------------------------------
def test_where_the_endpoint_and_key_come_from() -> None:
    env = {"OPENAI_BASE_URL": "http://env.example/v1", "OPENAI_API_KEY": "env-key",
           "ACME": "acme-key"}
    plain = resolve("gpt-x", None, {}, env)
    assert (plain.base_url, plain.model, plain.api_key) == ("http://env.example/v1", "gpt-x",
                                                            "env-key")
    given = resolve("gpt-x", None, {"base_url": "http://other.example/v1"}, env)
    assert given.api_key is None  # OPENAI_API_KEY never goes to a base_url given in code
    (meta,) = parse_catalog({"format_version": 1, "models": [{
        "id": "r", "name": "r", "type": "llm", "endpoint": {
            "url": "http://acme.example/v1", "model": "big", "api_key_env": "ACME"}}]},
        "/home/me/models.json")
    cat = resolve("r", meta, {}, env)
    assert (cat.base_url, cat.model, cat.api_key) == ("http://acme.example/v1", "big", "acme-key")
    assert resolve("r", meta, {"model": "small"}, env).model == "small"
    (fetched,) = parse_catalog({"format_version": 1, "models": [meta.to_dict()]},
                               "http://catalogs.example/c.json")
    with pytest.raises(InvalidOptionError, match="may not choose which environment variable"):
        resolve("r", fetched, {}, env)
    assert resolve("r", fetched, {"api_key": "mine"}, env).api_key == "mine"
    for bad in ({"base_url": "ftp://x/v1"}, {"timeout": 0}, {"max_retries": -1},
                {"api_key": "a b"}, {"nope": 1}):
        with pytest.raises(InvalidOptionError):
            resolve("m", None, bad, env)


def test_requests_go_through_a_proxy_with_its_credentials(
        served: InProcessServer, monkeypatch: pytest.MonkeyPatch) -> None:
    with Proxy("user", "p@ss") as proxy:
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.setenv("http_proxy", proxy.url("user", "p@ss"))
        llm = OpenAILLMAdapter(base_url=f"{served.url}/v1")
        llm.load_model_sync(SMOL).unwrap()
        text = llm.chat(CAPITAL, max_tokens=8, temperature=0).collect().text
    assert "Paris" in text
    port = served.url.rsplit(":", 1)[1]
    seen = [(method, target) for method, target, _ in proxy.log.requests]
    assert seen == [("CONNECT", f"127.0.0.1:{port}")] * 2  # the check and the chat
    assert all(auth == proxy.expected for _, _, auth in proxy.log.requests)


# -- a catalog's remote model from the command line ------------------------------------------------
def test_run_answers_with_a_remote_model_from_the_catalog(served: InProcessServer,
                                                          tmp_path: Path) -> None:
    catalog = tmp_path / "remote.json"
    catalog.write_text(json.dumps({"format_version": 1, "models": [{
        "id": "far-smol", "name": "SmolLM2 on serve", "type": "llm", "provider": "tests",
        "endpoint": {"url": f"{served.url}/v1", "model": SMOL}}]}))
    home = tmp_path / "home"
    r = subprocess.run(
        [sys.executable, "-m", "runanywhere", "--home", str(home), "--catalog", str(catalog),
         "run", "far-smol", CAPITAL[1]["content"], "--system", CAPITAL[0]["content"],
         "--temperature", "0", "--max-tokens", "24", "--json"],
        capture_output=True, text=True, timeout=300, env={**os.environ})
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert "Paris" in doc["text"] and doc["model"] == "far-smol"
    assert doc["usage"]["completion_tokens"] > 0
    assert not any(home.rglob("*.gguf"))  # nothing was downloaded
