"""Speech for speech-to-text tests: espeak-ng (Debian) says a text, we get 16 kHz float32.

espeak-ng is a formant synthesizer: robotic, and harder for Whisper than a human voice. How
hard depends on the rate: measured on the sentence set of the quality tests, Whisper tiny.en's
word error rate was 2.9% at 130 words a minute with a 40 ms gap between words (``RATE``,
``GAP``) and 8-16% at 160-175 words a minute without gaps; Whisper base's 0% and 7-11%. The
tests use the slower, clearer speech, the way one dictates; every utterance is framed by
``PAD_S`` of silence (Whisper often mishears a first word that starts at sample 0).
"""

from __future__ import annotations

import io
import shutil
import subprocess

import numpy as np
from numpy.typing import NDArray

from runanywhere.adapters.audio import read_audio

SAMPLE_RATE = 16000
RATE = 130  # words per minute
GAP = 4  # extra pause between words, in 10 ms units
VOICE = "en-us"
PAD_S = 0.5

#: The quality set: numbers (quantities, a year, money), names of people and places, and one
#: sentence of exactly 20 words.
SENTENCES = (
    "Alice, Bob and Maria flew from London to Tokyo with their friend David.",
    "My grandmother planted 12 apple trees in the garden behind the old stone house near the"
    " quiet river last spring.",
    "The museum opened in 1998 and welcomes 250 visitors every day.",
    "She paid 42 dollars for 7 books and a cup of coffee.",
    "Doctor Emily Johnson moved to Chicago with her husband Peter in 2015.",
    "Our team won 5 games in a row and scored 19 goals.",
    "William and Sarah bought a small farm in Texas for their children.",
    "The library has 3,000 books and opens at 8 every morning.",
)


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def espeak_wav(text: str, *, rate: int = RATE, gap: int = GAP, voice: str = VOICE) -> bytes:
    """espeak-ng's WAV (22,050 Hz, 16-bit mono) of ``text``."""
    done = subprocess.run(["espeak-ng", "-v", voice, "-s", str(rate), "-g", str(gap), "--stdout",
                           text], capture_output=True, check=True, timeout=60)
    return done.stdout


def speak(text: str, *, pad_s: float = PAD_S, **options: int | str) -> NDArray[np.float32]:
    """``text`` spoken, at 16 kHz (soxr), with ``pad_s`` of silence before and after."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "speech.wav"
        path.write_bytes(espeak_wav(text, **options))  # type: ignore[arg-type]
        audio, _ = read_audio(path, target_sr=SAMPLE_RATE)
    pad = np.zeros(int(pad_s * SAMPLE_RATE), dtype=np.float32)
    return np.concatenate([pad, audio, pad])


def place(utterances: list[tuple[float, str]], total_s: float
          ) -> tuple[NDArray[np.float32], list[tuple[float, float, str]]]:
    """Silence of ``total_s`` with each text spoken from its start time; returns the audio and
    where speech really is: ``(start, end, text)``, trimmed to the first and last sample above
    1% of full scale (espeak-ng's own leading and trailing silence excluded)."""
    audio = np.zeros(int(total_s * SAMPLE_RATE), dtype=np.float32)
    truth = []
    for start_s, text in utterances:
        speech = speak(text, pad_s=0.0)
        loud = np.flatnonzero(np.abs(speech) > 0.01)
        speech = speech[loud[0]:loud[-1] + 1]
        at = int(start_s * SAMPLE_RATE)
        if at + speech.size > audio.size:
            raise ValueError(f"{text!r} at {start_s} s does not fit in {total_s} s")
        audio[at:at + speech.size] = speech
        truth.append((at / SAMPLE_RATE, (at + speech.size) / SAMPLE_RATE, text))
    return audio, truth


def wav_bytes(audio: NDArray[np.float32], sample_rate: int = SAMPLE_RATE,
              subtype: str = "PCM_16") -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, audio, sample_rate, format="WAV", subtype=subtype)
    return buf.getvalue()
