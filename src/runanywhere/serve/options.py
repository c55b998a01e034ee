"""What ``runanywhere serve`` is asked to do, and the refusals that come before it binds."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from ..errors import ServeError
from .hosts import HostRules

#: What a bearer token may be made of: visible ASCII, what a header value carries as is.
_TOKEN = re.compile(r"[\x21-\x7e]+")
#: Seconds a client may take to accept one piece of a body before it is disconnected.
STALL_TIMEOUT = 60.0
#: Seconds a model the OpenAI routes loaded stays loaded after its last request (ollama's 5m).
KEEP_ALIVE = 300.0
#: Requests that may wait for one model while it is busy; the next gets 429.
MAX_QUEUE = 32
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = None
    #: Origins whose pages may read the responses (``*``: any).
    cors: tuple[str, ...] = ()
    pull_through: bool = False
    #: The base URL the catalog's links use (default: the Host the client asked for).
    public_url: str | None = None
    access_log: bool = True
    stall_timeout: float = STALL_TIMEOUT
    #: More names the Host header may carry (``*``: any; hosts.py has the default ones).
    allow_hosts: tuple[str, ...] = ()
    #: Seconds an idle model stays loaded for the OpenAI routes (0: unloaded after each
    #: request; None: never unloaded).
    keep_alive: float | None = KEEP_ALIVE
    #: Requests that may wait for one busy model; more are refused with 429 and Retry-After.
    max_queue: int = MAX_QUEUE


def parse_duration(text: str) -> float | None:
    """``--keep-alive``'s value in seconds, as ollama reads it: ``5m``, ``30s``, ``1h30m``,
    ``500ms``, a plain number of seconds; 0 means at once and any negative value never (None).
    Raises :class:`ServeError` naming the value otherwise."""
    t = text.strip().lower()
    try:
        number = float(t)
    except ValueError:
        number = None
    if number is not None and number == number and abs(number) != float("inf"):
        return None if number < 0 else number
    negative = t.startswith("-")
    body = t[1:] if negative else t
    pos, total = 0, 0.0
    for m in _DURATION.finditer(body):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT[m.group(2)]
        pos = m.end()
    if not body or pos != len(body):
        raise ServeError(f"--keep-alive {text!r}: give a duration like 5m, 30s, 1h30m, a number"
                         " of seconds, 0 (unload at once) or -1 (never unload)")
    return None if negative else total


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_token(token: str | None, source: str) -> None:
    """A token must be something a client can send: not blank (an empty ``--token ''`` would
    otherwise mean "no token" and leave the server open), and visible ASCII only (spaces,
    control or non-ASCII characters never survive an ``Authorization`` header)."""
    if token is None:
        return
    if not token.strip():
        raise ServeError(f"{source} is blank: give a real token (for example the output of"
                         " 'openssl rand -hex 16') or none at all")
    if not _TOKEN.fullmatch(token):
        raise ServeError(f"{source} holds spaces, control or non-ASCII characters, which an"
                         " 'Authorization: Bearer' header cannot carry: use letters, digits and"
                         " punctuation")


def check_options(options: ServeOptions) -> HostRules:
    """Raise :class:`ServeError` (one line naming the option) for options it must not run with;
    return the Host rules they make."""
    check_token(options.token, "--token")
    if not is_loopback(options.host) and not options.token:
        raise ServeError(f"serving on {options.host} (not a loopback address) needs a token:"
                         " --token T or RUNANYWHERE_SERVE_TOKEN (clients send"
                         " 'Authorization: Bearer T')")
    if not 0 <= options.port <= 65535:
        raise ServeError(f"port {options.port} is not a TCP port")
    if options.keep_alive is not None and not options.keep_alive >= 0:
        raise ServeError(f"--keep-alive {options.keep_alive!r}: seconds from 0 up, or none")
    if isinstance(options.max_queue, bool) or not isinstance(options.max_queue, int) or \
            options.max_queue < 0:
        raise ServeError(f"--max-queue {options.max_queue!r}: a number of requests from 0 up")
    for origin in options.cors:
        if origin != "*" and not re.fullmatch(r"https?://[^/\s]+", origin):
            raise ServeError(f"--cors {origin!r}: give an origin like http://localhost:3000"
                             " (scheme and host, no path) or *")
    return HostRules.build(options.host, options.allow_hosts, options.public_url)
