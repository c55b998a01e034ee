"""The LLM task interface: text in, a stream of text deltas out, a result with usage and timings.

Every LLM adapter (llama.cpp on the device, an OpenAI-compatible server over HTTP) implements one
blocking method, ``_complete(request, emit) -> Completion``, that runs a generation and hands
each new piece of text to ``emit`` (which answers True when the caller cancelled: stop then).
This base turns it into what users and servers need::

    llm = get_adapter("llama")()
    await llm.load_model("smollm2-135m-instruct")
    async for delta in llm.chat([{"role": "user", "content": "Hi"}], max_tokens=64):
        print(delta, end="", flush=True)              # or: for delta in llm.generate("..."):

    stream = llm.generate("Once upon a time", max_tokens=32, temperature=0)
    result = stream.collect()                         # GenerationResult: text, finish_reason,
    print(result.text, result.usage, result.timings)  # usage, timings

- **Deltas** are ``str``: never half of a UTF-8 character (a backend holds bytes back until
  they decode), and the deltas joined are exactly ``result.text``.
- **One stream, two ways to read it**: ``for`` (a plain script, another thread) or
  ``async for`` (a running event loop); the generation runs in a worker thread either way, so
  the event loop stays free.
- **Cancel**: ``stream.cancel()``, cancelling the task that awaits it, leaving a ``for`` loop
  (the generator closes), leaving ``async with``/``with``, or dropping the stream: the iterator
  ends at once and the backend stops at its next token; the result then says
  ``finish_reason == "cancelled"`` with the text made so far, and the model stays usable.
- **Concurrent requests** on one loaded model wait their turn, first come first served, in
  :class:`FairSlots` (one slot unless the backend decodes several sequences at once): each
  stream only ever carries its own text, never an interleaving.
- **Events** (``llm.on(...)``): ``model_loading``/``model_loaded`` as for every adapter,
  ``first_token`` (time to first token), ``generation_done`` (the :class:`GenerationResult`:
  token counts, time to first token, tokens per second), ``error``.

A server builds on the same pieces: stream deltas, then ``stream.result()`` for the
finish_reason and usage; cancel when the client goes away; every request on one loaded model
queued fairly.
"""

from __future__ import annotations

import asyncio
import queue
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Literal

from ..errors import GenerationError, InvalidOptionError, ModelError
from ..result import Result
from .base import AdapterError, BaseAdapter, Event, ModelLoaded, ModelLoading, RegistryLike
from .fair_slots import FairSlots

FinishReason = Literal["stop", "length", "cancelled"]
Role = Literal["system", "user", "assistant"]
ROLES: tuple[str, ...] = ("system", "user", "assistant")

