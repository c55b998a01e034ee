"""``runanywhere [--home DIR] [--catalog FILE]... [-v] COMMAND``: the entry point.

Conventions (docs/command-line.md, "Habits it keeps"): results go to stdout, progress and messages
to stderr; global options are accepted before or after the command; ``--json`` prints exactly
one JSON document on stdout, on failure too; ``--quiet`` prints only the results; a failure is
one line on stderr (a traceback only with ``--debug``) and a non-zero exit status; Ctrl-C exits
130 after cancelling what runs (a second Ctrl-C exits at once).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import select
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from .. import __version__
from ..errors import ModelError
from ..settings import Settings, check_connections


class Parser(argparse.ArgumentParser):
    """argparse, with usage errors as one JSON document too when ``--json`` was asked for.

    ``fill`` adds a command's arguments when the parser is first used (parsing, usage, help),
    not when it is made: a run parses one command, and building all the others (their
    modules imported, the global options copied into each) cost more than a cached answer."""

    json_errors = False

    def __init__(self, *args: Any, fill: Callable[[Parser], None] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._fill = fill

    def filled(self) -> None:
        """Add the command's arguments now, if they are not there yet."""
        fill, self._fill = self._fill, None
        if fill is not None:
            fill(self)

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None
                         ) -> tuple[argparse.Namespace, list[str]]:
        self.filled()
        return super().parse_known_args(args, namespace)

    def format_usage(self) -> str:
        self.filled()
        return super().format_usage()

    def format_help(self) -> str:
        self.filled()
        return super().format_help()

    def error(self, message: str) -> NoReturn:
        if Parser.json_errors:
            from .render import print_json

            print_json({"error": {"type": "UsageError", "message": message, "exit_code": 2}})
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


class RuntimeNames:
    """The runtimes' names as argparse ``choices``, read (plugins' entry points: tens of ms)
    only when a value is checked or help is shown, not each time the parser is built."""

    def _names(self) -> list[str]:
        from ..runtimes import available_runtimes

        return available_runtimes()

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())


def _add_common(p: argparse.ArgumentParser, top: bool) -> None:
    """The global options. At the top level they carry defaults; after a command they default
    to nothing (and collect into ``*_after`` where they add up), so a value given before the
    command is not overwritten."""
    g = p.add_argument_group("global options")

    def opt(*names: str, default: Any = None, after: str | None = None, **kw: Any) -> None:
        dest: dict[str, Any] = {} if top or after is None else {"dest": after}
        g.add_argument(*names, default=default if top else argparse.SUPPRESS, **dest, **kw)

    opt("--home", type=Path, metavar="DIR",
        help="cache folder (default: $RUNANYWHERE_HOME or the user cache folder)")
    opt("--catalog", action="append", metavar="FILE|URL", default=[], after="catalog_after",
        help="extra catalog: a JSON file or an http(s) URL, fetched and kept for when its server"
             " is away (repeatable; a later id replaces an earlier one)")
    opt("--offline", action="store_true", default=False,
        help="never touch the network (also RUNANYWHERE_OFFLINE=1)")
    opt("--no-durable", action="store_true", default=False,
        help="skip fsync before publishing (throwaway machines only)")
    opt("--connections", type=int, metavar="N",
        help="a fixed number of parallel streams per file, 1-64 (also RUNANYWHERE_CONNECTIONS;"
             " default: 8, doubling up to 32 while more streams raise the rate)")
    opt("-v", "--verbose", action="count", default=0, after="verbose_after",
        help="log retries, mirrors, resumes, shared-tier decisions (-vv: debug)")
    opt("--json", action="store_true", default=False,
        help="print exactly one JSON document on stdout (also on failure)")
    opt("-q", "--quiet", action="store_true", default=False,
        help="print only the results (pull: one path per model)")
    opt("--debug", action="store_true", default=False, help="show tracebacks")


Fill = Callable[[Parser], None]


def _list(s: Parser) -> None:
    from ..catalog.parse import FORMATS, TYPES

    s.add_argument("--type", choices=sorted(TYPES), help="only models of this type")
    s.add_argument("--format", choices=sorted(FORMATS), help="only models in this format")
    s.add_argument("--search", metavar="TEXT", help="only models whose id, name, provider or"
                   " description contains TEXT")


def _pull(s: Parser) -> None:
    s.add_argument("ids", nargs="+", metavar="ID|URL|hf://...",
                   help="catalog ids, http(s) URLs (with --sha256) or hf://OWNER/REPO[@REV][/PATH]"
                        " references, in the order to report them")
    s.add_argument("--sha256", metavar="HEX", help="the sha256 a URL's bytes must have")
    s.add_argument("--size", type=int, metavar="BYTES", help="a URL's exact size (optional)")
    s.add_argument("--id", dest="model_id", metavar="ID",
                   help="the id to give a URL or hf:// model (default: from its name)")
    s.add_argument("--include", action="append", default=[], metavar="GLOB",
                   help="hf:// folder or repository: only files matching (repeatable)")
    s.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                   help="hf:// folder or repository: leave out files matching (repeatable)")
    s.add_argument("--trust-first-use", action="store_true",
                   help="pull a URL without --sha256: record the first download's hash and"
                        " hold every later one to it")


