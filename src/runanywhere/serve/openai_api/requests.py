"""OpenAI request bodies -> what the adapters take, checked field by field (OpenAI's own ranges
and types; a 400 names the field).

What this server cannot honour is refused rather than ignored: ``n`` > 1, tools, logprobs,
penalties, a JSON ``response_format``, images or audio in a message. Fields that change
nothing in the text (``user``, ``metadata``, ``store``, ``service_tier``, ...) are accepted and
ignored, as every OpenAI-compatible server does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...adapters.llm import ChatMessage, GenerationOptions
from ...errors import InvalidOptionError
from .errors import APIError, bad_request

#: OpenAI's chat roles -> ours (``developer`` is the newer name of ``system``).
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
#: OpenAI takes up to 4 stop sequences.
MAX_STOP = 4
#: The longest text ``/v1/audio/speech`` takes (OpenAI's limit).
MAX_SPEECH_INPUT = 4096
SPEECH_FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")
TRANSCRIPT_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")


def _missing(name: str) -> APIError:
    return APIError(400, f"you must provide a '{name}' parameter", param=name,
                    code="missing_required_parameter")


def _type_error(name: str, want: str, value: Any) -> APIError:
    return APIError(400, f"'{name}' must be {want}, not {type(value).__name__}"
                    f" ({_short(value)})", param=name, code="invalid_type")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _unsupported(name: str, why: str) -> APIError:
    return APIError(400, f"'{name}' is not supported by this server: {why}", param=name,
                    code="unsupported_parameter")


def model_of(body: dict[str, Any]) -> str:
    model = body.get("model")
    if model is None:
        raise _missing("model")
    if not isinstance(model, str) or not model:
        raise _type_error("model", "a non-empty string (a model id of this server)", model)
    return model


def _number(body: dict[str, Any], name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _type_error(name, "a number", value)
    if not low <= value <= high:
        raise bad_request(f"'{name}' must be from {low:g} to {high:g}, got {value!r}", name)
    return float(value)


def _integer(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _type_error(name, "an integer", value)
    return value


def _flag(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _type_error(name, "true or false", value)
    return value


def _refuse_unsupported(body: dict[str, Any]) -> None:
    n = body.get("n")
    if n not in (None, 1):
        raise _unsupported("n", "it makes one choice per request (n = 1)")
    if body.get("best_of") not in (None, 1):
        raise _unsupported("best_of", "it makes one choice per request")
    for name in ("tools", "functions"):
        if body.get(name):
            raise _unsupported(name, "its models call no tools")
    if body.get("logprobs") not in (None, False) or body.get("top_logprobs") is not None:
        raise _unsupported("logprobs", "it reports no log probabilities")
    for name in ("frequency_penalty", "presence_penalty"):
        if body.get(name) not in (None, 0, 0.0):
            raise _unsupported(name, "its samplers take no penalties")
    if body.get("logit_bias"):
        raise _unsupported("logit_bias", "its samplers take no token biases")
    fmt = body.get("response_format")
    if fmt is not None and not (isinstance(fmt, dict) and fmt.get("type") == "text"):
        raise _unsupported("response_format", "it writes plain text only")
    if body.get("suffix"):
        raise _unsupported("suffix", "it does not fill in the middle")
    modalities = body.get("modalities")
    if modalities not in (None, ["text"]):
        raise _unsupported("modalities", "its chat models write text only")


def _options(body: dict[str, Any]) -> GenerationOptions:
    max_tokens = _integer(body, "max_completion_tokens")
    name = "max_completion_tokens"
    if max_tokens is None:
        max_tokens, name = _integer(body, "max_tokens"), "max_tokens"
    if max_tokens is not None and max_tokens < 1:
        raise bad_request(f"'{name}' must be at least 1, got {max_tokens}", name)
    stop = body.get("stop")
    stops: tuple[str, ...]
    if stop is None:
        stops = ()
    elif isinstance(stop, str):
        stops = (stop,) if stop else ()
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        if len(stop) > MAX_STOP:
            raise bad_request(f"'stop' takes at most {MAX_STOP} sequences, got {len(stop)}",
                              "stop")
        stops = tuple(s for s in stop if s)
    else:
        raise _type_error("stop", "a string or a list of strings", stop)
    try:
        return GenerationOptions(
            max_tokens=max_tokens, temperature=_number(body, "temperature", 0, 2),
            top_p=_number(body, "top_p", 0, 1), stop=stops, seed=_integer(body, "seed"))
    except InvalidOptionError as e:  # our own ranges (a seed past 2**32, top_p 0)
        field = str(e).split(" ", 1)[0]
        raise bad_request(str(e), field) from None


@dataclass(frozen=True)
class TextRequest:
    """A chat or completion request, checked."""

    model: str
    options: GenerationOptions
    stream: bool
    include_usage: bool
    messages: tuple[ChatMessage, ...] = ()
    prompt: str | None = None
    echo: bool = False


def _stream_flags(body: dict[str, Any]) -> tuple[bool, bool]:
    stream = _flag(body, "stream")
    so = body.get("stream_options")
    if so is None:
        return stream, False
    if not isinstance(so, dict):
        raise _type_error("stream_options", "an object", so)
    if not stream:
        raise bad_request("'stream_options' is only allowed when 'stream' is true",
                          "stream_options")
    return stream, _flag(so, "include_usage")


def _content(index: int, content: Any) -> str:
    name = f"messages[{index}].content"
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for j, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(
                    part.get("text"), str):
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise APIError(400, f"{name}[{j}] is a {kind!r} part: this server's chat models"
                               " read text parts only", param=f"{name}[{j}]",
                               code="unsupported_content")
            texts.append(part["text"])
        return "\n".join(texts)
    raise _type_error(name, "a string or a list of text parts", content)


def _messages(body: dict[str, Any]) -> tuple[ChatMessage, ...]:
    raw = body.get("messages")
    if raw is None:
        raise _missing("messages")
    if not isinstance(raw, list):
        raise _type_error("messages", "a list of messages", raw)
    if not raw:
        raise bad_request("'messages' must hold at least one message", "messages",
                          "empty_array")
    out = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict):
            raise _type_error(f"messages[{i}]", "an object with role and content", m)
        role = m.get("role")
        if role not in ROLES:
            raise APIError(400, f"messages[{i}].role {role!r} is not supported here (system,"
                           " developer, user and assistant are)", param=f"messages[{i}].role",
                           code="unsupported_value")
        if m.get("tool_calls") or m.get("function_call"):
            raise _unsupported(f"messages[{i}].tool_calls", "its models call no tools")
        content = m.get("content")
        if content is None:
            raise _missing(f"messages[{i}].content")
        out.append(ChatMessage(ROLES[role], _content(i, content)))  # type: ignore[arg-type]
    return tuple(out)


def chat_request(body: dict[str, Any]) -> TextRequest:
    """``POST /v1/chat/completions``'s body, checked."""
    model = model_of(body)
    _refuse_unsupported(body)
    messages = _messages(body)
    stream, usage = _stream_flags(body)
    return TextRequest(model, _options(body), stream, usage, messages=messages)


