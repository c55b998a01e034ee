"""The bearer token and the signed links that stand in for it.

With a token every route but ``/healthz`` wants ``Authorization: Bearer <token>`` (what
huggingface_hub sends from ``HF_TOKEN``) or ``?token=<token>``. A route group may also let a
*signed link* in: it names a capability for a route (``blob:<hex>``), puts
``?sig=<HMAC(token, capability)>`` in the links it hands out, and registers the route here with
:meth:`TokenAuth.signed_route`; that link then opens that one resource and nothing else, so a
catalog can carry links without carrying the token. Every comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping

from aiohttp import web

#: From a matched route's path parameters to the capability its signature must sign.
Capability = Callable[[Mapping[str, str]], str]


class TokenAuth:
    def __init__(self, token: str | None) -> None:
        self.token = token
        self._signed: dict[str, Capability] = {}

    def signed_route(self, route_name: str, capability: Capability) -> None:
        """Let ``?sig=`` open the route named ``route_name`` for the capability it names."""
        self._signed[route_name] = capability

    def sign(self, capability: str) -> str:
        """The signature of one link (``blob:<hex>``, ``file:<id>/<path>``): an HMAC only the
        token's holder can make."""
        key = (self.token or "").encode()
        return hmac.new(key, capability.encode(), hashlib.sha256).hexdigest()[:32]

    def signed(self, url: str, capability: str) -> str:
        """``url`` with the signature that opens it appended (unchanged without a token)."""
        return f"{url}?sig={self.sign(capability)}" if self.token else url

    def authorizes(self, request: web.Request) -> bool:
        token = self.token
        if not token or request.path == "/healthz":
            return True
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and same(given.strip(), token):
            return True
        if same(request.query.get("token", ""), token):
            return True
        capability = self._signed.get(request.match_info.route.name or "")
        if capability is None:
            return False
        return same(request.query.get("sig", ""), self.sign(capability(request.match_info)))


def same(given: str, expected: str) -> bool:
    return bool(given) and hmac.compare_digest(given.encode(), expected.encode())
