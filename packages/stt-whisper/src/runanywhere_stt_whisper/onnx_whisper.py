"""Whisper speech-to-text on onnxruntime, for the sherpa-onnx Whisper ONNX export.

Model folder (catalog ids ``whisper-tiny`` ...): ``<name>-encoder[.int8].onnx``,
``<name>-decoder[.int8].onnx`` and ``<name>-tokens.txt``, as written by sherpa-onnx's
``scripts/whisper/export-onnx.py``. The protocol (from sherpa-onnx's ``scripts/whisper/test.py``):

- encoder: ``mel`` [1, n_mels (80, or 128 for large-v3), 3000] -> ``n_layer_cross_k``,
  ``n_layer_cross_v`` [n_text_layer, 1, n_audio_ctx, n_text_state];
- decoder: ``tokens`` [1, n] int64, ``in_n_layer_self_k_cache``, ``in_n_layer_self_v_cache``
  [n_text_layer, 1, n_text_ctx, n_text_state], ``n_layer_cross_k``, ``n_layer_cross_v``,
  ``offset`` [1] int64 -> ``logits`` [1, n, n_vocab], ``out_n_layer_self_k_cache``,
  ``out_n_layer_self_v_cache`` (fed back);
- the encoder's custom metadata holds the dimensions and special tokens (``n_text_layer``,
  ``n_text_ctx``, ``n_text_state``, ``n_mels``, ``sot_sequence``, ``sot``, ``eot``,
  ``no_timestamps``, ``no_speech``, ``translate``, ``transcribe``, ``blank_id``,
  ``all_language_tokens``, ``all_language_codes``, ``is_multilingual``, ``non_speech_tokens``);
- ``tokens.txt``: one ``<base64 of the token's bytes> <id>`` per line (special tokens absent).

Decoding is greedy: prompt ``sot_sequence + [no_timestamps]`` (language and task set in it for
multilingual models; the language is detected from the first window when not given), suppress
``eot`` and blank at the first step and every special token (ids above ``eot``) and whisper's
non-speech tokens always, stop at ``eot``. Audio longer than 30 s is cut into 30 s windows. No
temperature fallback, beam search or timestamps.

The log-mel front end is whisper's own, in numpy: 16 kHz, 25 ms Hann window (n_fft 400), hop 160,
Slaney-style mel filterbank (librosa's default, computed here), log10 clamped to max - 8,
``(x + 4) / 4``, padded/trimmed to 3000 frames (30 s).

Tested here: the front end, tokens.txt decoding, and the whole decode loop against a tiny
encoder/decoder pair with the same input/output names and metadata, run by onnxruntime; and
against sherpa-onnx's own recognizer (``OfflineRecognizer.from_whisper``) on a tiny random-weight
model of the export's shape, which gives the same tokens, text and language
(tests/test_reference_parity.py; the log-mel there is checked against kaldi-native-fbank, whose
frames sit 80 samples later than whisper's). sherpa-onnx applies none of whisper's suppression
rules; we do. Transcription with real Whisper weights is NOT tested here (no model download in
this environment).
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from runanywhere.adapters.audio import as_mono_float32, resample
from runanywhere.adapters.base import (
    AdapterError,
    BaseAdapter,
    ModelLoaded,
    ModelLoading,
    RegistryLike,
    STTEvent,
    Transcript,
)
from runanywhere.errors import ModelError
from runanywhere.result import Result

SAMPLE_RATE = 16000
N_FFT = 400
HOP_LENGTH = 160
CHUNK_LENGTH = 30
N_SAMPLES = CHUNK_LENGTH * SAMPLE_RATE  # 480000
N_FRAMES = N_SAMPLES // HOP_LENGTH  # 3000

# -- log-mel front end -----------------------------------------------------------------------------

_F_SP = 200.0 / 3  # Slaney mel scale: linear below 1 kHz ...
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP  # 15
_LOGSTEP = float(np.log(6.4) / 27.0)  # ... logarithmic above


def hz_to_mel(freq: ArrayLike) -> NDArray[np.float64]:
    """Slaney's mel scale (librosa ``htk=False``)."""
    f = np.asarray(freq, dtype=np.float64)
    mel = f / _F_SP
    log_part = _MIN_LOG_MEL + np.log(np.maximum(f, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP
    return np.where(f >= _MIN_LOG_HZ, log_part, mel)


def mel_to_hz(mels: ArrayLike) -> NDArray[np.float64]:
    m = np.asarray(mels, dtype=np.float64)
    freq = m * _F_SP
    log_part = _MIN_LOG_HZ * np.exp(_LOGSTEP * (np.maximum(m, _MIN_LOG_MEL) - _MIN_LOG_MEL))
    return np.where(m >= _MIN_LOG_MEL, log_part, freq)


def mel_frequencies(n: int, fmin: float = 0.0, fmax: float = SAMPLE_RATE / 2
                    ) -> NDArray[np.float64]:
    """``n`` frequencies (Hz) evenly spaced on the Slaney mel scale."""
    lo, hi = hz_to_mel(fmin), hz_to_mel(fmax)
    return mel_to_hz(np.linspace(float(lo), float(hi), n))


@functools.lru_cache(maxsize=8)
def mel_filters(n_mels: int = 80, sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT
                ) -> NDArray[np.float32]:
    """Slaney-normalised triangular mel filterbank, [n_mels, n_fft // 2 + 1].

    The same matrix as ``librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels)``
    (whisper ships it precomputed as ``mel_filters.npz``).
    """
    fftfreqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    mel_f = mel_frequencies(n_mels + 2, 0.0, sample_rate / 2)
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fftfreqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    enorm = 2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels])
    out = (weights * enorm[:, None]).astype(np.float32)
    out.setflags(write=False)
    return out


