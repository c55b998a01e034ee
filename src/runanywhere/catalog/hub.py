"""``hf://`` references: a file, a folder or a whole repository on the Hugging Face Hub.

The grammar is huggingface_hub's (``HfFileSystem``)::

    hf://[datasets/|models/]OWNER/REPO[@REVISION][/PATH]

A revision is a branch, a tag or a commit. It is written percent-encoded when it holds a ``/``
(``feature%2Ffoo``), except the special refs ``refs/pr/N`` and ``refs/convert/NAME``, which are
written as they are. Parsing is pure: nothing here talks to the Hub (``transfer/hub.py`` does).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from urllib.parse import quote, unquote

SCHEME = "hf://"
COMMIT_RE = re.compile(r"[0-9a-f]{40}")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
_SPECIAL_REF = re.compile(r"refs/(pr/\d+|convert/[A-Za-z0-9._-]+)")
KINDS = {"models": "model", "datasets": "dataset"}


@dataclass(frozen=True)
class HubRef:
    #: ``"model"`` or ``"dataset"``.
    kind: str
    #: ``OWNER/REPO``.
    repo: str
    #: As written (None: the default branch).
    revision: str | None = None
    #: A file or folder inside the repository ("" for all of it).
    path: str = ""

    @classmethod
    def parse(cls, text: str) -> HubRef:
        """Parse an ``hf://`` reference; ``ValueError`` with a message fit for a user."""
        if not text.startswith(SCHEME):
            raise ValueError(f"{text!r} is not an hf:// reference")
        rest = text[len(SCHEME):]
        kind = "model"
        head, _, tail = rest.partition("/")
        if head in KINDS:
            kind, rest = KINDS[head], tail
        elif head in ("spaces", "kernels", "buckets"):
            raise ValueError(f"{text!r}: only models and datasets can be pulled")
        parts = rest.split("/")
        if len(parts) < 2:
            raise ValueError(f"{text!r} must name OWNER/REPO (example: hf://csukuangfj/"
                             "sherpa-onnx-whisper-tiny/tiny-tokens.txt)")
        owner, name = parts[0], parts[1]
        revision: str | None = None
        after = parts[2:]
        if "@" in name:
            name, revision = name.split("@", 1)
            if revision == "refs" and len(after) >= 2 and after[0] in ("pr", "convert"):
                special = f"refs/{after[0]}/{after[1]}"  # written verbatim, slashes and all
                if _SPECIAL_REF.fullmatch(special):
                    revision, after = special, after[2:]
            else:
                revision = unquote(revision)
            if not revision:
                raise ValueError(f"{text!r}: an empty revision after '@'")
        for piece in (owner, name):
            if not _NAME_RE.fullmatch(piece):
                raise ValueError(f"{text!r}: {piece!r} is not a valid owner or repository name")
        path = "/".join(p for p in after if p)
        if any(p in (".", "..") for p in path.split("/")) or "\\" in path or "\x00" in path:
            raise ValueError(f"{text!r}: the path must stay inside the repository")
        return cls(kind, f"{owner}/{name}", revision, path)

    @property
    def pinned(self) -> bool:
        return self.revision is not None and bool(COMMIT_RE.fullmatch(self.revision))

    def at(self, revision: str, path: str | None = None) -> HubRef:
        return replace(self, revision=revision, path=self.path if path is None else path)

    def url(self) -> str:
        """The reference written back (``hf://...``), revision encoded as huggingface_hub does."""
        prefix = "datasets/" if self.kind == "dataset" else ""
        rev = ""
        if self.revision is not None:
            rev = "@" + (self.revision if _SPECIAL_REF.fullmatch(self.revision)
                         else quote(self.revision, safe=""))
        return f"{SCHEME}{prefix}{self.repo}{rev}" + (f"/{self.path}" if self.path else "")

    def resolve_url(self, endpoint: str) -> str:
        """Where the Hub serves the file: ``{endpoint}/[datasets/]{repo}/resolve/{rev}/{path}``."""
        prefix = "datasets/" if self.kind == "dataset" else ""
        return (f"{endpoint.rstrip('/')}/{prefix}{self.repo}/resolve/"
                f"{quote(self.revision or 'main', safe='')}/{quote(self.path)}")

    def api_url(self, endpoint: str, *parts: str) -> str:
        """``{endpoint}/api/{models|datasets}/{repo}/<parts>``."""
        return f"{endpoint.rstrip('/')}/api/{self.kind}s/{self.repo}/" + "/".join(parts)


def is_hub_url(text: str) -> bool:
    return text.startswith(SCHEME)
