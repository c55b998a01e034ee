"""Speech to text through runanywhere against faster-whisper called directly: real-time factor
and peak memory, on the same audio and settings.

    python -m bench.stt_bench                 # tiny.en and base, a 40 s file, 5 rounds
    python -m bench.stt_bench --rounds 9
    python -m bench.stt_bench --smoke         # tiny.en, a 12 s file, 1 round (CI)

Run from the repository root. The models are the real Whisper tiny.en and base (CTranslate2)
from PyPI wheels (``tests/support/wheels.py``), sideloaded (verified against the built-in
catalog entries) into a fresh cache home; the speech is espeak-ng's (``tests/support/speech.py``).
Two comparisons, each alternated round by round (A then B, then B then A, ...):

1. **adapter** (``FasterWhisperSTTAdapter.transcribe_full``, the model loaded through the
   registry and the ``ctranslate2`` runtime) against **direct** (``faster_whisper.WhisperModel``
   on the same folder, ``transcribe`` of the same array, segments consumed), both in this
   process, model load excluded: the real-time factor is decode time over audio time.
2. **cli** (``runanywhere transcribe ID FILE --json``, a process) against **script** (a process
   running faster-whisper's own two lines on the same file): whole-process wall time over audio
   time (start, imports, load, read, decode), and each process's peak RSS (``wait4``; measured
   before this process loads any model, since a child's peak starts from its parent's size).

Same settings on both sides: ``language="en"``, ``beam_size=5``, ``compute_type="default"``,
CTranslate2's default threads. Reported: medians, the ratios (target: at most 1.05) and the peak
RSS. No timing fails a run; the machine is shared, so read the ratios, not the seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# The tests' helpers for the real weights and the speech (one copy of each, not two).
sys.path.insert(0, str(ROOT / "tests"))

from support import ct2_models  # noqa: E402
from support.speech import SENTENCES, speak, wav_bytes  # noqa: E402

LANGUAGE, BEAM = "en", 5
DIRECT_SCRIPT = """
import sys
from faster_whisper import WhisperModel
model = WhisperModel(sys.argv[1], device="cpu")
segments, info = model.transcribe(sys.argv[2], language="en", beam_size=5)
print("".join(s.text for s in segments).strip())
"""


def build_audio(seconds: float) -> Any:
    """The quality set's sentences, spoken one after the other until ``seconds`` is reached."""
    import numpy as np

    parts, total = [], 0
    for sentence in SENTENCES * 4:
        part = speak(sentence, pad_s=0.3)
        parts.append(part)
        total += part.size
        if total >= seconds * 16000:
            break
    return np.concatenate(parts)


def sideloaded_home(work: Path, model_ids: list[str]) -> tuple[Path, Any]:
    from runanywhere import ModelRegistry

    home = work / "home"
    registry = ModelRegistry(home=home)
    for model_id in model_ids:
        registry.import_model(model_id, ct2_models.model_dir(model_id, work / "models"))
    return home, registry