@functools.lru_cache(maxsize=2)
def _hann(n: int) -> NDArray[np.float64]:
    """Periodic Hann window (``torch.hann_window`` default)."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


def log_mel_spectrogram(audio: ArrayLike, n_mels: int = 80, padding: int = 0
                        ) -> NDArray[np.float32]:
    """Whisper's log-mel spectrogram of 16 kHz audio: [n_mels, len(audio + padding) // 160].

    Same steps as ``whisper.audio.log_mel_spectrogram``: zero-pad by ``padding`` samples, centred
    STFT (reflect padding, periodic Hann, n_fft 400, hop 160), power, mel filterbank,
    log10 clamped at 1e-10, floor at max - 8, then ``(x + 4) / 4``.
    """
    a = as_mono_float32(audio).astype(np.float64)
    if padding > 0:
        a = np.concatenate([a, np.zeros(padding)])
    if a.size < 2:
        a = np.zeros(N_FFT)
    half = N_FFT // 2
    padded = np.pad(a, (half, half), mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP_LENGTH]
    spectrum = np.fft.rfft(frames * _hann(N_FFT), axis=-1)
    power = np.abs(spectrum[:-1]) ** 2  # whisper drops the last frame
    mel = mel_filters(n_mels).astype(np.float64) @ power.T
    log_spec = np.log10(np.maximum(mel, 1e-10))
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    out: NDArray[np.float32] = ((log_spec + 4.0) / 4.0).astype(np.float32)
    return out


def pad_or_trim(array: NDArray[np.float32], length: int = N_FRAMES, axis: int = -1
                ) -> NDArray[np.float32]:
    """Zero-pad or cut ``array`` along ``axis`` to ``length``."""
    n = array.shape[axis]
    if n > length:
        return np.take(array, np.arange(length), axis=axis)
    if n < length:
        widths = [(0, 0)] * array.ndim
        widths[axis] = (0, length - n)
        padded: NDArray[np.float32] = np.pad(array, widths)
        return padded
    return array


def whisper_features(audio: ArrayLike, n_mels: int = 80) -> NDArray[np.float32]:
    """Encoder input for up to 30 s of 16 kHz audio: [1, n_mels, 3000] float32."""
    a = as_mono_float32(audio)[:N_SAMPLES]
    mel = log_mel_spectrogram(a, n_mels, padding=N_SAMPLES)
    return np.ascontiguousarray(pad_or_trim(mel, N_FRAMES)[None], dtype=np.float32)


# -- tokens ----------------------------------------------------------------------------------------


def load_tokens(path: str | Path) -> dict[int, bytes]:
    """sherpa-onnx's ``tokens.txt``: ``<base64 bytes> <id>`` per line -> {id: bytes}."""
    table: dict[int, bytes] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2:
                raise ModelError(f"{path}:{lineno}: expected '<base64> <id>', got {line!r}")
            try:
                table[int(parts[1])] = base64.b64decode(parts[0], validate=True)
            except ValueError as e:
                raise ModelError(f"{path}:{lineno}: bad token line {line.strip()!r}: {e}") from e
    return table


