"""The ``openai`` adapter against real OpenAI-compatible servers: llama.cpp's own HTTP server
(xllamacpp's, on loopback) and ``runanywhere serve``, both on the real SmolLM2.

At temperature 0 it writes the same tokens as our llama adapter running the same file in this
process (chat and plain completion); the usage matches; its events come as for a local model;
a cancelled stream closes its connection and the server stops generating; what the servers
refuse comes back as typed errors."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from openai_fixtures import *  # noqa: F403
from openai_fixtures import LLAMA_KEY, LlamaServer

from runanywhere.adapters.llm import FirstToken, GenerationDone, GenerationResult, LLMAdapter
from runanywhere_llm_openai import (
    OpenAILLMAdapter,
    RemoteAuthError,
    RemoteModelNotFoundError,
    RemoteUnavailableError,
)
from support.isolation import _isolated_env
from support.openai_world import CAPITAL, SMOL
from support.serving import InProcessServer

PROMPT = "Once upon a time, in a small village by the sea,"


def remote(base_url: str, **kw: Any) -> OpenAILLMAdapter:
    llm = OpenAILLMAdapter(base_url=base_url, **kw)
    llm.load_model_sync(SMOL).unwrap()
    return llm


@pytest.fixture(scope="module")
def via_llama(llama_server: LlamaServer) -> OpenAILLMAdapter:
    return remote(llama_server.base_url, api_key=LLAMA_KEY)


@pytest.fixture(scope="module")
def via_serve(served: InProcessServer) -> OpenAILLMAdapter:
    return remote(f"{served.url}/v1")


def both(result: GenerationResult, deltas: list[str]) -> str:
    assert "".join(deltas) == result.text
    return result.text


@pytest.mark.parametrize("where", ["llama.cpp", "serve"])
def test_the_same_tokens_as_the_local_adapter_at_temperature_zero(
        where: str, request: pytest.FixtureRequest, local_llama: LLMAdapter) -> None:
    llm: OpenAILLMAdapter = request.getfixturevalue(
        "via_llama" if where == "llama.cpp" else "via_serve")
    texts = []
    for make in (lambda a: a.chat(CAPITAL, max_tokens=24, temperature=0),
                 lambda a: a.generate(PROMPT, max_tokens=24, temperature=0, seed=7)):
        here = make(local_llama)
        here_deltas = list(here)
        there = make(llm)
        there_deltas = list(there)
        mine, theirs = here.result(), there.result()
        assert both(theirs, there_deltas) == both(mine, here_deltas)
        assert theirs.usage == mine.usage, where
        assert theirs.finish_reason == mine.finish_reason
        texts.append(theirs.text)
    assert "Paris" in texts[0] and len(texts[1]) > 20


def test_events_and_timings_come_as_for_a_local_model(via_serve: OpenAILLMAdapter) -> None:
    firsts: list[FirstToken] = []
    dones: list[GenerationDone] = []
    via_serve.on(FirstToken, firsts.append)
    via_serve.on(GenerationDone, dones.append)
    try:
        result = via_serve.chat(CAPITAL, max_tokens=5, temperature=0).collect()
    finally:
        via_serve.off(FirstToken)
        via_serve.off(GenerationDone)
    assert [d.result for d in dones] == [result]
    assert len(firsts) == 1 and firsts[0].first_token_s > 0
    assert result.timings.first_token_s is not None and result.timings.load_s == 0.0
    assert result.usage.completion_tokens == 5 and result.finish_reason == "length"


def _cancel_after_three(llm: OpenAILLMAdapter) -> GenerationResult:
    stream = llm.generate(PROMPT, max_tokens=1500, temperature=0)
    got = []
    for delta in stream:
        got.append(delta)
        if len(got) == 3:
            break  # leaving the loop cancels the stream
    result = stream.result(60)
    assert result.finish_reason == "cancelled" and result.text == "".join(got)
    return result


def _until(cond: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Wait for a condition the server brings about (checked every 20 ms)."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_a_cancel_stops_llama_cpps_server(via_llama: OpenAILLMAdapter,
                                          llama_server: LlamaServer) -> None:
    before = llama_server.metrics()["tokens_predicted_total"]
    _cancel_after_three(via_llama)
    _until(lambda: llama_server.metrics()["requests_processing"] == 0,
           "llama.cpp to end the request")
    predicted = llama_server.metrics()["tokens_predicted_total"] - before
    assert 3 <= predicted < 100, predicted  # it stopped soon after the connection closed
    after = via_llama.chat(CAPITAL, max_tokens=4, temperature=0).collect()  # the slot serves
    assert after.usage.completion_tokens == 4


def test_a_cancel_stops_serves_generation(via_serve: OpenAILLMAdapter,
                                          served: InProcessServer) -> None:
    worker = served.server.context.pool.worker(SMOL)
    assert worker is not None and worker.adapter is not None  # loaded by the tests above
    ended = threading.Event()
    seen: list[GenerationResult] = []
    off = worker.adapter.on(GenerationDone, lambda e: (seen.append(e.result), ended.set()))
    try:
        _cancel_after_three(via_serve)
        assert ended.wait(60), "serve went on generating after its client left"
    finally:
        off()
    assert seen[0].finish_reason == "cancelled" and seen[0].usage.completion_tokens < 1500


def test_async_streams_and_task_cancel_from_a_running_loop(via_serve: OpenAILLMAdapter) -> None:
    async def main() -> tuple[str, str]:
        text = "".join([d async for d in via_serve.chat(CAPITAL, max_tokens=8,
                                                         temperature=0)])
        stream = via_serve.generate(PROMPT, max_tokens=1500, temperature=0)
        first = asyncio.Event()

        async def read() -> None:
            async for _ in stream:
                first.set()

        task = asyncio.ensure_future(read())
        await first.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return text, (await stream.aresult(60)).finish_reason

    text, finish = asyncio.run(main())
    assert text and finish == "cancelled"


def test_refusals_are_typed(llama_server: LlamaServer, served: InProcessServer) -> None:
    wrong = OpenAILLMAdapter(base_url=llama_server.base_url, api_key="not-the-key")
    loaded = wrong.load_model_sync(SMOL)
    assert not loaded.success and isinstance(loaded.error, RemoteAuthError)
    assert loaded.error.status == 401

    unknown = OpenAILLMAdapter(base_url=f"{served.url}/v1")
    unknown.load_model_sync("no-such-model").unwrap()  # the server is there ...
    with pytest.raises(RemoteModelNotFoundError) as nf:
        unknown.chat(CAPITAL, max_tokens=2).collect()  # ... the model is not
    assert nf.value.code == "model_not_found" and nf.value.status == 404

    from harness.net import free_port

    nobody = OpenAILLMAdapter(base_url=f"http://127.0.0.1:{free_port()}/v1", max_retries=0)
    refused = nobody.load_model_sync(SMOL)
    assert not refused.success and isinstance(refused.error, RemoteUnavailableError)
    assert "no answer" in str(refused.error)


def test_a_local_server_and_a_remote_one_share_nothing(
        served: InProcessServer, via_llama: OpenAILLMAdapter) -> None:
    """Two adapters on two servers stream at once, each its own text (no interleaving)."""
    results: dict[str, str] = {}

    def run(name: str, llm: OpenAILLMAdapter) -> None:
        results[name] = llm.chat(CAPITAL, max_tokens=12, temperature=0).collect().text

    other = remote(f"{served.url}/v1")
    threads = [threading.Thread(target=run, args=(n, a)) for n, a in
               (("llama", via_llama), ("serve", other))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert results["llama"] == results["serve"] and "Paris" in results["llama"]


def test_serve_behind_a_token_takes_the_adapters_key(serve_home: Any) -> None:
    from support.openai_world import registry

    with InProcessServer(registry(serve_home), token="k3y", access_log=False) as s:
        denied = OpenAILLMAdapter(base_url=f"{s.url}/v1").load_model_sync(SMOL)
        assert isinstance(denied.error, RemoteAuthError)
        llm = remote(f"{s.url}/v1", api_key="k3y")
        assert llm.chat(CAPITAL, max_tokens=3, temperature=0).collect().usage.completion_tokens \
            == 3
