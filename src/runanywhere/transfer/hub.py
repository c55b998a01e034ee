"""The Hugging Face Hub as a source: resolve an ``hf://`` reference to a pinned commit and the
files under it, with the sizes and hashes the Hub publishes; turn a pinned file reference into
the URL that serves it.

It behaves as huggingface_hub does (the same endpoints and environment): ``HF_ENDPOINT`` names the
Hub, the token comes from ``HF_TOKEN`` or the file ``hf auth login`` writes (``$HF_HOME/token``),
and ``HF_HUB_OFFLINE=1`` makes no request at all. The token goes only to the Hub's own origin;
a large file's 302 to the CDN is followed without it.

What each file is checked against comes from the API for the pinned commit, never from the
response that carries the bytes: the LFS sha256 (and size) for large files, the git blob id for
small ones (checked by computing the git blob sha1 of the bytes).

Calls: ``GET /api/{models|datasets}/{repo}/revision/{rev}`` (the commit; skipped when the
revision already is one), ``GET .../tree/{commit}/{parent}`` (is the path a file or a folder?)
and ``GET .../tree/{commit}[/{path}]?recursive=true`` (the files under a folder, paged with
``Link``). Each goes through :func:`~.http.get_small` under a :class:`~.retry.RetryPolicy`, so a
503 (or 429, a reset connection) from the API is tried again as a download would be. A listing
is bounded: a ``Link`` that leads back to a page already read, more than :data:`MAX_PAGES` pages
or :data:`MAX_ENTRIES` entries end it with a ``DownloadError`` instead of a loop without end.
"""

from __future__ import annotations

import fnmatch
import json
import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote, urljoin

from ..catalog.hub import HubRef, is_hub_url
from ..errors import DownloadError, ModelNotFoundError, OfflineError
from ..logs import logger
from ..retry import RetryPolicy
from ..settings import DEFAULT_HF_ENDPOINT, Settings
from .origins import Origin, origin_of

log = logger(__name__)
_NEXT_LINK = re.compile(r'<([^>]+)>;\s*rel="next"')
#: The most files (and folders) one listing may name: far above any model repository, far below
#: what would exhaust memory. Pull a folder of a larger repository, or filter with globs.
MAX_ENTRIES = 100_000
#: The most pages one listing may take (the Hub pages 1000 entries at a time, 50 with expand).
MAX_PAGES = MAX_ENTRIES // 50


def hub_token(settings: Settings) -> str | None:
    """``HF_TOKEN`` (or the legacy ``HUGGING_FACE_HUB_TOKEN``), else the token file."""
    if settings.hf_token:
        return settings.hf_token.strip() or None
    path = settings.hf_token_path
    if path is None:
        return None
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return token or None


def token_origins(settings: Settings) -> tuple[Origin, ...]:
    """Where a Hub token may go: the endpoint's origin (and huggingface.co's own)."""
    origins = {origin_of(settings.hf_endpoint), origin_of(DEFAULT_HF_ENDPOINT),
               origin_of("https://hf.co")}
    return tuple(sorted(origins))


def download_url(url: str, settings: Settings) -> str:
    """The http(s) URL that serves a file: an ``hf://`` reference becomes its resolve URL on
    ``HF_ENDPOINT``; anything else is returned as it is."""
    if not is_hub_url(url):
        return url
    return HubRef.parse(url).resolve_url(settings.hf_endpoint)


@dataclass(frozen=True)
class HubFile:
    """One file of a repository at a commit, as the Hub's API describes it."""

    path: str
    size: int
    #: For a large (LFS) file: its sha256. None for a small file.
    sha256: str | None
    #: The git blob id (for an LFS file, of its pointer).
    blob_id: str


@dataclass(frozen=True)
class Resolved:
    ref: HubRef
    commit: str
    files: tuple[HubFile, ...]
    #: True when ``ref.path`` names one file (not a folder or the whole repository).
    single: bool