def completion_request(body: dict[str, Any]) -> TextRequest:
    """``POST /v1/completions``'s body, checked (one prompt: a string or a list of one)."""
    model = model_of(body)
    _refuse_unsupported(body)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if prompt is None:
        raise _missing("prompt")
    if isinstance(prompt, list):
        raise _unsupported("prompt", "it takes one prompt as text (not several, not token"
                           " ids)")
    if not isinstance(prompt, str):
        raise _type_error("prompt", "a string", prompt)
    stream, usage = _stream_flags(body)
    return TextRequest(model, _options(body), stream, usage, prompt=prompt,
                       echo=_flag(body, "echo"))


@dataclass(frozen=True)
class SpeechRequest:
    model: str
    input: str
    voice: str | None
    response_format: str
    stream: bool


def speech_request(body: dict[str, Any]) -> SpeechRequest:
    """``POST /v1/audio/speech``'s body, checked."""
    model = model_of(body)
    text = body.get("input")
    if text is None:
        raise _missing("input")
    if not isinstance(text, str):
        raise _type_error("input", "a string", text)
    if not text.strip():
        raise bad_request("'input' has nothing to say", "input")
    if len(text) > MAX_SPEECH_INPUT:
        raise bad_request(f"'input' is {len(text)} characters; the most is {MAX_SPEECH_INPUT}",
                          "input")
    voice = body.get("voice")
    if isinstance(voice, dict):  # a custom voice object: {"id": ...}
        voice = voice.get("id")
    if voice is not None and not isinstance(voice, str):
        raise _type_error("voice", "a string (a speaker of the voice model)", voice)
    fmt = body.get("response_format", "mp3")
    if fmt not in SPEECH_FORMATS:
        raise bad_request(f"'response_format' {fmt!r} is not one of"
                          f" {', '.join(SPEECH_FORMATS)}", "response_format")
    speed = _number(body, "speed", 0.25, 4.0)
    if speed is not None and speed != 1.0:
        raise _unsupported("speed", "its voices speak at their own pace (speed 1.0)")
    stream_format = body.get("stream_format", "audio")
    if stream_format != "audio":
        raise _unsupported("stream_format", "it streams audio bytes, not events")
    return SpeechRequest(model, text, voice, str(fmt), fmt == "pcm")