def timed(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def in_process(model_id: str, registry: Any, audio: Any, rounds: int) -> dict[str, Any]:
    import asyncio

    from faster_whisper import WhisperModel

    from runanywhere_stt_whisper.faster_whisper_stt import FasterWhisperSTTAdapter

    adapter = FasterWhisperSTTAdapter(registry, language=LANGUAGE, beam_size=BEAM)
    asyncio.run(adapter.load_model(model_id)).unwrap()
    folder = registry.cache.entry(model_id).path
    direct = WhisperModel(str(folder), device="cpu")

    def run_direct() -> str:
        segments, _ = direct.transcribe(audio, language=LANGUAGE, beam_size=BEAM)
        return "".join(s.text for s in segments).strip()

    def run_adapter() -> str:
        return str(adapter.transcribe_full(audio, 16000).text)

    if run_direct() != run_adapter():  # warm-up, and the two must agree
        raise SystemExit(f"{model_id}: the adapter's text differs from faster-whisper's")
    seconds = audio.size / 16000
    times: dict[str, list[float]] = {"direct": [], "adapter": []}
    for i in range(rounds):
        order = ("direct", "adapter") if i % 2 == 0 else ("adapter", "direct")
        for name in order:
            times[name].append(timed(run_direct if name == "direct" else run_adapter))
            print(f"  {model_id} round {i + 1}/{rounds} {name:<8} rtf"
                  f" {times[name][-1] / seconds:.3f}", file=sys.stderr, flush=True)
    return {name: {"rtf": [t / seconds for t in ts], "median_rtf": statistics.median(ts) / seconds}
            for name, ts in times.items()}


def child(argv: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    """(wall seconds, peak RSS bytes, stdout) of one process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{argv[:4]} exited {proc.returncode}")
    return wall, usage.ru_maxrss * 1024, out.decode()


def processes(model_id: str, home: Path, folder: Path, wav: Path, seconds: float, rounds: int
              ) -> dict[str, Any]:
    env = {**os.environ, "RUNANYWHERE_HOME": str(home)}
    argv = {
        "cli": [sys.executable, "-m", "runanywhere", "transcribe", model_id, str(wav), "--json",
                "--language", LANGUAGE, "--beam-size", str(BEAM)],
        "script": [sys.executable, "-c", DIRECT_SCRIPT, str(folder), str(wav)],
    }
    walls: dict[str, list[float]] = {"cli": [], "script": []}
    rss: dict[str, list[int]] = {"cli": [], "script": []}
    texts: dict[str, str] = {}
    for i in range(rounds):
        order = ("script", "cli") if i % 2 == 0 else ("cli", "script")
        for name in order:
            wall, peak, out = child(argv[name], env)
            walls[name].append(wall)
            rss[name].append(peak)
            texts[name] = json.loads(out)["text"] if name == "cli" else out.strip()
            print(f"  {model_id} round {i + 1}/{rounds} {name:<8} {wall:.2f} s, peak RSS"
                  f" {peak / 2**20:.0f} MiB", file=sys.stderr, flush=True)
    if texts["cli"] != texts["script"]:
        raise SystemExit(f"{model_id}: the CLI's text differs from faster-whisper's")
    return {name: {"wall_s": walls[name], "median_rtf": statistics.median(walls[name]) / seconds,
                   "peak_rss": max(rss[name])} for name in walls}


def run(model_ids: list[str], seconds: float, rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="stt-bench-") as tmp:
        work = Path(tmp)
        audio = build_audio(seconds)
        wav = work / "speech.wav"
        wav.write_bytes(wav_bytes(audio))
        home, registry = sideloaded_home(work, model_ids)
        out: dict[str, Any] = {"audio_s": audio.size / 16000, "rounds": rounds, "models": {}}
        # The processes first, while this one is small: a child's peak RSS (wait4) starts
        # from its parent's size at the fork, and loaded models would count in it.
        procs_of = {m: processes(m, home, registry.cache.entry(m).path, wav,
                                 audio.size / 16000, rounds) for m in model_ids}
        for model_id in model_ids:
            inproc = in_process(model_id, registry, audio, rounds)
            procs = procs_of[model_id]
            out["models"][model_id] = {
                **inproc, **procs,
                "adapter_ratio": inproc["adapter"]["median_rtf"] / inproc["direct"]["median_rtf"],
                "cli_ratio": procs["cli"]["median_rtf"] / procs["script"]["median_rtf"],
            }
            registry.unload_model(model_id)
        out["bench_peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return out


def report(r: dict[str, Any]) -> list[str]:
    lines = [f"speech to text, {r['audio_s']:.1f} s of espeak-ng speech, {r['rounds']} round(s)"
             " each, alternated; rtf = seconds of work per second of audio",
             f"{'model':<24}{'direct':>8}{'adapter':>9}{'ratio':>7}{'script':>9}{'cli':>7}"
             f"{'ratio':>7}{'RSS script':>12}{'RSS cli':>9}"]
    for model_id, m in r["models"].items():
        lines.append(
            f"{model_id:<24}{m['direct']['median_rtf']:>8.3f}{m['adapter']['median_rtf']:>9.3f}"
            f"{m['adapter_ratio']:>7.2f}{m['script']['median_rtf']:>9.3f}"
            f"{m['cli']['median_rtf']:>7.3f}{m['cli_ratio']:>7.2f}"
            f"{m['script']['peak_rss'] / 2**20:>9.0f} MiB{m['cli']['peak_rss'] / 2**20:>5.0f} MiB")
    lines.append("(adapter/direct: in one process, decode only; cli/script: whole processes,"
                 " start to exit; target ratio <= 1.05)")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.stt_bench", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=40.0, help="audio length (default 40)")
    p.add_argument("--rounds", type=int, default=5, help="measured rounds per path (default 5)")
    p.add_argument("--smoke", action="store_true", help="tiny.en, 12 s, 1 round: seconds")
    p.add_argument("--json", type=Path, help="also write the measurements here")
    args = p.parse_args(argv)
    if args.smoke:
        models, seconds, rounds = [ct2_models.TINY_EN], 12.0, 1
    else:
        models, seconds, rounds = [ct2_models.TINY_EN, ct2_models.BASE], args.seconds, args.rounds
    result = run(models, seconds, rounds)
    for line in report(result):
        print(line)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
