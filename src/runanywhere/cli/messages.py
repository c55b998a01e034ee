"""What every command says to a person, and the one error for options that do not go together
(its own module so the commands' modules can share it without importing each other)."""

from __future__ import annotations

import sys

from ..errors import InvalidCatalogError
from ..redact import redact


class UsageError(InvalidCatalogError):
    """Options that do not go together."""


def say(*lines: str) -> None:
    """Messages for a person: stderr, so stdout carries only results (secrets masked)."""
    for line in lines:
        sys.stderr.write(redact(line) + "\n")
