"""SpeechT5 text-to-speech on onnxruntime, for the Transformers.js export (Xenova/speecht5_tts).

Model folder (catalog id ``speecht5-tts``)::

    onnx/encoder_model.onnx                 input_ids [1, n] int64
                                            -> encoder_outputs [1, n, hidden],
                                               encoder_attention_mask [1, n] int64
    onnx/decoder_model_merged.onnx          one autoregressive step (see below)
    onnx/decoder_postnet_and_vocoder.onnx   spectrogram [frames, mel] -> waveform [samples]
    spm_char.model                          character SentencePiece model (sentencepiece)
    speaker_embeddings.bin                  512 float32: the voice (an x-vector)

The decoding loop is Transformers.js's ``SpeechT5ForTextToSpeech.generate_speech``
(``src/models/speecht5/modeling_speecht5.js``; the graphs come from Optimum's SpeechT5 export):

- tokens: ``spm.encode(text) + [</s>]``, the ids Transformers.js's tokenizer gives;
- decoder feeds per step: ``use_cache_branch`` (false on the first step), ``output_sequence``
  (a zero mel frame [1, 1, mel] first, then the step's ``output_sequence_out``),
  ``encoder_attention_mask``, ``speaker_embeddings`` [1, 512], ``encoder_hidden_states`` and
  ``past_key_values.{i}.{decoder,encoder}.{key,value}``: empty at the first step (every symbolic
  dimension 0 except ``batch_size`` 1, as the inputs' metadata declare), then the step's
  ``present.*`` outputs, except the encoder (cross-attention) entries, which keep the first
  step's values (the merged graph's cache branch outputs them as constants);
- each step yields ``spectrum`` [reduction_factor, mel] and ``prob`` [reduction_factor];
- stop after step ``idx`` (counting from 1) when ``idx >= minlen`` and (some ``prob >=
  threshold`` or ``idx >= maxlen``), with ``r = n / reduction_factor``, ``maxlen =
  floor(r * maxlenratio)``, ``minlen = floor(r * minlenratio)`` (defaults 0.5, 0.0, 20.0);
- the spectra, concatenated [steps * reduction_factor, mel], go through the postnet and vocoder.

On top of that: a length cap (``max_seconds`` of audio per sentence, 30 by default, counted in
decoder steps from the vocoder's hop, which is measured once at load), and streaming by sentence
(``stream``, events ``synthesis_started`` / ``audio_chunk`` / ``synthesis_done``).

Beware: the real decoder's prenet keeps dropout on at inference (SpeechT5's design; the export
samples it with ``RandomUniformLike``), so two runs of the real model differ slightly, here as in
Transformers.js. Tested here: the whole loop against Transformers.js on a synthetic model of the
same shape (tests/test_reference_parity.py); real-weight synthesis is not (no hub access).
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from runanywhere.adapters.base import RegistryLike
from runanywhere.adapters.tts import TTSBase
from runanywhere.errors import ModelError, RuntimeUnavailableError, SynthesisError
from runanywhere.result import Result

SAMPLE_RATE = 16000
SPEAKER_DIM = 512


@dataclass(frozen=True)
class StopCriteria:
    """When the decoder stops (Transformers.js's ``generate_speech`` options), plus a cap."""

    threshold: float = 0.5
    minlenratio: float = 0.0
    maxlenratio: float = 20.0
    #: Hard cap on decoder steps per sentence (None: ``maxlenratio`` alone decides).
    max_steps: int | None = None

    def limits(self, encoder_len: int, reduction_factor: int) -> tuple[int, int]:
        """``(minlen, maxlen)`` in decoder steps for an encoder output of ``encoder_len``."""
        r = encoder_len / reduction_factor
        maxlen = math.floor(r * self.maxlenratio)
        if self.max_steps is not None:
            maxlen = min(maxlen, self.max_steps)
        return math.floor(r * self.minlenratio), maxlen


# -- files -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpeechT5Files:
    encoder: Path
    decoder: Path
    vocoder: Path
    tokenizer: Path
    speaker: Path | None


def _pick(folder: Path, patterns: tuple[str, ...], what: str) -> Path:
    for pattern in patterns:
        found = sorted(p for p in folder.rglob(pattern) if p.is_file())
        plain = [p for p in found if "quantized" not in p.name and "_q4" not in p.name
                 and "_fp16" not in p.name and "_int8" not in p.name]
        found = plain or found
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            names = ", ".join(str(p.relative_to(folder)) for p in found)
            raise ModelError(f"several SpeechT5 {what}s in {folder}: {names}")
    raise ModelError(f"no SpeechT5 {what} ({' or '.join(patterns)}) in {folder}")


def find_speecht5_files(folder: str | Path) -> SpeechT5Files:
    """The three graphs, the tokenizer and the speaker embedding of a SpeechT5 folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelError(f"a SpeechT5 model is a folder (encoder, decoder, vocoder, spm_char.model)"
                         f"; got {folder}")
    speakers = sorted(folder.rglob("speaker_embeddings*.bin"))
    return SpeechT5Files(
        encoder=_pick(folder, ("encoder_model*.onnx",), "encoder"),
        decoder=_pick(folder, ("decoder_model_merged*.onnx",), "merged decoder"),
        vocoder=_pick(folder, ("decoder_postnet_and_vocoder*.onnx",), "postnet+vocoder"),
        tokenizer=_pick(folder, ("spm_char.model", "*.model"), "SentencePiece model"),
        speaker=speakers[0] if speakers else None,
    )


def load_speaker(source: str | Path | ArrayLike, dim: int = SPEAKER_DIM) -> NDArray[np.float32]:
    """A speaker embedding [1, dim] float32 from a raw little-endian float32 file or an array."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        try:
            data = path.read_bytes()
        except OSError as e:
            raise ModelError(f"{path}: cannot read the speaker embedding ({e})") from e
        if len(data) != dim * 4:
            raise ModelError(f"{path}: a speaker embedding is {dim} float32 ({dim * 4} bytes), "
                             f"this file has {len(data)} bytes")
        arr = np.frombuffer(data, dtype="<f4").astype(np.float32)
    else:
        arr = np.asarray(source, dtype=np.float32).reshape(-1)
        if arr.size != dim:
            raise ModelError(f"a speaker embedding has {dim} values, got {arr.size}")
    if not np.all(np.isfinite(arr)):
        raise ModelError("the speaker embedding holds NaN or infinite values")
    return np.ascontiguousarray(arr.reshape(1, dim))


class CharTokenizer:
    """SpeechT5's character SentencePiece model: ``encode(text)`` = pieces' ids + ``</s>``."""

    def __init__(self, path: str | Path) -> None:
        try:
            import sentencepiece as spm
        except ImportError as e:
            raise RuntimeUnavailableError(
                f"SpeechT5's tokenizer needs sentencepiece, which is not installed ({e}): "
                "pip install runanywhere-tts-speecht5") from e
        self.path = Path(path)
        try:
            self.sp = spm.SentencePieceProcessor(model_file=str(self.path))
        except (OSError, RuntimeError) as e:
            raise ModelError(f"{self.path}: not a SentencePiece model ({e})") from e
        eos = int(self.sp.eos_id())
        if eos < 0:
            eos = int(self.sp.piece_to_id("</s>"))
        if eos < 0 or self.sp.id_to_piece(eos) != "</s>":
            raise ModelError(f"{self.path}: the SentencePiece model has no '</s>' piece")
        self.eos_id = eos

    @property
    def vocab_size(self) -> int:
        return int(self.sp.get_piece_size())

    def encode(self, text: str) -> list[int]:
        return [int(i) for i in self.sp.encode(text)] + [self.eos_id]


# -- the model -------------------------------------------------------------------------------------


def _names(session: Any, kind: str) -> list[str]:
    items = session.get_inputs() if kind == "in" else session.get_outputs()
    return [i.name for i in items]


class SpeechT5Model:
    """The three sessions, the tokenizer and a default voice; ``generate`` is one utterance."""

    def __init__(self, encoder: Any, decoder: Any, vocoder: Any, tokenizer: CharTokenizer,
                 speaker: NDArray[np.float32] | None = None,
                 config: Mapping[str, Any] | None = None) -> None:
        self.encoder, self.decoder, self.vocoder = encoder, decoder, vocoder
        self.tokenizer = tokenizer
        cfg = dict(config or {})
        enc_in, enc_out = _names(encoder, "in"), _names(encoder, "out")
        dec_in, dec_out = _names(decoder, "in"), _names(decoder, "out")
        voc_in, voc_out = _names(vocoder, "in"), _names(vocoder, "out")
        for names, want, what in (
                (enc_in, ("input_ids",), "encoder inputs"),
                (enc_out, ("encoder_outputs",), "encoder outputs"),
                (dec_in, ("output_sequence", "speaker_embeddings", "encoder_hidden_states"),
                 "decoder inputs"),
                (dec_out, ("output_sequence_out", "spectrum", "prob"), "decoder outputs"),
                (voc_in, ("spectrogram",), "vocoder inputs"),
                (voc_out, ("waveform",), "vocoder outputs")):
            missing = [w for w in want if w not in names]
            if missing:
                raise ModelError(f"not a SpeechT5 ONNX export: {what} {names} lack {missing}")
        self._enc_out = ["encoder_outputs"] + (
            ["encoder_attention_mask"] if "encoder_attention_mask" in enc_out else [])
        self._dec_inputs = set(dec_in)
        self._dec_outputs = dec_out
        self._past_inputs = [i for i in decoder.get_inputs()
                             if i.name.startswith("past_key_values.")]
        meta = {i.name: i for i in decoder.get_inputs()}
        seq = meta["output_sequence"].shape
        self.num_mel_bins = int(cfg.get("num_mel_bins") or (
            seq[-1] if isinstance(seq[-1], int) else 80))
        spk = meta["speaker_embeddings"].shape
        self.speaker_dim = int(cfg.get("speaker_embedding_dim") or (
            spk[-1] if isinstance(spk[-1], int) else SPEAKER_DIM))
        self.reduction_factor = int(cfg.get("reduction_factor") or 2)
        self.sample_rate = int(cfg.get("sampling_rate") or SAMPLE_RATE)
        self.speaker = speaker
        if speaker is not None and speaker.shape != (1, self.speaker_dim):
            raise ModelError(f"the speaker embedding has shape {speaker.shape}, the decoder "
                             f"takes [1, {self.speaker_dim}]")
        self.hop_length = self._measure_hop()

    def _measure_hop(self) -> int:
        """Samples the vocoder makes per spectrogram frame (256 for SpeechT5's HiFi-GAN)."""
        frames = 8
        wave = self.vocode(np.zeros((frames, self.num_mel_bins), dtype=np.float32))
        hop = wave.size // frames
        if hop <= 0 or wave.size % frames:
            raise ModelError(f"the vocoder made {wave.size} samples from {frames} frames: "
                             "not a frame-rate vocoder")
        return hop

    # -- the three graphs ------------------------------------------------------------------------
    def encode(self, ids: list[int]) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        input_ids = np.array([ids], dtype=np.int64)
        out = self.encoder.run(self._enc_out, {"input_ids": input_ids})
        hidden = out[0]
        mask = out[1] if len(out) > 1 else np.ones_like(input_ids)
        return hidden, mask

    def empty_cache(self) -> dict[str, NDArray[Any]]:
        """The first step's past key values: every symbolic dimension 0 but ``batch_size``."""
        cache: dict[str, NDArray[Any]] = {}
        for meta in self._past_inputs:
            shape = [d if isinstance(d, int) else (1 if d == "batch_size" else 0)
                     for d in meta.shape]
            dtype = np.float16 if "float16" in meta.type else np.float32
            cache[meta.name] = np.zeros(shape, dtype=dtype)
        return cache

    def vocode(self, spectrogram: NDArray[np.float32]) -> NDArray[np.float32]:
        (wave,) = self.vocoder.run(["waveform"], {"spectrogram": spectrogram})
        return np.ascontiguousarray(np.asarray(wave, dtype=np.float32).reshape(-1))

    def generate_spectrogram(self, ids: list[int], speaker: NDArray[np.float32],
                             stop: StopCriteria) -> tuple[NDArray[np.float32], int, bool]:
        """Spectrogram [steps * r, mel], the number of steps, and whether the stop token fired."""
        hidden, mask = self.encode(ids)
        minlen, maxlen = stop.limits(hidden.shape[1], self.reduction_factor)
        past = self.empty_cache()
        output_sequence = np.zeros((1, 1, self.num_mel_bins), dtype=np.float32)
        spectra: list[NDArray[np.float32]] = []
        idx = 0
        first = True
        while True:
            idx += 1
            feeds: dict[str, Any] = {
                "use_cache_branch": np.array([not first]),
                "output_sequence": output_sequence,
                "encoder_attention_mask": mask,
                "speaker_embeddings": speaker,
                "encoder_hidden_states": hidden,
                **past,
            }
            outs = dict(zip(self._dec_outputs, self.decoder.run(
                self._dec_outputs, {k: v for k, v in feeds.items() if k in self._dec_inputs}),
                strict=True))
            for name, value in outs.items():
                if not name.startswith("present."):
                    continue
                key = "past_key_values." + name[len("present."):]
                if first or ".encoder." not in name:
                    past[key] = value
            first = False
            output_sequence = outs["output_sequence_out"]
            spectra.append(np.asarray(outs["spectrum"], dtype=np.float32).reshape(
                -1, self.num_mel_bins))
            stopped = bool(np.any(np.asarray(outs["prob"]) >= stop.threshold))
            if idx >= minlen and (stopped or idx >= maxlen):
                return np.concatenate(spectra, axis=0), idx, stopped

    def generate(self, text: str, speaker: NDArray[np.float32] | None = None,
                 stop: StopCriteria | None = None) -> NDArray[np.float32]:
        """The waveform (float32, ``sample_rate``) of one piece of text."""
        voice = speaker if speaker is not None else self.speaker
        if voice is None:
            raise SynthesisError("SpeechT5 needs a speaker embedding (speaker_embeddings.bin, "
                                 "or speaker=...)")
        spec, _, _ = self.generate_spectrogram(self.tokenizer.encode(text), voice,
                                               stop or StopCriteria())
        return self.vocode(spec)


def _read_config(folder: Path) -> dict[str, Any]:
    """The folder's ``config.json`` and ``preprocessor_config.json``, where present."""
    cfg: dict[str, Any] = {}
    for name in ("config.json", "preprocessor_config.json"):
        path = folder / name
        if path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as e:
                raise ModelError(f"{path}: not a JSON object ({e})") from e
            if isinstance(data, dict):
                cfg.update({k: v for k, v in data.items() if k not in cfg})
    return cfg


# -- the adapter -----------------------------------------------------------------------------------


class SpeechT5TTSAdapter(TTSBase):
    """Text-to-speech with SpeechT5 (Transformers.js ONNX export) on onnxruntime.

    ``speaker`` is a path to a 512-float32 file or an array (default: the folder's
    ``speaker_embeddings.bin``); ``threshold``, ``minlenratio`` and ``maxlenratio`` are
    Transformers.js's stop options; ``max_seconds`` caps each sentence's audio.
    """

    runtime = "onnx"
    model_types = ("tts",)
    formats = ("onnx",)
    default_model_id = "speecht5-tts"

    def __init__(self, registry: RegistryLike | None = None, *,
                 speaker: str | Path | ArrayLike | None = None, threshold: float = 0.5,
                 minlenratio: float = 0.0, maxlenratio: float = 20.0,
                 max_seconds: float | None = 30.0, max_chunk_chars: int = 300) -> None:
        super().__init__(registry, max_chunk_chars=max_chunk_chars)
        if threshold <= 0:  # above 1 the stop token never fires: maxlenratio decides
            raise ValueError(f"threshold must be positive, got {threshold}")
        if minlenratio < 0 or maxlenratio <= 0:
            raise ValueError("minlenratio must be >= 0 and maxlenratio > 0")
        if max_seconds is not None and max_seconds <= 0:
            raise ValueError(f"max_seconds must be positive, got {max_seconds}")
        self.speaker_source = speaker
        self.threshold = threshold
        self.minlenratio = minlenratio
        self.maxlenratio = maxlenratio
        self.max_seconds = max_seconds
        self._speecht5: SpeechT5Model | None = None
        self._lock = threading.Lock()

    # -- loading -----------------------------------------------------------------------------------
    @classmethod
    def from_dir(cls, folder: str | Path, **kwargs: Any) -> SpeechT5TTSAdapter:
        """An adapter on a local SpeechT5 folder (no registry involved)."""
        from runanywhere.runtimes import get_runtime

        adapter = cls(**kwargs)
        folder = Path(folder)
        files = find_speecht5_files(folder)
        rt = get_runtime("onnx")
        sessions = [rt.load(f, None) for f in (files.encoder, files.decoder, files.vocoder)]
        adapter._attach("speecht5", folder, adapter._build(folder, files, sessions))
        return adapter

    def _build(self, folder: Path, files: SpeechT5Files, sessions: list[Any]) -> SpeechT5Model:
        source = self.speaker_source if self.speaker_source is not None else files.speaker
        cfg = _read_config(folder)
        dim = int(cfg.get("speaker_embedding_dim") or SPEAKER_DIM)
        speaker = load_speaker(source, dim) if source is not None else None
        encoder, decoder, vocoder = sessions
        return SpeechT5Model(encoder, decoder, vocoder, CharTokenizer(files.tokenizer), speaker,
                             cfg)

    async def _load_runtime(self, model_id: str, path: Path, **options: Any
                            ) -> Result[Any, ModelError]:
        files = find_speecht5_files(path)
        sessions = []
        for f in (files.encoder, files.decoder, files.vocoder):
            r = await self.registry.load_model(model_id, runtime=self.runtime,
                                               file=str(f.relative_to(path)), **options)
            if not r.success:
                return r
            sessions.append(r.value)
        return Result.ok(self._build(path, files, sessions))

    def _attach(self, model_id: str, path: Path, model: Any) -> None:
        if not isinstance(model, SpeechT5Model):
            raise ModelError(f"expected a SpeechT5Model, got {type(model).__name__}")
        self._speecht5 = model
        self.model = model
        self.model_id = self.model_id or model_id
        self.sample_rate = model.sample_rate

    @property
    def speecht5(self) -> SpeechT5Model:
        if self._speecht5 is None:
            raise ModelError("SpeechT5TTSAdapter: no model loaded (call load_model first)")
        return self._speecht5

    # -- synthesis ---------------------------------------------------------------------------------
    @property
    def stop_criteria(self) -> StopCriteria:
        max_steps = None
        if self.max_seconds is not None:
            m = self.speecht5
            per_step = m.hop_length * m.reduction_factor
            max_steps = max(1, math.ceil(self.max_seconds * m.sample_rate / per_step))
        return StopCriteria(self.threshold, self.minlenratio, self.maxlenratio, max_steps)

    def _ready(self) -> None:
        if self.speecht5.speaker is None:
            raise SynthesisError("SpeechT5 needs a speaker embedding: the model folder has no "
                                 "speaker_embeddings.bin and no speaker= was given")

    def _speak(self, sentence: str) -> NDArray[np.float32]:
        with self._lock:
            return self.speecht5.generate(sentence, stop=self.stop_criteria)

    def set_speaker(self, speaker: str | Path | ArrayLike) -> None:
        """Change the voice (a 512-float32 file or array)."""
        model = self.speecht5
        model.speaker = load_speaker(speaker, model.speaker_dim)
        self.speaker_source = speaker


__all__ = [
    "CharTokenizer",
    "SpeechT5Files",
    "SpeechT5Model",
    "SpeechT5TTSAdapter",
    "StopCriteria",
    "find_speecht5_files",
    "load_speaker",
]
