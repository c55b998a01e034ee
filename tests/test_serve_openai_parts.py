"""The pieces of serve's OpenAI routes on their own: the fair bounded line, ``--keep-alive``'s
durations, request checks, transcript formats and speech encodings."""

from __future__ import annotations

import asyncio
import io
import wave

import numpy as np
import pytest

from runanywhere.adapters.base import TranscriptSegment
from runanywhere.adapters.llm import GenerationResult, Timings, Usage
from runanywhere.adapters.stt import Transcription
from runanywhere.errors import ServeError
from runanywhere.serve.openai_api.errors import APIError
from runanywhere.serve.openai_api.requests import chat_request, completion_request, speech_request
from runanywhere.serve.openai_api.shapes import TextShapes
from runanywhere.serve.openai_api.speech_audio import PCM_RATE, encode
from runanywhere.serve.openai_api.transcripts import render
from runanywhere.serve.openai_api.turns import QueueFull, Turns
from runanywhere.serve.options import parse_duration


# -- turns -----------------------------------------------------------------------------------------
def test_turns_are_first_come_first_served_and_bounded() -> None:
    async def main() -> list[int]:
        turns = Turns("m", 1, max_waiting=3)
        await turns.acquire()
        order: list[int] = []

        async def wait(i: int) -> None:
            await turns.acquire()
            order.append(i)
            turns.release(0.5)

        tasks = []
        for i in range(3):
            tasks.append(asyncio.ensure_future(wait(i)))
            await asyncio.sleep(0)  # each reaches the line before the next is made
        assert turns.waiting == 3
        with pytest.raises(QueueFull) as full:
            turns.refuse_if_full(turns.waiting)
        assert full.value.retry_after >= 1
        turns.release(2.0)
        await asyncio.gather(*tasks)
        assert turns.busy == 0 and turns.mean_turn is not None
        return order

    assert asyncio.run(main()) == [0, 1, 2]


def test_a_waiter_that_leaves_never_takes_a_slot_with_it() -> None:
    async def main() -> None:
        turns = Turns("m", 1, max_waiting=8)
        await turns.acquire()
        leaver = asyncio.ensure_future(turns.acquire())
        stayer = asyncio.ensure_future(turns.acquire())
        await asyncio.sleep(0)
        turns.release()  # the slot goes to the leaver ...
        leaver.cancel()  # ... who is cancelled before it runs: it must pass the slot on
        await asyncio.wait_for(stayer, 10)
        assert turns.busy == 1 and turns.waiting == 0
        turns.release()
        assert turns.busy == 0

    asyncio.run(main())


def test_turns_grow_when_the_model_runs_several_at_once() -> None:
    async def main() -> None:
        turns = Turns("m", 1, max_waiting=8)
        await turns.acquire()
        second = asyncio.ensure_future(turns.acquire())
        await asyncio.sleep(0)
        turns.resize(2)  # the loaded model decodes two sequences: the waiter goes at once
        await asyncio.wait_for(second, 10)
        assert turns.busy == 2

    asyncio.run(main())


# -- --keep-alive ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "seconds"), [
    ("5m", 300.0), ("30s", 30.0), ("1h30m", 5400.0), ("500ms", 0.5), ("0", 0.0), ("300", 300.0),
    ("2.5", 2.5), ("-1", None), ("-5m", None), ("1.5h", 5400.0)])
def test_keep_alive_reads_durations_like_ollama(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "x", "5x", "m5", "5m x", "nan", "inf", "-"])
def test_keep_alive_refuses_what_is_not_a_duration(text: str) -> None:
    with pytest.raises(ServeError, match="--keep-alive"):
        parse_duration(text)


# -- requests --------------------------------------------------------------------------------------
def test_chat_requests_take_text_parts_and_the_developer_role() -> None:
    req = chat_request({"model": "m", "messages": [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "a"},
                                     {"type": "text", "text": "b"}]}],
        "max_completion_tokens": 5, "stop": "x", "user": "ignored", "frequency_penalty": 0})
    assert [(m.role, m.content) for m in req.messages] == [("system", "Be brief."),
                                                           ("user", "a\nb")]
    assert req.options.max_tokens == 5 and req.options.stop == ("x",) and not req.stream


