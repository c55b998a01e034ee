"""OpenAI's audio routes over the cached speech models:

    POST /v1/audio/transcriptions   multipart: ``file``, ``model``, ``language``, ``prompt``,
                                    ``temperature``, ``response_format`` (json, text,
                                    verbose_json, srt, vtt)
    POST /v1/audio/speech           JSON: ``model`` (the voice model's id), ``input``, ``voice``
                                    (one of its speakers; any other value: its default one),
                                    ``response_format`` (mp3, opus, flac, wav, pcm)

Transcription runs segment by segment in a worker thread and stops between two segments when
the client leaves; speech runs sentence by sentence, and ``pcm`` is streamed as each sentence is
made. The uploaded file is written to a temporary file and removed after.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ...adapters.stt import SegmentedSTTAdapter, Transcription, transcription_of
from ...errors import ModelError
from ..cors import add_headers
from ..openai_api import errors
from ..openai_api.connection import in_thread, read_json, until_gone
from ..openai_api.models import resolve
from ..openai_api.requests import TRANSCRIPT_FORMATS, SpeechRequest, model_of, speech_request
from ..openai_api.speech_audio import CONTENT_TYPES, encode, pcm24k
from ..openai_api.turns import QueueFull
from ..openai_api.uploads import Upload, read_upload

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from ...catalog import ModelMetadata
    from ..context import ServeContext

log = logging.getLogger("runanywhere.serve")
PATHS = ("/v1/audio/transcriptions", "/v1/audio/speech")
SAMPLE_RATE = 16000


def add_routes(router: web.UrlDispatcher, ctx: ServeContext) -> None:
    routes = AudioRoutes(ctx)
    router.add_post(PATHS[0], routes.transcriptions)
    router.add_post(PATHS[1], routes.speech)
    errors.register(ctx, PATHS)


class _Stopped(Exception):
    """The client left between two segments."""


class AudioRoutes:
    def __init__(self, ctx: ServeContext) -> None:
        self.ctx = ctx

    # -- speech to text ----------------------------------------------------------------------------
    async def transcriptions(self, request: web.Request) -> web.StreamResponse:
        upload = Upload()
        try:
            upload = await read_upload(request)
            model, options, fmt = _transcription_fields(upload)
            meta = await resolve(self.ctx, model, "stt", request.path)
            from ...adapters.audio import read_audio

            assert upload.path is not None
            audio, sr = await in_thread(read_audio, upload.path, SAMPLE_RATE)
            upload.remove()
            t = await until_gone(request, self._transcribe(meta, audio, sr, options))
            from ..openai_api.transcripts import render

            return render(t, fmt)
        except errors.APIError as e:
            return e.response()
        except QueueFull as e:
            return errors.queue_full(e)
        except ModelError as e:
            return errors.from_model_error(e).response()
        finally:
            upload.remove()

    async def _transcribe(self, meta: ModelMetadata, audio: NDArray[np.float32], sr: int,
                          options: dict[str, Any]) -> Transcription:
        async with self.ctx.pool.use(meta) as stt:
            _apply_stt_options(stt, options)
            stop = threading.Event()

            def work() -> Transcription:
                if not isinstance(stt, SegmentedSTTAdapter):
                    return transcription_of(stt, audio, sr)
                segments = stt.stream(audio, sr)
                for _ in segments:
                    if stop.is_set():
                        segments.close()
                        raise _Stopped
                return segments.result()

            try:
                return await in_thread(work)
            except BaseException:
                stop.set()
                raise

    # -- text to speech ----------------------------------------------------------------------------
    async def speech(self, request: web.Request) -> web.StreamResponse:
        try:
            req = speech_request(await read_json(request, 256 * 1024))
            meta = await resolve(self.ctx, req.model, "tts", request.path)
            return await until_gone(request, self._speak(request, meta, req))
        except errors.APIError as e:
            return e.response()
        except QueueFull as e:
            return errors.queue_full(e)
        except ModelError as e:
            return errors.from_model_error(e).response()

    async def _speak(self, request: web.Request, meta: ModelMetadata, req: SpeechRequest
                     ) -> web.StreamResponse:
        async with self.ctx.pool.use(meta) as tts:
            if not callable(getattr(tts, "stream", None)):
                raise errors.APIError(400, f"'{meta.id}' runs on the adapter"
                                      f" {meta.adapter_name!r}, which does not speak",
                                      param="model", code="model_not_supported")
            _pick_voice(tts, req.voice)
            chunks = tts.stream(req.input)
            try:
                if req.stream:
                    return await self._stream_pcm(request, chunks)
                parts = []
                while (chunk := await in_thread(next, chunks, None)) is not None:
                    parts.append(chunk)
            finally:
                await in_thread(chunks.close)
            import numpy as np

            audio = (np.concatenate([c.audio for c in parts]) if parts
                     else np.zeros(0, dtype=np.float32))
            rate = parts[0].sample_rate if parts else int(getattr(tts, "sample_rate", 16000))
            body = await in_thread(encode, audio, rate, req.response_format)
            return web.Response(body=body, headers={
                "Content-Type": CONTENT_TYPES[req.response_format]})

    async def _stream_pcm(self, request: web.Request, chunks: Any) -> web.StreamResponse:
        """OpenAI's ``pcm`` (24 kHz, 16-bit), sentence by sentence as the voice makes them."""
        response = web.StreamResponse(headers={"Content-Type": CONTENT_TYPES["pcm"]})
        add_headers(response.headers, self.ctx.cors.headers(request.headers.get("Origin")))
        started = False
        while True:
            try:
                chunk = await in_thread(next, chunks, None)
            except ModelError as e:
                if not started:  # nothing sent yet: the client gets the error's status
                    raise
                # Sent in part: end the connection without the last chunk, so the client
                # sees a broken answer, not a shorter one.
                log.warning("speech for %s failed after %d bytes: %s", request.path,
                            response.body_length, e)
                raise ConnectionResetError(f"speech failed: {e}") from e
            if chunk is None:
                break
            data = await in_thread(pcm24k, chunk.audio, chunk.sample_rate)
            if not started:  # after the first sentence: a voice that fails gets its 4xx/5xx
                await response.prepare(request)
                started = True
            await response.write(data)
        if not started:
            await response.prepare(request)
        await response.write_eof()
        return response


