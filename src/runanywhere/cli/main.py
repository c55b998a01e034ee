"""``runanywhere [--home DIR] [--catalog FILE]... [--offline] COMMAND``: the argument parser."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ModelError
from ..settings import Settings


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="runanywhere",
                                description="Find, download, verify, cache and load AI models.")
    p.add_argument("--home", type=Path, help="cache folder (default: $RUNANYWHERE_HOME or the"
                   " user cache folder)")
    p.add_argument("--catalog", action="append", default=[],
                   help="extra catalog JSON file (repeatable; later ids replace earlier)")
    p.add_argument("--offline", action="store_true", help="never touch the network")
    p.add_argument("--no-durable", action="store_true",
                   help="skip fsync before publishing (throwaway machines only)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("list", help="list known models")
    s.add_argument("--type")
    s.add_argument("--format")
    s.add_argument("--search")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("info", help="show one model")
    s.add_argument("id")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("pull", help="download models into the cache")
    s.add_argument("ids", nargs="+", metavar="ID")
    s.add_argument("--json", action="store_true")
    s.add_argument("--quiet", "-q", action="store_true")

    c = sub.add_parser("cache", help="inspect and manage the cache")
    csub = c.add_subparsers(dest="cache_command", required=True, metavar="ACTION")
    x = csub.add_parser("ls", help="list cached models")
    x.add_argument("--json", action="store_true")
    x.add_argument("--shared", action="store_true",
                   help="also ask the shared S3 tier which models it holds (one HEAD per blob)")
    x = csub.add_parser("size", help="total bytes on disk")
    x.add_argument("--json", action="store_true")
    x = csub.add_parser("verify", help="re-hash cached files; quarantine corrupt ones")
    x.add_argument("id", nargs="?")
    x.add_argument("--json", action="store_true")
    x = csub.add_parser("rm", help="remove a model from the cache")
    x.add_argument("id")
    x.add_argument("--json", action="store_true")
    x = csub.add_parser("clear", help="remove every model from the cache")
    x.add_argument("--json", action="store_true")
    x = csub.add_parser("prune", help="evict least-recently-used models and orphans")
    x.add_argument("--max-size", help="target size, e.g. 2GiB (default: only orphans)")
    x.add_argument("--orphan-age", type=float, default=24 * 3600,
                   help="seconds an abandoned partial, orphan blob, old version or quarantined"
                   " file must be idle (default 1 day)")
    x.add_argument("--dry-run", action="store_true", help="show the plan, change nothing")
    x.add_argument("--json", action="store_true")
    x = csub.add_parser("pin", help="never evict this model")
    x.add_argument("id")
    x.add_argument("--off", action="store_true", help="unpin")
    x.add_argument("--json", action="store_true")
    x = csub.add_parser("forget", help="forget the sha256 recorded at a model's first download"
                        " (trust on first use); the next download records a new one")
    x.add_argument("id")
    x.add_argument("--json", action="store_true")
    x = csub.add_parser("push", help="upload cached models to the shared S3 tier")
    x.add_argument("id", nargs="?")
    x.add_argument("--json", action="store_true")

    s = sub.add_parser("import", help="sideload a file or folder, verified against the catalog")
    s.add_argument("id")
    s.add_argument("path", type=Path)
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("load", help="load a model into a runtime and describe it")
    s.add_argument("id")
    s.add_argument("--runtime")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("doctor", help="check the cache folder (permissions, index, models,"
                       " orphans, quarantine, free space, recorded hashes); changes nothing")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("demo", help="offline end-to-end demo with a real model")
    s.add_argument("--keep", action="store_true", help="keep the demo's cache folder")
    return p


def make_settings(args: argparse.Namespace) -> Settings:
    s = Settings.from_env()
    changes: dict[str, Any] = {}
    if args.home:
        changes["home"] = args.home.expanduser()
    if args.catalog:
        changes["catalogs"] = (*s.catalogs, *args.catalog)
    if args.offline:
        changes["offline"] = True
    if args.no_durable:
        changes["durable"] = False
    return dataclasses.replace(s, **changes)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = make_settings(args)
        from . import commands

        return commands.dispatch(args, settings)
    except ModelError as e:
        if args.debug:
            raise
        sys.stderr.write(f"runanywhere: error: {e}\n")
        return e.exit_code
    except ValueError as e:  # bad sizes and similar user input
        if args.debug:
            raise
        sys.stderr.write(f"runanywhere: error: {e}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("runanywhere: interrupted\n")
        return 130
    except OSError as e:
        if args.debug:
            raise
        sys.stderr.write(f"runanywhere: error: {e}\n")
        return 1