# -- requests --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Role
    content: str

    @classmethod
    def of(cls, message: ChatMessage | Mapping[str, Any]) -> ChatMessage:
        """A message from itself or an OpenAI-style ``{"role", "content"}`` dict (checked)."""
        role: Any
        content: Any
        if isinstance(message, ChatMessage):
            role, content = message.role, message.content
        elif isinstance(message, Mapping):
            role, content = message.get("role"), message.get("content")
        else:
            raise InvalidOptionError(f"a chat message is a {{'role', 'content'}} mapping, not"
                                     f" {type(message).__name__}")
        if role not in ROLES:
            raise InvalidOptionError(f"chat message role {role!r} is not one of"
                                     f" {', '.join(ROLES)}")
        if not isinstance(content, str):
            raise InvalidOptionError(f"chat message content must be text, not"
                                     f" {type(content).__name__}")
        return cls(role, content)

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True, slots=True)
class GenerationOptions:
    """How to sample. None leaves a choice to the backend (llama.cpp: temperature 0.8, top_p
    0.95, no token limit but the context, a random seed)."""

    #: The most tokens to generate.
    max_tokens: int | None = None
    #: 0 picks the most likely token every time (greedy: the same text each run).
    temperature: float | None = None
    #: Nucleus sampling: only the most likely tokens that together hold this probability.
    top_p: float | None = None
    #: Generation stops before any of these strings (which are not part of the text).
    stop: tuple[str, ...] = ()
    #: The sampler's seed: the same seed and options give the same text.
    seed: int | None = None

    def __post_init__(self) -> None:
        def number(value: object) -> bool:
            return value is None or (isinstance(value, (int, float))
                                     and not isinstance(value, bool))

        if self.max_tokens is not None and (isinstance(self.max_tokens, bool) or not isinstance(
                self.max_tokens, int) or self.max_tokens < 1):
            raise InvalidOptionError(f"max_tokens must be a positive integer, got"
                                     f" {self.max_tokens!r}")
        if not number(self.temperature) or (
                self.temperature is not None and not 0 <= self.temperature <= 100):
            raise InvalidOptionError(f"temperature must be a number from 0 to 100, got"
                                     f" {self.temperature!r}")
        if not number(self.top_p) or (
                self.top_p is not None and not 0 < self.top_p <= 1):
            raise InvalidOptionError(f"top_p must be a number above 0 and at most 1, got"
                                     f" {self.top_p!r}")
        if isinstance(self.stop, str) or not all(isinstance(s, str) and s for s in self.stop):
            raise InvalidOptionError(f"stop must be a list of non-empty strings, got"
                                     f" {self.stop!r}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(
                self.seed, int) or not 0 <= self.seed < 2**32):
            raise InvalidOptionError(f"seed must be an integer from 0 to 2**32 - 1, got"
                                     f" {self.seed!r}")

    @classmethod
    def of(cls, max_tokens: int | None = None, temperature: float | None = None,
           top_p: float | None = None, stop: str | Sequence[str] | None = None,
           seed: int | None = None) -> GenerationOptions:
        """Options from keyword arguments (``stop`` may be one string or several)."""
        stops: tuple[str, ...] = (stop,) if isinstance(stop, str) else tuple(stop or ())
        return cls(max_tokens, temperature, top_p, stops, seed)


@dataclass(frozen=True, slots=True)
class LLMRequest:
    """One generation: a raw ``prompt`` (completion) or ``messages`` (chat: the model's own
    chat template turns them into its prompt)."""

    options: GenerationOptions
    prompt: str | None = None
    messages: tuple[ChatMessage, ...] = ()

    @property
    def is_chat(self) -> bool:
        return self.prompt is None

    def openai_fields(self) -> dict[str, Any]:
        """The request in OpenAI's chat/completions wire form: ``messages`` or ``prompt`` and
        the sampling options that were given (none invented), as llama.cpp's server, ``serve``
        and any OpenAI-compatible endpoint take them."""
        o = self.options
        body: dict[str, Any] = {k: v for k, v in (
            ("max_tokens", o.max_tokens), ("temperature", o.temperature), ("top_p", o.top_p),
            ("seed", o.seed)) if v is not None}
        if o.stop:
            body["stop"] = list(o.stop)
        if self.is_chat:
            body["messages"] = [m.to_dict() for m in self.messages]
        else:
            body["prompt"] = self.prompt
        return body


@dataclass(frozen=True, slots=True)
class Completion:
    """What a backend's ``_complete`` reports when its generation ends."""

    finish_reason: Literal["stop", "length"]
    prompt_tokens: int = 0
    completion_tokens: int = 0


# -- results ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens}


@dataclass(frozen=True, slots=True)
class Timings:
    """Seconds to load the model into the runtime (0 when it was already loaded), from the
    request to the first text, and the decode rate after it (None with fewer than 2 tokens)."""

    load_s: float
    first_token_s: float | None
    tokens_per_s: float | None

    def to_dict(self) -> dict[str, float | None]:
        def r(x: float | None) -> float | None:
            return None if x is None else round(x, 4)

        return {"load_s": r(self.load_s), "first_token_s": r(self.first_token_s),
                "tokens_per_s": r(self.tokens_per_s)}


