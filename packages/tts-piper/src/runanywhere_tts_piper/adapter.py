"""``piper``: text-to-speech with a Piper voice (VITS, ONNX) and espeak-ng's phonemes.

The model is a catalog entry of two files, ``<voice>.onnx`` and ``<voice>.onnx.json`` (the
config: sample rate, phoneme map, speakers, default scales, espeak-ng voice). ``load_model``
downloads them through the registry and loads the graph with the core's ``onnx`` runtime (so
the loaded-model budget counts it)::

    tts = PiperTTSAdapter(speaker=None, length_scale=None, deterministic=True)
    (await tts.load_model("piper-en-us-joe-medium")).unwrap()
    audio, sr = tts.synthesize("Hello there. How are you?")
    for chunk in tts.stream(long_text):          # one AudioChunk per sentence, as it is made
        play(chunk.audio, chunk.sample_rate)

Sentences are Piper's own (espeak-ng's clause and sentence ends, see ``phonemes.py``); a
sentence longer than ``max_phonemes`` is cut at a clause boundary so one graph run stays
bounded (piper-tts never cuts; below the bound the two agree). Options (``None``: the voice's
default from its config): ``speaker`` (an id or a name of ``speaker_id_map``, multi-speaker
voices), ``length_scale`` (> 1 slower), ``noise_scale`` and ``noise_w`` (variation of sound and
timing), ``deterministic`` (both noises 0: the same text always gives the same samples),
``normalize`` and ``volume`` (piper-tts's peak normalization per sentence), ``espeak_library``
and ``espeak_data`` (another libespeak-ng build and its data, e.g. one with
``espeak_TextToPhonemesWithTerminator``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from runanywhere import Result
from runanywhere.adapters import RegistryLike
from runanywhere.adapters.tts import TTSBase
from runanywhere.errors import ModelError, SynthesisError

from .espeak import Espeak, clean_text, get_espeak
from .phonemes import Sentence, phoneme_ids, phonemize
from .voice import PiperConfig, PiperModel, Scales, check_scales, finish

#: Phonemes per graph run before a sentence is cut at a clause boundary (about 70 words).
MAX_PHONEMES = 500


class PiperSentence(str):
    """A sentence's text that also carries its phonemes (what ``split`` hands ``_speak``)."""

    phonemes: list[str]

    def __new__(cls, text: str, phonemes: list[str]) -> PiperSentence:
        obj = super().__new__(cls, text)
        obj.phonemes = phonemes
        return obj


def find_voice_files(path: str | Path) -> tuple[Path, Path]:
    """(``.onnx``, ``.onnx.json``) of a voice: the file itself, or the one pair in a folder."""
    path = Path(path)
    if path.is_file():
        onnx = path
    elif path.is_dir():
        found = sorted(p for p in path.rglob("*.onnx") if p.is_file())
        if len(found) != 1:
            names = ", ".join(str(p.relative_to(path)) for p in found) or "none"
            raise ModelError(f"a Piper voice folder holds one .onnx file; {path} has {names}")
        onnx = found[0]
    else:
        raise ModelError(f"no Piper voice at {path}")
    config = onnx.with_name(onnx.name + ".json")
    if not config.is_file():
        raise ModelError(f"the Piper voice {onnx.name} has no config {config.name} next to it")
    return onnx, config


