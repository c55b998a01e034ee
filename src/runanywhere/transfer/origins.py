"""Where a bearer token may go: an origin (scheme, host, port) and how to read one from a URL.

Apart from ``http.py`` so that configuration and the Hub's token rules load without HTTP and
TLS (a cached ``pull`` never opens a connection)."""

from __future__ import annotations

from urllib.parse import urlsplit

#: (scheme, host, port): where a bearer token may go.
Origin = tuple[str, str, int]


def origin_of(url: str) -> Origin:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or (443 if scheme == "https"
                                                                   else 80)
