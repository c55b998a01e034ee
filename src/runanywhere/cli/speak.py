"""``runanywhere speak ID TEXT|- -o OUT.wav``: text-to-speech into an audio file.

``ID`` is a catalog model of type ``tts`` (pulled first when it is not cached, with the pull's
progress on stderr) run by its adapter (``ModelMetadata.adapter_name``: the catalog's
``adapter``, else the default for its type and format), or the name of an adapter that needs no
model (``system-tts``, the machine's own speech engine). ``TEXT`` ``-`` reads standard input.

The audio is written sentence by sentence as the adapter makes it (memory stays bounded for any
length of text) into a temporary file next to ``OUT``, which is renamed to ``OUT`` only when all
of it is there: ``OUT`` is never seen half-written, and a failure or Ctrl-C leaves no file.
``.wav`` is written with the standard library (16-bit PCM, samples rounded as piper-tts does);
other suffixes (``.flac``, ``.ogg``) go through soundfile (extra ``audio``).

Stdout gets the path (``--json``: ``{"path", "sample_rate", "duration"}``); stderr the progress
and a summary line.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import InvalidCatalogError, ModelError, SynthesisError
from .render import print_json

if TYPE_CHECKING:  # numpy loads when audio is written, not when the parser is built
    import numpy as np
    from numpy.typing import NDArray

    from ..adapters import AudioChunk
    from ..registry import ModelRegistry

#: CLI option -> the constructor arguments that take it, first match wins (the system voice
#: calls its speakers voices).
OPTIONS: dict[str, tuple[str, ...]] = {
    "speaker": ("speaker", "voice"),
    "length_scale": ("length_scale",),
    "noise_scale": ("noise_scale",),
    "noise_w": ("noise_w",),
    "deterministic": ("deterministic",),
}


class SpeakUsageError(InvalidCatalogError):
    """A model or option ``speak`` cannot use (exit status 2)."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("id", metavar="ID", help="a text-to-speech model (runanywhere list --type"
                   " tts), or system-tts for the machine's own voice")
    p.add_argument("text", metavar="TEXT", help="what to say; - reads standard input")
    p.add_argument("-o", "--output", required=True, type=Path, metavar="OUT.wav",
                   help="the audio file to write (.wav; .flac and .ogg need the audio extra)")
    p.add_argument("--speaker", metavar="NAME|ID",
                   help="one of the voice's speakers (multi-speaker voices; the system voice:"
                        " an espeak-ng voice name)")
    p.add_argument("--length-scale", type=float, metavar="X",
                   help="phoneme length: > 1 slower, < 1 faster (default: the voice's)")
    p.add_argument("--noise-scale", type=float, metavar="X",
                   help="variation of the sound (default: the voice's)")
    p.add_argument("--noise-w", type=float, metavar="X",
                   help="variation of the timing (default: the voice's)")
    p.add_argument("--deterministic", action="store_true",
                   help="no random variation: the same text always gives the same audio")


def read_text(arg: str) -> str:
    text = sys.stdin.read() if arg == "-" else arg
    if not text.strip():
        where = "standard input" if arg == "-" else "TEXT"
        raise SpeakUsageError(f"nothing to say: {where} is empty")
    return text


def adapter_options(factory: Any, args: argparse.Namespace) -> dict[str, Any]:
    """The options given on the command line, under the names the adapter takes."""
    import inspect

    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # pragma: no cover - a builtin or C factory
        params = {}  # type: ignore[assignment]
    given = {k: v for k in OPTIONS if (v := getattr(args, k)) is not None and v is not False}
    out: dict[str, Any] = {}
    for option, value in given.items():
        target = next((n for n in OPTIONS[option] if n in params), None)
        if target is None:
            flag = "--" + option.replace("_", "-")
            raise SpeakUsageError(f"{flag} does not apply to this model's adapter"
                                  f" ({getattr(factory, '__name__', factory)})")
        out[target] = int(value) if option == "speaker" and value.isdigit() else value
    return out


def make_adapter(reg: ModelRegistry, model_id: str, args: argparse.Namespace) -> Any:
    """The TTS adapter for ``model_id``: its catalog entry's, or an adapter named so."""
    meta = reg.get_model(model_id)
    from ..adapters import TTSAdapter, available_adapters, get_adapter  # on use: asyncio

    if meta is None and model_id in available_adapters():
        name = model_id
    else:
        meta = reg.require_model(model_id)  # unknown: the error suggests close ids
        if meta.type != "tts":
            raise SpeakUsageError(f"{model_id} is a model of type {meta.type}; speak needs a"
                                  " tts model (runanywhere list --type tts)")
        if meta.adapter_name is None:
            raise SpeakUsageError(f"{model_id}: no adapter runs tts models in format"
                                  f" {meta.format}; name one with the catalog's 'adapter'")
        name = meta.adapter_name
        from ..adapters.inventory import require_adapter

        require_adapter(name, meta.id)  # its package and libraries, before any download
    factory = get_adapter(name)
    adapter = factory(reg, **adapter_options(factory, args))
    if not isinstance(adapter, TTSAdapter) or not hasattr(adapter, "stream"):
        raise SpeakUsageError(f"adapter {name!r} is not a text-to-speech adapter")
    return adapter


