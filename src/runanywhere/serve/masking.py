"""Secrets out of log lines: the token and link signatures, however a client spelled them.

A client may send the token as ``?token=``, ``?TOKEN=``, ``?tok%65n=`` (which the query parser
decodes to ``token`` and accepts), repeated, after ``;`` or ``#``, or simply somewhere in the
path by mistake. Two passes, so that neither alone has to be perfect:

1. every ``name=value`` pair after ``?``, ``&``, ``;`` or ``#`` whose name, percent-decoded until
   it stops changing and lower-cased, is a secret's name (``token``, ``sig``) keeps its name and
   loses its value;
2. every occurrence of a known secret value is replaced, as sent or percent-encoded in any way
   (then the line shows the decoded target, masked).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote

SECRET_NAMES = frozenset({"token", "sig"})
MASK = "***"
_PAIR = re.compile(r"(?<=[?&;#])([^=&;#?/]*)=([^&;#]*)")


def decoded(text: str, rounds: int = 4) -> str:
    """``text`` percent-decoded until it stops changing (double encoding included)."""
    for _ in range(rounds):
        plain = unquote(text, errors="replace")
        if plain == text:
            break
        text = plain
    return text


def mask_target(target: str, secrets: Iterable[str] = ()) -> str:
    """A request target fit for a log line."""

    def pair(m: re.Match[str]) -> str:
        name = decoded(m[1]).strip().lower()
        return f"{m[1]}={MASK}" if name in SECRET_NAMES else m[0]

    return mask_values(_PAIR.sub(pair, target), secrets)


def mask_values(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each secret masked, encoded or not."""
    known = [s for s in secrets if s]
    for secret in known:
        text = text.replace(secret, MASK)
    if any(secret in decoded(text) for secret in known):
        text = decoded(text)
        for secret in known:
            text = text.replace(secret, MASK)
    return text