@dataclass(frozen=True, slots=True)
class GenerationResult:
    model_id: str
    text: str
    finish_reason: FinishReason
    usage: Usage
    timings: Timings

    def to_dict(self) -> dict[str, Any]:
        """The document ``runanywhere run --json`` prints."""
        return {"model": self.model_id, "text": self.text, "finish_reason": self.finish_reason,
                "usage": self.usage.to_dict(), "timings": self.timings.to_dict()}


# -- events ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FirstToken(Event):
    """The first text of a generation arrived ``first_token_s`` seconds after the request."""

    name: ClassVar[str] = "first_token"
    model_id: str
    first_token_s: float


@dataclass(frozen=True, slots=True)
class GenerationDone(Event):
    """A generation ended (finished, hit its limit, or was cancelled)."""

    name: ClassVar[str] = "generation_done"
    result: GenerationResult


LLMEvent = ModelLoading | ModelLoaded | AdapterError | FirstToken | GenerationDone

# -- one generation --------------------------------------------------------------------------------

_END = object()
Emit = Callable[[str], bool]


class _Run:
    """One generation's shared state: the worker thread fills it, the stream reads it.

    It holds no reference to the :class:`GenerationStream`, so a stream nobody reads any more
    is garbage-collected, and its ``__del__`` cancels the generation."""

    def __init__(self, adapter: LLMAdapter, request: LLMRequest) -> None:
        self.adapter = adapter
        self.request = request
        self.model_id = adapter.model_id or ""
        self.cancelled = threading.Event()
        self.done = threading.Event()
        self.started = False
        self.parts: list[str] = []
        self.result: GenerationResult | None = None
        self.error: BaseException | None = None
        self.t_start = 0.0
        self.t_first: float | None = None
        self.t_last = 0.0
        self.queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.aqueue: asyncio.Queue[object] | None = None
        self._lock = threading.Lock()

    # -- the worker side ---------------------------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop | None) -> None:
        with self._lock:
            if self.started:
                if (loop is None) != (self.loop is None):
                    raise GenerationError("a generation stream is read either with for or with"
                                          " async for, not both")
                return
            self.started = True
            if loop is not None:
                self.loop, self.aqueue = loop, asyncio.Queue()
        self.t_start = time.perf_counter()
        if self.cancelled.is_set():  # cancelled before anyone read it
            self._finish(Completion("stop"))
            return
        threading.Thread(target=self._work, daemon=True,
                         name=f"runanywhere-llm-{self.model_id}").start()

    def _work(self) -> None:
        # Ctrl-C is for the main thread (KeyboardInterrupt): one delivered here would wake
        # nobody, and a reader blocked elsewhere (a chat's prompt) would never see it.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        slots = self.adapter.slots()
        if not slots.acquire(self.cancelled):
            self._finish(Completion("stop"))
            return
        try:
            completion = self.adapter._complete(self.request, self.emit)
        except BaseException as e:
            self._fail(e)
            return
        finally:
            slots.release()
        self._finish(completion)

    def emit(self, text: str) -> bool:
        """A backend's callback for new text; True means: stop, the caller cancelled."""
        if self.cancelled.is_set():
            return True
        if not text:
            return False
        now = time.perf_counter()
        if self.t_first is None:
            self.t_first = now
            self.adapter._dispatch(FirstToken(self.model_id, now - self.t_start))
        self.t_last = now
        self.parts.append(text)
        return not self._put(text)

    def _put(self, item: object) -> bool:
        if self.loop is None:
            self.queue.put(item)
            return True
        assert self.aqueue is not None
        try:
            self.loop.call_soon_threadsafe(self.aqueue.put_nowait, item)
        except RuntimeError:  # the reader's event loop is closed: nobody will read this
            self.cancelled.set()
            return False
        return True

    def _finish(self, completion: Completion) -> None:
        n = completion.completion_tokens
        decode = (self.t_last - self.t_first) if self.t_first is not None else 0.0
        self.result = GenerationResult(
            model_id=self.model_id, text="".join(self.parts),
            finish_reason="cancelled" if self.cancelled.is_set() else completion.finish_reason,
            usage=Usage(completion.prompt_tokens, n),
            timings=Timings(load_s=self.adapter.load_time_s,
                            first_token_s=(self.t_first - self.t_start
                                           if self.t_first is not None else None),
                            tokens_per_s=(n - 1) / decode if n > 1 and decode > 0 else None))
        # done before the event (a handler may ask for the result), the end after it: a reader
        # that saw the stream end has seen its GenerationDone too
        self.done.set()
        self.adapter._dispatch(GenerationDone(self.result))
        self._put(_END)

    def _fail(self, error: BaseException) -> None:
        if not isinstance(error, ModelError):
            wrapped = GenerationError(f"generation with {self.model_id} failed: {error}")
            wrapped.__cause__ = error
            error = wrapped
        self.error = error
        self.done.set()
        self.adapter._dispatch(AdapterError(error, self.model_id or None))
        self._put(_END)

    # -- the reader side ---------------------------------------------------------------------------
    def cancel(self) -> None:
        """Stop: the backend at its next token, the reader at once."""
        if self.done.is_set() or self.cancelled.is_set():
            return
        self.cancelled.set()
        if self.started:
            self._put(_END)


