"""``openai-tts``: text to speech through ``POST /audio/speech`` of any OpenAI-compatible server
(``runanywhere serve``, LocalAI, OpenAI)::

    tts = OpenAITTSAdapter(base_url="http://127.0.0.1:8765/v1", voice="default")
    await tts.load_model("piper-en-us-joe-medium")
    audio, sr = tts.synthesize("Hello there. How are you?")
    for chunk in tts.stream(long_text):     # one request per sentence, played as they come

The core's TTS base splits the text into sentences; each is one request answered as WAV (its
header gives the sample rate, 24 kHz from OpenAI). ``voice`` is the server's: one of OpenAI's
names, or for ``runanywhere serve`` a speaker of a multi-speaker voice (any other value: its
default speaker).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from runanywhere import Result
from runanywhere.adapters import RegistryLike
from runanywhere.adapters.tts import TTSBase
from runanywhere.errors import ModelError

from .remote import load_remote, require_remote
from .wav import decode_wav

#: OpenAI's voices take a name; this one is in every OpenAI speech model.
DEFAULT_VOICE = "alloy"


class OpenAITTSAdapter(TTSBase):
    """Text to speech behind an OpenAI-compatible API."""

    model_types: ClassVar[tuple[str, ...]] = ("tts",)
    formats: ClassVar[tuple[str, ...]] = ("custom",)
    #: OpenAI's rate; each answer's WAV header says the real one.
    sample_rate: int = 24000

    def __init__(self, registry: RegistryLike | None = None, *, base_url: str | None = None,
                 api_key: str | None = None, model: str | None = None,
                 timeout: float | None = None, connect_timeout: float | None = None,
                 max_retries: int | None = None, headers: Mapping[str, str] | None = None,
                 voice: str = DEFAULT_VOICE, instructions: str | None = None,
                 max_chunk_chars: int = 300) -> None:
        super().__init__(registry, max_chunk_chars=max_chunk_chars)
        self.endpoint_options: dict[str, Any] = {
            "base_url": base_url, "api_key": api_key, "model": model, "timeout": timeout,
            "connect_timeout": connect_timeout, "max_retries": max_retries,
            "headers": headers}
        self.voice = voice
        self.instructions = instructions

    async def load_model(self, model_id: str | None = None, **options: Any
                         ) -> Result[None, ModelError]:
        return await load_remote(self, model_id, {**self.endpoint_options, **options})

    def set_speaker(self, voice: str | None) -> None:
        """Speak with another of the server's voices (None: ``DEFAULT_VOICE``)."""
        self.voice = voice or DEFAULT_VOICE

    def _ready(self) -> None:
        require_remote(self)

    def _speak(self, sentence: str) -> NDArray[np.float32]:
        remote = require_remote(self)
        doc: dict[str, Any] = {"model": remote.config.model, "input": sentence,
                               "voice": self.voice, "response_format": "wav"}
        if self.instructions:
            doc["instructions"] = self.instructions
        url = remote.client.url("/audio/speech")
        with remote.client.request("POST", "/audio/speech", body=json.dumps(doc).encode(),
                                   content_type="application/json", accept="audio/wav") as r:
            data = r.read()
        audio, rate = decode_wav(data, url)
        self.sample_rate = rate
        return audio
