"""Sphinx roles in docstrings (``:class:`~runanywhere.errors.ModelError```), as links.

The code's docstrings cite each other the Sphinx way; mkdocstrings renders docstrings as
Markdown, where such a role comes out as ``:class:<code>~x.y.Z</code>``. This hook turns it into
an optional cross-reference that mkdocs-autorefs resolves at the end of the build: a link where
the object is on the site, plain code where it is not (a relative name such as ``.fetch.X``, or
a private helper), never a warning. ``~`` shows the last part only, as in Sphinx.
"""

from __future__ import annotations

import re
from typing import Any

ROLE = re.compile(r":(?:class|func|meth|attr|exc|mod|data|obj):<code>(~?)([\w.]+)</code>")


def _replace(match: re.Match[str]) -> str:
    short, target = match[1] == "~", match[2]
    shown = target.rsplit(".", 1)[-1] if short else target.lstrip(".")
    if target.startswith(".") or not target.startswith("runanywhere"):
        return f"<code>{shown}</code>"
    return f'<autoref identifier="{target}" optional><code>{shown}</code></autoref>'


def link_roles(html: str) -> str:
    return ROLE.sub(_replace, html)


def on_page_content(html: str, **kwargs: Any) -> str:
    return link_roles(html)
