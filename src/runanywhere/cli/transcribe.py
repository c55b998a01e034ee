"""``runanywhere transcribe ID AUDIO [--language L] [--beam-size N] [--vad] [--json]``.

Speech to text with the adapter the model's catalog entry names (``adapter``, else the default
for its type and format: ``faster-whisper`` for stt + ctranslate2, ``whisper`` for stt + onnx).
The text goes to stdout as it is decoded, segment by segment, then a newline; ``--json`` prints
one document instead: ``{"text", "language", "duration", "segments": [{"start", "end",
"text"}]}``. Any file soundfile reads is taken (WAV, FLAC, OGG, MP3, ...), at any sample rate
(resampled to 16 kHz). The file is read BEFORE the model is pulled, so a bad file costs no
download; a model that is not cached is pulled first, with progress on stderr.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ModelError, RuntimeUnavailableError, UnknownAdapterError, install_hint
from .interrupt import run_interruptible
from .messages import UsageError, say
from .render import print_json

if TYPE_CHECKING:
    from ..registry import ModelRegistry

#: The VAD ``--vad`` pulls and runs (the faster-whisper adapter's default).
VAD_MODEL = "silero-vad"


def add_arguments(s: argparse.ArgumentParser) -> None:
    """``transcribe``'s own arguments (main.build_parser names the command)."""
    s.add_argument("id", help="a speech-to-text model (catalog type stt), e.g."
                   " faster-whisper-tiny.en")
    s.add_argument("audio", type=Path, help="the audio file: WAV, FLAC, OGG, MP3, ... (anything"
                   " soundfile reads), any sample rate")
    s.add_argument("--language", metavar="L", help="the language spoken, e.g. en, fr (default:"
                   " detected; English-only models take en only)")
    s.add_argument("--beam-size", type=int, metavar="N", help="beam search width (default: the"
                   " adapter's, 5 for faster-whisper)")
    s.add_argument("--vad", action="store_true", help=f"decode only the speech {VAD_MODEL}"
                   " finds (pulls it too); segment times stay times in the file")


def cmd_transcribe(args: argparse.Namespace, reg: ModelRegistry) -> int:
    meta = reg.require_model(args.id)
    if meta.type != "stt":
        others = ", ".join(m.id for m in reg.list_models(type="stt")) or "none in the catalogs"
        raise UsageError(f"{meta.id} is a {meta.type} model; transcribe needs a speech-to-text"
                         f" (stt) model ({others})")
    if args.beam_size is not None and args.beam_size < 1:
        raise UsageError(f"--beam-size must be at least 1, got {args.beam_size}")
    if meta.adapter_name is not None:  # its package and libraries, before any download
        from ..adapters.inventory import require_adapter

        require_adapter(meta.adapter_name, meta.id)
    adapter = _make_adapter(args, reg, meta.adapter_name, meta.format)

    from ..adapters.audio import read_audio

    audio, sr = read_audio(args.audio, target_sr=16000)
    _pull(args, reg, [meta.id, VAD_MODEL] if args.vad else [meta.id])
    run_interruptible(adapter.load_model(meta.id)).unwrap()

    seconds = audio.size / sr
    if not (args.json or args.quiet):
        say(f"transcribing {seconds:.1f} s of {args.audio.name} with {meta.id}...")
    t0 = time.perf_counter()
    result = _transcribe(adapter, audio, sr, echo=not args.json)
    elapsed = time.perf_counter() - t0
    if args.json:
        print_json(result.to_dict())
    elif not args.quiet:
        rtf = f", {elapsed / seconds:.2f}x real time" if seconds else ""
        say(f"{seconds:.1f} s of audio in {elapsed:.2f} s{rtf}; language"
            f" {result.language or 'unknown'}, {len(result.segments)} segment(s)")
    return 0


def _make_adapter(args: argparse.Namespace, reg: ModelRegistry, name: str | None,
                  fmt: str) -> Any:
    from ..adapters import get_adapter

    if name is None:
        raise UsageError(f"no adapter runs stt models in format {fmt} (name one with the"
                         " catalog entry's 'adapter' field)")
    try:
        factory = get_adapter(name)
    except UnknownAdapterError:
        raise RuntimeUnavailableError(
            f"the adapter '{name}' that runs {args.id} is not installed:"
            f" {install_hint('stt')}") from None
    options: dict[str, Any] = {}
    if args.language is not None:
        options["language"] = args.language
    if args.beam_size is not None:
        options["beam_size"] = args.beam_size
    if args.vad:
        options["vad"] = True
    try:
        return factory(reg, **options)
    except TypeError as e:  # the adapter has no such option
        given = ", ".join("--" + k.replace("_", "-") for k in options)
        raise UsageError(f"the '{name}' adapter does not take {given} ({e})") from None
    except ValueError as e:
        raise UsageError(str(e)) from None


def _pull(args: argparse.Namespace, reg: ModelRegistry, ids: list[str]) -> None:
    """Download what is not cached yet, with the pull progress display on stderr."""
    from .progress_view import PullProgress

    metas = [reg.require_model(i) for i in ids]
    missing = [m for m in metas if not m.is_remote and reg.cache.entry(m.id) is None]
    if not missing:
        return

    async def run() -> None:
        with PullProgress([(m.id, m.size) for m in missing],
                          quiet=args.quiet or args.json) as view:
            for m in missing:
                (await reg.download_model(m.id, on_detail=view.update)).unwrap()

    run_interruptible(run())


def _transcribe(adapter: Any, audio: Any, sample_rate: int, *, echo: bool) -> Any:
    """The Transcription; with ``echo`` its text goes to stdout as each segment is decoded."""
    from ..adapters import Transcription, transcription_of

    stream = getattr(adapter, "stream", None)
    if not callable(stream):
        result = transcription_of(adapter, audio, sample_rate)
        if echo:
            print(result.text, flush=True)
        return result
    segments = stream(audio, sample_rate)
    started = False
    try:
        for seg in segments:
            if echo and seg.text.strip():
                sys.stdout.write(seg.text if started else seg.text.lstrip())
                sys.stdout.flush()
                started = True
    finally:
        segments.close()
    result = segments.result()
    if not isinstance(result, Transcription):
        raise ModelError(f"{type(adapter).__name__}.stream gave no Transcription")
    if echo:
        sys.stdout.write("\n")
        sys.stdout.flush()
    return result