class Hub:
    """API calls to one Hub endpoint, with the token only for it."""

    def __init__(self, settings: Settings, timeout: float = 30.0,
                 retry: RetryPolicy | None = None) -> None:
        self.settings = settings
        self.endpoint = settings.hf_endpoint
        self.retry = retry or RetryPolicy()
        from .http import Client  # TLS and http.client: when the Hub is asked

        self.client = Client(timeout=timeout, token=hub_token(settings),
                             token_origins=token_origins(settings))

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Hub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _json(self, ref: HubRef, url: str, *, what: str) -> tuple[object, str | None]:
        """GET an API document: (parsed JSON, the ``Link: rel=next`` URL if any)."""
        if self.settings.hf_offline or self.settings.offline:
            raise OfflineError(f"{ref.url()}: {what} needs the Hub, and offline mode is on"
                               " (HF_HUB_OFFLINE / RUNANYWHERE_OFFLINE)")
        from .http import get_small

        status, headers, body = get_small(url, {"Accept": "application/json"},
                                          client=self.client, retry=self.retry)
        if status in (401, 403, 404):
            code = headers.get("X-Error-Code") or ""
            if code == "RevisionNotFound":
                raise ModelNotFoundError(f"{ref.url()} (revision {ref.revision!r} not found)")
            if code == "EntryNotFound":
                raise ModelNotFoundError(f"{ref.url()} (no such path in the repository)")
            hint = "" if self.client.token else "; if it is private or gated, set HF_TOKEN"
            raise ModelNotFoundError(f"{ref.url()} (the Hub answered {status}: not found or"
                                     f" not authorised{hint})")
        if status != 200:
            raise DownloadError(f"{url} answered HTTP {status} for {what}", url=url,
                                status=status)
        try:
            doc = json.loads(body)
        except ValueError as e:
            raise DownloadError(f"{url} did not answer JSON for {what}: {e}", url=url) from e
        link = _NEXT_LINK.search(headers.get("Link") or "")
        return doc, urljoin(url, link.group(1)) if link else None

    def commit(self, ref: HubRef) -> str:
        """The commit a revision names now (a commit names itself, with no request)."""
        if ref.pinned:
            assert ref.revision is not None
            return ref.revision
        rev = quote(ref.revision or "main", safe="")
        doc, _ = self._json(ref, ref.api_url(self.endpoint, "revision", rev), what="the commit")
        sha = doc.get("sha") if isinstance(doc, dict) else None
        if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{40}", sha):
            raise DownloadError(f"the Hub gave no commit for {ref.url()}")
        return sha

    def _entries(self, ref: HubRef, url: str, what: str) -> list[dict[str, object]]:
        """Every entry of a paged listing, within :data:`MAX_PAGES` and :data:`MAX_ENTRIES`."""
        out: list[dict[str, object]] = []
        read: set[str] = set()
        next_url: str | None = url
        while next_url is not None:
            if next_url in read:
                raise DownloadError(f"{what} of {ref.url()} from the Hub loops: page"
                                    f" {len(read) + 1} links back to a page already read",
                                    url=next_url)
            if len(read) >= MAX_PAGES:
                raise DownloadError(f"{what} of {ref.url()} from the Hub goes on past"
                                    f" {MAX_PAGES} pages; pull a folder of it instead",
                                    url=next_url)
            read.add(next_url)
            doc, next_url = self._json(ref, next_url, what=what)
            if not isinstance(doc, list):
                raise DownloadError(f"the Hub's answer for {what} of {ref.url()} is not a list")
            out += [e for e in doc if isinstance(e, dict)]
            if len(out) > MAX_ENTRIES:
                raise DownloadError(f"{what} of {ref.url()} from the Hub names more than"
                                    f" {MAX_ENTRIES} entries; pull a folder of it instead",
                                    url=next_url or url)
        return out

    def _tree(self, ref: HubRef, folder: str, *, recursive: bool) -> list[dict[str, object]]:
        assert ref.revision is not None
        url = ref.api_url(self.endpoint, "tree", quote(ref.revision, safe=""),
                          *([quote(folder, safe="")] if folder else []))
        return self._entries(ref, f"{url}?recursive={str(recursive).lower()}&expand=false",
                             "the file list")

    def resolve(self, ref: HubRef, include: Sequence[str] = (), exclude: Sequence[str] = ()
                ) -> Resolved:
        """Pin the revision and list the files ``ref`` names (filtered by the globs)."""
        commit = self.commit(ref)
        pinned = ref.at(commit)
        single = False
        match: list[dict[str, object]] = []
        if ref.path:  # a file or a folder? Its parent folder's listing says.
            parent = posixpath.dirname(ref.path)
            match = [e for e in self._tree(pinned, parent, recursive=False)
                     if e.get("path") == ref.path]
            if not match:
                raise ModelNotFoundError(f"{ref.url()} (no such path at commit {commit[:12]})")
            single = match[0].get("type") == "file"
        entries = match if single else self._tree(pinned, ref.path, recursive=True)
        files = tuple(sorted((_file(e) for e in entries if e.get("type") == "file"),
                             key=lambda f: f.path))
        if include:
            files = tuple(f for f in files if any(fnmatch.fnmatch(f.path, g) for g in include))
        if exclude:
            files = tuple(f for f in files if not any(fnmatch.fnmatch(f.path, g)
                                                       for g in exclude))
        if not files:
            raise ModelNotFoundError(f"{ref.url()} (no files at commit {commit[:12]}"
                                     f"{' match the globs' if include or exclude else ''})")
        log.info("%s is commit %s: %d file(s)", ref.url(), commit, len(files))
        return Resolved(pinned, commit, files, single)


def _file(entry: dict[str, object]) -> HubFile:
    lfs = entry.get("lfs")
    sha256 = None
    size = entry.get("size")
    if isinstance(lfs, dict):
        oid = lfs.get("oid") or lfs.get("sha256")
        sha256 = str(oid) if oid else None
        size = lfs.get("size", size)
    if not isinstance(size, int) or size < 0:
        raise DownloadError(f"the Hub gave no size for {entry.get('path')}")
    return HubFile(str(entry.get("path")), size, sha256, str(entry.get("oid") or ""))
