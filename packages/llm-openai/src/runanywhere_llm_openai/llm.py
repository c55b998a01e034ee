"""``openai``: the LLM interface (``generate``, ``chat``: streamed deltas, cancel, events,
usage) over any OpenAI-compatible server::

    llm = OpenAILLMAdapter(base_url="http://127.0.0.1:8080/v1")   # llama.cpp's llama-server
    await llm.load_model("smollm2")                # the server's name (or a catalog id)
    for delta in llm.chat([{"role": "user", "content": "Hi!"}], max_tokens=64):
        print(delta, end="", flush=True)

``generate`` is ``POST /completions`` (the prompt as it is), ``chat`` ``POST /chat/completions``
(the server applies the model's chat template); both streamed (server-sent events), with
exactly the options the caller gave and ``stream_options.include_usage`` (the usage then comes
from the server; without it the completion tokens are the chunks counted, the prompt tokens 0).
A cancel closes the connection within ``SLICE`` seconds, also while the server is still
reading the prompt: the server sees its client leave and stops generating.

Several generations run at once up to ``parallel`` (default 4: the server keeps its own
queue); beyond that they wait their turn here, first come first served.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any, ClassVar

from runanywhere import Result
from runanywhere.adapters import (
    Completion,
    Emit,
    FairSlots,
    LLMAdapter,
    LLMRequest,
    RegistryLike,
)
from runanywhere.errors import ModelError

from .errors import RemoteAPIError, RemoteUnavailableError, error_in_stream
from .http import SLICE, Response, Stopped
from .remote import load_remote, require_remote

#: Generations sent to the server at once by one adapter.
PARALLEL = 4


def request_body(request: LLMRequest, model: str, *, include_usage: bool = True
                 ) -> dict[str, Any]:
    """What the server gets for ``request`` (streamed): the caller's options, nothing more."""
    body: dict[str, Any] = {"model": model, "stream": True}
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    return {**body, **request.openai_fields()}


class _Seen:
    """What the chunks of one streamed answer said so far."""

    def __init__(self) -> None:
        self.finish: str | None = None
        self.done = False
        self.chunks = 0
        self.prompt_tokens = 0
        self.completion_tokens: int | None = None

    def note_usage(self, chunk: Mapping[str, Any]) -> None:
        usage = chunk.get("usage")
        if isinstance(usage, Mapping):
            self.prompt_tokens = int(usage.get("prompt_tokens") or 0)
            self.completion_tokens = int(usage.get("completion_tokens") or 0)

    def completion(self) -> Completion:
        n = self.completion_tokens if self.completion_tokens is not None else self.chunks
        return Completion("length" if self.finish == "length" else "stop", self.prompt_tokens,
                          n)


def _cut_when_stopped(response: Response, should_stop: Any, done: threading.Event) -> None:
    """Watch for a cancel while the reader is blocked (a prompt being read, a slow token)."""
    while not done.wait(SLICE):
        if should_stop():
            response.abort()
            return


class OpenAILLMAdapter(LLMAdapter):
    """An LLM behind an OpenAI-compatible API (``pip install runanywhere-llm-openai``)."""

    model_types: ClassVar[tuple[str, ...]] = ("llm",)
    formats: ClassVar[tuple[str, ...]] = ("custom",)

    def __init__(self, registry: RegistryLike | None = None, *, base_url: str | None = None,
                 api_key: str | None = None, model: str | None = None,
                 timeout: float | None = None, connect_timeout: float | None = None,
                 max_retries: int | None = None, headers: Mapping[str, str] | None = None,
                 parallel: int = PARALLEL, include_usage: bool = True) -> None:
        super().__init__(registry)
        self.endpoint_options: dict[str, Any] = {
            "base_url": base_url, "api_key": api_key, "model": model, "timeout": timeout,
            "connect_timeout": connect_timeout, "max_retries": max_retries,
            "headers": headers}
        #: Ask for ``stream_options.include_usage`` (a server that refuses it: False).
        self.include_usage = include_usage
        self._slots = FairSlots(parallel)

    async def load_model(self, model_id: str | None = None, **options: Any
                         ) -> Result[None, ModelError]:
        """Find the endpoint (options here win over the constructor's) and check it answers."""
        self.load_time_s = 0.0  # the model loads on the server, not here
        return await load_remote(self, model_id, {**self.endpoint_options, **options})

    def slots(self) -> FairSlots:
        return self._slots

    def _complete(self, request: LLMRequest, emit: Emit) -> Completion:
        remote = require_remote(self)
        body = request_body(request, remote.config.model, include_usage=self.include_usage)
        path = "/chat/completions" if request.is_chat else "/completions"

        def should_stop() -> bool:
            return emit("")  # True once the caller cancelled (no text is emitted)

        seen = _Seen()
        try:
            response = remote.client.request(
                "POST", path, body=json.dumps(body).encode(), content_type="application/json",
                accept="text/event-stream", should_stop=should_stop)
        except Stopped:
            return seen.completion()
        done = threading.Event()
        threading.Thread(target=_cut_when_stopped, args=(response, should_stop, done),
                         daemon=True, name="openai-cancel").start()
        try:
            self._read(response, request.is_chat, emit, seen)
        finally:
            done.set()
            response.close()
        if not response.aborted and not seen.done and seen.finish is None:
            raise RemoteUnavailableError(f"{response.url}: the stream ended before its end"
                                         " ([DONE] or a finish_reason)", url=response.url)
        return seen.completion()

    @staticmethod
    def _read(response: Response, chat: bool, emit: Emit, seen: _Seen) -> None:
        from .sse import events

        for data in events(response.lines()):
            if data.strip() == "[DONE]":
                seen.done = True
                return
            try:
                chunk = json.loads(data)
            except ValueError:
                raise RemoteAPIError(f"{response.url} streamed an event that is not JSON:"
                                     f" {data[:200]!r}", url=response.url) from None
            if not isinstance(chunk, dict):
                raise RemoteAPIError(f"{response.url} streamed {data[:200]!r}, not a chunk",
                                     url=response.url)
            if chunk.get("error") is not None:
                raise error_in_stream(chunk, response.url)
            seen.note_usage(chunk)
            for choice in chunk.get("choices") or ():
                if not isinstance(choice, dict):
                    continue
                delta = choice.get("delta") if chat else None
                text = (delta.get("content") if isinstance(delta, dict) else None) if chat \
                    else choice.get("text")
                if isinstance(text, str) and text:
                    if emit(text):
                        response.abort()  # cancelled: the server sees the connection close
                        return
                    seen.chunks += 1
                if choice.get("finish_reason"):
                    seen.finish = str(choice["finish_reason"])
