"""Which names the server answers to: the ``Host`` check against DNS rebinding.

A page on attacker.example can make its own name resolve to 127.0.0.1 (DNS rebinding); the
browser then sends that page's requests to this server with ``Host: attacker.example`` and lets
the page read the answers, as if they were its own. A token-less server on loopback would be an
open book to any web page its user visits. So every request but ``/healthz`` must name the
server:

* a loopback name: ``localhost`` (also ``localhost.``), an IP literal that is loopback
  (``127.0.0.1``, ``[::1]``);
* the address it is bound to (``--host``), the host of ``--public-url``, each ``--allow-host``;
* the IP address the connection actually reached (a LAN client of ``--host 0.0.0.0`` that uses
  the machine's address): an IP literal cannot come from rebinding a name.

The port is not compared (a port mapping changes it; rebinding changes the name). A request
without ``Host`` (HTTP/1.0 tools) passes: browsers always send one. ``--allow-host '*'`` turns
the check off.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..errors import ServeError

#: A DNS name (letters, digits, hyphens, dots; a trailing dot allowed).
_NAME = re.compile(r"(?=.{1,253}\.?$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
                   r"(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*\.?")
_PORT = re.compile(r"\d{1,5}")
LOOPBACK_NAMES = frozenset({"localhost"})

IP = ipaddress.IPv4Address | ipaddress.IPv6Address


def host_name(header: str) -> str | None:
    """The host a ``Host`` header names (see :func:`normal_host`), or None when the header is
    not a well-formed ``host[:port]``."""
    value = header.strip()
    if value.startswith("["):
        end = value.find("]")
        host, rest = (value[:end + 1], value[end + 1:]) if end > 0 else ("", "")
    else:
        host, colon, port = value.partition(":")
        rest = colon + port
    if rest and not (rest.startswith(":") and _PORT.fullmatch(rest[1:])):
        return None
    name = normal_host(host)
    if value.startswith("[") and (name is None or ":" not in name):
        return None  # brackets hold an IPv6 address and nothing else
    return name


def normal_host(text: str) -> str | None:
    """A bare host (a DNS name, an IPv4 address, an IPv6 address with or without brackets; no
    port) as compared here: lower-case, no brackets, no trailing dot. None when it is none."""
    text = text.strip().lower()
    bare = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    ip = _ip(bare)
    if ip is not None:
        return str(ip)
    if bare is text and _NAME.fullmatch(text):
        return text.rstrip(".")
    return None


def _ip(text: str | None) -> IP | None:
    try:
        return ipaddress.ip_address(text or "")
    except ValueError:
        return None


def _plain(ip: IP) -> IP:
    """An IPv4 client of a dual-stack socket shows as ``::ffff:a.b.c.d``: compare as IPv4."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def allowed_name(value: str) -> str:
    """An ``--allow-host`` value as a name to compare, or :class:`ServeError`."""
    name = normal_host(value)
    if name is None:
        raise ServeError(f"--allow-host {value!r}: give a host name or an IP address, without"
                         " a scheme, a port or a path (or * to turn the Host check off)")
    return name


@dataclass(frozen=True)
class HostRules:
    #: Names (lower-case, IPv6 without brackets) a request's Host may carry.
    names: frozenset[str]
    #: ``--allow-host '*'``: no check at all.
    any_host: bool = False

    @classmethod
    def build(cls, bound: str, allow: Iterable[str], public_url: str | None) -> HostRules:
        allow = tuple(allow)
        if "*" in allow:
            return cls(frozenset(), any_host=True)
        names = {*LOOPBACK_NAMES, *(allowed_name(a) for a in allow)}
        public = urlsplit(public_url).hostname if public_url else None
        names.update(n for n in (normal_host(bound), normal_host(public or "")) if n)
        return cls(frozenset(names))

    def allows(self, host: str | None, reached: str | None = None) -> bool:
        """May a request with this ``Host`` header, on a connection that reached the local
        address ``reached``, be answered?"""
        if self.any_host or host is None:
            return True
        name = host_name(host)
        if name is None:
            return False
        if name in self.names:
            return True
        ip, here = _ip(name), _ip(reached)
        if ip is None:
            return False
        return _plain(ip).is_loopback or (here is not None and _plain(ip) == _plain(here))

    def describe(self) -> str:
        """The names it answers to, for the refusal's message."""
        shown = sorted(f"[{n}]" if ":" in n else n for n in self.names)
        return ", ".join([*shown, "loopback addresses", "the address a client reached"])