def decode_tokens(ids: Iterable[int], table: Mapping[int, bytes]) -> str:
    """Join the tokens' bytes (unknown ids, i.e. special tokens, are skipped), decode UTF-8."""
    data = b"".join(table.get(int(i), b"") for i in ids)
    return data.decode("utf-8", errors="replace").strip()


# -- the model -------------------------------------------------------------------------------------


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


@dataclass(frozen=True)
class WhisperConfig:
    """The encoder's custom metadata (sherpa-onnx export)."""

    n_mels: int
    n_text_layer: int
    n_text_ctx: int
    n_text_state: int
    sot: int
    eot: int
    translate: int
    transcribe: int
    no_timestamps: int
    no_speech: int
    blank_id: int
    sot_sequence: tuple[int, ...]
    language_tokens: tuple[int, ...]
    language_codes: tuple[str, ...]
    is_multilingual: bool
    non_speech_tokens: tuple[int, ...] = ()

    @classmethod
    def from_metadata(cls, meta: Mapping[str, str]) -> WhisperConfig:
        try:
            return cls(
                n_mels=int(meta.get("n_mels", "80")),
                n_text_layer=int(meta["n_text_layer"]),
                n_text_ctx=int(meta["n_text_ctx"]),
                n_text_state=int(meta["n_text_state"]),
                sot=int(meta["sot"]),
                eot=int(meta["eot"]),
                translate=int(meta["translate"]),
                transcribe=int(meta["transcribe"]),
                no_timestamps=int(meta["no_timestamps"]),
                no_speech=int(meta["no_speech"]),
                blank_id=int(meta["blank_id"]),
                sot_sequence=tuple(_ints(meta["sot_sequence"])),
                language_tokens=tuple(_ints(meta.get("all_language_tokens", ""))),
                language_codes=tuple(c for c in meta.get("all_language_codes", "").split(",")
                                     if c),
                is_multilingual=int(meta.get("is_multilingual", "0")) == 1,
                non_speech_tokens=tuple(_ints(meta.get("non_speech_tokens", ""))),
            )
        except KeyError as e:
            raise ModelError(
                f"not a sherpa-onnx Whisper encoder: its metadata lacks {e.args[0]!r}") from None
        except ValueError as e:
            raise ModelError(f"bad Whisper encoder metadata: {e}") from None

    @property
    def sot_index(self) -> int:
        return self.sot_sequence.index(self.sot) if self.sot in self.sot_sequence else 0


