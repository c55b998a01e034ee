"""Which web pages may read the answers (``--cors ORIGIN``, repeatable; ``*`` for any).

Preflights (``OPTIONS``) are answered without the token, as browsers send them without
credentials. The listed origins get ``Access-Control-Allow-Origin`` and the headers a resumable
download needs exposed (``Content-Range``, ``ETag``, ...); answers that depend on the Origin
carry ``Vary: Origin``.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass

EXPOSE = ("Content-Length, Content-Range, Accept-Ranges, ETag, Last-Modified, X-Repo-Commit,"
          " X-Linked-Etag, X-Linked-Size, X-Error-Code, X-Error-Message")
ALLOW_HEADERS = ("Authorization", "Range", "If-Range", "If-None-Match", "If-Match",
                 "If-Modified-Since")


@dataclass(frozen=True)
class CorsPolicy:
    origins: tuple[str, ...] = ()
    #: The methods the routes answer (preflights list them).
    methods: tuple[str, ...] = ("GET", "HEAD", "OPTIONS")

    def headers(self, origin: str | None) -> dict[str, str]:
        """The CORS headers of an answer to a request from ``origin`` (None: no Origin).

        With a list of origins the answer depends on the Origin (allowed or not), so every
        answer says ``Vary: Origin``, those without CORS headers too: a cache between the
        server and the browsers must not hand one origin's answer (or the answer to a request
        with no Origin) to another. ``*`` answers everyone alike, Origin or not.
        """
        if not self.origins:
            return {}
        if "*" in self.origins:
            return {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": EXPOSE}
        if origin and origin in self.origins:
            return {"Access-Control-Allow-Origin": origin, "Vary": "Origin",
                    "Access-Control-Expose-Headers": EXPOSE}
        return {"Vary": "Origin"}

    def preflight(self, origin: str | None) -> dict[str, str]:
        """The headers of the answer to an ``OPTIONS`` preflight."""
        allow = list(ALLOW_HEADERS)
        if any(m not in ("GET", "HEAD", "OPTIONS") for m in self.methods):
            allow.append("Content-Type")  # JSON and form bodies
        return {**self.headers(origin), "Access-Control-Allow-Methods": ", ".join(self.methods),
                "Access-Control-Allow-Headers": ", ".join(allow),
                "Access-Control-Max-Age": "600"}

    def with_methods(self, methods: Iterable[str]) -> CorsPolicy:
        return CorsPolicy(self.origins, tuple(sorted({*methods, "OPTIONS"})))


def add_headers(headers: MutableMapping[str, str], cors: dict[str, str]) -> None:
    """Put ``cors`` into an answer's headers, adding to a ``Vary`` it already has."""
    for name, value in cors.items():
        if name == "Vary" and headers.get("Vary"):
            have = [v.strip() for v in headers["Vary"].split(",")]
            if value.lower() not in (v.lower() for v in have):
                headers["Vary"] = ", ".join([*have, value])
        else:
            headers[name] = value