class GenerationStream:
    """The text of one generation as it is made: iterate it with ``for`` or ``async for``.

    It starts when first read (or collected). See the module's description for cancelling."""

    def __init__(self, run: _Run) -> None:
        self._run = run

    # -- blocking ----------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[str]:
        run = self._run
        run.start(None)
        try:
            while True:
                item = run.queue.get()
                if item is _END:
                    break
                yield item  # type: ignore[misc]
            self._raise_error()
        finally:
            run.cancel()  # a reader that leaves early (break, an exception, Ctrl-C) stops it

    def collect(self) -> GenerationResult:
        """Read to the end and return the result."""
        for _ in self:
            pass
        return self.result()

    def __enter__(self) -> GenerationStream:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.cancel()

    # -- async -------------------------------------------------------------------------------------
    def __aiter__(self) -> AsyncIterator[str]:
        return self

    async def __anext__(self) -> str:
        run = self._run
        run.start(asyncio.get_running_loop())
        assert run.aqueue is not None
        try:
            item = await run.aqueue.get()
        except asyncio.CancelledError:  # the task was cancelled (a client went away)
            run.cancel()
            raise
        if item is _END:
            self._raise_error()
            raise StopAsyncIteration
        return item  # type: ignore[return-value]

    async def acollect(self) -> GenerationResult:
        """Read to the end (in the running event loop) and return the result."""
        async for _ in self:
            pass
        return await self.aresult()

    async def aclose(self) -> None:
        self.cancel()

    async def __aenter__(self) -> GenerationStream:
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.cancel()

    # -- both --------------------------------------------------------------------------------------
    def cancel(self) -> None:
        """Stop the generation (idempotent; nothing happens after it ended)."""
        self._run.cancel()

    @property
    def done(self) -> bool:
        return self._run.done.is_set()

    @property
    def text(self) -> str:
        """The text made so far."""
        return "".join(self._run.parts)

    def result(self, timeout: float | None = None) -> GenerationResult:
        """The result once the generation ended (blocks up to ``timeout`` seconds; a cancelled
        generation ends at the backend's next token). Raises the generation's typed error."""
        run = self._run
        if not run.started:
            raise GenerationError("the generation has not started: read the stream first")
        if not run.done.wait(timeout):
            raise TimeoutError(f"the generation did not end within {timeout} s")
        self._raise_error()
        assert run.result is not None
        return run.result

    async def aresult(self, timeout: float | None = None) -> GenerationResult:
        """``result()`` without blocking the event loop."""
        if not self._run.done.is_set():
            await asyncio.to_thread(self._run.done.wait, timeout)
        return self.result(0)

    def _raise_error(self) -> None:
        if self._run.error is not None:
            raise self._run.error

    def __del__(self) -> None:
        self._run.cancel()  # nobody will read it any more

    def __repr__(self) -> str:
        state = "done" if self.done else "running" if self._run.started else "not started"
        return f"<GenerationStream {self._run.model_id} {state}>"


