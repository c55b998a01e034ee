"""The Hugging Face Hub's repos as this cache can show them (pure data; routes/hub.py serves them).

What a repo holds here comes from the catalog: a model whose files' URLs are
``hf://[datasets/]OWNER/REPO@<40-hex commit>/PATH`` contributes ``PATH`` at that commit, with the
bytes of the model's cached file (only when they are the catalog's, hash for hash). Models from
several catalog entries that name the same repo and commit make one repo view. The server cannot
know where a branch points today, so a branch or tag name (``main``) means the newest commit this
cache holds for the repo.

Which files are LFS is decided as the Hub's default ``.gitattributes`` does (the usual model and
archive extensions) plus anything over 10 MiB; for the others the ETag is the git blob id, as on
the Hub, computed from the cached bytes once per process. A repo's own ``.gitattributes`` may say
otherwise; huggingface_hub only uses the ETag as a cache file name, so either way it gets the
right bytes.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..catalog.hub import HubRef, is_hub_url

if TYPE_CHECKING:
    from ..catalog import ModelMetadata
    from ..store import CacheEntry

COMMIT = re.compile(r"[0-9a-f]{40}")
LFS_SIZE = 10 * 2**20
#: The Hub's default .gitattributes (the LFS patterns every new repo starts with).
LFS_SUFFIXES = (".7z", ".arrow", ".bin", ".bz2", ".ckpt", ".ftz", ".gz", ".h5", ".joblib",
                ".mlmodel", ".model", ".msgpack", ".npy", ".npz", ".onnx", ".ot", ".parquet",
                ".pb", ".pickle", ".pkl", ".pt", ".pth", ".rar", ".safetensors", ".tar",
                ".tflite", ".tgz", ".wasm", ".xz", ".zip", ".zst", ".gguf")


def repo_kind(segment: str) -> str:
    """``"models"``/``"datasets"`` (API and URL spelling) to the Hub's repo type."""
    return "dataset" if segment == "datasets" else "model"


@dataclass(frozen=True)
class PinnedFile:
    """A file of a repository at a commit, as a catalog URL names it."""

    kind: str  # "model" or "dataset"
    repo: str  # "owner/name"
    commit: str
    path: str


def parse_hf_url(url: str) -> PinnedFile | None:
    """The parts of a pinned ``hf://`` file URL, or None (not hf://, or not pinned to a
    commit)."""
    if not is_hub_url(url):
        return None
    try:
        ref = HubRef.parse(url)
    except ValueError:
        return None
    if not ref.pinned or not ref.path or ref.revision is None:
        return None
    return PinnedFile(ref.kind, ref.repo, ref.revision, ref.path)


def is_lfs(path: str, size: int) -> bool:
    name = path.rsplit("/", 1)[-1].lower()
    return size > LFS_SIZE or name.endswith(LFS_SUFFIXES) or ".tar." in name \
        or "tfevents" in name or "saved_model/" in path


def git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return (f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\n"
            f"size {size}\n").encode()


@dataclass
class HubFile:
    path: str  # in the repo
    model_id: str
    model_path: str  # in the model's folder
    size: int
    sha256: str | None  # the cached bytes' (or, uncached, the catalog's)
    cached: bool
    lfs: bool

    def pointer_oid(self) -> str | None:
        return git_blob_oid(lfs_pointer(self.sha256, self.size)) if self.sha256 else None


@dataclass
class HubCommit:
    sha: str
    files: dict[str, HubFile] = field(default_factory=dict)
    #: When the newest of its cached models was cached (0 if none is).
    cached_at: float = 0.0

    def servable(self, pull_through: bool) -> list[HubFile]:
        return sorted((f for f in self.files.values() if f.cached or (pull_through and f.sha256)),
                      key=lambda f: f.path)


@dataclass
class HubRepo:
    kind: str
    repo: str
    commits: dict[str, HubCommit] = field(default_factory=dict)

    def resolve(self, revision: str) -> HubCommit | None:
        """A commit by its sha; any other name means the newest commit held here."""
        if COMMIT.fullmatch(revision):
            return self.commits.get(revision)
        if not self.commits:
            return None
        return max(self.commits.values(), key=lambda c: (c.cached_at, c.sha))