def test_completion_and_speech_requests() -> None:
    with pytest.raises(APIError) as many:
        completion_request({"model": "m", "prompt": ["a", "b"]})
    assert many.value.param == "prompt" and many.value.status == 400
    req = speech_request({"model": "v", "input": "Hi.", "voice": {"id": "joe"}})
    assert (req.voice, req.response_format, req.stream) == ("joe", "mp3", False)
    assert speech_request({"model": "v", "input": "Hi.", "response_format": "pcm"}).stream
    for bad, param in (({"input": ""}, "input"), ({"input": "x" * 4097}, "input"),
                       ({"input": "Hi.", "speed": 2.0}, "speed"),
                       ({"input": "Hi.", "response_format": "ogg"}, "response_format")):
        with pytest.raises(APIError) as e:
            speech_request({"model": "v", **bad})
        assert e.value.param == param


# -- answers ---------------------------------------------------------------------------------------
def test_a_whole_answer_has_openais_fields() -> None:
    result = GenerationResult("m", "Paris.", "stop", Usage(7, 3), Timings(0, 0.1, 10))
    doc = TextShapes("m", chat=True).whole(result, "Paris.")
    assert doc["object"] == "chat.completion" and doc["id"].startswith("chatcmpl-")
    assert doc["choices"] == [{"index": 0, "message": {"role": "assistant", "content": "Paris.",
                                                        "refusal": None},
                               "logprobs": None, "finish_reason": "stop"}]
    assert doc["usage"] == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}


def test_transcripts_in_each_format() -> None:
    t = Transcription.from_segments([TranscriptSegment(0.0, 1.5, " Hello there.", 0),
                                     TranscriptSegment(61.25, 3723.004, " Bye.", 1)],
                                    language="en", duration=3724.0)
    assert render(t, "text").text == "Hello there. Bye.\n"
    srt = render(t, "srt").text
    assert srt == ("1\n00:00:00,000 --> 00:00:01,500\nHello there.\n\n"
                   "2\n00:01:01,250 --> 01:02:03,004\nBye.\n")
    vtt = render(t, "vtt").text
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nHello there.\n")
    import json

    verbose = json.loads(render(t, "verbose_json").body)  # type: ignore[arg-type]
    assert verbose["language"] == "english" and verbose["duration"] == 3724.0
    assert [s["id"] for s in verbose["segments"]] == [0, 1]
    assert verbose["segments"][1]["seek"] == 6125
    assert json.loads(render(t, "json").body) == {  # type: ignore[arg-type]
        "text": "Hello there. Bye.", "usage": {"type": "duration", "seconds": 3724}}


def test_speech_encodings_keep_the_samples() -> None:
    sr = 22050
    tone = (0.5 * np.sin(np.arange(sr) * 2 * np.pi * 440 / sr)).astype(np.float32)
    with wave.open(io.BytesIO(encode(tone, sr, "wav"))) as w:
        assert (w.getframerate(), w.getnframes(), w.getsampwidth()) == (sr, sr, 2)
        back = np.frombuffer(w.readframes(sr), "<i2").astype(np.float32) / 32767
    assert float(np.max(np.abs(back - tone))) < 1e-4
    pcm = encode(tone, sr, "pcm")
    assert len(pcm) == 2 * PCM_RATE  # one second at 24 kHz, 16-bit
    import soundfile as sf

    for fmt, rate in (("flac", sr), ("mp3", sr), ("opus", 48000)):
        audio, got = sf.read(io.BytesIO(encode(tone, sr, fmt)), dtype="float32")
        assert got == rate and abs(audio.shape[0] / got - 1.0) < 0.1, fmt
    with pytest.raises(APIError) as aac:
        encode(tone, sr, "aac")
    assert aac.value.param == "response_format"