def _prune(x: Parser) -> None:
    x.add_argument("--max-size", metavar="SIZE",
                   help="target size, e.g. 2GiB or 500MB (default: only orphans)")
    x.add_argument("--orphan-age", type=float, default=24 * 3600, metavar="SECONDS",
                   help="how long an abandoned partial, orphan blob, old version or quarantined"
                        " file must be idle (default 86400)")
    x.add_argument("--dry-run", action="store_true", help="show the plan, change nothing")


def _pin(x: Parser) -> None:
    x.add_argument("id", help="model id")
    x.add_argument("--off", action="store_true", help="unpin instead")


def _one(*names: str, **kw: Any) -> Fill:
    """A command with one argument (or option)."""
    def fill(s: Parser) -> None:
        s.add_argument(*names, **kw)
    return fill


def _cache(command: Callable[..., None]) -> Fill:
    def fill(c: Parser) -> None:
        csub = c.add_subparsers(dest="cache_command", required=True, metavar="ACTION",
                                parser_class=Parser)
        command(csub, "ls", "list cached models", _one(
            "--shared", action="store_true",
            help="also ask the shared S3 tier which models it holds (one HEAD per blob)"))
        command(csub, "size", "total bytes on disk, each blob counted once")
        command(csub, "verify", "re-hash cached files; corrupt ones are quarantined",
                _one("id", nargs="?", help="one model (default: all)"))
        command(csub, "rm", "remove models from the cache (a model pulled by URL or hf:// also"
                " releases its id)", _one("ids", nargs="+", metavar="ID",
                                          help="model ids (or hf:// references)"))
        command(csub, "clear", "remove every model nobody is using")
        command(csub, "prune", "evict least-recently-used models and remove orphans", _prune)
        command(csub, "pin", "never evict this model", _pin)
        command(csub, "forget", "forget the sha256 recorded at a model's first download (trust"
                " on first use) and the URL or hf:// reference it was pulled from, releasing its"
                " id; the cached copy stays", _one("id", help="model id"))
        command(csub, "push", "upload cached models to the shared S3 tier",
                _one("id", nargs="?", help="one model (default: all)"))
    return fill


def _import(s: Parser) -> None:
    s.add_argument("id", help="model id")
    s.add_argument("path", type=Path, help="the model's file (or the folder holding its files)")


def _load(s: Parser) -> None:
    s.add_argument("id", help="model id")
    runtime = s.add_argument("--runtime", choices=RuntimeNames(), metavar="RUNTIME",
                             help="runtime (default: the one for the model's format)")
    # add_argument checks a metavar it formats from the choices (reading the plugins' entry
    # points, ~20 ms): given one, it does not; help and usage still list the choices.
    runtime.metavar = None


def _serve(s: Parser) -> None:
    s.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; any other needs a token)")
    s.add_argument("--port", type=int, default=8765, help="TCP port (default 8765; 0: any free)")
    s.add_argument("--token", help="require 'Authorization: Bearer T' (default:"
                   " $RUNANYWHERE_SERVE_TOKEN)")
    s.add_argument("--cors", action="append", default=[], metavar="ORIGIN",
                   help="let pages from this origin read the responses (repeatable; * for any)")
    s.add_argument("--pull-through", action="store_true",
                   help="pull a model the catalog knows but the cache lacks when it is asked for")
    s.add_argument("--public-url", help="base URL the served catalog links to (default: the"
                   " Host each client used)")
    s.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="another name clients may use in the Host header (repeatable; default:"
                   " loopback names and the address listened on; * turns the check off)")
    s.add_argument("--no-access-log", action="store_true", help="no line per request on stderr")
    s.add_argument("--keep-alive", default="5m", metavar="DURATION",
                   help="how long a model the OpenAI routes loaded stays loaded after its last"
                        " request (default 5m; 0: unload at once; -1: never)")
    s.add_argument("--max-queue", type=int, default=32, metavar="N",
                   help="requests that may wait for one busy model (default 32); more get 429")


def _speak(s: Parser) -> None:
    from .speak import add_arguments

    add_arguments(s)


def _transcribe(s: Parser) -> None:
    from .transcribe import add_arguments

    add_arguments(s)


def _run(s: Parser) -> None:
    from .run import add_arguments

    add_arguments(s)


