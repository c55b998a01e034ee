"""8 clients stream chat completions from one model at once on ``serve``'s OpenAI route for 3
rounds, one of them leaving mid-stream each round: every stream complete, well formed and its
own, every leaver's generation cancelled, no slot lost, the resident set flat (the checks and
the memory bound: ``support/openai_load.py``). The 30-s version: ``python -m bench.openai_load``
(``make bench``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from support.openai_load import CLIENTS, RSS_SLACK, chain_server, check_stream, run_load


@pytest.mark.timeout(900)  # a few seconds on an idle machine; minutes at a load of 20
def test_eight_streaming_clients_on_one_model_for_three_rounds(tmp_path: Path) -> None:
    with chain_server(tmp_path) as served:
        load = run_load(served, rounds=3)
    assert load.rounds == 3 and load.streams == 3 * (CLIENTS - 1)
    assert len(load.rss) == load.streams + 1
    assert load.growth <= RSS_SLACK, (
        f"RSS grew {load.growth / 2**20:.1f} MiB over {RSS_SLACK // 2**20} MiB"
        f" (samples in MiB: {[s // 2**20 for s in load.rss]})")


def _raw(chunks: list[dict[str, Any]], done: bool = True) -> bytes:
    body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + ("data: [DONE]\n\n" * done)
    return (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n" + body.encode())


def _chunk(cid: str, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": cid, "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def _answer(cid: str, pieces: list[str], other: str | None = None) -> list[dict[str, Any]]:
    chunks = [_chunk(cid, {"role": "assistant", "content": ""})]
    chunks += [_chunk(other if other and i == 1 else cid, {"content": p})
               for i, p in enumerate(pieces)]
    chunks.append(_chunk(cid, {}, "length"))
    chunks.append({"id": cid, "object": "chat.completion.chunk", "choices": [],
                   "usage": {"completion_tokens": 8}})
    return chunks


def test_the_stream_check_catches_what_the_load_could_break() -> None:
    """The check the load test relies on, on hand-made streams: it passes the right one and
    refuses one cut before [DONE], one with a chunk of another stream, and one with a token
    too many."""
    pieces = ["€", " the", " cat", "é", "."]
    assert check_stream(_raw(_answer("a", pieces)), 8) == "a"
    with pytest.raises(AssertionError):
        check_stream(_raw(_answer("a", pieces), done=False), 8)
    with pytest.raises(AssertionError, match="several ids"):
        check_stream(_raw(_answer("a", pieces, other="b")), 8)
    with pytest.raises(AssertionError, match="8 tokens"):
        check_stream(_raw(_answer("a", [*pieces, "€"])), 8)
