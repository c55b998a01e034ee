"""OpenAI's response objects, as the ``openai`` package's types define them
(``types/chat/chat_completion.py``, ``chat_completion_chunk.py``, ``types/completion.py``,
``completion_usage.py``, ``types/model.py``).

A streamed answer is one :class:`TextShapes` per request: each delta becomes a chunk whose JSON
is the request's fixed prefix, the delta and a fixed suffix (no dict built and serialized per
token).
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from ...adapters.llm import GenerationResult

_DUMPS = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_USAGE_NULL = ',"usage":null}'


def usage_doc(result: GenerationResult) -> dict[str, int]:
    u = result.usage
    return {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
            "total_tokens": u.total_tokens}


def finish_reason(result: GenerationResult) -> str:
    # "cancelled" reaches nobody (its client left); a server stopping mid-answer says "stop".
    return "length" if result.finish_reason == "length" else "stop"


class TextShapes:
    """The documents of one chat (``chat=True``) or completion answer for ``model``."""

    def __init__(self, model: str, *, chat: bool) -> None:
        self.model = model
        self.chat = chat
        self.id = ("chatcmpl-" if chat else "cmpl-") + secrets.token_hex(12)
        self.created = int(time.time())
        self.object = "chat.completion.chunk" if chat else "text_completion"
        head = {"id": self.id, "object": self.object, "created": self.created, "model": model}
        self._head = _DUMPS(head)[:-1]  # without its closing brace
        if chat:
            self._pre = self._head + ',"choices":[{"index":0,"delta":{"content":'
            self._post = '},"logprobs":null,"finish_reason":null}]'
        else:
            self._pre = self._head + ',"choices":[{"index":0,"text":'
            self._post = ',"logprobs":null,"finish_reason":null}]'

    # -- streamed ----------------------------------------------------------------------------------
    def delta(self, text: str, *, usage_null: bool = False) -> str:
        """The chunk that carries ``text`` (as JSON text)."""
        tail = _USAGE_NULL if usage_null else "}"
        return f"{self._pre}{_DUMPS(text)}{self._post}{tail}"

    def first(self, *, usage_null: bool = False) -> dict[str, Any]:
        """A chat stream's first chunk: the role, no text yet (OpenAI sends it too)."""
        doc = self._chunk({"role": "assistant", "content": ""}, None)
        if usage_null:
            doc["usage"] = None
        return doc

    def last(self, result: GenerationResult, *, usage_null: bool = False) -> dict[str, Any]:
        """The chunk that ends the choice: its finish_reason and no text."""
        doc = self._chunk({} if self.chat else "", finish_reason(result))
        if usage_null:
            doc["usage"] = None
        return doc

    def usage(self, result: GenerationResult) -> dict[str, Any]:
        """``stream_options.include_usage``'s last chunk: no choices, the usage."""
        return {"id": self.id, "object": self.object, "created": self.created,
                "model": self.model, "choices": [], "usage": usage_doc(result)}

    def _chunk(self, delta: Any, finish: str | None) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": 0}
        if self.chat:
            choice["delta"] = delta
        else:
            choice["text"] = delta
        choice.update(logprobs=None, finish_reason=finish)
        return {"id": self.id, "object": self.object, "created": self.created,
                "model": self.model, "choices": [choice]}

    # -- whole -------------------------------------------------------------------------------------
    def whole(self, result: GenerationResult, text: str) -> dict[str, Any]:
        """The non-streamed answer."""
        choice: dict[str, Any] = {"index": 0}
        if self.chat:
            choice["message"] = {"role": "assistant", "content": text, "refusal": None}
        else:
            choice["text"] = text
        choice.update(logprobs=None, finish_reason=finish_reason(result))
        return {"id": self.id, "object": "chat.completion" if self.chat else "text_completion",
                "created": self.created, "model": self.model, "choices": [choice],
                "usage": usage_doc(result)}


def dumps(doc: Any) -> str:
    return _DUMPS(doc)