def build_parser(*, lazy: bool = False) -> Parser:
    """The whole command line. ``lazy``: each command's arguments are added when that command
    is parsed or its help shown (``main`` parses one command); else all at once (the docs and
    tests walk every parser)."""
    p = Parser(prog="runanywhere",
               description="Find, download, verify, cache and load the models of on-device AI"
                           " apps.")
    _add_common(p, top=True)
    p.add_argument("--version", action="version", version=f"runanywhere {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND",
                           parser_class=Parser)

    def command(parent: Any, name: str, help: str, fill: Fill | None = None) -> None:
        def filled(s: Parser) -> None:
            _add_common(s, top=False)  # first, where ``parents=`` put them
            if fill is not None:
                fill(s)

        parser: Parser = parent.add_parser(name, help=help, description=help, fill=filled)
        if not lazy:
            parser.filled()

    command(sub, "list", "list the models every catalog knows", _list)
    command(sub, "info", "show one model: files, hashes, sizes, cache state",
            _one("id", help="model id"))
    command(sub, "pull", "download models into the cache (verified, resumable)", _pull)
    command(sub, "cache", "inspect and manage the cache", _cache(command))
    command(sub, "import", "sideload a file or folder, verified against the catalog", _import)
    command(sub, "load", "load a model into a runtime and describe its inputs and outputs",
            _load)
    command(sub, "serve", "serve the cache over HTTP: browsers, other machines,"
            " huggingface_hub (HF_ENDPOINT)", _serve)
    command(sub, "adapters", "list the installed adapters and runtimes: what each handles, the"
            " package that provides it, whether its dependencies import")
    command(sub, "doctor", "check the cache folder (the folder, permissions, index, paths"
            " leading outside it, models, orphans, quarantine, free space, recorded hashes);"
            " changes nothing")
    command(sub, "speak", "text-to-speech into an audio file (pulls the model first when it is"
            " not cached)", _speak)
    command(sub, "transcribe", "speech to text: the words spoken in an audio file", _transcribe)
    command(sub, "run", "chat with an LLM: its answer streamed to stdout (the prompt from the"
            " argument or stdin; a chat at a terminal)", _run)
    command(sub, "demo", "offline end-to-end demo with a real model", _one(
        "--keep", action="store_true", help="keep the demo's cache folder"))
    return p


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    argv = list(sys.argv[1:] if argv is None else argv)
    Parser.json_errors = "--json" in argv
    args = build_parser(lazy=True).parse_args(argv)
    # Options given after the command join those given before it.
    args.catalog = [*args.catalog, *getattr(args, "catalog_after", [])]
    args.verbose = args.verbose + getattr(args, "verbose_after", 0)
    return args


def make_settings(args: argparse.Namespace) -> Settings:
    # With --home the default folder (platformdirs, tempfile: milliseconds) is never looked up.
    s = Settings.from_env({**os.environ, "RUNANYWHERE_HOME": str(args.home)} if args.home
                          else None)
    changes: dict[str, Any] = {}
    if args.home:
        changes["home"] = args.home.expanduser()
    if args.catalog:
        changes["catalogs"] = (*s.catalogs, *args.catalog)
    if args.offline:
        changes["offline"] = True
    if args.no_durable:
        changes["durable"] = False
    if args.connections is not None:
        changes["connections"] = check_connections(args.connections, "--connections")
    return dataclasses.replace(s, **changes)


class _Formatter(logging.Formatter):
    """``runanywhere: warning: ...``, the way the CLI's own messages read."""

    def format(self, record: logging.LogRecord) -> str:
        return f"runanywhere: {record.levelname.lower()}: {record.getMessage()}" + (
            "\n" + self.formatException(record.exc_info) if record.exc_info else "")


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time (a progress display may wrap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def setup_logging(verbose: int) -> None:
    """Warnings always; ``-v`` INFO, ``-vv`` DEBUG; one line each on stderr."""
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = _StderrHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    logger = logging.getLogger("runanywhere")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False


def fail(args: argparse.Namespace, error: BaseException, exit_code: int) -> int:
    """One line on stderr; with ``--json`` also the error document on stdout."""
    if getattr(args, "json", False):
        from .render import error_doc, print_json

        print_json(error_doc(error, exit_code))
    sys.stderr.write(f"runanywhere: error: {error}\n")
    return exit_code


def stdout_gone() -> bool:
    """Has the reader of stdout gone away (a pipe whose other end closed)?"""
    try:
        sys.stdout.flush()
        poll = select.poll()
        poll.register(sys.stdout.fileno(), select.POLLOUT)
        return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in poll.poll(0))
    except (OSError, ValueError):  # BrokenPipeError while flushing: gone
        return True


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose)
    try:
        settings = make_settings(args)
        from . import commands

        return commands.dispatch(args, settings)
    except KeyboardInterrupt:
        if getattr(args, "json", False):  # --json promises one document, also now
            from .render import error_doc, print_json

            print_json(error_doc(KeyboardInterrupt("interrupted"), 130))
        sys.stderr.write("runanywhere: interrupted\n")
        return 130
    except BrokenPipeError as e:
        if not stdout_gone():  # a connection's broken pipe, not our reader leaving
            if args.debug:
                raise
            return fail(args, e, 1)
        # The reader went away (``| head``): say nothing more, as other tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except ModelError as e:
        if args.debug:
            raise
        return fail(args, e, e.exit_code)
    except (ValueError, OSError) as e:  # bad sizes and similar input; the system said no
        if args.debug:
            raise
        return fail(args, e, 2 if isinstance(e, ValueError) else 1)
