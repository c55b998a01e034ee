"""The ``llama`` adapter: ``generate`` and ``chat`` on a GGUF model loaded by the ``llama`` runtime.

The streams, cancellation, fair turns and events come from the core's
:class:`~runanywhere.adapters.LLMAdapter`; this module only speaks to llama.cpp's server:
``generate`` is its ``/v1/completions`` (the prompt as it is), ``chat`` its
``/v1/chat/completions`` (the GGUF's own chat template, through llama.cpp's Jinja engine;
llama.cpp falls back to ChatML for a file without one). The request carries exactly the
options the caller gave: this adapter adds nothing to the tokens (a test holds it to the same
text as xllamacpp called directly).

llama.cpp streams text only once it is whole UTF-8 (it holds back the first bytes of a
character split over several tokens; a generation that ends inside a character drops those
bytes, where a non-streamed answer would show them as U+FFFD), and stops a generation whose
stream callback answers True: that is how a cancel reaches it, at the next token.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from runanywhere.adapters import Completion, Emit, FairSlots, LLMAdapter, LLMRequest
from runanywhere.errors import GenerationError, PromptTooLongError
from runanywhere.runtimes import resolve_model_file

from .gguf_file import read_gguf
from .runtime import LlamaModel


def request_body(request: LLMRequest) -> dict[str, Any]:
    """The request llama.cpp's server gets for ``request`` (streamed)."""
    return {"stream": True, "timings_per_token": True, **request.openai_fields()}


class _Progress:
    """What the chunks of one streamed answer said so far."""

    def __init__(self) -> None:
        self.finish: str | None = None
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.error: dict[str, Any] | None = None

    def note(self, chunk: dict[str, Any]) -> None:
        timings = chunk.get("timings")
        if isinstance(timings, dict):  # on every chunk (timings_per_token): counts on cancel
            self.prompt_tokens = int(timings.get("prompt_n", 0)) + int(timings.get("cache_n", 0))
            self.completion_tokens = int(timings.get("predicted_n", 0))
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.prompt_tokens = int(usage.get("prompt_tokens", self.prompt_tokens))
            self.completion_tokens = int(usage.get("completion_tokens", self.completion_tokens))


def _error_of(chunk: Any) -> dict[str, Any] | None:
    if not isinstance(chunk, dict):
        return {"message": f"unexpected answer from llama.cpp: {chunk!r:.200}"}
    if isinstance(chunk.get("error"), dict):
        return chunk["error"]  # type: ignore[no-any-return]
    if "choices" not in chunk and "message" in chunk:  # xllamacpp's own failure report
        return chunk
    return None


class LlamaAdapter(LLMAdapter):
    """Small LLMs in GGUF on the CPU, through llama.cpp (``pip install 'runanywhere[llm]'``)::

        llm = LlamaAdapter()
        await llm.load_model("smollm2-135m-instruct", n_ctx=2048)
        for delta in llm.chat([{"role": "user", "content": "Hi!"}], max_tokens=64):
            print(delta, end="", flush=True)
    """

    runtime: ClassVar[str] = "llama"
    model_types: ClassVar[tuple[str, ...]] = ("llm",)
    formats: ClassVar[tuple[str, ...]] = ("gguf",)
    default_model_id: ClassVar[str | None] = "smollm2-135m-instruct"

    @property
    def llama(self) -> LlamaModel:
        model = self.require_model()
        if not isinstance(model, LlamaModel):
            raise GenerationError(f"{type(self).__name__} needs a model loaded by the 'llama'"
                                  f" runtime, not {type(model).__name__}")
        return model

    def slots(self) -> FairSlots:
        # The loaded model's: adapters sharing one model take turns on it together.
        return self.model.slots if isinstance(self.model, LlamaModel) else super().slots()

    def _complete(self, request: LLMRequest, emit: Emit) -> Completion:
        model = self.llama
        server = model.enter()
        try:
            return self._stream_from(server, model, request, emit)
        finally:
            model.leave()

    def _stream_from(self, server: Any, model: LlamaModel, request: LLMRequest, emit: Emit
                     ) -> Completion:
        seen = _Progress()
        chat = request.is_chat

        def on_chunk(chunk: Any) -> bool:
            error = _error_of(chunk)
            if error is not None:
                seen.error = error
                return True
            seen.note(chunk)
            for choice in chunk.get("choices") or ():
                text = (choice.get("delta") or {}).get("content") if chat else choice.get("text")
                if text and emit(text):
                    return True
                if choice.get("finish_reason"):
                    seen.finish = choice["finish_reason"]
            return model.closing  # unloading: stop now

        body = request_body(request)
        if chat:
            server.handle_chat_completions(body, on_chunk)
        else:
            server.handle_completions(body, on_chunk)
        if seen.error is not None:
            raise self._error(seen.error, model)
        return Completion("length" if seen.finish == "length" else "stop",
                          seen.prompt_tokens, seen.completion_tokens)

    def _error(self, error: dict[str, Any], model: LlamaModel) -> GenerationError:
        message = str(error.get("message") or error)
        if error.get("type") == "exceed_context_size_error":
            n, ctx = error.get("n_prompt_tokens"), error.get("n_ctx", model.n_ctx)
            trained = model.info.context_length
            more = (f"; load it with a larger n_ctx (up to {trained})"
                    if trained and trained > model.n_ctx else "")
            return PromptTooLongError(
                f"the prompt is {n} tokens, more than the {ctx}-token context {self.model_id}"
                f" was opened with{more}", prompt_tokens=n, context=ctx)
        return GenerationError(f"llama.cpp could not generate with {self.model_id}: {message}")

    @classmethod
    def describe(cls, path: Path, meta: Any) -> dict[str, str]:
        return read_gguf(resolve_model_file(path, (".gguf",), None, "llama")).describe()