def pull_and_load(reg: ModelRegistry, adapter: Any, model_id: str, quiet: bool) -> None:
    """Pull the model (the pull's progress on stderr; nothing when it is cached) unless it
    needs none, then load it."""
    import asyncio

    from .interrupt import run_interruptible
    from .progress_view import PullProgress

    async def run() -> None:
        meta = reg.get_model(model_id)
        if meta is not None and not meta.is_remote and await asyncio.to_thread(
                reg.cache.entry, meta.id) is None:
            with PullProgress([(meta.id, meta.size)], quiet=quiet) as view:
                (await reg.download_model(meta.id, on_detail=view.update)).unwrap()
        (await adapter.load_model(model_id)).unwrap()

    run_interruptible(run())


class _Sink(Protocol):
    def write(self, audio: NDArray[np.float32]) -> None: ...

    def close(self) -> None: ...


class _WavSink:
    """16-bit PCM WAV through the standard library; samples as piper-tts rounds them."""

    def __init__(self, path: Path, sample_rate: int) -> None:
        import wave

        self._w = wave.open(str(path), "wb")  # noqa: SIM115 - closed by close()
        self._w.setnchannels(1)
        self._w.setsampwidth(2)
        self._w.setframerate(sample_rate)

    def write(self, audio: NDArray[np.float32]) -> None:
        import numpy as np

        pcm = np.clip(audio * 32767.0, -32767.0, 32767.0).astype("<i2")
        self._w.writeframes(pcm.tobytes())

    def close(self) -> None:
        self._w.close()


class _SoundfileSink:
    def __init__(self, path: Path, sample_rate: int, suffix: str) -> None:
        from ..adapters.audio import DEFAULT_SUBTYPES, FORMATS

        try:
            import soundfile
        except ImportError as e:
            from ..errors import RuntimeUnavailableError, install_hint

            raise RuntimeUnavailableError(
                f"writing {suffix} needs soundfile ({e}): {install_hint('audio')}; or write"
                " a .wav") from e
        fmt = FORMATS[suffix]
        self._f = soundfile.SoundFile(str(path), "w", samplerate=sample_rate, channels=1,
                                      format=fmt, subtype=DEFAULT_SUBTYPES[fmt])

    def write(self, audio: NDArray[np.float32]) -> None:
        self._f.write(audio)

    def close(self) -> None:
        self._f.close()


def _sink(path: Path, sample_rate: int, suffix: str) -> _Sink:
    return _WavSink(path, sample_rate) if suffix == ".wav" else _SoundfileSink(
        path, sample_rate, suffix)


@contextlib.contextmanager
def _temporary_beside(out: Path) -> Iterator[Path]:
    """A fresh temporary file in ``out``'s folder, removed unless it was renamed away.

    The name is chosen before the file is made: a Ctrl-C between the two finds it named and
    removes it (``mkstemp`` would return it only after making it)."""
    import secrets

    tmp = out.with_name(f".{out.name}.{os.getpid()}.{secrets.token_hex(4)}.part")
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        yield tmp
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_speech(chunks: Iterator[AudioChunk], out: Path) -> tuple[int, int]:
    """Write the chunks to ``out`` atomically; (sample rate, samples)."""
    from ..adapters.audio import FORMATS

    suffix = out.suffix.lower()
    if suffix not in FORMATS or suffix in (".aiff", ".aif"):
        raise SpeakUsageError(f"{out}: write a .wav (or .flac, .ogg), not {suffix or 'no suffix'}")
    if not out.parent.is_dir():
        raise SpeakUsageError(f"{out}: the folder {out.parent} does not exist")
    rate = samples = 0
    with _temporary_beside(out) as tmp:
        sink: _Sink | None = None
        try:
            for chunk in chunks:
                if sink is None:
                    rate = chunk.sample_rate
                    sink = _sink(tmp, rate, suffix)
                sink.write(chunk.audio)
                samples += chunk.audio.size
        finally:
            if sink is not None:
                sink.close()
        if sink is None or samples == 0:
            raise SynthesisError("the model made no audio for this text")
        os.replace(tmp, out)
    return rate, samples


def cmd_speak(args: argparse.Namespace, reg: ModelRegistry) -> int:
    text = read_text(args.text)
    out = args.output.expanduser().absolute()
    adapter = make_adapter(reg, args.id, args)
    quiet = bool(args.quiet or args.json)
    pull_and_load(reg, adapter, args.id, quiet)
    t0 = time.perf_counter()
    try:
        rate, samples = write_speech(adapter.stream(text), out)
    except ModelError:
        raise
    except (OSError, ValueError) as e:  # disk full, bad folder permissions
        raise SynthesisError(f"could not write {out}: {e}") from e
    duration = samples / rate
    if args.json:
        print_json({"path": str(out), "sample_rate": rate, "duration": round(duration, 3)})
        return 0
    print(out)
    if not args.quiet:
        spent = time.perf_counter() - t0
        sys.stderr.write(f"{args.id}: {duration:.2f} s of speech at {rate} Hz in {spent:.2f} s"
                         f" (real-time factor {spent / duration:.2f})\n")
    return 0