def _transcription_fields(upload: Upload) -> tuple[str, dict[str, Any], str]:
    """(model, the adapter's options, response_format) of a transcription form."""
    fields: dict[str, Any] = {k: v[-1] for k, v in upload.fields.items()}
    model = model_of(fields)
    if upload.path is None:
        raise errors.APIError(400, "you must provide a 'file' (the audio, as a file part)",
                              param="file", code="missing_required_parameter")
    fmt = fields.get("response_format") or "json"
    if fmt not in TRANSCRIPT_FORMATS:
        raise errors.bad_request(f"'response_format' {fmt!r} is not one of"
                                 f" {', '.join(TRANSCRIPT_FORMATS)}", "response_format")
    grains = upload.fields.get("timestamp_granularities[]", []) + upload.fields.get(
        "timestamp_granularities", [])
    if any(g != "segment" for g in grains):
        raise errors.APIError(400, "'timestamp_granularities' takes 'segment' only here (the"
                              " adapters time segments, not words)",
                              param="timestamp_granularities", code="unsupported_value")
    if fields.get("stream") not in (None, "false", "False", "0", ""):
        raise errors.APIError(400, "'stream' is not supported for transcriptions here",
                              param="stream", code="unsupported_parameter")
    options: dict[str, Any] = {"language": fields.get("language") or None,
                               "prompt": fields.get("prompt") or None, "temperature": None}
    if fields.get("temperature") not in (None, ""):
        try:
            t = float(fields["temperature"])
        except ValueError:
            t = -1.0
        if not 0 <= t <= 1:
            raise errors.bad_request(f"'temperature' must be a number from 0 to 1, got"
                                     f" {fields['temperature']!r}", "temperature")
        options["temperature"] = t
    return model, options, str(fmt)


def _apply_stt_options(stt: Any, options: dict[str, Any]) -> None:
    """This request's language, prompt and temperature on the model's adapter (one request
    at a time runs on it). The language is checked by the adapter (400 when it does not know
    it); an adapter with no decode options (the ONNX Whisper) takes the prompt and temperature
    as hints it may not use."""
    language = options["language"]
    if hasattr(stt, "language"):
        stt.language = language
    elif language is not None:
        raise errors.APIError(400, "this model's adapter cannot be told the language",
                              param="language", code="unsupported_parameter")
    decode = getattr(stt, "decode_options", None)
    if isinstance(decode, dict):
        for key, value in (("initial_prompt", options["prompt"]),
                           ("temperature", options["temperature"])):
            if value is None:
                decode.pop(key, None)
            else:
                decode[key] = value


def _pick_voice(tts: Any, voice: str | None) -> None:
    """A speaker of a multi-speaker voice by name (or id); any other value: its default."""
    set_speaker = getattr(tts, "set_speaker", None)
    speakers = getattr(tts, "speakers", None)
    if not callable(set_speaker) or not isinstance(speakers, dict):
        return
    if voice is not None and voice in speakers:
        set_speaker(voice)
    elif voice is not None and voice.isdigit() and int(voice) in speakers.values():
        set_speaker(int(voice))
    else:
        set_speaker(None)
