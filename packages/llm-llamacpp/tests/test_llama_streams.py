"""The LLM task interface on real llama.cpp, with the chain model (its text is known in advance):
streaming, split UTF-8, stop strings, cancel, cancel then reuse, concurrent requests, the API
from threads, a running event loop and a plain script, a prompt longer than the context."""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from llm_support import *  # noqa: F403 (its fixtures: there is no conftest.py here)
from llm_support import llm_entry, registry_with, write_catalog
from tiny_gguf import EURO_TEXT, write_random

from runanywhere.adapters import (
    FairSlots,
    FirstToken,
    GenerationDone,
    GenerationResult,
)
from runanywhere.errors import InvalidOptionError, ModelError, PromptTooLongError
from runanywhere_llm_llamacpp import LlamaAdapter

LONG = 3900  # more tokens than any test reads: a generation that only a cancel ends early


def in_cycle(text: str) -> bool:
    """Is ``text`` a stretch of the chain model's endless "€ the caté.€ the caté..."?"""
    return text in EURO_TEXT * (len(text) // len(EURO_TEXT) + 2)


@pytest.fixture(scope="module")
def llm(chain_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaAdapter]:
    reg = registry_with(tmp_path_factory.mktemp("home"), {"chain": chain_gguf})
    adapter = LlamaAdapter(reg)
    adapter.load_model_sync("chain").unwrap()
    yield adapter
    reg.unload_model("chain")


def test_deltas_are_whole_characters_and_join_to_the_text(llm: LlamaAdapter) -> None:
    stream = llm.generate("the", max_tokens=24, temperature=0)
    deltas = list(stream)
    result = stream.result()
    assert "".join(deltas) == result.text
    assert in_cycle(result.text) and len(result.text) > len(EURO_TEXT)
    # "€" is three byte tokens and "é" two: each arrives whole, in one delta, never as U+FFFD
    assert "€" in deltas and "é" in deltas
    assert not any("\ufffd" in d for d in deltas)
    assert result.finish_reason == "length"
    assert result.usage.completion_tokens == 24 and result.usage.prompt_tokens > 0
    assert result.timings.first_token_s is not None and result.timings.first_token_s > 0
    assert result.timings.tokens_per_s is not None and result.timings.tokens_per_s > 0
    assert result.model_id == "chain"


def test_garbage_streams_as_llama_cpp_decodes_it_whole(tmp_path: Path) -> None:
    # random weights emit byte tokens that split characters (or make none): the deltas joined
    # are what llama.cpp gives for the same tokens decoded at once, except the bytes of a
    # character the generation stopped in the middle of: the stream drops those (at most 3,
    # each a U+FFFD in the whole decode) rather than emit a broken character
    reg = registry_with(tmp_path / "home", {"random": write_random(tmp_path / "r.gguf")})
    llm = LlamaAdapter(reg)
    llm.load_model_sync("random").unwrap()
    for prompt in ("the", "cat sat", "é", "on the mat"):
        streamed = "".join(llm.generate(prompt, max_tokens=48, temperature=0))
        whole = llm.llama.server.handle_completions(
            {"prompt": prompt, "max_tokens": 48, "temperature": 0})["choices"][0]["text"]
        assert whole.startswith(streamed) and streamed
        assert set(whole[len(streamed):]) <= {"\ufffd"} and len(whole) - len(streamed) <= 3
    reg.unload_model("random")


def test_chat_streams_through_the_template(llm: LlamaAdapter) -> None:
    result = llm.chat([{"role": "system", "content": "be brief"},
                       {"role": "user", "content": "hello"}], max_tokens=8,
                      temperature=0).collect()
    assert in_cycle(result.text) and result.usage.completion_tokens == 8
    # the template wraps both messages: far more prompt tokens than "hello" alone
    alone = llm.generate("hello", max_tokens=1).collect()
    assert result.usage.prompt_tokens > alone.usage.prompt_tokens + 10


def test_a_stop_string_ends_the_text_before_it(llm: LlamaAdapter) -> None:
    result = llm.generate("the", max_tokens=40, temperature=0, stop=["cat"]).collect()
    assert result.finish_reason == "stop"
    assert "cat" not in result.text and in_cycle(result.text + "cat")
    several = llm.generate("the", max_tokens=40, temperature=0, stop=["é", "cat"]).collect()
    assert several.text == result.text  # " cat" comes before "é" in the cycle


def test_sampling_options_reach_the_model(llm: LlamaAdapter) -> None:
    # the chain's logit gap makes every temperature and seed pick the same tokens: the options
    # are accepted and the text stays the chain's
    a = llm.generate("the", max_tokens=12, temperature=1.0, top_p=0.9, seed=7).collect()
    b = llm.generate("the", max_tokens=12, temperature=0).collect()
    assert a.text == b.text and in_cycle(a.text)


@pytest.mark.parametrize("bad", [{"max_tokens": 0}, {"max_tokens": True}, {"temperature": -1},
                                 {"top_p": 0}, {"top_p": 1.5}, {"stop": [""]}, {"seed": -1},
                                 {"temperature": "hot"}])
def test_bad_options_are_refused_before_anything_runs(llm: LlamaAdapter, bad: dict) -> None:
    with pytest.raises(InvalidOptionError):
        llm.generate("the", **bad)


@pytest.mark.parametrize("messages", [[], [{"role": "robot", "content": "x"}],
                                      [{"role": "user", "content": 3}], "hello"])
def test_bad_messages_are_refused(llm: LlamaAdapter, messages: object) -> None:
    with pytest.raises(InvalidOptionError):
        llm.chat(messages)  # type: ignore[arg-type]


def test_cancel_mid_stream_stops_the_model_and_keeps_the_text(llm: LlamaAdapter) -> None:
    stream = llm.generate("the", max_tokens=LONG, temperature=0)
    seen = []
    for delta in stream:
        seen.append(delta)
        if len(seen) == 5:
            stream.cancel()
    result = stream.result(timeout=30)
    assert result.finish_reason == "cancelled"
    assert result.text.startswith("".join(seen)) and in_cycle(result.text)
    assert 5 <= result.usage.completion_tokens < LONG  # stopped, not run to its limit


def test_leaving_the_loop_cancels_and_the_model_is_reused_at_once(llm: LlamaAdapter) -> None:
    done: list[GenerationResult] = []
    off = llm.on(GenerationDone, lambda e: done.append(e.result))
    try:
        stream = llm.generate("the", max_tokens=LONG, temperature=0)
        for _ in stream:
            break
        first = stream.result(timeout=30)
        again = llm.generate("the", max_tokens=16, temperature=0).collect()
    finally:
        off()
    assert first.finish_reason == "cancelled" and first.usage.completion_tokens < LONG
    assert again.finish_reason == "length" and again.usage.completion_tokens == 16
    assert again.text == llm.generate("the", max_tokens=16, temperature=0).collect().text
    assert [r.finish_reason for r in done] == ["cancelled", "length"]


def test_a_dropped_stream_is_cancelled(llm: LlamaAdapter) -> None:
    done: list[GenerationResult] = []
    ended = threading.Event()

    def seen(e: GenerationDone) -> None:
        done.append(e.result)
        ended.set()

    off = llm.on(GenerationDone, seen)
    try:
        stream = llm.generate("the", max_tokens=LONG, temperature=0)
        reader = iter(stream)
        next(reader)
        del reader, stream
        gc.collect()
        assert ended.wait(30)
    finally:
        off()
    assert done[0].finish_reason == "cancelled" and done[0].usage.completion_tokens < LONG


def test_cancelling_the_task_cancels_the_generation(llm: LlamaAdapter) -> None:
    async def main() -> GenerationResult:
        stream = llm.generate("the", max_tokens=LONG, temperature=0)
        first = asyncio.Event()

        async def read() -> None:
            async for _ in stream:
                first.set()

        task = asyncio.create_task(read())
        await first.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return await stream.aresult(timeout=30)

    result = asyncio.run(main())
    assert result.finish_reason == "cancelled" and result.usage.completion_tokens < LONG


def test_async_iteration_keeps_the_event_loop_free(llm: LlamaAdapter) -> None:
    async def main() -> tuple[list[str], GenerationResult, int]:
        ticks = 0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0)

        t = asyncio.create_task(ticker())
        stream = llm.chat([{"role": "user", "content": "hi"}], max_tokens=48, temperature=0)
        deltas = [d async for d in stream]
        result = await stream.aresult()
        stop.set()
        await t
        return deltas, result, ticks

    deltas, result, ticks = asyncio.run(main())
    assert "".join(deltas) == result.text and result.usage.completion_tokens == 48
    assert ticks > len(deltas)  # the loop ran other work while tokens were made


