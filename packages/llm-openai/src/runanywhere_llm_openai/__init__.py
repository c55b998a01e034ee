"""runanywhere-llm-openai: remote models over any OpenAI-compatible API.

Installs three adapters into runanywhere through entry points: ``openai`` (an LLM: ``generate``
and ``chat`` streams over ``/v1/completions`` and ``/v1/chat/completions``), ``openai-stt``
(``/v1/audio/transcriptions``) and ``openai-tts`` (``/v1/audio/speech``). They talk to
llama.cpp's server, ollama, vLLM, ``runanywhere serve`` or a cloud endpoint with the standard
library's HTTP, so a voice pipeline can mix local models and remote ones. Importing this
package is cheap: the adapters load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

if TYPE_CHECKING:
    from .endpoint import EndpointConfig
    from .errors import (
        RemoteAPIError,
        RemoteAuthError,
        RemoteBadRequestError,
        RemoteModelNotFoundError,
        RemoteRateLimitError,
        RemoteUnavailableError,
    )
    from .llm import OpenAILLMAdapter
    from .stt import OpenAISTTAdapter
    from .tts import OpenAITTSAdapter

_LAZY = {
    "EndpointConfig": ".endpoint",
    "OpenAILLMAdapter": ".llm",
    "OpenAISTTAdapter": ".stt",
    "OpenAITTSAdapter": ".tts",
    **{name: ".errors" for name in (
        "RemoteAPIError", "RemoteAuthError", "RemoteBadRequestError", "RemoteModelNotFoundError",
        "RemoteRateLimitError", "RemoteUnavailableError")},
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


__all__ = ["EndpointConfig", "OpenAILLMAdapter", "OpenAISTTAdapter", "OpenAITTSAdapter",
           "RemoteAPIError", "RemoteAuthError", "RemoteBadRequestError",
           "RemoteModelNotFoundError", "RemoteRateLimitError", "RemoteUnavailableError",
           "__version__"]