# -- the adapter base ------------------------------------------------------------------------------


class LLMAdapter(BaseAdapter[LLMEvent]):
    """``generate`` and ``chat`` streams, events and fair turns around a backend's
    ``_complete``. Subclasses implement ``_complete`` (and may override ``slots``)."""

    events = (ModelLoading, ModelLoaded, AdapterError, FirstToken, GenerationDone)
    model_types: ClassVar[tuple[str, ...]] = ("llm",)

    def __init__(self, registry: RegistryLike | None = None) -> None:
        super().__init__(registry)
        #: Seconds the last ``load_model`` spent loading into the runtime (not downloading).
        self.load_time_s = 0.0
        self._own_slots = FairSlots(1)

    # -- the task interface ------------------------------------------------------------------------
    def generate(self, prompt: str, *, max_tokens: int | None = None,
                 temperature: float | None = None, top_p: float | None = None,
                 stop: str | Sequence[str] | None = None, seed: int | None = None
                 ) -> GenerationStream:
        """Continue ``prompt`` as it is (no chat template)."""
        if not isinstance(prompt, str):
            raise InvalidOptionError(f"prompt must be text, not {type(prompt).__name__}")
        options = GenerationOptions.of(max_tokens, temperature, top_p, stop, seed)
        return self._stream(LLMRequest(options, prompt=prompt))

    def chat(self, messages: Sequence[ChatMessage | Mapping[str, Any]], *,
             max_tokens: int | None = None, temperature: float | None = None,
             top_p: float | None = None, stop: str | Sequence[str] | None = None,
             seed: int | None = None) -> GenerationStream:
        """The assistant's next message after ``messages`` (``system``, ``user`` and
        ``assistant`` turns), written with the model's chat template."""
        if isinstance(messages, (str, Mapping)):
            raise InvalidOptionError("messages is a list of {'role', 'content'} messages")
        turns = tuple(ChatMessage.of(m) for m in messages)
        if not turns:
            raise InvalidOptionError("chat needs at least one message")
        options = GenerationOptions.of(max_tokens, temperature, top_p, stop, seed)
        return self._stream(LLMRequest(options, messages=turns))

    def _stream(self, request: LLMRequest) -> GenerationStream:
        self.require_model()
        return GenerationStream(_Run(self, request))

    # -- what a backend provides -------------------------------------------------------------------
    def _complete(self, request: LLMRequest, emit: Emit) -> Completion:
        """Run one generation (blocking, in a worker thread): pass each new piece of text to
        ``emit`` and stop as soon as it returns True (then report what was made so far)."""
        raise NotImplementedError

    def slots(self) -> FairSlots:
        """Where this adapter's generations wait their turn; a backend whose loaded model is
        shared by several adapters returns the model's own."""
        return self._own_slots

    # -- loading: time the runtime, not the download -----------------------------------------------
    async def _load_runtime(self, model_id: str, path: Path, **options: Any
                            ) -> Result[Any, ModelError]:
        start = time.perf_counter()
        loaded = await super()._load_runtime(model_id, path, **options)
        self.load_time_s = time.perf_counter() - start
        return loaded


__all__ = [
    "ROLES",
    "ChatMessage",
    "Completion",
    "Emit",
    "FairSlots",
    "FinishReason",
    "FirstToken",
    "GenerationDone",
    "GenerationOptions",
    "GenerationResult",
    "GenerationStream",
    "LLMAdapter",
    "LLMEvent",
    "LLMRequest",
    "Timings",
    "Usage",
]