class WhisperModel:
    """An encoder/decoder session pair plus the token table; greedy decoding."""

    def __init__(self, encoder: Any, decoder: Any, tokens: Mapping[int, bytes]) -> None:
        self.encoder = encoder
        self.decoder = decoder
        self.tokens = dict(tokens)
        meta = encoder.get_modelmeta().custom_metadata_map
        self.config = WhisperConfig.from_metadata(meta)
        dec_inputs = [i.name for i in decoder.get_inputs()]
        if len(dec_inputs) != 6 or len(decoder.get_outputs()) < 3:
            raise ModelError(
                f"not a sherpa-onnx Whisper decoder: inputs {dec_inputs} (expected tokens, "
                "in_n_layer_self_k_cache, in_n_layer_self_v_cache, n_layer_cross_k, "
                "n_layer_cross_v, offset)")
        self._dec_inputs = dec_inputs
        self._dec_outputs = [o.name for o in decoder.get_outputs()[:3]]
        self._enc_input = encoder.get_inputs()[0].name
        self._enc_outputs = [o.name for o in encoder.get_outputs()[:2]]
        mel_shape = encoder.get_inputs()[0].shape
        if len(mel_shape) == 3 and isinstance(mel_shape[1], int) \
                and mel_shape[1] != self.config.n_mels:
            raise ModelError(f"encoder expects {mel_shape[1]} mel bins but its metadata says "
                             f"{self.config.n_mels}")
        self._suppress_always = self._always_suppressed()

    def _always_suppressed(self) -> NDArray[np.int64]:
        c = self.config
        ids = {c.no_timestamps, c.sot, c.no_speech, c.translate, *c.non_speech_tokens}
        return np.array(sorted(ids), dtype=np.int64)

    # -- the two networks ----------------------------------------------------------------------
    def encode(self, mel: NDArray[np.float32]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        k, v = self.encoder.run(self._enc_outputs, {self._enc_input: mel})
        return k, v

    def empty_cache(self) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        c = self.config
        shape = (c.n_text_layer, 1, c.n_text_ctx, c.n_text_state)
        return np.zeros(shape, dtype=np.float32), np.zeros(shape, dtype=np.float32)

    def run_decoder(self, tokens: Sequence[int], k_cache: NDArray[np.float32],
                    v_cache: NDArray[np.float32], cross_k: NDArray[np.float32],
                    cross_v: NDArray[np.float32], offset: int
                    ) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]]:
        """Logits of the last position, and the updated self-attention caches."""
        feeds = dict(zip(self._dec_inputs, (
            np.array([list(tokens)], dtype=np.int64), k_cache, v_cache, cross_k, cross_v,
            np.array([offset], dtype=np.int64)), strict=True))
        logits, k_out, v_out = self.decoder.run(self._dec_outputs, feeds)
        return np.array(logits[0, -1], dtype=np.float32), k_out, v_out

    # -- decoding ------------------------------------------------------------------------------
    def detect_language(self, cross_k: NDArray[np.float32], cross_v: NDArray[np.float32]
                        ) -> str:
        c = self.config
        if not c.is_multilingual or not c.language_tokens:
            return "en"
        k, v = self.empty_cache()
        logits, _, _ = self.run_decoder([c.sot], k, v, cross_k, cross_v, 0)
        langs = np.array(c.language_tokens, dtype=np.int64)
        best = int(langs[int(np.argmax(logits[langs]))])
        return c.language_codes[c.language_tokens.index(best)]

    def prompt(self, language: str | None, task: str) -> list[int]:
        """``sot_sequence`` with language and task set, then ``no_timestamps``."""
        c = self.config
        seq = list(c.sot_sequence)
        if task not in ("transcribe", "translate"):
            raise ModelError(f"task must be 'transcribe' or 'translate', got {task!r}")
        if not c.is_multilingual:
            if language not in (None, "en") or task != "transcribe":
                raise ModelError("this Whisper model is English-only: language='en', "
                                 "task='transcribe'")
            return [*seq, c.no_timestamps]
        i = c.sot_index
        if language is not None:
            if language not in c.language_codes:
                raise ModelError(f"unknown language {language!r} for this model "
                                 f"(known: {', '.join(c.language_codes)})")
            lang_token = c.language_tokens[c.language_codes.index(language)]
            if len(seq) > i + 1:
                seq[i + 1] = lang_token
            else:
                seq.append(lang_token)
        if len(seq) > i + 2:
            seq[i + 2] = c.translate if task == "translate" else c.transcribe
        return [*seq, c.no_timestamps]

    def _pick(self, logits: NDArray[np.float32], initial: bool) -> int:
        c = self.config
        logits = logits.copy()
        logits[self._suppress_always[self._suppress_always < logits.size]] = -np.inf
        logits[c.eot + 1:] = -np.inf  # every special token (timestamps, languages, tasks)
        if initial:
            logits[[c.eot, c.blank_id]] = -np.inf
        return int(np.argmax(logits))

    def greedy_decode(self, cross_k: NDArray[np.float32], cross_v: NDArray[np.float32],
                      prompt: Sequence[int], max_new_tokens: int | None = None) -> list[int]:
        """Token ids after ``prompt`` up to ``eot`` (excluded), greedy."""
        c = self.config
        room = c.n_text_ctx - len(prompt)
        if room <= 0:
            raise ModelError(f"prompt of {len(prompt)} tokens leaves no room in n_text_ctx "
                             f"{c.n_text_ctx}")
        limit = min(room, max_new_tokens if max_new_tokens is not None else c.n_text_ctx // 2)
        k, v = self.empty_cache()
        logits, k, v = self.run_decoder(prompt, k, v, cross_k, cross_v, 0)
        offset = len(prompt)
        token = self._pick(logits, initial=True)
        out: list[int] = []
        while token != c.eot and len(out) < limit:
            out.append(token)
            if len(out) >= limit or offset >= c.n_text_ctx:
                break
            logits, k, v = self.run_decoder([token], k, v, cross_k, cross_v, offset)
            offset += 1
            token = self._pick(logits, initial=False)
        return out

    def transcribe_window(self, audio: NDArray[np.float32], language: str | None = None,
                          task: str = "transcribe", max_new_tokens: int | None = None
                          ) -> tuple[str, str]:
        """Text of up to 30 s of 16 kHz audio, and the language used."""
        mel = whisper_features(audio, self.config.n_mels)
        cross_k, cross_v = self.encode(mel)
        lang = language
        if lang is None and self.config.is_multilingual:
            lang = self.detect_language(cross_k, cross_v)
        ids = self.greedy_decode(cross_k, cross_v, self.prompt(lang, task), max_new_tokens)
        return decode_tokens(ids, self.tokens), lang or "en"


# -- files -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WhisperFiles:
    encoder: Path
    decoder: Path
    tokens: Path


def _choose(folder: Path, pattern: str, what: str, prefer_int8: bool) -> Path:
    found = sorted(p for p in folder.rglob(pattern) if p.is_file())
    if not found:
        raise ModelError(f"no Whisper {what} ({pattern}) in {folder}")
    if len(found) > 1:
        int8 = [p for p in found if ".int8." in p.name]
        plain = [p for p in found if ".int8." not in p.name]
        preferred = (int8 or plain) if prefer_int8 else (plain or int8)
        if len(preferred) > 1:
            names = ", ".join(p.name for p in preferred)
            raise ModelError(f"several Whisper {what}s in {folder}: {names}")
        found = preferred
    return found[0]


def find_whisper_files(folder: Path, prefer_int8: bool = True) -> WhisperFiles:
    """The encoder, decoder and tokens file of a sherpa-onnx Whisper folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelError(f"a Whisper model is a folder (encoder, decoder, tokens); got {folder}")
    return WhisperFiles(
        encoder=_choose(folder, "*encoder*.onnx", "encoder", prefer_int8),
        decoder=_choose(folder, "*decoder*.onnx", "decoder", prefer_int8),
        tokens=_choose(folder, "*tokens.txt", "tokens file", prefer_int8),
    )


# -- the adapter -----------------------------------------------------------------------------------


class WhisperSTTAdapter(BaseAdapter[STTEvent]):
    """Speech-to-text with Whisper (sherpa-onnx ONNX export) on onnxruntime.

    ``language=None`` detects the language (multilingual models); ``task="translate"`` gives
    English text. Real-weight transcription is untested in this repository (see the module doc).
    """

    events = (ModelLoading, ModelLoaded, AdapterError, Transcript)
    runtime = "onnx"
    model_types = ("stt",)
    formats = ("onnx",)
    default_model_id = "whisper-tiny"

    def __init__(self, registry: RegistryLike | None = None, *, language: str | None = None,
                 task: str = "transcribe", max_new_tokens: int | None = None,
                 prefer_int8: bool = True) -> None:
        super().__init__(registry)
        self.language = language
        self.task = task
        self.max_new_tokens = max_new_tokens
        self.prefer_int8 = prefer_int8
        self.detected_language: str | None = None
        self._whisper: WhisperModel | None = None

    @classmethod
    def from_dir(cls, folder: str | Path, **kwargs: Any) -> WhisperSTTAdapter:
        """An adapter on a local sherpa-onnx Whisper folder (no registry involved)."""
        from runanywhere.runtimes import get_runtime

        adapter = cls(**kwargs)
        files = find_whisper_files(Path(folder), adapter.prefer_int8)
        rt = get_runtime("onnx")
        model = WhisperModel(rt.load(files.encoder, None), rt.load(files.decoder, None),
                             load_tokens(files.tokens))
        adapter._attach("whisper", Path(folder), model)
        return adapter

    async def _load_runtime(self, model_id: str, path: Path, **options: Any
                            ) -> Result[Any, ModelError]:
        files = find_whisper_files(path, self.prefer_int8)
        sessions = []
        for f in (files.encoder, files.decoder):
            rel = str(f.relative_to(path))
            r = await self.registry.load_model(model_id, runtime=self.runtime, file=rel,
                                               **options)
            if not r.success:
                return r
            sessions.append(r.value)
        return Result.ok(WhisperModel(sessions[0], sessions[1], load_tokens(files.tokens)))

    def _attach(self, model_id: str, path: Path, model: Any) -> None:
        if not isinstance(model, WhisperModel):
            raise ModelError(f"expected a WhisperModel, got {type(model).__name__}")
        self._whisper = model
        self.model = model

    @property
    def whisper(self) -> WhisperModel:
        if self._whisper is None:
            raise ModelError("WhisperSTTAdapter: no model loaded (call load_model first)")
        return self._whisper

    def transcribe(self, audio: ArrayLike, sample_rate: int = SAMPLE_RATE) -> str:
        """Text of mono audio (any length; cut into 30 s windows); emits ``transcript``."""
        a = as_mono_float32(audio)
        if sample_rate != SAMPLE_RATE:
            a = resample(a, sample_rate, SAMPLE_RATE)
        model = self.whisper
        language = self.language
        parts = []
        for start in range(0, max(a.size, 1), N_SAMPLES):
            text, language = model.transcribe_window(
                a[start:start + N_SAMPLES], language, self.task, self.max_new_tokens)
            if text:
                parts.append(text)
        self.detected_language = language
        text = " ".join(parts)
        self.emit(Transcript(text))
        return text


__all__ = [
    "N_FRAMES",
    "N_SAMPLES",
    "WhisperConfig",
    "WhisperFiles",
    "WhisperModel",
    "WhisperSTTAdapter",
    "decode_tokens",
    "find_whisper_files",
    "hz_to_mel",
    "load_tokens",
    "log_mel_spectrogram",
    "mel_filters",
    "mel_frequencies",
    "mel_to_hz",
    "pad_or_trim",
    "whisper_features",
]
