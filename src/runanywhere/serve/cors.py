"""Which web pages may read the answers (``--cors ORIGIN``, repeatable; ``*`` for any).

Preflights (``OPTIONS``) are answered without the token, as browsers send them without
credentials. The listed origins get ``Access-Control-Allow-Origin`` and the headers a resumable
download needs exposed (``Content-Range``, ``ETag``, ...).
"""

from __future__ import annotations

from collections.abc import Iterable
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
        """The CORS headers of an answer to a request from ``origin`` (None: no Origin)."""
        if not origin or not self.origins:
            return {}
        if "*" in self.origins:
            return {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": EXPOSE}
        if origin in self.origins:
            return {"Access-Control-Allow-Origin": origin, "Vary": "Origin",
                    "Access-Control-Expose-Headers": EXPOSE}
        return {}

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