def build_hub(metas: Iterable[ModelMetadata], entries: Mapping[str, CacheEntry]
              ) -> dict[tuple[str, str], HubRepo]:
    """Repo views from the catalog's pinned ``hf://`` files, joined with the cache."""
    repos: dict[tuple[str, str], HubRepo] = {}
    for meta in metas:
        if meta.archive:
            continue  # the repo file is an archive; the cache holds what it unpacked to
        entry = entries.get(meta.id)
        rows = {f.path: f for f in entry.files} if entry is not None else {}
        for mf in meta.files:
            ref = parse_hf_url(mf.url)
            if ref is None:
                continue
            row = rows.get(mf.path)
            cached = row is not None and mf.size in (None, row.size) and (
                mf.sha256 is None or mf.sha256 == row.sha256)
            sha = row.sha256 if cached and row is not None else mf.sha256
            size = row.size if cached and row is not None else mf.expected_size
            repo = repos.setdefault((ref.kind, ref.repo), HubRepo(ref.kind, ref.repo))
            commit = repo.commits.setdefault(ref.commit, HubCommit(ref.commit))
            known = commit.files.get(ref.path)
            if known is not None and known.cached and not cached:
                continue  # two models name this file: keep the one that is here
            # The Hub's own answer says which files are small (their git blob id is in the
            # catalog); for hand-written entries, the Hub's default .gitattributes decides.
            lfs = mf.git_sha1 is None and is_lfs(ref.path, size)
            commit.files[ref.path] = HubFile(ref.path, meta.id, mf.path, size, sha, cached, lfs)
            if cached and entry is not None:
                commit.cached_at = max(commit.cached_at, entry.created)
    return repos


def _dirs(paths: Iterable[str]) -> set[str]:
    out: set[str] = set()
    for p in paths:
        parts = p.split("/")
        out.update("/".join(parts[:i]) for i in range(1, len(parts)))
    return out


def tree_oid(oids: Mapping[str, str], base: str) -> str:
    """The git tree id of folder ``base`` (``""``: the root) of files with these blob ids."""
    prefix = f"{base}/" if base else ""
    children: dict[str, str | None] = {}
    for path, oid in oids.items():
        if path.startswith(prefix):
            name, sep, _ = path[len(prefix):].partition("/")
            children[name] = None if sep else oid
    body = b""
    for name in sorted(children, key=lambda n: n + "/" if children[n] is None else n):
        child = children[name]
        mode, oid = ("100644", child) if child else ("40000", tree_oid(oids, prefix + name))
        body += f"{mode} {name}".encode() + b"\0" + bytes.fromhex(oid)
    return hashlib.sha1(b"tree %d\0" % len(body) + body).hexdigest()


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(seconds))


def info_json(repo: HubRepo, commit: HubCommit, files: list[HubFile], oids: Mapping[str, str],
              blobs: bool) -> dict[str, Any]:
    """``/api/{models,datasets}/{id}/revision/{rev}`` as ``ModelInfo``/``DatasetInfo`` read it."""
    siblings: list[dict[str, Any]] = []
    for f in files:
        sib: dict[str, Any] = {"rfilename": f.path}
        if blobs:
            sib.update(blobId=oids[f.path], size=f.size)
            if f.lfs:
                sib["lfs"] = {"sha256": f.sha256, "size": f.size,
                              "pointerSize": len(lfs_pointer(f.sha256 or "", f.size))}
        siblings.append(sib)
    when = _iso(commit.cached_at or time.time())
    info: dict[str, Any] = {
        "_id": hashlib.sha1(f"{repo.kind}/{repo.repo}".encode()).hexdigest()[:24],
        "id": repo.repo,
        "author": repo.repo.split("/")[0],
        "sha": commit.sha,
        "lastModified": when,
        "createdAt": when,
        "private": False,
        "gated": False,
        "disabled": False,
        "downloads": 0,
        "likes": 0,
        "tags": [],
        "siblings": siblings,
        "usedStorage": sum(f.size for f in files),
    }
    if repo.kind == "model":
        info["modelId"] = repo.repo
    return info


def tree_json(files: list[HubFile], oids: Mapping[str, str], base: str, recursive: bool
              ) -> list[dict[str, Any]] | None:
    """``/api/.../tree/{rev}[/{base}]`` entries (folders first, then files), or None when
    ``base`` is not a folder."""
    paths = [f.path for f in files]
    dirs = _dirs(paths)
    if base and base not in dirs:
        return None
    prefix = f"{base}/" if base else ""
    by_path = {f.path: f for f in files}
    out: list[dict[str, Any]] = []
    for d in sorted(dirs):
        if d.startswith(prefix) and (recursive or "/" not in d[len(prefix):]):
            out.append({"type": "directory", "oid": tree_oid(oids, d), "size": 0, "path": d})
    for p in sorted(paths):
        if p.startswith(prefix) and (recursive or "/" not in p[len(prefix):]):
            f = by_path[p]
            entry: dict[str, Any] = {"type": "file", "oid": oids[p], "size": f.size, "path": p}
            if f.lfs:
                entry["lfs"] = {"oid": f.sha256, "size": f.size,
                                "pointerSize": len(lfs_pointer(f.sha256 or "", f.size))}
            out.append(entry)
    return out


def hub_error(code: str | None, message: str, commit: str | None = None) -> dict[str, str]:
    """The headers huggingface_hub reads an error from (``hf_raise_for_status``)."""
    headers = {"X-Error-Message": message}
    if code:
        headers["X-Error-Code"] = code
    if commit:
        headers["X-Repo-Commit"] = commit
    return headers
