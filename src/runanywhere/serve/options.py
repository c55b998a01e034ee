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
    for origin in options.cors:
        if origin != "*" and not re.fullmatch(r"https?://[^/\s]+", origin):
            raise ServeError(f"--cors {origin!r}: give an origin like http://localhost:3000"
                             " (scheme and host, no path) or *")
    return HostRules.build(options.host, options.allow_hosts, options.public_url)