class PiperTTSAdapter(TTSBase):
    """Text-to-speech with a Piper voice on onnxruntime; phonemes from the system's espeak-ng."""

    model_types: ClassVar[tuple[str, ...]] = ("tts",)
    formats: ClassVar[tuple[str, ...]] = ("onnx",)
    runtime = "onnx"
    default_model_id = "piper-en-us-joe-medium"

    def __init__(self, registry: RegistryLike | None = None, *,
                 speaker: int | str | None = None, length_scale: float | None = None,
                 noise_scale: float | None = None, noise_w: float | None = None,
                 deterministic: bool = False, normalize: bool = True, volume: float = 1.0,
                 max_phonemes: int | None = MAX_PHONEMES, espeak_library: str | None = None,
                 espeak_data: str | None = None) -> None:
        super().__init__(registry)
        check_scales(noise_scale, length_scale, noise_w)
        if deterministic and (noise_scale or noise_w):
            raise ValueError("deterministic means noise_scale and noise_w 0; do not give them")
        if not 0.0 <= volume <= 10.0:
            raise ValueError(f"volume must be within 0-10, got {volume}")
        if max_phonemes is not None and max_phonemes < 1:
            raise ValueError(f"max_phonemes must be positive, got {max_phonemes}")
        self.speaker = speaker
        self.scales = Scales(0.0 if deterministic else noise_scale, length_scale,
                             0.0 if deterministic else noise_w)
        self.normalize = normalize
        self.volume = volume
        self.max_phonemes = max_phonemes
        self.espeak_library = espeak_library
        self.espeak_data = espeak_data
        self._piper: PiperModel | None = None
        self._espeak: Espeak | None = None
        self._sid: int | None = None

    # -- loading -----------------------------------------------------------------------------------
    @classmethod
    def from_files(cls, voice: str | Path, **kwargs: Any) -> PiperTTSAdapter:
        """An adapter on a local voice (the ``.onnx``, or a folder holding it and its
        ``.onnx.json``), loaded with the core's onnx runtime; no registry involved."""
        from runanywhere.runtimes import get_runtime

        adapter = cls(**kwargs)
        onnx, config_path = find_voice_files(voice)
        config = PiperConfig.load(config_path)
        session = get_runtime("onnx").load(onnx, None)
        adapter._attach(onnx.stem, onnx.parent, PiperModel(session, config))
        return adapter

    async def _load_runtime(self, model_id: str, path: Path, **options: Any
                            ) -> Result[Any, ModelError]:
        onnx, config_path = find_voice_files(path)
        config = PiperConfig.load(config_path)
        rel = onnx.relative_to(path) if path.is_dir() else None
        if rel is not None:
            options = {**options, "file": str(rel)}
        loaded = await self.registry.load_model(model_id, runtime=self.runtime, **options)
        if not loaded.success:
            return loaded
        return Result.ok(PiperModel(loaded.value, config))

    def _attach(self, model_id: str, path: Path, model: Any) -> None:
        if not isinstance(model, PiperModel):
            raise ModelError(f"expected a PiperModel, got {type(model).__name__}")
        config = model.config
        sid = config.speaker_id(self.speaker)  # an unknown speaker fails the load, at once
        espeak = None
        if config.phoneme_type == "espeak":
            espeak = get_espeak(self.espeak_library, self.espeak_data)
        self._piper, self._espeak, self._sid = model, espeak, sid
        self.model = model
        self.model_id = self.model_id or model_id
        self.sample_rate = config.sample_rate

    @property
    def piper(self) -> PiperModel:
        if self._piper is None:
            raise ModelError("PiperTTSAdapter: no voice loaded (call load_model first)")
        return self._piper

    @property
    def config(self) -> PiperConfig:
        return self.piper.config

    @property
    def speakers(self) -> dict[str, int]:
        """The voice's speakers by name (empty for a one-speaker voice)."""
        return dict(self.config.speaker_id_map)

    def set_speaker(self, speaker: int | str | None) -> None:
        """Speak as another of the voice's speakers (an id or a name)."""
        self._sid = self.config.speaker_id(speaker)
        self.speaker = speaker

    # -- text -> sentences -> audio ----------------------------------------------------------------
    def _ready(self) -> None:
        _ = self.piper

    def sentences(self, text: str) -> list[Sentence]:
        """Piper's sentences of ``text`` with their phonemes (control characters dropped)."""
        config = self.config
        return phonemize(clean_text(text), self._espeak, config.espeak_voice,
                         phoneme_type=config.phoneme_type, vowel_clusters=config.vowel_clusters,
                         max_phonemes=self.max_phonemes)

    def phoneme_ids(self, text: str) -> list[list[int]]:
        """The graph's input ids of each of ``text``'s sentences (what piper-tts feeds it)."""
        id_map = self.config.phoneme_id_map
        return [phoneme_ids(s.phonemes, id_map) for s in self.sentences(text)]

    def split(self, text: str) -> list[str]:
        return [PiperSentence(s.text, s.phonemes) for s in self.sentences(text)]

    def _speak(self, sentence: str) -> NDArray[np.float32]:
        if isinstance(sentence, PiperSentence):
            phonemes = sentence.phonemes
        else:  # a caller's own piece of text: all of its sentences in one run
            phonemes = [p for s in self.sentences(sentence) for p in s.phonemes]
        if not phonemes:
            return np.zeros(0, dtype=np.float32)
        piper = self.piper
        ids = phoneme_ids(phonemes, piper.config.phoneme_id_map)
        audio = piper.audio(ids, self.scales.resolve(piper.config), self._sid)
        if not np.all(np.isfinite(audio)):
            raise SynthesisError(f"the Piper voice made non-finite samples for {sentence[:60]!r}")
        return finish(audio, self.normalize, self.volume)


__all__ = ["MAX_PHONEMES", "PiperSentence", "PiperTTSAdapter", "find_voice_files"]
