"""What every text-to-speech adapter shares: sentence splitting, streaming, the TTS events.

A TTS adapter implements one method, ``_speak(sentence) -> float32 samples`` at
``self.sample_rate``; this base turns it into

- ``stream(text)``: a generator of :class:`AudioChunk`, one per sentence, each emitted as the
  ``audio_chunk`` event as soon as it is made (play it while the next one is synthesized);
- ``synthesize(text) -> (audio, sample_rate)``: the whole utterance (the ``TTSAdapter`` protocol);
- ``synthesize_to_file(text, path)``: the same, written as WAV/FLAC/OGG (extra ``audio``).

Events, in order: ``synthesis_started`` (the text and the number of chunks), ``audio_chunk`` per
sentence, ``synthesis_done`` (samples, wall time); on a failure ``error`` and a raised
:class:`~runanywhere.errors.SynthesisError` (the chunks already delivered stay delivered).

Sentences end at ``.``, ``!``, ``?``, ``;`` or ``:`` followed by white space, and at blank
lines; a sentence longer than ``max_chunk_chars`` is cut at the last comma or space before the
limit (a model's text length is bounded, and long inputs make autoregressive TTS ramble).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..errors import ModelError, SynthesisError
from .base import (
    AdapterError,
    AudioChunk,
    BaseAdapter,
    ModelLoaded,
    ModelLoading,
    RegistryLike,
    SynthesisDone,
    SynthesisStarted,
    TTSEvent,
)

_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+|(?<=[.!?;:][\"')\]])\s+|\n\s*\n")


def split_sentences(text: str, max_chars: int = 300) -> list[str]:
    """``text`` cut into sentences of at most ``max_chars`` characters, white space collapsed."""
    if max_chars < 1:
        raise ValueError(f"max_chars must be positive, got {max_chars}")
    out: list[str] = []
    for piece in _SENTENCE_END.split(text):
        sentence = " ".join(piece.split())
        while len(sentence) > max_chars:
            head = sentence[:max_chars + 1]
            cut = max(head.rfind(", "), head.rfind("; "))
            cut = cut + 1 if cut > 0 else head.rfind(" ")
            if cut <= 0:
                cut = max_chars
            out.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        if sentence:
            out.append(sentence)
    return out


class TTSBase(BaseAdapter[TTSEvent]):
    """Streaming by sentence and the TTS events around a subclass's ``_speak``."""

    events = (ModelLoading, ModelLoaded, AdapterError, SynthesisStarted, AudioChunk,
              SynthesisDone)

    def __init__(self, registry: RegistryLike | None = None, *, max_chunk_chars: int = 300
                 ) -> None:
        super().__init__(registry)
        if max_chunk_chars < 1:
            raise ValueError(f"max_chunk_chars must be positive, got {max_chunk_chars}")
        self.max_chunk_chars = max_chunk_chars

    #: Output sample rate (subclasses set it, possibly when the model loads).
    sample_rate: int = 16000

    def _speak(self, sentence: str) -> NDArray[np.float32]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _ready(self) -> None:
        """Raise ModelError when synthesis cannot run yet (no model, no engine)."""

    def split(self, text: str) -> list[str]:
        return split_sentences(text, self.max_chunk_chars)

    def stream(self, text: str) -> Iterator[AudioChunk]:
        """Synthesize ``text`` sentence by sentence, yielding (and emitting) each chunk."""
        try:
            self._ready()
        except ModelError as e:  # no model loaded, no engine, no voice: say so, then raise
            self.emit(AdapterError(e, self.model_id))
            raise
        sentences = self.split(text)
        t0 = time.perf_counter()
        self.emit(SynthesisStarted(text, len(sentences)))
        samples = 0
        for index, sentence in enumerate(sentences):
            try:
                audio = np.ascontiguousarray(self._speak(sentence), dtype=np.float32).reshape(-1)
            except SynthesisError as e:
                self.emit(AdapterError(e, self.model_id))
                raise
            except Exception as e:
                err = SynthesisError(f"{type(self).__name__} could not say {sentence[:60]!r}: {e}")
                self.emit(AdapterError(err, self.model_id))
                raise err from e
            chunk = AudioChunk(audio, self.sample_rate, index, sentence,
                               samples / self.sample_rate)
            samples += audio.size
            self.emit(chunk)
            yield chunk
        self.emit(SynthesisDone(text, len(sentences), samples, self.sample_rate,
                                time.perf_counter() - t0))

    def synthesize(self, text: str) -> tuple[NDArray[np.float32], int]:
        """Mono float32 audio for ``text`` (all sentences joined) and its sample rate."""
        parts = [c.audio for c in self.stream(text)]
        audio = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
        return audio.astype(np.float32, copy=False), self.sample_rate

    def synthesize_to_file(self, text: str, path: str | Path, **options: Any) -> Path:
        """Synthesize ``text`` and write it (format from the suffix; see ``write_audio``)."""
        from .audio import write_audio

        audio, sr = self.synthesize(text)
        return write_audio(path, audio, sr, **options)


__all__ = ["TTSBase", "split_sentences"]
