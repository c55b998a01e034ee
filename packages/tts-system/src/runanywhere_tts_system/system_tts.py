"""Speech from the machine's own engine: an app always has a voice, with nothing to download.

The Python form of the Web SDK's planned ``tts-webspeech`` adapter (the browser's
``speechSynthesis``): where the browser has a built-in voice, a desktop or server has a speech
engine. Engines, tried in order unless one is named:

- ``espeak-ng`` (Debian/Ubuntu ``apt-get install espeak-ng``; also Fedora, Homebrew, Windows) and
  the older ``espeak``: ``espeak-ng -b 1 --stdin -w out.wav [-v VOICE] [-s WPM] [-p PITCH]``,
  16-bit mono at 22,050 Hz. Tested here.
- ``say`` (macOS): ``say -f - -o out.wav --file-format=WAVE --data-format=LEI16@22050
  [-v VOICE] [-r WPM]``. Not tested here (no macOS).

The text goes through standard input (any length, any characters, never parsed as options), one
engine run per sentence, so chunks stream as with the neural voices. The output is read with the
standard library's ``wave`` module, so this adapter needs numpy only; ``sample_rate=`` converts
with soxr (extra ``audio``).

``load_model()`` finds the engine (no registry, no download) and emits ``model_loading`` /
``model_loaded`` like the other adapters; ``synthesize`` finds it on first use if that was not
called.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
import time
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from runanywhere.adapters.base import ModelLoaded, ModelLoading, RegistryLike
from runanywhere.adapters.tts import TTSBase
from runanywhere.errors import ModelError, RuntimeUnavailableError, SynthesisError
from runanywhere.result import Result

#: Engines tried when none is named, in order.
ENGINES = ("espeak-ng", "espeak", "say")
_INSTALL_HINT = ("no system speech engine found (looked for espeak-ng, espeak, say): "
                 "install espeak-ng (Debian/Ubuntu: apt-get install espeak-ng)")


@dataclass(frozen=True)
class Voice:
    """A voice the engine offers: ``name`` goes to ``SystemTTSAdapter(voice=...)``."""

    name: str
    language: str
    gender: str = ""


@dataclass(frozen=True)
class SpeechEngine:
    """A speech engine program and how to make it write a WAV file."""

    kind: str  # "espeak" (espeak-ng or espeak) or "say"
    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    def command(self, out: Path, voice: str | None, rate_wpm: int | None,
                pitch: int | None) -> list[str]:
        if self.kind == "say":
            cmd = [str(self.path), "-f", "-", "-o", str(out), "--file-format=WAVE",
                   "--data-format=LEI16@22050"]
            if voice:
                cmd += ["-v", voice]
            if rate_wpm:
                cmd += ["-r", str(rate_wpm)]
            return cmd
        cmd = [str(self.path), "-b", "1", "--stdin", "-w", str(out)]
        if voice:
            cmd += ["-v", voice]
        if rate_wpm:
            cmd += ["-s", str(rate_wpm)]
        if pitch is not None:
            cmd += ["-p", str(pitch)]
        return cmd

    def voices(self, language: str | None = None, timeout: float = 30.0) -> list[Voice]:
        """The engine's voices (espeak-ng's ``--voices``; ``say -v ?``)."""
        if self.kind == "say":
            out = _run([str(self.path), "-v", "?"], timeout)
            found = []
            for line in out.splitlines():
                parts = line.split()
                if len(parts) >= 2:
                    lang = next((p for p in parts[1:] if "_" in p or "-" in p), "")
                    found.append(Voice(parts[0], lang))
            return [v for v in found if not language or v.language.startswith(language)]
        arg = f"--voices={language}" if language else "--voices"
        lines = _run([str(self.path), arg], timeout).splitlines()[1:]
        voices = []
        for line in lines:
            parts = line.split()
            if len(parts) >= 4:  # Pty Language Age/Gender VoiceName File ...
                gender = parts[2].split("/")[-1] if "/" in parts[2] else ""
                voices.append(Voice(parts[1], parts[1], gender))
        return voices


def _run(cmd: Sequence[str], timeout: float, stdin: bytes | None = None) -> str:
    try:
        proc = subprocess.run(list(cmd), input=stdin, capture_output=True, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired as e:
        raise SynthesisError(f"{Path(cmd[0]).name} did not finish in {timeout:g} s") from e
    except OSError as e:
        raise SynthesisError(f"cannot run {cmd[0]}: {e}") from e
    if proc.returncode != 0:
        detail = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise SynthesisError(f"{Path(cmd[0]).name} failed (exit {proc.returncode})"
                             + (f": {detail[-1]}" if detail else ""))
    return proc.stdout.decode("utf-8", "replace")


def find_engine(name: str | None = None) -> SpeechEngine:
    """The named engine (a program name or path), else the first of ``ENGINES`` installed."""
    candidates = [name] if name else list(ENGINES)
    for candidate in candidates:
        found = shutil.which(candidate)
        if found is None and Path(candidate).is_file():
            found = candidate
        if found is not None:
            path = Path(found)
            kind = "say" if path.name == "say" else "espeak"
            return SpeechEngine(kind, path)
    if name:
        raise RuntimeUnavailableError(f"speech engine {name!r} not found; {_INSTALL_HINT}")
    raise RuntimeUnavailableError(_INSTALL_HINT)


def read_pcm_wav(path: Path) -> tuple[NDArray[np.float32], int]:
    """A 16-bit PCM WAV (what the engines write) as mono float32, with the standard library."""
    try:
        with wave.open(str(path), "rb") as w:
            channels, width, sr = w.getnchannels(), w.getsampwidth(), w.getframerate()
            raw = w.readframes(w.getnframes())
    except (wave.Error, EOFError, OSError) as e:
        raise SynthesisError(f"the speech engine wrote an unreadable WAV {path.name}: {e}") from e
    if width != 2:
        raise SynthesisError(f"the speech engine wrote {8 * width}-bit audio; expected 16-bit")
    data = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    if channels > 1:
        data = data.reshape(-1, channels).mean(axis=1)
    return np.ascontiguousarray(data, dtype=np.float32), sr


class SystemTTSAdapter(TTSBase):
    """Text-to-speech through the machine's speech engine (espeak-ng here); nothing to download.

    ``engine``: a program name or path (default: the first of espeak-ng, espeak, say);
    ``voice``: the engine's voice name (``voices()`` lists them); ``rate_wpm``: words per
    minute; ``pitch``: 0-99 (espeak); ``sample_rate``: resample the output (soxr) instead of
    the engine's own rate (22,050 Hz).
    """

    default_model_id = "system-tts"
    model_types = ("tts",)
    #: No model file: the machine's own speech engine does the work.
    formats = ()

    def __init__(self, registry: RegistryLike | None = None, *, engine: str | None = None,
                 voice: str | None = None, rate_wpm: int | None = None, pitch: int | None = None,
                 sample_rate: int | None = None, timeout: float = 60.0,
                 max_chunk_chars: int = 300) -> None:
        super().__init__(registry, max_chunk_chars=max_chunk_chars)
        if rate_wpm is not None and not 20 <= rate_wpm <= 1000:
            raise ValueError(f"rate_wpm must be within 20-1000, got {rate_wpm}")
        if pitch is not None and not 0 <= pitch <= 99:
            raise ValueError(f"pitch must be within 0-99, got {pitch}")
        if sample_rate is not None and sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        self.engine_name = engine
        self.voice = voice
        self.rate_wpm = rate_wpm
        self.pitch = pitch
        self.target_rate = sample_rate
        self.timeout = timeout
        self.engine: SpeechEngine | None = None
        self.sample_rate = sample_rate or 22050
        self._engine_lock = threading.Lock()

    # -- "loading": finding the engine -------------------------------------------------------------
    def _find(self) -> SpeechEngine:
        with self._engine_lock:
            if self.engine is not None:
                return self.engine
            mid = self.model_id or self.default_model_id or "system-tts"
            t0 = time.perf_counter()
            self.emit(ModelLoading(mid, 0.0, "looking for a system speech engine"))
            engine = find_engine(self.engine_name)
            self.emit(ModelLoading(mid, 100.0, f"found {engine.path}"))
            self.engine = engine
            self.model = engine
            self.model_id = mid
            self.emit(ModelLoaded(mid, time.perf_counter() - t0))
            return engine

    async def load_model(self, model_id: str | None = None, **options: Any
                         ) -> Result[None, ModelError]:
        """Find the speech engine (no download): ``model_loading`` then ``model_loaded``."""
        if options:
            return self._fail(model_id or "system-tts", ModelError(
                f"SystemTTSAdapter.load_model takes no options, got {sorted(options)}"))
        if model_id:
            self.model_id = model_id
        try:
            self._find()
        except ModelError as e:
            return self._fail(model_id or "system-tts", e)
        return Result.ok(None)

    def voices(self, language: str | None = None) -> list[Voice]:
        """The voices the engine offers (optionally of one language, e.g. ``"en"``)."""
        return self._find().voices(language, self.timeout)

    # -- synthesis ---------------------------------------------------------------------------------
    def _ready(self) -> None:
        self._find()

    def _speak(self, sentence: str) -> NDArray[np.float32]:
        engine = self._find()
        with tempfile.TemporaryDirectory(prefix="runanywhere-tts-") as tmp:
            out = Path(tmp) / "speech.wav"
            _run(engine.command(out, self.voice, self.rate_wpm, self.pitch), self.timeout,
                 stdin=sentence.encode("utf-8"))
            if not out.is_file():
                raise SynthesisError(f"{engine.name} wrote no audio for {sentence[:60]!r}")
            audio, sr = read_pcm_wav(out)
        if self.target_rate is not None and sr != self.target_rate:
            from runanywhere.adapters.audio import resample

            return resample(audio, sr, self.target_rate)
        self.sample_rate = sr
        return audio


__all__ = ["ENGINES", "SpeechEngine", "SystemTTSAdapter", "Voice", "find_engine",
           "read_pcm_wav"]
