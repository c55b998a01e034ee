"""A :class:`~runanywhere.adapters.Transcription` in the response formats of OpenAI's
``/v1/audio/transcriptions``: ``json`` (``{"text"}``), ``text``, ``verbose_json`` (language,
duration, timed segments), ``srt`` and ``vtt``.

A verbose segment carries what our adapters know of it (``id``, ``seek``, ``start``, ``end``,
``text``); Whisper's token ids and confidence numbers (``tokens``, ``avg_logprob``, ...) are
left out rather than made up.
"""

from __future__ import annotations

import math
from typing import Any

from aiohttp import web

from ...adapters.languages import language_name
from ...adapters.stt import Transcription
from ..responses import json_response


def _usage(t: Transcription) -> dict[str, Any]:
    return {"type": "duration", "seconds": math.ceil(t.duration)}


def _clock(seconds: float, comma: bool) -> str:
    ms = max(0, round(seconds * 1000))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{',' if comma else '.'}{ms:03d}"


def _cues(t: Transcription, comma: bool) -> list[str]:
    return [f"{_clock(s.start, comma)} --> {_clock(s.end, comma)}\n{s.text.strip()}\n"
            for s in t.segments]


def render(t: Transcription, response_format: str, *, task: str = "transcribe"
           ) -> web.Response:
    """The answer in ``response_format`` (one of ``TRANSCRIPT_FORMATS``)."""
    if response_format == "text":
        return web.Response(text=t.text + "\n", content_type="text/plain")
    if response_format == "srt":
        body = "\n".join(f"{i}\n{cue}" for i, cue in enumerate(_cues(t, True), 1))
        return web.Response(text=body, content_type="text/plain")
    if response_format == "vtt":
        return web.Response(text="WEBVTT\n\n" + "\n".join(_cues(t, False)),
                            content_type="text/vtt")
    if response_format == "verbose_json":
        segments = [{"id": i, "seek": int(s.start * 100), "start": round(s.start, 3),
                     "end": round(s.end, 3), "text": s.text}
                    for i, s in enumerate(t.segments)]
        return json_response({"task": task, "language": language_name(t.language),
                              "duration": round(t.duration, 3), "text": t.text,
                              "segments": segments, "usage": _usage(t)})
    return json_response({"text": t.text, "usage": _usage(t)})