def test_two_concurrent_generations_take_turns_never_interleaved(llm: LlamaAdapter) -> None:
    prompts = {"a": "the", "b": "hello there"}
    solo = {k: llm.generate(p, max_tokens=40, temperature=0).collect().text
            for k, p in prompts.items()}
    events: list[tuple[str, str]] = []
    lock = threading.Lock()

    def note(kind: str) -> object:
        def handler(e: FirstToken | GenerationDone) -> None:
            with lock:
                events.append((kind, threading.current_thread().name))
        return handler

    offs = [llm.on(FirstToken, note("first")), llm.on(GenerationDone, note("done"))]
    results: dict[str, list[str]] = {}
    start = threading.Barrier(2)

    def worker(key: str) -> None:
        start.wait()
        results[key] = list(llm.generate(prompts[key], max_tokens=40, temperature=0))

    threads = [threading.Thread(target=worker, args=(k,)) for k in prompts]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        for off in offs:
            off()
    for key, deltas in results.items():
        assert "".join(deltas) == solo[key]  # each stream carries exactly its own text
    # one slot: the second generation's first token comes after the first one is done
    assert [k for k, _ in events] == ["first", "done", "first", "done"]


def test_fair_slots_serve_in_arrival_order_and_let_a_cancelled_waiter_go() -> None:
    slots = FairSlots(1)
    assert slots.acquire()
    order: list[int] = []
    cancels = {i: threading.Event() for i in range(4)}

    def wait(i: int) -> None:
        if slots.acquire(cancels[i]):
            order.append(i)
            slots.release()

    threads = []
    for i in range(4):
        t = threading.Thread(target=wait, args=(i,))
        t.start()
        threads.append(t)
        while slots.waiting < i + 1:  # each queued before the next arrives
            threading.Event().wait(0.005)
    cancels[1].set()
    while slots.waiting > 3:  # waiter 1 leaves the queue
        threading.Event().wait(0.005)
    slots.release()
    for t in threads:
        t.join(10)
    assert order == [0, 2, 3]


