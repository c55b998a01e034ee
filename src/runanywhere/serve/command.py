"""``runanywhere serve`` in the foreground: the log on stderr, a banner, Ctrl-C to stop."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import sys
from typing import TYPE_CHECKING

from ..units import human_size
from .app import ModelServer
from .options import ServeOptions, check_token

if TYPE_CHECKING:
    from ..registry import ModelRegistry

log = logging.getLogger("runanywhere.serve")


def run(registry: ModelRegistry, options: ServeOptions) -> int:
    """Serve until Ctrl-C (returns 130) or SIGTERM (returns 0). Without a token in ``options``
    the token is ``RUNANYWHERE_SERVE_TOKEN``'s. Raises :class:`~runanywhere.errors.ServeError`
    (one line) when it cannot start as asked."""
    if options.token is None and registry.settings.serve_token is not None:
        check_token(registry.settings.serve_token, "RUNANYWHERE_SERVE_TOKEN")
        options = dataclasses.replace(options, token=registry.settings.serve_token)
    server = ModelServer(registry, options)  # refuses bad options before any log is set up
    _log_to_stderr()

    def ready(url: str) -> None:
        entries = server.context.cached_entries()
        size = sum(e.size for e in entries)
        sys.stderr.write(
            f"runanywhere serve: {len(entries)} model(s), {human_size(size)}, from"
            f" {server.context.root}\n  listening on {url}"
            f"{' (token required)' if options.token else ''}"
            f"{', pull-through on' if options.pull_through else ''}\n"
            f"  catalog: {url}/catalog.json   OpenAI API: {url}/v1   HF_ENDPOINT={url}\n"
            "  Ctrl-C stops it\n")
        sys.stderr.flush()

    code = asyncio.run(server.serve(ready))
    sys.stderr.write("runanywhere serve: stopped\n")
    return code


def _log_to_stderr() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    log.setLevel(logging.INFO)  # the access log is its child: one handler for both
    log.addHandler(handler)
    log.propagate = False
    with contextlib.suppress(ValueError, OSError):  # many clients: as many descriptors as allowed
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
