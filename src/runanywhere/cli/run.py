"""``runanywhere run ID [PROMPT]``: an LLM's answer streamed to stdout (``ollama run``'s habits).

- A prompt as an argument, or on stdin when stdin is not a terminal: one answer, streamed to
  stdout as it is made, then a newline; ``--json`` prints one document at the end instead:
  ``{"model", "text", "finish_reason", "usage": {"prompt_tokens", "completion_tokens"},
  "timings": {"load_s", "first_token_s", "tokens_per_s"}}``.
- No prompt at a terminal: a chat. The history is kept (the model sees every turn); ``/bye``
  or Ctrl-D leaves. Ctrl-C stops the answer being written and returns to the prompt (what was
  written stays, in the history too); Ctrl-C at the prompt leaves with status 130.
- Ctrl-C during a one-shot answer stops it at the next token, keeps what was printed and exits
  130 (``--json``: the document, with ``finish_reason: "cancelled"``); a second Ctrl-C exits at
  once.
- The model is pulled first when it is not cached, with the usual progress on stderr.
- ``-v`` logs each answer's token counts, time to first token and decode rate on stderr.

The answer goes through the model's own chat template (the adapter's ``chat``), with ``--system``
as its first message when given.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

from ..errors import InvalidOptionError, ModelError
from ..logs import log
from .interrupt import run_interruptible
from .render import print_json

if TYPE_CHECKING:
    from ..adapters.llm import GenerationOptions, GenerationResult, GenerationStream, LLMAdapter
    from ..catalog import ModelMetadata
    from ..registry import ModelRegistry

BYE = "/bye"
PROMPT = ">>> "


def add_arguments(s: argparse.ArgumentParser) -> None:
    """``run``'s own arguments (main.build_parser names the command)."""
    s.add_argument("id", help="model id (an llm model: runanywhere list --type llm)")
    s.add_argument("prompt", nargs="?", help="the prompt (default: stdin when piped, else a"
                   " chat)")
    s.add_argument("--system", metavar="TEXT", help="a system message before the prompt")
    s.add_argument("--max-tokens", type=int, metavar="N",
                   help="the most tokens to generate (default: until the model stops or its"
                        " context is full)")
    s.add_argument("--temperature", type=float, metavar="T",
                   help="0 for the most likely token every time (default: the runtime's, 0.8)")
    s.add_argument("--seed", type=int, metavar="N", help="sampling seed (the same seed, the"
                   " same answer)")


def cmd_run(args: argparse.Namespace, reg: ModelRegistry) -> int:
    from ..adapters.llm import GenerationOptions

    meta = reg.require_model(args.id)
    if meta.type != "llm":
        raise InvalidOptionError(f"{meta.id} is a {meta.type} model; run needs an llm model"
                                 " (runanywhere list --type llm)")
    options = GenerationOptions.of(args.max_tokens, args.temperature, seed=args.seed)
    prompt: str | None = args.prompt
    chatting = prompt is None and sys.stdin.isatty()
    if chatting and args.json:
        raise InvalidOptionError("--json needs a prompt (an argument, or piped on stdin)")
    if prompt is None and not chatting:
        prompt = sys.stdin.read()
        if not prompt.strip():
            raise InvalidOptionError("no prompt: give one as an argument or on stdin")
    llm = _adapter(meta, reg)
    _pull(args, reg, meta)
    run_interruptible(llm.load_model(meta.id)).unwrap()
    history: list[dict[str, str]] = (
        [{"role": "system", "content": args.system}] if args.system else [])
    if chatting:
        return _chat(llm, history, options)
    assert prompt is not None
    stream = _ask(llm, [*history, {"role": "user", "content": prompt}], options)
    result, interrupted = _answer(stream, echo=not args.json)
    if args.json:
        print_json(result.to_dict())
    if interrupted:
        sys.stderr.write("runanywhere: interrupted\n")
        return 130
    return 0


def _adapter(meta: ModelMetadata, reg: ModelRegistry) -> LLMAdapter:
    from ..adapters import create_adapter
    from ..adapters.llm import LLMAdapter

    name = meta.adapter_name
    if name is None:
        raise ModelError(f"no adapter runs {meta.type} models in {meta.format}; name one with"
                         " the catalog entry's 'adapter'")
    from ..adapters.inventory import require_adapter

    require_adapter(name, meta.id)  # its package and libraries, before any download
    llm = create_adapter(name, reg)
    if not isinstance(llm, LLMAdapter):
        raise ModelError(f"adapter '{name}' is not an LLM adapter ({type(llm).__name__})")
    return llm


def _pull(args: argparse.Namespace, reg: ModelRegistry, meta: ModelMetadata) -> None:
    """The model into the cache first, with pull's progress on stderr (Ctrl-C: 130, the
    partial kept for the next run)."""
    if meta.is_remote or reg.cache.entry(meta.id) is not None:
        return  # a remote model has nothing to pull
    from .progress_view import PullProgress

    with PullProgress([(meta.id, meta.size)], quiet=args.quiet or args.json) as view:
        done = run_interruptible(reg.download_model(meta.id, on_detail=view.update))
    done.unwrap()


def _ask(llm: LLMAdapter, messages: list[dict[str, str]], o: GenerationOptions
         ) -> GenerationStream:
    return llm.chat(messages, max_tokens=o.max_tokens, temperature=o.temperature, seed=o.seed)