def test_the_api_from_threads_with_the_blocking_iterator(llm: LlamaAdapter) -> None:
    expected = llm.generate("the", max_tokens=16, temperature=0).collect().text
    texts: list[str] = []

    def worker() -> None:
        texts.append("".join(llm.generate("the", max_tokens=16, temperature=0)))

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert texts == [expected] * 3


def test_a_prompt_longer_than_the_context_is_a_typed_error(
        chain_gguf: Path, tmp_path: Path) -> None:
    reg = registry_with(tmp_path / "home", {"chain": chain_gguf})
    small = LlamaAdapter(reg)
    small.load_model_sync("chain", n_ctx=200).unwrap()  # llama.cpp rounds it up to 256
    errors: list[BaseException] = []
    small.on("error", lambda e: errors.append(e.error))
    with pytest.raises(PromptTooLongError) as info:
        list(small.generate("the cat sat on the mat. " * 40))
    err = info.value
    assert err.context == 256 and err.prompt_tokens is not None and err.prompt_tokens > 256
    assert small.llama.n_ctx == 256
    assert "256-token context" in str(err) and "n_ctx" in str(err)
    assert errors and isinstance(errors[0], PromptTooLongError)
    # the model is still loaded and answers the next request
    assert small.generate("the", max_tokens=4).collect().usage.completion_tokens == 4
    reg.unload_model("chain")


def test_generating_before_loading_is_an_error() -> None:
    with pytest.raises(ModelError, match="no model loaded"):
        LlamaAdapter().generate("hi")


def test_from_a_running_event_loop_as_a_notebook_would(chain_gguf: Path, tmp_path: Path
                                                        ) -> None:
    reg = registry_with(tmp_path / "home", {"chain": chain_gguf})

    async def cell() -> str:
        # a notebook cell: a loop is running, and the blocking API still works
        llm = LlamaAdapter(reg)
        llm.load_model_sync("chain").unwrap()
        text = "".join(llm.generate("the", max_tokens=8, temperature=0))
        await llm.load_model("chain")  # and the async one, in the same loop
        async_text = (await llm.generate("the", max_tokens=8, temperature=0).acollect()).text
        assert text == async_text
        return text

    assert in_cycle(asyncio.run(cell()))
    reg.unload_model("chain")


def test_the_blocking_iterator_from_a_plain_script(chain_gguf: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    registry_with(home, {"chain": chain_gguf})  # the model in the cache, and its entry:
    catalog = tmp_path / "catalog.json"
    write_catalog(catalog, [llm_entry("chain", chain_gguf)])
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(f"""
        from runanywhere import ModelRegistry
        from runanywhere.adapters import get_adapter

        registry = ModelRegistry(home={str(home)!r}, catalogs=[{str(catalog)!r}])
        llm = get_adapter("llama")(registry)
        llm.load_model_sync("chain").unwrap()
        for delta in llm.generate("the", max_tokens=16, temperature=0):
            print(delta, end="", flush=True)
        print()
        print(llm.generate("the", max_tokens=3).collect().finish_reason)
    """))
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    text, reason = r.stdout.splitlines()
    assert in_cycle(text) and "€" in text and reason == "length"
    assert r.stderr == ""  # llama.cpp's logs stay quiet
