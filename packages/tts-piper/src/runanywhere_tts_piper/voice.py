"""A Piper voice: its config (``<voice>.onnx.json``) and one sentence's ids -> audio.

The graph (Piper's VITS export) takes ``input`` [1, n] int64 phoneme ids, ``input_lengths`` [1]
int64, ``scales`` [3] float32 = (noise_scale, length_scale, noise_w) and, for a voice of several
speakers, ``sid`` [1] int64; its first output is the waveform, [1, 1, samples] float32 at the
config's sample rate. As piper-tts 1.8 does, each sentence's audio is scaled so its peak is 1
(``normalize``), multiplied by ``volume``, and clipped to [-1, 1].

Noise: the graph draws random numbers scaled by ``noise_scale`` (the sound) and ``noise_w``
(phoneme durations); with both 0 the same ids always give the same samples.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from runanywhere.errors import ModelError, SynthesisError

#: piper-tts's defaults when a config has no ``inference`` section.
DEFAULT_NOISE_SCALE = 0.667
DEFAULT_LENGTH_SCALE = 1.0
DEFAULT_NOISE_W = 0.8
PHONEME_TYPES = ("espeak", "text")


class UnknownSpeakerError(SynthesisError, LookupError):
    """A speaker the voice does not have (by name or id)."""

    exit_code = 2


@dataclass(frozen=True)
class PiperConfig:
    """What synthesis needs from a voice's ``.onnx.json``."""

    sample_rate: int
    num_speakers: int
    phoneme_id_map: Mapping[str, Sequence[int]]
    espeak_voice: str = "en-us"
    phoneme_type: str = "espeak"
    speaker_id_map: Mapping[str, int] = field(default_factory=dict)
    default_speaker_id: int = 0
    noise_scale: float = DEFAULT_NOISE_SCALE
    length_scale: float = DEFAULT_LENGTH_SCALE
    noise_w: float = DEFAULT_NOISE_W
    vowel_clusters: tuple[tuple[str, ...], ...] = ()
    language: str = ""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "the voice config") -> PiperConfig:
        try:
            inference = d.get("inference") or {}
            id_map = {str(k): [int(i) for i in v] for k, v in d["phoneme_id_map"].items()}
            config = cls(
                sample_rate=int(d["audio"]["sample_rate"]),
                num_speakers=int(d.get("num_speakers", 1)),
                phoneme_id_map=id_map,
                espeak_voice=str((d.get("espeak") or {}).get("voice", "en-us")),
                phoneme_type=str(d.get("phoneme_type", "espeak")),
                speaker_id_map={str(k): int(v) for k, v in
                                (d.get("speaker_id_map") or {}).items()},
                default_speaker_id=int(d.get("default_speaker_id", 0)),
                noise_scale=float(inference.get("noise_scale", DEFAULT_NOISE_SCALE)),
                length_scale=float(inference.get("length_scale", DEFAULT_LENGTH_SCALE)),
                noise_w=float(inference.get("noise_w", DEFAULT_NOISE_W)),
                vowel_clusters=tuple(tuple(str(p) for p in c)
                                     for c in d.get("vowel_clusters") or ()),
                language=str((d.get("language") or {}).get("code", "")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ModelError(f"{source} is not a Piper voice config: {type(e).__name__} {e}"
                             ) from e
        missing = [s for s in ("_", "^", "$") if s not in id_map]
        if missing:
            raise ModelError(f"{source}: phoneme_id_map lacks {missing} (pad, start, end)")
        if config.phoneme_type not in PHONEME_TYPES:
            raise ModelError(f"{source}: phoneme_type {config.phoneme_type!r} is not supported"
                             f" (this adapter reads {', '.join(PHONEME_TYPES)})")
        if config.sample_rate <= 0:
            raise ModelError(f"{source}: audio.sample_rate must be positive")
        return config

    @classmethod
    def load(cls, path: str | Path) -> PiperConfig:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ModelError(f"{path}: cannot read the Piper voice config ({e})") from e
        if not isinstance(data, dict):
            raise ModelError(f"{path}: a Piper voice config is a JSON object")
        return cls.from_dict(data, str(path))

    def speaker_id(self, speaker: int | str | None) -> int | None:
        """The ``sid`` to feed for ``speaker`` (an id or a name), None for one-speaker voices."""
        if isinstance(speaker, str) and speaker.isdigit() and speaker not in self.speaker_id_map:
            speaker = int(speaker)
        if self.num_speakers <= 1:
            if speaker not in (None, 0) and speaker not in self.speaker_id_map:
                raise UnknownSpeakerError(f"this voice has one speaker; got speaker {speaker!r}")
            return None
        if speaker is None:
            return self.default_speaker_id
        if isinstance(speaker, str):
            if speaker not in self.speaker_id_map:
                names = ", ".join(sorted(self.speaker_id_map)[:20]) or "none"
                raise UnknownSpeakerError(f"unknown speaker {speaker!r} (this voice has"
                                          f" {self.num_speakers}: ids 0-{self.num_speakers - 1},"
                                          f" names {names})")
            return self.speaker_id_map[speaker]
        sid = int(speaker)
        if not 0 <= sid < self.num_speakers:
            raise UnknownSpeakerError(f"speaker id {sid} is out of range (this voice has"
                                      f" {self.num_speakers}: 0-{self.num_speakers - 1})")
        return sid


@dataclass(frozen=True)
class Scales:
    """Piper's three synthesis knobs (``None``: the voice's default)."""

    noise_scale: float | None = None
    length_scale: float | None = None
    noise_w: float | None = None

    def resolve(self, config: PiperConfig) -> NDArray[np.float32]:
        values = (config.noise_scale if self.noise_scale is None else self.noise_scale,
                  config.length_scale if self.length_scale is None else self.length_scale,
                  config.noise_w if self.noise_w is None else self.noise_w)
        return np.array(values, dtype=np.float32)


def check_scales(noise_scale: float | None, length_scale: float | None,
                 noise_w: float | None) -> None:
    """Refuse values the graph would turn into silence or noise (a typo, not a choice)."""
    for name, value, low, high in (("noise_scale", noise_scale, 0.0, 2.0),
                                   ("noise_w", noise_w, 0.0, 2.0),
                                   ("length_scale", length_scale, 0.05, 20.0)):
        if value is not None and not (low <= value <= high):
            raise ValueError(f"{name} must be within {low:g}-{high:g}, got {value}")


class PiperModel:
    """An ONNX Runtime session of a Piper voice and its config."""

    def __init__(self, session: Any, config: PiperConfig) -> None:
        names = {i.name for i in session.get_inputs()}
        missing = {"input", "input_lengths", "scales"} - names
        if missing:
            raise ModelError(f"not a Piper voice graph: its inputs {sorted(names)} lack"
                             f" {sorted(missing)}")
        if config.num_speakers > 1 and "sid" not in names:
            raise ModelError(f"the config says {config.num_speakers} speakers but the graph"
                             " takes no 'sid'")
        self.session = session
        self.config = config
        self.takes_sid = "sid" in names
        self.output = session.get_outputs()[0].name

    def audio(self, ids: Sequence[int], scales: NDArray[np.float32], sid: int | None
              ) -> NDArray[np.float32]:
        """The graph's raw waveform for one sentence's ids."""
        feeds: dict[str, Any] = {
            "input": np.asarray([ids], dtype=np.int64),
            "input_lengths": np.asarray([len(ids)], dtype=np.int64),
            "scales": scales,
        }
        if self.takes_sid:
            feeds["sid"] = np.asarray([sid or 0], dtype=np.int64)
        (wave,) = self.session.run([self.output], feeds)
        return np.asarray(wave, dtype=np.float32).reshape(-1)


def finish(audio: NDArray[np.float32], normalize: bool = True, volume: float = 1.0
           ) -> NDArray[np.float32]:
    """piper-tts's last step: peak to 1 (silence stays silence), volume, clip to [-1, 1]."""
    if normalize:
        peak = float(np.max(np.abs(audio))) if audio.size else 0.0
        audio = np.zeros_like(audio) if peak < 1e-8 else audio / peak
    if volume != 1.0:
        audio = audio * volume
    return np.clip(audio, -1.0, 1.0).astype(np.float32)