def _answer(stream: GenerationStream, *, echo: bool) -> tuple[GenerationResult, bool]:
    """Stream one answer to stdout (``echo``); Ctrl-C stops it. Returns the result and whether
    it was interrupted."""
    interrupted = False
    wrote = ""
    try:
        for delta in stream:
            if echo:
                sys.stdout.write(delta)
                sys.stdout.flush()
                wrote = delta
    except KeyboardInterrupt:  # leaving the loop cancelled the generation
        interrupted = True
    if echo and wrote and not wrote.endswith("\n"):
        sys.stdout.write("\n")
        sys.stdout.flush()
    try:
        # a cancelled generation ends at the backend's next token (its counts come with it)
        result = stream.result()
    except KeyboardInterrupt:  # a second Ctrl-C: do not wait for anything
        sys.stderr.write("\nrunanywhere: interrupted again: exiting now\n")
        sys.stderr.flush()
        os._exit(130)
    t = result.timings
    log.info("%s: %d prompt tokens, %d generated (%s), first token after %s, %s tokens/s",
             result.model_id, result.usage.prompt_tokens, result.usage.completion_tokens,
             result.finish_reason,
             "-" if t.first_token_s is None else f"{t.first_token_s:.2f}s",
             "-" if t.tokens_per_s is None else f"{t.tokens_per_s:.1f}")
    return result, interrupted


def _chat(llm: LLMAdapter, history: list[dict[str, str]], options: GenerationOptions) -> int:
    with contextlib.suppress(ImportError):  # not on every platform
        import readline  # noqa: F401  (line editing and history for input())
    sys.stderr.write(f"Chatting with {llm.model_id}: {BYE} or Ctrl-D to leave, Ctrl-C stops"
                     " an answer.\n")
    # At a terminal, input() shows the prompt itself, once readline has the terminal: a Ctrl-D
    # typed as soon as the prompt shows is then an end of file, not a byte lost in the switch.
    # With stdout redirected, the prompt goes to stderr (stdout carries only the answers).
    own_prompt = sys.stdout.isatty()
    while True:
        if not own_prompt:
            sys.stderr.write(PROMPT)
            sys.stderr.flush()
        try:
            line = _read_line(PROMPT if own_prompt else "")
        except EOFError:
            sys.stderr.write("\n")
            return 0
        except KeyboardInterrupt:
            sys.stderr.write("\nrunanywhere: interrupted\n")
            return 130
        if line.strip() == BYE:
            return 0
        if not line.strip():
            continue
        turn = [*history, {"role": "user", "content": line}]
        try:
            result, _ = _answer(_ask(llm, turn, options), echo=True)
        except KeyboardInterrupt:  # before the answer began: nothing to keep, back to the prompt
            sys.stderr.write("\n")
            continue
        except ModelError as e:  # a prompt too long for the context: say so, keep chatting
            sys.stderr.write(f"runanywhere: error: {e}\n")
            continue
        history[:] = [*turn, {"role": "assistant", "content": result.text}]


def _read_line(prompt: str) -> str:
    """``input(prompt)`` that never misses a Ctrl-C (KeyboardInterrupt; Ctrl-D: EOFError).

    In the main thread, readline waits in a select() that only a signal arriving *during* it
    interrupts: a SIGINT that came while readline wrote the prompt or echoed a key (a busy or
    stopped terminal, a loaded machine) ran Python's handler only at the next key, and the chat
    hung at its prompt. So a thread reads the line (SIGINT blocked there) while the main thread
    waits for it or for the byte the signal writes to the wakeup fd, whenever it comes. On a
    Ctrl-C that thread is left in readline (the chat is leaving, and nothing can stop a read
    in a thread) and the terminal gets back the settings readline changed."""
    if threading.current_thread() is not threading.main_thread():
        return input(prompt)
    got: list[str | BaseException] = []
    done_r, done_w = os.pipe()

    def read() -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            got.append(input(prompt))
        except BaseException as e:  # EOFError (Ctrl-D), or an error reading stdin
            got.append(e)
        os.write(done_w, b"!")

    saved = _terminal_settings()
    reader = threading.Thread(target=read, daemon=True, name="runanywhere-chat-prompt")
    woken_r, woken_w = os.pipe()
    os.set_blocking(woken_w, False)
    previous = signal.set_wakeup_fd(woken_w, warn_on_full_buffer=False)
    try:
        reader.start()
        while done_r not in select.select([woken_r, done_r], [], [])[0]:
            os.read(woken_r, 512)  # a signal: its Python handler runs now (SIGINT: raises)
    except BaseException:
        if reader.is_alive():
            _restore_terminal(saved)
            done_r = done_w = -1  # the reader still holds them: left open
        raise
    finally:
        signal.set_wakeup_fd(previous)
        for fd in (woken_r, woken_w, done_r, done_w):
            if fd >= 0:
                os.close(fd)
    reader.join()
    if isinstance(got[0], BaseException):
        raise got[0]
    return got[0]


def _terminal_settings() -> list[Any] | None:
    """stdin's terminal settings (None when it is no terminal)."""
    try:
        import termios
    except ImportError:  # not on every platform
        return None
    try:
        return termios.tcgetattr(sys.stdin.fileno())
    except (termios.error, OSError, ValueError):
        return None


def _restore_terminal(saved: list[Any] | None) -> None:
    if saved is None:
        return
    import termios

    with contextlib.suppress(termios.error, OSError):
        termios.tcsetattr(sys.stdin.fileno(), termios.TCSANOW, saved)
